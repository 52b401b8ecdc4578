"""Identifiers, the PUT body, the session's Graph JSON and its ETag (DESIGN §2)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest

from uploadsession.errors import InvalidRequest
from uploadsession.models import (
    COMMITTED,
    CreateRequest,
    DocumentKey,
    Segment,
    Session,
    format_datetime,
    render,
)

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
PRINTER = "016b5565-3bbf-4067-b9ff-4d68167eb1a6"
DOCUMENT = "9a6d0ba5-07a3-4e5e-9f1e-0e6f8e7b4c21"
APP = "53328905-26eb-415a-96f6-311c68bb818e"
USER = "853364e6-6be9-4003-ad9b-acab84b41643"
MAX = 1024 * 1024


def session_json(session: Session) -> dict[str, Any]:
    """The session JSON as a client reads it (``render``'s bytes)."""
    return cast(dict[str, Any], json.loads(render(session)[0]))


def _key() -> DocumentKey:
    return DocumentKey.parse(TENANT, PRINTER, "job-1", DOCUMENT)


def _session(**changes: Any) -> Session:
    base = Session(
        key=_key(),
        id="d10b32d8-30ed-4c72-a69b-a7155f81947d",
        size=1024,
        content_type="application/pdf",
        document_name="file.pdf",
        app_id=APP,
        user_id=USER,
        created=datetime(2020, 4, 28, 9, 21, 55, tzinfo=UTC),
        expires=datetime(2020, 4, 29, 9, 21, 55, 523000, tzinfo=UTC),
    )
    return replace(base, **changes)


def _segment(start: int, end: int, data: bytes | None = None) -> Segment:
    data = bytes(end - start + 1) if data is None else data
    return Segment(start, end, hashlib.md5(data).digest())


def _parse(body: Any, *, raw: bool = False) -> CreateRequest:
    payload = body if raw else json.dumps(body).encode()
    return CreateRequest.parse(payload, max_document_bytes=MAX)


GOOD = {"size": 1024, "contentType": "application/pdf", "documentName": "file.pdf"}


# -- DocumentKey --------------------------------------------------------------------------


def test_guids_of_any_case_are_stored_lower_case() -> None:
    key = DocumentKey.parse(TENANT.upper(), PRINTER.upper(), "Job-1", DOCUMENT.upper())
    assert key == DocumentKey(TENANT, PRINTER, "Job-1", DOCUMENT)
    assert key.blob_name == f"{TENANT}/{PRINTER}/Job-1/{DOCUMENT}"


@pytest.mark.parametrize("job_id", ["a", "A-z-0-9", "x" * 64, "-", "12345"])
def test_job_ids_of_1_to_64_letters_digits_and_dashes_are_accepted(job_id: str) -> None:
    assert DocumentKey.parse(TENANT, PRINTER, job_id, DOCUMENT).job_id == job_id


@pytest.mark.parametrize(
    "job_id",
    [
        "",
        "x" * 65,
        "../x",
        "a/b",
        "a#b",
        "%00",
        "a%2Fb",
        "'",
        "a'b",
        "a b",
        "a_b",
        "a.b",
        "jöb",
        "\uff4a\uff4f\uff42",  # fullwidth letters
        "١٢٣",  # Arabic-Indic digits
        "a\n",
        "a\x00",
        "a:b",  # the row-key separator
    ],
)
def test_hostile_job_ids_are_refused_naming_the_field(job_id: str) -> None:
    with pytest.raises(InvalidRequest, match="jobId"):
        DocumentKey.parse(TENANT, PRINTER, job_id, DOCUMENT)


HOSTILE_GUIDS = [
    "",
    "not-a-guid",
    "../" + PRINTER,
    PRINTER + "/x",
    PRINTER + "\n",
    "{" + PRINTER + "}",
    PRINTER.replace("-", ""),
    PRINTER[:-1] + "g",
    PRINTER[:-1] + "\uff10",  # fullwidth digit
    "%00",
    "'",
]


@pytest.mark.parametrize("value", HOSTILE_GUIDS)
def test_a_printer_id_that_is_not_a_guid_is_refused_naming_the_field(value: str) -> None:
    with pytest.raises(InvalidRequest, match="printerId"):
        DocumentKey.parse(TENANT, value, "job", DOCUMENT)


@pytest.mark.parametrize("value", HOSTILE_GUIDS)
def test_a_document_id_that_is_not_a_guid_is_refused_naming_the_field(value: str) -> None:
    with pytest.raises(InvalidRequest, match="documentId"):
        DocumentKey.parse(TENANT, PRINTER, "job", value)


# -- CreateRequest ------------------------------------------------------------------------


def test_a_good_create_body_is_parsed() -> None:
    assert _parse(GOOD) == CreateRequest(1024, "application/pdf", "file.pdf")


def test_the_largest_allowed_size_and_name_are_accepted() -> None:
    request = _parse({**GOOD, "size": MAX, "documentName": "n" * 255})
    assert (request.size, len(request.document_name)) == (MAX, 255)


def test_a_unicode_document_name_is_kept_as_sent() -> None:
    assert _parse({**GOOD, "documentName": "Rapport \u2013 été 2024 📄.pdf"}).document_name == (
        "Rapport \u2013 été 2024 📄.pdf"
    )


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"not json", b'{"size": 1,}', b"\xff\xfe\xfa", b"[" * 100_000, b'{"a":' * 100_000],
)
def test_a_body_that_is_not_json_is_an_invalid_request(raw: bytes) -> None:
    with pytest.raises(InvalidRequest, match="JSON object"):
        _parse(raw, raw=True)


@pytest.mark.parametrize("body", [[], [GOOD], "text", 1024, None])
def test_a_body_that_is_not_an_object_is_an_invalid_request(body: Any) -> None:
    with pytest.raises(InvalidRequest, match="JSON object"):
        _parse(body)


def test_an_unknown_property_is_named() -> None:
    with pytest.raises(InvalidRequest, match="'colour'"):
        _parse({**GOOD, "colour": "blue"})


@pytest.mark.parametrize(
    "size", [None, True, False, 1.0, 1024.5, "1024", 0, -1, MAX + 1, 10**30, [1], {"n": 1}]
)
def test_a_bad_size_is_refused_naming_size(size: Any) -> None:
    body = dict(GOOD)
    if size is None:
        del body["size"]
    else:
        body["size"] = size
    with pytest.raises(InvalidRequest, match="'size'"):
        _parse(body)


def test_a_size_of_one_byte_is_accepted() -> None:
    assert _parse({**GOOD, "size": 1}).size == 1


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "pdf",
        "application/",
        "/pdf",
        "application/pdf/x",
        "application/pdf; charset=x",
        "application /pdf",
        "application/pdf\n",
        "a/" + "b" * 254,
        7,
        ["application/pdf"],
    ],
)
def test_a_bad_content_type_is_refused_naming_content_type(content_type: Any) -> None:
    body = dict(GOOD)
    if content_type is None:
        del body["contentType"]
    else:
        body["contentType"] = content_type
    with pytest.raises(InvalidRequest, match="'contentType'"):
        _parse(body)


@pytest.mark.parametrize(
    "name",
    [
        None,
        "",
        "n" * 256,
        "a\x00b",
        "line\nbreak",
        "tab\there",
        "del\x7f",
        "c1\x85control",
        "\ud800lonely surrogate",
        12,
        ["file.pdf"],
    ],
)
def test_a_bad_document_name_is_refused_naming_document_name(name: Any) -> None:
    body = dict(GOOD)
    if name is None:
        del body["documentName"]
    else:
        body["documentName"] = name
    with pytest.raises(InvalidRequest, match="'documentName'"):
        _parse(body)


def test_an_escaped_lone_surrogate_in_the_raw_body_is_refused() -> None:
    raw = b'{"size": 1, "contentType": "a/b", "documentName": "x\\udc00"}'
    with pytest.raises(InvalidRequest, match="'documentName'"):
        _parse(raw, raw=True)


# -- session JSON -------------------------------------------------------------------------


def test_session_json_has_the_seed_property_order() -> None:
    body, _ = render(_session())
    assert list(json.loads(body)) == [
        "id",
        "size",
        "contentType",
        "documentName",
        "expiryDateTime",
        "createdBy",
        "missingRanges",
        "nextExpectedRanges",
    ]


def test_session_json_matches_the_design_example() -> None:
    assert json.loads(render(_session())[0]) == {
        "id": "d10b32d8-30ed-4c72-a69b-a7155f81947d",
        "size": 1024,
        "contentType": "application/pdf",
        "documentName": "file.pdf",
        "expiryDateTime": "2020-04-29T09:21:55.523Z",
        "createdBy": {"application": {"id": APP}, "user": {"id": USER}},
        "missingRanges": [{"start": "0", "end": "1023"}],
        "nextExpectedRanges": ["0-1023"],
    }


def test_created_by_of_an_application_has_no_user() -> None:
    assert session_json(_session(user_id=None))["createdBy"] == {"application": {"id": APP}}


def test_created_by_lists_application_before_user() -> None:
    assert list(session_json(_session())["createdBy"]) == ["application", "user"]


def test_missing_ranges_are_decimal_strings_and_ascending() -> None:
    session = _session(size=10_000_000_000, segments=(_segment(1000, 1999),))
    doc = session_json(session)
    assert doc["missingRanges"] == [
        {"start": "0", "end": "999"},
        {"start": "2000", "end": "9999999999"},
    ]
    assert doc["nextExpectedRanges"] == ["0-999", "2000-9999999999"]
    assert isinstance(doc["size"], int)


def test_a_complete_session_has_empty_ranges() -> None:
    doc = session_json(_session(segments=(_segment(0, 1023),)))
    assert doc["missingRanges"] == [] and doc["nextExpectedRanges"] == []


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2020, 4, 29, 9, 21, 55, 523999, tzinfo=UTC), "2020-04-29T09:21:55.523Z"),
        (datetime(2020, 4, 29, 9, 21, 55, tzinfo=UTC), "2020-04-29T09:21:55.000Z"),
        (datetime(2020, 4, 29, 9, 21, 55, 1000, tzinfo=UTC), "2020-04-29T09:21:55.001Z"),
        (
            datetime(2020, 4, 29, 11, 21, 55, 500000, tzinfo=timezone(timedelta(hours=2))),
            "2020-04-29T09:21:55.500Z",
        ),
    ],
)
def test_expiry_is_utc_with_milliseconds_and_z(value: datetime, text: str) -> None:
    assert format_datetime(value) == text
    assert session_json(_session(expires=value))["expiryDateTime"] == text


def test_the_body_is_compact_utf8_json() -> None:
    body, _ = render(_session(document_name="été.pdf"))
    assert "été.pdf".encode() in body
    assert json.loads(body.decode("utf-8"))["documentName"] == "été.pdf"


# -- ETag ---------------------------------------------------------------------------------


def test_the_etag_is_strong_and_quoted() -> None:
    _, etag = render(_session())
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2
    assert not etag.startswith("W/")
    assert '"' not in etag[1:-1]


def test_the_etag_is_stable_for_an_unchanged_session() -> None:
    session = _session(segments=(_segment(0, 9),))
    assert render(session) == render(replace(session))
    # not part of the representation: the storage ETag and the creation time
    assert render(session)[1] == render(replace(session, storage_etag='W/"x"'))[1]
    assert render(session)[1] == render(replace(session, created=datetime.now(UTC)))[1]


@pytest.mark.parametrize(
    "changes",
    [
        {"id": "00000000-0000-0000-0000-000000000001"},
        {"size": 1025},
        {"content_type": "application/octet-stream"},
        {"document_name": "other.pdf"},
        {"expires": datetime(2020, 4, 29, 9, 21, 55, 524000, tzinfo=UTC)},
        {"app_id": "00000000-0000-0000-0000-000000000002"},
        {"user_id": None},
        {"user_id": "00000000-0000-0000-0000-000000000003"},
        {"segments": (_segment(0, 0),)},
        {"segments": (_segment(0, 1),)},
    ],
)
def test_the_etag_changes_whenever_a_property_changes(changes: dict[str, Any]) -> None:
    before = _session()
    after = replace(before, **changes)
    assert session_json(after) != session_json(before)
    assert render(after)[1] != render(before)[1]


def test_a_committed_complete_session_renders_like_the_complete_one() -> None:
    complete = _session(segments=(_segment(0, 1023),))
    assert render(replace(complete, status=COMMITTED)) == render(complete)


# -- Segment ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 0), (0, 9), (12345, 67890), (0, 2**40), (2**40, 2**40 + 1), (2**48 - 2, 2**48 - 1)],
)
def test_block_ids_have_one_length_whatever_the_offsets(start: int, end: int) -> None:
    reference = _segment(0, 0, b"x").block_id
    block_id = _segment(start, end, b"y").block_id
    assert len(block_id) == len(reference)
    assert len(base64.b64decode(block_id, validate=True)) <= 64  # Blob Storage's limit


def test_block_ids_differ_by_range_and_by_bytes_and_repeat_for_a_retry() -> None:
    ids = {
        _segment(0, 9, b"a" * 10).block_id,
        _segment(0, 9, b"b" * 10).block_id,
        _segment(10, 19, b"a" * 10).block_id,
        _segment(1, 10, b"a" * 10).block_id,
    }
    assert len(ids) == 4
    assert _segment(0, 9, b"a" * 10).block_id == _segment(0, 9, b"a" * 10).block_id


def test_a_segment_length_is_inclusive() -> None:
    assert _segment(5, 5).length == 1
    assert _segment(0, 1023).length == 1024
