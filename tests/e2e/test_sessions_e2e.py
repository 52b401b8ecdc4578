"""GET/PUT/DELETE over HTTP, as a Graph client would see them."""

from __future__ import annotations

import re
import uuid

import httpx

from tests.e2e.conftest import OTHER_TENANT, UNSUBSCRIBED_TENANT, Api

BODY = {"size": 1024, "contentType": "application/pdf", "documentName": "file.pdf"}
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def assert_envelope(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    assert error["innerError"]["request-id"] == response.headers["request-id"]


def test_a_session_walks_through_create_read_and_every_visibility_rule(
    api: Api,
    client: httpx.Client,
) -> None:
    url = api.session_url()
    created = client.put(url, json=BODY, headers=api.headers())
    assert created.status_code == 200, created.text
    session = created.json()
    assert list(session) == [
        "id",
        "size",
        "contentType",
        "documentName",
        "expiryDateTime",
        "createdBy",
        "missingRanges",
        "nextExpectedRanges",
    ]
    assert GUID.match(session["id"])
    assert session["size"] == 1024
    assert session["missingRanges"] == [{"start": "0", "end": "1023"}]
    assert session["nextExpectedRanges"] == ["0-1023"]
    assert session["createdBy"]["user"]["id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", session["expiryDateTime"])
    etag = created.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]+"', etag)
    assert GUID.match(created.headers["request-id"])

    read = client.get(url, headers={**api.headers(), "client-request-id": "my-call-1"})
    assert read.status_code == 200
    assert read.json() == session
    assert read.headers["ETag"] == etag
    assert read.headers["client-request-id"] == "my-call-1"

    again = client.put(url, json=BODY, headers=api.headers())
    assert again.status_code == 200 and again.json()["id"] == session["id"]

    not_modified = client.get(url, headers={**api.headers(), "If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["ETag"] == etag

    stranger = api.headers(user=str(uuid.uuid4()))
    assert_envelope(client.get(url, headers=stranger), 404, "itemNotFound")
    assert_envelope(client.put(url, json=BODY, headers=stranger), 409, "conflict")

    reader_all = api.headers(user=str(uuid.uuid4()), scp="PrintJob.Read.All Printer.Read.All")
    assert client.get(url, headers=reader_all).json()["id"] == session["id"]
    app = api.headers(roles=["PrintJob.Read.All", "Printer.Read.All"])
    assert client.get(url, headers=app).status_code == 200

    assert_envelope(client.get(url, headers=api.headers(tenant=OTHER_TENANT)), 404, "itemNotFound")
    denied = client.get(url, headers=api.headers(tenant=UNSUBSCRIBED_TENANT))
    assert_envelope(denied, 403, "accessDenied")
    assert "subscription" in denied.json()["error"]["message"]

    anonymous = client.get(url)
    assert_envelope(anonymous, 401, "InvalidAuthenticationToken")
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert "error=" not in anonymous.headers["WWW-Authenticate"]
    forged = client.get(url, headers={"Authorization": "Bearer not.a.token"})
    assert_envelope(forged, 401, "InvalidAuthenticationToken")
    assert 'error="invalid_token"' in forged.headers["WWW-Authenticate"]
    reader = api.headers(scp="PrintJob.Read Printer.Read.All")
    scoped = client.put(api.session_url(), json=BODY, headers=reader)
    assert_envelope(scoped, 403, "accessDenied")
    assert 'error="insufficient_scope"' in scoped.headers["WWW-Authenticate"]

    assert client.get(url, headers=api.headers()).json() == session  # nothing changed


def test_bad_ids_and_bodies_get_400_naming_the_problem(api: Api, client: httpx.Client) -> None:
    bad_printer = api.session_url(printer="not-a-guid")
    response = client.put(bad_printer, json=BODY, headers=api.headers())
    assert_envelope(response, 400, "invalidRequest")
    assert "printerId" in response.json()["error"]["message"]
    assert_envelope(
        client.get(api.session_url(job="a_b"), headers=api.headers()), 400, "invalidRequest"
    )
    url = api.session_url()
    for body, field in [
        ({**BODY, "size": "1"}, "size"),
        ({**BODY, "extra": 1}, "extra"),
        ({**BODY, "contentType": "pdf"}, "contentType"),
        ({"size": 1, "contentType": "a/b"}, "documentName"),
    ]:
        response = client.put(url, json=body, headers=api.headers())
        assert_envelope(response, 400, "invalidRequest")
        assert field in response.json()["error"]["message"]
    response = client.put(url, content=b"{not json", headers=api.headers())
    assert_envelope(response, 400, "invalidRequest")
    assert_envelope(client.get(url, headers=api.headers()), 404, "itemNotFound")


def test_delete_is_for_the_creator_only_and_the_session_is_gone_afterwards(
    api: Api,
    client: httpx.Client,
) -> None:
    url = api.session_url()
    assert client.put(url, json=BODY, headers=api.headers()).status_code == 200
    everyone = api.headers(user=str(uuid.uuid4()), scp="PrintJob.ReadWrite.All Printer.Read.All")
    assert_envelope(client.delete(url, headers=everyone), 403, "accessDenied")
    own_only = api.headers(user=str(uuid.uuid4()))
    assert_envelope(client.delete(url, headers=own_only), 404, "itemNotFound")
    assert client.get(url, headers=api.headers()).status_code == 200
    deleted = client.delete(url, headers=api.headers())
    assert deleted.status_code == 204 and deleted.content == b""
    assert_envelope(client.get(url, headers=api.headers()), 404, "itemNotFound")
    assert_envelope(client.delete(url, headers=api.headers()), 404, "itemNotFound")
    # The document can be started again after a cancel.
    assert client.put(url, json=BODY, headers=api.headers()).status_code == 200
