"""The Graph protocol over HTTP (DESIGN §2, §2.1, §2.2): one test per rule, on `uploadsession
serve` + Azurite."""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.e2e.conftest import OTHER_TENANT, TENANT, Api, start_api
from tests.processes import Azurite

PROPERTIES = {"documentName": "doc.pdf", "contentType": "application/pdf"}


def origin(api: Api) -> str:
    return api.base_url.rsplit("/", 1)[0]


def document_url(api: Api, version: str = "v1.0") -> str:
    return (
        f"{origin(api)}/{version}/print/printers/{uuid.uuid4()}/jobs/job-1/documents/{uuid.uuid4()}"
    )


def create(
    client: httpx.Client, api: Api, doc: str, size: int, **headers: str
) -> dict[str, object]:
    body = {"properties": {**PROPERTIES, "size": size}}
    response = client.post(
        doc + "/createUploadSession", json=body, headers={**api.headers(), **headers}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def put(client: httpx.Client, url: str, data: bytes, start: int, size: int, **headers: str):
    end = start + max(len(data), 1) - 1
    sent = {"Content-Range": f"bytes {start}-{end}/{size}", **headers}
    return client.put(url, content=data, headers=sent)


def blob(api: Api, doc: str, tenant: str = TENANT) -> bytes:
    parts = doc.split("/")
    name = f"{tenant}/{parts[-5]}/{parts[-3]}/{parts[-1]}"
    return bytes(
        api.storage._get_clients().documents.get_blob_client(name).download_blob().readall()
    )


def upload_all(client: httpx.Client, url: str, data: bytes, chunk: int) -> httpx.Response:
    response = None
    for start in range(0, len(data), chunk):
        response = put(client, url, data[start : start + chunk], start, len(data))
        assert response.status_code in (201, 202), response.text
    assert response is not None
    return response


def assert_not_found(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "itemNotFound"


# -- §2: both version segments -----------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1.0", "beta"])
def test_every_route_is_served_under_both_versions(
    client: httpx.Client, api: Api, version: str
) -> None:
    doc = document_url(api, version)
    session = client.put(
        doc + "/uploadSession", json={**PROPERTIES, "size": 10}, headers=api.headers()
    )
    assert session.status_code == 200, session.text
    assert client.get(doc + "/uploadSession", headers=api.headers()).status_code == 200
    created = create(client, api, doc, 10)
    assert created["nextExpectedRanges"] == ["0-9"]
    assert f"/{version}/" in str(created["uploadUrl"])


@pytest.mark.parametrize("version", ["v2.0", "Beta", "api", "v1"])
def test_any_other_version_is_404(client: httpx.Client, api: Api, version: str) -> None:
    doc = document_url(api, version)
    assert_not_found(client.get(doc + "/uploadSession", headers=api.headers()))
    assert_not_found(
        client.post(doc + "/createUploadSession", json={"properties": {}}, headers=api.headers())
    )


# -- §2.1 create -------------------------------------------------------------------------------


def test_create_answers_graphs_upload_session(client: httpx.Client, api: Api) -> None:
    created = create(client, api, document_url(api), 1024)
    assert list(created) == [
        "@odata.context",
        "uploadUrl",
        "expirationDateTime",
        "nextExpectedRanges",
    ]
    assert created["nextExpectedRanges"] == ["0-1023"]
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(created["expirationDateTime"])
    )
    url = urlsplit(str(created["uploadUrl"]))
    assert url.scheme == "http" and url.netloc == urlsplit(api.base_url).netloc
    assert len([s for s in url.path.split("/") if s]) >= 2
    query = parse_qs(url.query)
    assert list(query) == ["tempauthtoken"] and len(query["tempauthtoken"]) == 1
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", query["tempauthtoken"][0])  # 256 bits, URL-safe


def test_idempotent_create_returns_the_same_upload_url(client: httpx.Client, api: Api) -> None:
    doc = document_url(api)
    first = create(client, api, doc, 100)
    again = create(client, api, doc, 100)
    assert again["uploadUrl"] == first["uploadUrl"]
    other_size = client.post(
        doc + "/createUploadSession",
        json={"properties": {**PROPERTIES, "size": 101}},
        headers=api.headers(),
    )
    assert other_size.status_code == 409


def test_odata_annotations_are_accepted_and_unknown_properties_refused(
    client: httpx.Client, api: Api
) -> None:
    body = {
        "@odata.type": "#microsoft.graph.printDocumentUploadProperties",
        "properties": {
            "@odata.type": "#microsoft.graph.printDocumentUploadProperties",
            **PROPERTIES,
            "size": 5,
        },
    }
    doc = document_url(api)
    ok = client.post(doc + "/createUploadSession", json=body, headers=api.headers())
    assert ok.status_code == 200, ok.text
    for bad, field in (
        ({"properties": {**PROPERTIES, "size": 5, "colour": 1}}, "colour"),
        ({"properties": {**PROPERTIES, "size": 5}, "extra": True}, "extra"),
        ({"properties": {**PROPERTIES, "size": "5"}}, "size"),
    ):
        refused = client.post(
            document_url(api) + "/createUploadSession", json=bad, headers=api.headers()
        )
        assert refused.status_code == 400, refused.text
        assert field in refused.json()["error"]["message"]


def test_a_legacy_session_is_uploaded_through_the_upload_url(
    client: httpx.Client, api: Api
) -> None:
    doc = document_url(api, "beta")
    legacy = client.put(
        doc + "/uploadSession", json={**PROPERTIES, "size": 8}, headers=api.headers()
    ).json()
    created = create(client, api, doc, 8)
    assert put(client, str(created["uploadUrl"]), b"12345678", 0, 8).status_code == 201
    seen = client.get(doc + "/uploadSession", headers=api.headers()).json()
    assert seen["id"] == legacy["id"] and seen["nextExpectedRanges"] == []
    assert blob(api, doc) == b"12345678"


# -- §2.1 the uploadUrl --------------------------------------------------------------------------


def test_put_needs_only_content_range_and_answers_202_then_201(
    client: httpx.Client, api: Api
) -> None:
    data = random.randbytes(3000)
    doc = document_url(api)
    url = str(create(client, api, doc, len(data))["uploadUrl"])
    first = client.put(url, content=data[:1001], headers={"Content-Range": "bytes 0-1000/3000"})
    assert first.status_code == 202, first.text
    assert first.headers["Content-Type"] == "application/json"
    assert list(first.json()) == ["expirationDateTime", "nextExpectedRanges"]
    assert first.json()["nextExpectedRanges"] == ["1001-2999"]
    last = client.put(url, content=data[1001:], headers={"Content-Range": "bytes=1001-2999/3000"})
    assert last.status_code == 201, last.text
    document = last.json()
    assert list(document) == ["id", "displayName", "contentType", "size", "uploadedDateTime"]
    assert document["id"] == doc.rsplit("/", 1)[1]
    assert (document["displayName"], document["contentType"], document["size"]) == (
        "doc.pdf",
        "application/pdf",
        3000,
    )
    assert blob(api, doc) == data


def test_an_authorization_header_on_the_upload_url_is_ignored(
    client: httpx.Client, api: Api
) -> None:
    url = str(create(client, api, document_url(api), 4)["uploadUrl"])
    for auth in ("Bearer not-a-token", api.headers(tenant=OTHER_TENANT)["Authorization"]):
        status = client.get(url, headers={"Authorization": auth})
        assert status.status_code == 200, status.text
    done = put(client, url, b"abcd", 0, 4, Authorization="Bearer garbage")
    assert done.status_code == 201, done.text


def test_wrong_token_cancelled_and_expired_sessions_are_404_alike(
    client: httpx.Client, api: Api, short_lived: Api
) -> None:
    url = str(create(client, api, document_url(api), 4)["uploadUrl"])
    wrong = url.rsplit("=", 1)[0] + "=" + "A" * 43
    missing = url.split("?")[0]
    cancelled = str(create(client, api, document_url(api), 4)["uploadUrl"])
    assert client.delete(cancelled).status_code == 204
    expired = str(create(client, short_lived, document_url(short_lived), 4)["uploadUrl"])
    time.sleep(2.5)
    bodies = set()
    for target in (wrong, missing, cancelled, expired):
        for response in (client.get(target), put(client, target, b"abcd", 0, 4)):
            assert_not_found(response)
            bodies.add(response.json()["error"]["message"])
    assert len(bodies) == 1  # nothing tells the cases apart


def test_after_completion_a_resent_range_and_an_empty_put_get_201(
    client: httpx.Client, api: Api
) -> None:
    data = random.randbytes(5000)
    doc = document_url(api)
    url = str(create(client, api, doc, len(data))["uploadUrl"])
    upload_all(client, url, data, 2000)
    again = put(client, url, data[4000:], 4000, 5000)
    assert again.status_code == 201, again.text
    empty = client.put(url, content=b"", headers={"Content-Range": "bytes 0-4999/5000"})
    assert empty.status_code == 201, empty.text
    assert empty.json()["id"] == doc.rsplit("/", 1)[1]


def test_after_completion_identical_bytes_at_other_boundaries_get_201(
    client: httpx.Client, api: Api
) -> None:
    data = random.randbytes(4000)
    doc = document_url(api)
    url = str(create(client, api, doc, len(data))["uploadUrl"])
    upload_all(client, url, data, 2000)
    again = put(client, url, data[1000:3000], 1000, 4000)  # a fresh task with another chunk size
    assert again.status_code == 201, again.text
    assert blob(api, doc) == data


def test_after_completion_different_bytes_are_416_and_never_written(
    client: httpx.Client, api: Api
) -> None:
    data = random.randbytes(4000)
    doc = document_url(api)
    url = str(create(client, api, doc, len(data))["uploadUrl"])
    upload_all(client, url, data, 2000)
    refused = put(client, url, b"x" * 2000, 2000, 4000)
    assert refused.status_code == 416, refused.text
    assert blob(api, doc) == data


def test_the_upload_url_honours_x_forwarded_headers(client: httpx.Client, api: Api) -> None:
    created = create(
        client,
        api,
        document_url(api),
        4,
        **{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "print.example.test"},
    )
    url = urlsplit(str(created["uploadUrl"]))
    assert (url.scheme, url.netloc) == ("https", "print.example.test")


def test_get_upload_url_answers_status_and_delete_cancels(client: httpx.Client, api: Api) -> None:
    doc = document_url(api)
    url = str(create(client, api, doc, 10)["uploadUrl"])
    put(client, url, b"01234", 0, 10)
    status = client.get(url)
    assert status.status_code == 200
    assert status.json()["uploadUrl"] == url
    assert status.json()["nextExpectedRanges"] == ["5-9"]
    assert "expirationDateTime" in status.json()
    deleted = client.delete(url)
    assert deleted.status_code == 204 and deleted.content == b""
    assert_not_found(client.get(doc + "/uploadSession", headers=api.headers()))


def test_no_log_line_contains_the_capability_token(client: httpx.Client, api: Api) -> None:
    url = str(create(client, api, document_url(api), 4)["uploadUrl"])
    token = parse_qs(urlsplit(url).query)["tempauthtoken"][0]
    client.get(url)
    put(client, url, b"ab", 0, 4)
    client.put(url, content=b"zz", headers={"Content-Range": "nonsense"})
    client.get(url.rsplit("=", 1)[0] + "=wrong" + token[5:])
    time.sleep(0.3)
    log = api.server.log.read_text(errors="replace")
    assert "uploadSessions" in log  # the requests were logged ...
    assert token not in log and token[:16] not in log  # ... never their token


# -- §2.2 GET {D}/$value --------------------------------------------------------------------------


def test_content_redirects_to_exactly_the_bytes_and_honours_visibility(
    client: httpx.Client, api: Api
) -> None:
    data = random.randbytes(1500)
    doc = document_url(api)
    url = str(create(client, api, doc, len(data))["uploadUrl"])
    assert_not_found(client.get(doc + "/$value", headers=api.headers()))  # not yet uploaded
    upload_all(client, url, data, 1000)
    redirect = client.get(doc + "/$value", headers=api.headers())
    assert redirect.status_code == 302, redirect.text
    location = redirect.headers["Location"]
    expiry = parse_qs(urlsplit(location).query)["se"][0]
    assert expiry  # a SAS with an expiry; its permissions are read only
    assert parse_qs(urlsplit(location).query)["sp"] == ["r"]
    assert httpx.get(location).content == data  # no bearer token needed
    other_user = api.headers(user=str(uuid.uuid4()))
    assert_not_found(client.get(doc + "/$value", headers=other_user))
    other_tenant = api.headers(tenant=OTHER_TENANT)
    assert_not_found(client.get(doc + "/$value", headers=other_tenant))
    reader_all = api.headers(user=str(uuid.uuid4()), scp="PrintJob.Read.All Printer.Read.All")
    assert client.get(doc + "/$value", headers=reader_all).status_code == 302
    assert (
        client.get(
            doc + "/$value", headers=api.headers(roles=["PrintJob.Read.All", "Printer.Read.All"])
        ).status_code
        == 302
    )


def test_content_is_readable_after_the_session_is_purged(client: httpx.Client, api: Api) -> None:
    data = random.randbytes(700)
    doc = document_url(api)
    url = str(create(client, api, doc, len(data))["uploadUrl"])
    upload_all(client, url, data, 700)
    # What the purge leaves: the committed blob, no session row.
    assert client.delete(doc + "/uploadSession", headers=api.headers()).status_code == 204
    assert_not_found(client.get(doc + "/uploadSession", headers=api.headers()))
    redirect = client.get(doc + "/$value", headers=api.headers())
    assert redirect.status_code == 302, redirect.text
    assert httpx.get(redirect.headers["Location"]).content == data
    assert_not_found(client.get(doc + "/$value", headers=api.headers(user=str(uuid.uuid4()))))


def test_content_of_a_document_never_uploaded_is_404(client: httpx.Client, api: Api) -> None:
    assert_not_found(client.get(document_url(api) + "/$value", headers=api.headers()))


@pytest.fixture(scope="module")
def short_lived(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    running = start_api(azurite, tmp_path_factory.mktemp("ttl"), UPLOAD_SESSION_TTL_SECONDS="2")
    try:
        yield running
    finally:
        running.server.stop()
