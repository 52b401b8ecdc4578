"""The Graph protocol's pure pieces: create body, session reference, token, public origin."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import azure.functions as func
import pytest

from uploadsession.errors import InvalidRequest, ItemNotFound
from uploadsession.graph import (
    parse_create_body,
    parse_session_ref,
    session_ref,
    token_hash,
    upload_token,
)
from uploadsession.graph_http import public_origin
from uploadsession.models import DocumentKey, Session

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
