"""The Graph protocol: its pure pieces (create body, session reference, token, public origin)
and the PUT uploadUrl's answer over the HTTP functions on the in-memory store."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import pytest

from tests.unit.test_http import JOB, PRINTER, Api, api, settings, signing_key
from tests.unit.tokens import TENANT
from uploadsession import graph_http, http
from uploadsession.errors import InvalidRequest, ItemNotFound
from uploadsession.graph import (
    parse_create_body,
    parse_session_ref,
    session_ref,
    token_hash,
    upload_token,
)
from uploadsession.graph_http import public_origin
from uploadsession.models import DocumentKey, Segment, Session
from uploadsession.wire import PROGRESS_RANGES_LIMIT

__all__ = ["api", "settings", "signing_key"]  # the fixtures, from test_http
DOCUMENT = "5f0c2a1e-8b7d-4c3e-9a6f-1d2e3f4a5b6c"

KEY = DocumentKey.parse(
    "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "D10B32D8-30ED-4C72-A69B-A7155F81947D",
    "job-1",
    "d10b32d8-30ed-4c72-a69b-a7155f81947e",
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _session(session_id: str = "s-1") -> Session:
    return Session(KEY, session_id, 10, "text/plain", "a.txt", "app", "user", NOW, NOW)


def test_the_session_ref_round_trips_and_anything_else_is_404() -> None:
    assert parse_session_ref(session_ref(KEY)) == KEY
    for bad in ("", "!!", "YWJj", session_ref(KEY)[:-3], "x" * 500):
        with pytest.raises(ItemNotFound):
            parse_session_ref(bad)


def test_the_token_is_per_session_url_safe_and_only_its_hash_is_kept() -> None:
    key = b"k" * 32
    token = upload_token(key, _session())
    assert token == upload_token(key, _session())  # the same session: the same uploadUrl
    assert token != upload_token(key, _session("s-2"))  # a new session: a new token
    assert token != upload_token(b"j" * 32, _session())
    assert len(token) == 43 and token.replace("-", "").replace("_", "").isalnum()
    assert len(token_hash(token)) == 32 and token.encode() not in token_hash(token)


def test_the_create_body_ignores_odata_annotations_and_names_unknown_fields() -> None:
    body = {
        "@odata.type": "#x",
        "properties": {"@odata.type": "#y", "documentName": "a", "contentType": "a/b", "size": 3},
    }
    request = parse_create_body(json.dumps(body).encode(), max_document_bytes=10)
    assert (request.size, request.content_type, request.document_name) == (3, "a/b", "a")
    for bad, named in (
        ({}, "properties"),
        ({"properties": []}, "properties"),
        ({"properties": {"size": 3}, "x": 1}, "x"),
        ({"properties": {"documentName": "a", "contentType": "a/b", "size": 30}}, "size"),
    ):
        with pytest.raises(InvalidRequest, match=named):
            parse_create_body(json.dumps(bad).encode(), max_document_bytes=10)
    with pytest.raises(InvalidRequest):
        parse_create_body(b"[1", max_document_bytes=10)


@pytest.mark.parametrize(
    ("headers", "origin"),
    [
        ({}, "http://localhost:7071"),
        ({"X-Forwarded-Proto": "https"}, "https://localhost:7071"),
        (
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "print.example"},
            "https://print.example",
        ),
        ({"X-Forwarded-Host": "a.example:8443, b.example"}, "http://a.example:8443"),
        (
            {"X-Forwarded-Host": "evil/x?y", "X-Forwarded-Proto": "javascript"},
            "http://localhost:7071",
        ),
    ],
)
def test_the_public_origin_honours_sane_forwarded_headers(
    headers: dict[str, str], origin: str
) -> None:
    req = func.HttpRequest("GET", "http://localhost:7071/v1.0/x", headers=headers, body=b"")
    assert public_origin(req) == origin


def test_create_upload_session_properties_may_declare_the_document_checksum() -> None:
    props = {"documentName": "a.pdf", "contentType": "application/pdf", "size": 3}
    body = {"properties": {**props, "checksum": "crc64nvme:00000000000000ff"}}
    assert parse_create_body(json.dumps(body).encode(), max_document_bytes=10).checksum == 255
    bad = {"properties": {**props, "checksum": "md5:abc"}}
    with pytest.raises(InvalidRequest, match="'checksum'"):
        parse_create_body(json.dumps(bad).encode(), max_document_bytes=10)


# -- over the HTTP functions, on the in-memory store ------------------------------------------

_DOCUMENT_PATH = f"print/printers/{PRINTER}/jobs/{JOB}/documents/{DOCUMENT}"
_ROUTE = {"version": "v1.0", "printerId": PRINTER, "jobId": JOB, "documentId": DOCUMENT}


def _graph_create(api: Api, size: int) -> str:
    """createUploadSession for ``size`` bytes; the uploadUrl."""
    props = {"documentName": "a.pdf", "contentType": "application/pdf", "size": size}
    req = func.HttpRequest(
        "POST",
        f"http://localhost:7071/v1.0/{_DOCUMENT_PATH}/createUploadSession",
        headers={"Authorization": f"Bearer {api.token()}"},
        route_params=_ROUTE,
        body=json.dumps({"properties": props}).encode(),
    )
    response = graph_http.graph_create_upload_session(req)
    assert response.status_code == 200, response.get_body()
    return str(json.loads(response.get_body())["uploadUrl"])


def _on_upload_url(
    handler: Any, method: str, url: str, *, headers: dict[str, str] | None = None, body: bytes = b""
) -> func.HttpResponse:
    path, _, query = url.partition("?")
    ref = path.rsplit("/", 1)[1]
    name, _, token = query.partition("=")
    req = func.HttpRequest(
        method,
        url,
        headers=headers or {},
        params={name: token},
        route_params={"version": "v1.0", "sessionRef": ref},
        body=body,
    )
    response: func.HttpResponse = handler(req)
    return response


def _put(url: str, start: int, data: bytes, size: int) -> func.HttpResponse:
    headers = {"Content-Range": f"bytes {start}-{start + len(data) - 1}/{size}"}
    return _on_upload_url(graph_http.graph_upload_range, "PUT", url, headers=headers, body=data)


def test_a_put_into_a_session_with_many_gaps_answers_only_the_first_ranges_and_get_all(
    api: Api,
) -> None:
    size, gaps = 1_000_000, 5_000
    url = _graph_create(api, size)
    key = DocumentKey.parse(TENANT, PRINTER, JOB, DOCUMENT)
    session = api.store.get_session(key)
    assert session is not None
    # 100 received bytes every 200: a gap after each segment (recorded directly: the rules
    # under test are the answer's, not the recording's).
    segments = tuple(Segment(i * 200, i * 200 + 99, bytes(16)) for i in range(gaps))
    api.store.replace_session(replace(session, segments=segments))

    answer = _put(url, 100, b"x" * 100, size)  # fills the first gap exactly
    assert answer.status_code == 202
    progress = json.loads(answer.get_body())
    assert len(progress["nextExpectedRanges"]) == PROGRESS_RANGES_LIMIT
    assert progress["nextExpectedRanges"][:2] == ["300-399", "500-599"]
    assert len(answer.get_body()) < 2_000  # ~ the limit's ranges, not the session's 5,000

    status = _on_upload_url(graph_http.graph_get_upload_status, "GET", url)
    assert status.status_code == 200
    assert len(json.loads(status.get_body())["nextExpectedRanges"]) == gaps - 1
    legacy = http.get_upload_session(
        func.HttpRequest(
            "GET",
            f"http://localhost:7071/v1.0/{_DOCUMENT_PATH}/uploadSession",
            headers={"Authorization": f"Bearer {api.token()}"},
            route_params=_ROUTE,
            body=b"",
        )
    )
    body = json.loads(legacy.get_body())
    assert len(body["missingRanges"]) == len(body["nextExpectedRanges"]) == gaps - 1


def test_a_put_with_few_gaps_lists_every_missing_range(api: Api) -> None:
    url = _graph_create(api, 1000)
    answer = _put(url, 100, b"x" * 100, 1000)
    assert json.loads(answer.get_body())["nextExpectedRanges"] == ["0-99", "200-999"]
