"""Hostile ids, headers and bodies over raw HTTP: each gets its documented 4xx in Graph's
envelope, never a 5xx, and no hostile id ever reaches storage.

The proof for "no storage call with an unvalidated key" is Azurite's own debug log (one line
per request it received): between two sentinel requests, the hostile batch caused no storage
request at all, and every storage URL Azurite ever saw in this module names only validated
keys (GUIDs, a ``[A-Za-z0-9-]{1,64}`` job id, the token's tenant).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import TENANT, Api, start_api
from tests.processes import Azurite
from tests.reliability import rawhttp
from tests.reliability.conftest import GUID, storage_requests

FULL = "PrintJob.ReadWrite.All Printer.Read.All"
PRINTER = "0b4a6c1e-5d2f-4e3a-9b8c-7d6e5f4a3b2c"
DOCUMENT = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"
MIB = 1024 * 1024

_G = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_JOB = "[A-Za-z0-9-]{1,64}"
_ACCOUNT = "http://127.0.0.1/devstoreaccount1"
# Every URL the app may send to storage: only validated ids and the token's tenant in keys.
ALLOWED_STORAGE_URL = re.compile(
    rf"{_ACCOUNT}/(?:"
    rf"Tables|uploadsessions|subscriptions|uploadexpiries"
    rf"|subscriptions\(PartitionKey='{_G}',RowKey=''\)"
    rf"|uploadsessions\(PartitionKey='{_G}%7C{_G}%7C{_JOB}%7C{_G}',RowKey='session'\)"
    rf"|uploadexpiries\(PartitionKey='[0-9]{{8}}T[0-9]{{4}}',RowKey='{_G}%7C{_G}%7C{_JOB}%7C{_G}'\)"
    rf"|documents\?restype=container"
    rf"|documents/{_G}/{_G}/{_JOB}/{_G}(?:\?comp=(?:block&blockid=[A-Za-z0-9%]+|blocklist"
    rf"(?:&blocklisttype=all)?))?"
    rf")"
)


@dataclass
class Hostile:
    api: Api
    azurite: Azurite
    debug_log: Path

    @property
    def port(self) -> int:
        return self.api.server.port

    def auth(self) -> list[rawhttp.Header]:
        return [("Authorization", f"Bearer {self.api.token(scp=FULL)}")]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    tmp = tmp_path_factory.mktemp("hostile")
    azurite = Azurite(tmp / "azurite", debug_log=tmp / "azurite-debug.log")
    azurite.start()
    try:
        api = start_api(azurite, tmp)
        try:
            yield Hostile(api, azurite, tmp / "azurite-debug.log")
        finally:
            api.server.stop()
        # After every test of the module: nothing the app ever sent named an unvalidated key.
        urls = [url for _, url in storage_requests(tmp / "azurite-debug.log")]
        assert urls, "Azurite logged no request at all"
        strays = [url for url in urls if not ALLOWED_STORAGE_URL.fullmatch(url)]
        assert not strays, strays[:5]
        assert "Traceback" not in (tmp / "server.log").read_text(errors="replace")
    finally:
        azurite.stop()


def assert_envelope(reply: rawhttp.Reply, status: int, code: str) -> None:
    assert reply.status == status, (reply.status, reply.body[:300])
    assert (reply.header("Content-Type") or "").startswith("application/json")
    error = reply.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    assert error["innerError"]["request-id"] == reply.header("request-id")
    assert GUID.match(error["innerError"]["request-id"])
    assert error["innerError"]["client-request-id"] == reply.header("client-request-id")
    assert b"Traceback" not in reply.body


def operation_request(
    hostile: Hostile,
    method: str,
    printer: str,
    job: str,
    document: str,
) -> tuple[str, list[rawhttp.Header], bytes]:
    target = f"/beta/print/printers/{printer}/jobs/{job}/documents/{document}/uploadSession"
    headers = hostile.auth()
    body = b""
    if method == "PUT":
        headers.append(("Content-Type", "application/json"))
        body = b'{"size": 3, "contentType": "text/plain", "documentName": "a.txt"}'
    elif method == "POST":
        target += "/$value"
        body = b"abc"
        headers += [
            ("Content-Type", "application/octet-stream"),
            ("If-Match", "*"),
            ("Content-Range", "bytes 0-2/3"),
        ]
    return target, headers, body


def wait_for_storage_request(debug_log: Path, needle: str, deadline_s: float = 10.0) -> int:
    """Index just past the last logged storage request that contains ``needle``."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        urls = [url for _, url in storage_requests(debug_log)]
        hits = [i for i, url in enumerate(urls) if needle in url]
        if hits:
            return hits[-1] + 1
        time.sleep(0.05)
    raise AssertionError(f"Azurite never logged a request for {needle}")


# (wire form of the id, status when it stands for printerId, jobId or documentId)
HOSTILE_IDS: list[tuple[str, int]] = [
    ("a%2Fb", 400),  # an encoded slash stays inside one segment
    ("a/b", 404),  # a raw slash makes another path: no route
    ("a%5Cb", 400),
    ("a\\b", 400),
    ("a%23b", 400),
    ("a#b", 400),  # servers do not cut fragments; the id is wrong
    ("a%3Fb", 400),
    ("a?b", 404),  # the rest is a query: the path is cut short
    ("%00", 400),
    ("a%00b", 400),
    ("%27", 400),
    ("'", 400),
    ("%22", 400),
    ("%C3%A9", 400),
    ("\u00e9t\u00e9", 400),  # raw UTF-8 on the wire
    ("%F0%9F%96%A8", 400),
    ("%FF%FE", 400),  # not UTF-8 at all
    ("a" * 10240, 400),
    ("b" * 65, 400),
    ("%27%20or%20PartitionKey%20ne%20%27", 400),
    ("'%20or%20'1'%20eq%20'1", 400),
    ("x'%20or%20RowKey%20ge%20'", 400),
    ("%24filter=PartitionKey%20ne%20''", 400),
    ("..", 400),
    (".", 400),
    ("%2e%2e", 400),
    ("%252F", 400),
    ("%0D%0ASet-Cookie:%20a=b", 400),
    ("%20", 400),
    ("%09", 400),
    ("%", 400),
    ("%zz", 400),
    ("a;b", 400),
    ("a,b", 400),
    ("*", 400),
    ("$value", 400),
    ("%3Cscript%3E", 400),
    ("", 404),  # an empty segment: no route
    (f"{{{PRINTER}}}", 400),  # a GUID in braces
    (PRINTER.replace("-", ""), 400),  # a GUID without dashes
    (PRINTER + "%0A", 400),  # a GUID and a newline
    ("\uff10b4a6c1e-5d2f-4e3a-9b8c-7d6e5f4a3b2c", 400),  # a full-width digit
]
POSITIONS = ("printerId", "jobId", "documentId")
METHODS = ("GET", "PUT", "POST", "DELETE")


def expected_for(value: str, position: str, status: int) -> int:
    # A job id may be any 1-64 of [A-Za-z0-9-]: some values that are not GUIDs are fine there.
    if position == "jobId" and status == 400 and re.fullmatch(r"[A-Za-z0-9-]{1,64}", value):
        return 0  # not hostile in this position
    return status


def test_hostile_ids_get_400_or_404_and_never_reach_storage(hostile: Hostile) -> None:
    before = f"job-{uuid.uuid4().hex[:12]}"
    after = f"job-{uuid.uuid4().hex[:12]}"
    target, headers, _ = operation_request(hostile, "GET", PRINTER, before, DOCUMENT)
    assert rawhttp.send(hostile.port, "GET", target, headers).status == 404
    start = wait_for_storage_request(hostile.debug_log, before)

    tried = 0
    for value, status in HOSTILE_IDS:
        for position in POSITIONS:
            want = expected_for(value, position, status)
            if not want:
                continue
            ids = {"printerId": PRINTER, "jobId": "job-1", "documentId": DOCUMENT, position: value}
            for method in METHODS:
                target, headers, body = operation_request(
                    hostile, method, ids["printerId"], ids["jobId"], ids["documentId"]
                )
                reply = rawhttp.send(hostile.port, method, target, headers, body)
                assert_envelope(reply, want, "invalidRequest" if want == 400 else "itemNotFound")
                tried += 1
    assert tried >= 400

    target, headers, _ = operation_request(hostile, "GET", PRINTER, after, DOCUMENT)
    assert rawhttp.send(hostile.port, "GET", target, headers).status == 404
    end = wait_for_storage_request(hostile.debug_log, after)
    between = storage_requests(hostile.debug_log)[start:end]
    # The sentinel after the batch reads its session (and perhaps the tenant's subscription,
    # whose cache lasts 60 s); the hostile batch itself made no storage request at all.
    others = [(m, u) for m, u in between if after not in u and "subscriptions(" not in u]
    assert others == []


# -- hostile headers on an upload ---------------------------------------------------------

SIZE = 100
RANGE = "bytes 4-6/100"  # the next segment after the accepted "0123"
BODY = b"abc"
LONG = "A" * 60000
GOOD = object()


@dataclass(frozen=True)
class HeaderCase:
    name: str
    headers: dict[str, object]  # name → value; GOOD: the valid value; None: omitted
    status: int
    code: str
    extra: tuple[rawhttp.Header, ...] = ()  # appended (duplicates, padding)
    body: bytes = BODY
    content_length: bool = True


def upload(
    name: str,
    status: int,
    code: str = "invalidRequest",
    *,
    extra: tuple[rawhttp.Header, ...] = (),
    body: bytes = BODY,
    content_length: bool = True,
    **headers: object,
) -> HeaderCase:
    return HeaderCase(
        name,
        {k.replace("_", "-"): v for k, v in headers.items()},
        status,
        code,
        extra,
        body,
        content_length,
    )


HEADER_CASES = [
    upload("range end before start", 400, Content_Range="bytes 6-4/100"),
    upload("negative start", 400, Content_Range="bytes -1-2/100"),
    upload("negative size", 400, Content_Range="bytes 4-6/-100"),
    upload("double minus", 400, Content_Range="bytes 4--6/100"),
    upload("end overflows 64 bits", 400, Content_Range="bytes 4-18446744073709551616/100"),
    upload("size overflows 64 bits", 400, Content_Range="bytes 4-6/99999999999999999999999"),
    upload(
        "a 19-digit range is over the segment limit",
        413,
        Content_Range="bytes 4-9223372036854775807/100",
    ),
    upload(
        "19-digit offsets of one byte",
        416,
        "invalidRange",
        body=b"a",
        Content_Range="bytes 9223372036854775806-9223372036854775806/9223372036854775807",
    ),
    upload("two ranges", 400, Content_Range="bytes 4-6/100, 7-9/100"),
    upload("unsatisfied-range form", 400, Content_Range="bytes */100"),
    upload("no size", 400, Content_Range="bytes 4-6"),
    upload("another unit", 400, Content_Range="items 4-6/100"),
    upload("hex numbers", 400, Content_Range="bytes 0x4-0x6/100"),
    upload("full-width digits", 400, Content_Range="bytes \uff14-\uff16/100".encode()),
    upload("NUL in Content-Range", 400, Content_Range=b"bytes 4-6/100\x00"),
    upload("Content-Range missing", 400, Content_Range=None),
    upload("Content-Range duplicated", 400, extra=(("Content-Range", RANGE),)),
    upload("Content-Type duplicated", 415, extra=(("Content-Type", "application/octet-stream"),)),
    upload("Content-Type text/plain", 415, Content_Type="text/plain"),
    upload("Content-Type missing", 415, Content_Type=None),
    upload("Content-Type non-ASCII", 415, Content_Type="application/octet-stream\u00e9".encode()),
    upload("If-Match missing", 428, "preconditionFailed", If_Match=None),
    upload("If-Match empty", 428, "preconditionFailed", If_Match=""),
    upload("If-Match of 60 KB", 412, "preconditionFailed", If_Match=LONG),
    upload("If-Match non-ASCII", 412, "preconditionFailed", If_Match="\u00e9tag".encode()),
    upload("Content-MD5 not base64", 400, Content_MD5="not base64!"),
    upload("Content-MD5 non-ASCII", 400, Content_MD5="\u00ff\u00ff\u00ff\u00ff".encode()),
    upload(
        "Content-MD5 of other bytes",
        400,
        Content_MD5=base64.b64encode(hashlib.md5(b"xyz").digest()).decode(),
    ),
    upload("Content-MD5 of 60 KB", 400, Content_MD5=LONG),
    upload("Content-Length negative", 400, content_length=False, extra=(("Content-Length", "-3"),)),
    upload(
        "Content-Length with a sign", 400, content_length=False, extra=(("Content-Length", "+3"),)
    ),
    upload(
        "Content-Length of 20 digits",
        400,
        content_length=False,
        extra=(("Content-Length", "18446744073709551619"),),
    ),
    upload(
        "Content-Length contradicting itself",
        400,
        content_length=False,
        extra=(("Content-Length", "3"), ("Content-Length", "4")),
    ),
    upload(
        "Content-Length over the host limit",
        413,
        content_length=False,
        extra=(("Content-Length", "9223372036854775807"),),
    ),
    upload("a body over the segment limit", 413, body=b"x" * (10 * MIB + 1)),
    upload(
        "Content-Length with Transfer-Encoding",
        400,
        content_length=False,
        extra=(("Content-Length", "3"), ("Transfer-Encoding", "chunked")),
    ),
    upload(
        "Transfer-Encoding gzip", 400, content_length=False, extra=(("Transfer-Encoding", "gzip"),)
    ),
    upload(
        "malformed chunk size",
        400,
        content_length=False,
        body=b"zz\r\nabc\r\n0\r\n\r\n",
        extra=(("Transfer-Encoding", "chunked"),),
    ),
    upload("a header line over 64 KiB", 431, extra=(("X-Pad", "p" * 70000),)),
    upload("101 headers", 431, extra=tuple((f"X-Pad-{i}", "p") for i in range(101))),
    upload("Authorization of 70 KB", 431, Authorization="Bearer " + "a" * 70000),
    upload(
        "Authorization of 20 KB",
        401,
        "InvalidAuthenticationToken",
        Authorization="Bearer " + "a.b." + "c" * 20000,
    ),
    upload(
        "Authorization duplicated",
        401,
        "InvalidAuthenticationToken",
        extra=(("Authorization", "Bearer x.y.z"),),
    ),
    upload(
        "NUL in Authorization", 401, "InvalidAuthenticationToken", Authorization=b"Bearer a\x00.b.c"
    ),
]


@pytest.fixture(scope="module")
def upload_target(hostile: Hostile) -> str:
    """A session of 100 bytes whose first 4 have arrived."""
    target = (
        f"/beta/print/printers/{uuid.uuid4()}/jobs/hostile/documents/{uuid.uuid4()}/uploadSession"
    )
    created = rawhttp.send(
        hostile.port,
        "PUT",
        target,
        [*hostile.auth(), ("Content-Type", "application/json")],
        json.dumps(
            {"size": SIZE, "contentType": "application/pdf", "documentName": "a.pdf"}
        ).encode(),
    )
    assert created.status == 200, created.body
    first = rawhttp.send(
        hostile.port,
        "POST",
        target + "/$value",
        [
            *hostile.auth(),
            ("Content-Type", "application/octet-stream"),
            ("If-Match", "*"),
            ("Content-Range", "bytes 0-3/100"),
        ],
        b"0123",
    )
    assert first.status == 202, first.body
    return target


def session_state(hostile: Hostile, target: str) -> tuple[str | None, object]:
    reply = rawhttp.send(hostile.port, "GET", target, hostile.auth())
    assert reply.status == 200
    return reply.header("ETag"), reply.json()


@pytest.mark.parametrize("case", HEADER_CASES, ids=[c.name for c in HEADER_CASES])
def test_a_hostile_upload_header_gets_its_4xx_and_changes_nothing(
    hostile: Hostile,
    upload_target: str,
    case: HeaderCase,
) -> None:
    before = session_state(hostile, upload_target)
    valid: dict[str, object] = {
        "Authorization": f"Bearer {hostile.api.token(scp=FULL)}",
        "Content-Type": "application/octet-stream",
        "If-Match": "*",
        "Content-Range": RANGE,
    }
    valid.update(case.headers)
    headers: list[rawhttp.Header] = [
        (name, value) for name, value in valid.items() if isinstance(value, str | bytes)
    ]
    headers += list(case.extra)
    reply = rawhttp.send(
        hostile.port,
        "POST",
        upload_target + "/$value",
        headers,
        case.body,
        content_length=case.content_length,
    )
    assert_envelope(reply, case.status, case.code)
    if case.status == 401:
        assert reply.header("WWW-Authenticate") == (
            'Bearer realm="uploadsession", error="invalid_token"'
        )
    if case.status == 416:
        assert reply.header("Content-Range") == f"bytes */{SIZE}"
    assert session_state(hostile, upload_target) == before


MALFORMED_REQUESTS = [
    ("no version", b"GARBAGE\r\n\r\n", 400),
    ("a bad version", b"GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400),
    ("a request line over 64 KiB", b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414),
]


@pytest.mark.parametrize(
    ("what", "payload", "status"), MALFORMED_REQUESTS, ids=[m[0] for m in MALFORMED_REQUESTS]
)
def test_a_malformed_request_gets_a_4xx_in_the_envelope(
    hostile: Hostile, what: str, payload: bytes, status: int
) -> None:
    assert_envelope(rawhttp.exchange(hostile.port, payload), status, "invalidRequest")


CLIENT_REQUEST_IDS = [
    ("folded onto a second line", b"abc\r\n Injected: yes"),
    ("non-ASCII", "\u00e9t\u00e9".encode()),
    ("129 characters", b"c" * 129),
    ("with a space", b"a b"),
    ("NUL", b"a\x00b"),
]


@pytest.mark.parametrize(
    ("what", "value"), CLIENT_REQUEST_IDS, ids=[c[0] for c in CLIENT_REQUEST_IDS]
)
def test_a_hostile_client_request_id_is_replaced_never_echoed(
    hostile: Hostile,
    upload_target: str,
    what: str,
    value: bytes,
) -> None:
    for target, status in ((upload_target, 200), ("/beta/no/such/route", 404)):
        reply = rawhttp.send(
            hostile.port, "GET", target, [*hostile.auth(), ("client-request-id", value)]
        )
        assert reply.status == status, reply.body
        assert "injected" not in reply.header_names()
        assert reply.header("client-request-id") == reply.header("request-id")
        assert b"Injected" not in reply.body


def test_huge_if_none_match_lists_are_just_compared(hostile: Hostile, upload_target: str) -> None:
    etag, _ = session_state(hostile, upload_target)
    assert etag is not None
    long_list = ", ".join(f'"{i:032x}"' for i in range(1500))  # ~52 KB, one header line
    reply = rawhttp.send(
        hostile.port, "GET", upload_target, [*hostile.auth(), ("If-None-Match", long_list)]
    )
    assert reply.status == 200
    reply = rawhttp.send(
        hostile.port,
        "GET",
        upload_target,
        [*hostile.auth(), ("If-None-Match", long_list + ", " + etag)],
    )
    assert reply.status == 304 and reply.body == b""


# -- hostile create bodies -------------------------------------------------------------------


def body(**fields: object) -> bytes:
    base: dict[str, object] = {"size": 10, "contentType": "text/plain", "documentName": "a.txt"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not OMIT}).encode()


OMIT = object()
BAD_BODIES: list[tuple[str, bytes]] = [
    ("size -1", body(size=-1)),
    ("size 0", body(size=0)),
    ("size 2**64", body(size=2**64)),
    ("size over MAX_DOCUMENT_BYTES", body(size=1073741825)),
    ("size 10**400", b'{"size": 1' + b"0" * 400 + b', "contentType": "a/b", "documentName": "a"}'),
    ("size 1e3", b'{"size": 1e3, "contentType": "a/b", "documentName": "a"}'),
    ("size NaN", b'{"size": NaN, "contentType": "a/b", "documentName": "a"}'),
    ("size as a string", body(size="10")),
    ("size true", body(size=True)),
    ("size null", body(size=None)),
    ("no size", body(size=OMIT)),
    ("unknown property", body(extra=1)),
    ("a JSON array", b"[1, 2, 3]"),
    ("nested 100,000 deep", b"[" * 100000 + b"]" * 100000),
    ("not UTF-8", b'{"size": 10, "contentType": "a/b", "documentName": "\xff\xfe"}'),
    ("trailing garbage", body() + b"xyz"),
    ("empty", b""),
    ("contentType without subtype", body(contentType="text")),
    ("contentType with CRLF", body(contentType="text/plain\r\nX-Injected: 1")),
    ("contentType of 256 characters", body(contentType="a/" + "b" * 254)),
    ("documentName empty", body(documentName="")),
    ("documentName of 256 characters", body(documentName="n" * 256)),
    ("documentName of 1 MB", body(documentName="n" * MIB)),
    ("documentName with NUL", body(documentName="a\u0000b")),
    ("documentName with a C1 control", body(documentName="a\u0085b")),
    (
        "documentName with a lone surrogate",
        b'{"size": 10, "contentType": "a/b", "documentName": "a\\ud800b"}',
    ),
    ("documentName a number", body(documentName=5)),
]


@pytest.mark.parametrize(("what", "payload"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_a_hostile_create_body_is_400_and_creates_nothing(
    hostile: Hostile,
    what: str,
    payload: bytes,
) -> None:
    target = f"/beta/print/printers/{uuid.uuid4()}/jobs/j/documents/{uuid.uuid4()}/uploadSession"
    reply = rawhttp.send(
        hostile.port,
        "PUT",
        target,
        [*hostile.auth(), ("Content-Type", "application/json")],
        payload,
    )
    assert_envelope(reply, 400, "invalidRequest")
    assert rawhttp.send(hostile.port, "GET", target, hostile.auth()).status == 404


def test_the_hostile_matrix_is_large() -> None:
    ids = sum(
        1
        for value, status in HOSTILE_IDS
        for position in POSITIONS
        if expected_for(value, position, status)
    ) * len(METHODS)
    total = (
        ids
        + len(HEADER_CASES)
        + len(CLIENT_REQUEST_IDS) * 2
        + len(BAD_BODIES)
        + len(MALFORMED_REQUESTS)
    )
    print(
        f"\nhostile inputs: {ids} id requests, {len(HEADER_CASES)} upload headers, "
        f"{len(CLIENT_REQUEST_IDS) * 2} client-request-ids, {len(BAD_BODIES)} bodies, "
        f"{len(MALFORMED_REQUESTS)} malformed requests: {total}"
    )
    assert total >= 500


def test_the_tenant_in_storage_keys_is_the_tokens(hostile: Hostile) -> None:
    """The tenant part of every key comes from the validated token, never from the request."""
    urls = [url for _, url in storage_requests(hostile.debug_log)]
    tenants = set(re.findall(rf"(?:PartitionKey|RowKey)='({_G})(?:'|%7C)", " ".join(urls)))
    tenants |= set(re.findall(rf"/documents/({_G})/", " ".join(urls)))
    assert tenants <= {TENANT, "5b0e6a7c-1f2d-4e3a-9b8c-7d6e5f4a3b2c"}  # start_api's two
