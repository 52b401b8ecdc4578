"""The HTTP blueprint as a client observes it: handlers called with hand-built requests."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import azure.functions as func
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes import InMemoryStorage
from tests.unit.tokens import (
    AUDIENCE,
    KID,
    TENANT,
    StaticKeys,
    app_claims,
    build_jwks,
    delegated_claims,
    generate_key,
    mint,
)
from uploadsession import http
from uploadsession.auth import PERSONAL_ACCOUNT_TENANT, TokenValidator
from uploadsession.config import Settings, parse_settings
from uploadsession.errors import ServiceUnavailable
from uploadsession.runtime import Runtime, set_runtime
from uploadsession.service import UploadSessionService

PRINTER = "016B5565-3BBF-4067-B9FF-4D68167EB1A6"  # upper case on purpose
DOCUMENT = "9a6d0ba5-07a3-4e5e-9f1e-0e6f8e7b4c21"
JOB = "job-1"
OTHER_USER = "2c1b7f5e-9d4a-4f63-8e21-0a9b8c7d6e5f"
UNSUBSCRIBED_TENANT = "0b5a3d2e-1c4f-4e6a-9b8d-7f6e5d4c3b2a"
MAX_SEGMENT = 4096
SIZE = 10_000
DATA = random.Random(5).randbytes(SIZE)
CREATE_BODY = {"size": SIZE, "contentType": "application/pdf", "documentName": "file.pdf"}

Handler = Callable[[func.HttpRequest], func.HttpResponse]


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return generate_key()


@pytest.fixture(scope="module")
def settings() -> Settings:
    return parse_settings(
        {
            "UPLOADSESSION_STORAGE": "UseDevelopmentStorage=true",
            "AUTH_AUDIENCES": AUDIENCE,
            "MAX_SEGMENT_BYTES": str(MAX_SEGMENT),
        }
    )


@dataclass
class Api:
    store: InMemoryStorage
    key: rsa.RSAPrivateKey

    def token(self, claims: dict[str, Any] | None = None) -> str:
        return mint(self.key, KID, **(claims or delegated_claims()))


@pytest.fixture
def api(signing_key: rsa.RSAPrivateKey, settings: Settings) -> Iterator[Api]:
    store = InMemoryStorage()
    store.put_subscription(TENANT, True)
    service = UploadSessionService(
        store,
        ttl_seconds=settings.session_ttl_seconds,
        sleep=lambda _: None,
    )
    validator = TokenValidator(settings.auth_audiences, StaticKeys(build_jwks((signing_key, KID))))
    set_runtime(Runtime(settings, validator, service))
    yield Api(store, signing_key)
    set_runtime(None)


def request(
    api: Api,
    method: str,
    *,
    value: bool = False,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    printer: str = PRINTER,
    job: str = JOB,
    document: str = DOCUMENT,
    token: str | None = "default",
) -> func.HttpResponse:
    handler: Handler = {
        "GET": http.get_upload_session,
        "PUT": http.create_upload_session,
        "DELETE": http.delete_upload_session,
        "POST": http.upload_segment,
    }[method]
    all_headers = dict(headers or {})
    if token == "default":
        token = api.token()
    if token is not None and "Authorization" not in all_headers:
        all_headers["Authorization"] = f"Bearer {token}"
    path = f"print/printers/{printer}/jobs/{job}/documents/{document}/uploadSession"
    req = func.HttpRequest(
        method,
        f"http://localhost:7071/beta/{path}" + ("/$value" if value else ""),
        headers=all_headers,
        route_params={"printerId": printer, "jobId": job, "documentId": document},
        body=body,
    )
    return handler(req)


def create(api: Api, body: dict[str, Any] | None = None, **kwargs: Any) -> func.HttpResponse:
    return request(api, "PUT", body=json.dumps(body or CREATE_BODY).encode(), **kwargs)


def get(api: Api, **kwargs: Any) -> func.HttpResponse:
    return request(api, "GET", **kwargs)


def post(
    api: Api,
    start: int,
    end: int,
    *,
    data: bytes = DATA,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    **kwargs: Any,
) -> func.HttpResponse:
    all_headers = {
        "Content-Type": "application/octet-stream",
        "Content-Range": f"bytes {start}-{end}/{len(data)}",
        "If-Match": "*",
    }
    all_headers.update(headers or {})
    sent = data[start : end + 1] if body is None else body
    return request(api, "POST", value=True, headers=all_headers, body=sent, **kwargs)


def state(api: Api) -> tuple[int, bytes, str | None]:
    response = get(api)
    return response.status_code, response.get_body(), response.headers.get("ETag")


def assert_error(response: func.HttpResponse, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    envelope = json.loads(response.get_body())
    assert list(envelope) == ["error"]
    error = envelope["error"]
    assert list(error) == ["code", "message", "innerError"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    inner = error["innerError"]
    assert list(inner) == ["date", "request-id", "client-request-id"]
    datetime.strptime(inner["date"], "%Y-%m-%dT%H:%M:%S")
    assert inner["request-id"] == response.headers["request-id"]
    assert inner["client-request-id"] == response.headers["client-request-id"]
    uuid.UUID(response.headers["request-id"])
    return error  # type: ignore[no-any-return]


def session_of(response: func.HttpResponse) -> dict[str, Any]:
    assert response.mimetype == "application/json"
    return json.loads(response.get_body())  # type: ignore[no-any-return]


# -- identifiers and envelopes ------------------------------------------------------------


def test_every_response_has_a_guid_request_id_and_echoes_the_client_request_id(api: Api) -> None:
    response = create(api, headers={"client-request-id": "my-trace-42"})
    assert response.status_code == 200
    assert str(uuid.UUID(response.headers["request-id"])) == response.headers["request-id"]
    assert response.headers["client-request-id"] == "my-trace-42"


def test_without_a_client_request_id_it_equals_the_request_id(api: Api) -> None:
    response = get(api)
    assert response.headers["client-request-id"] == response.headers["request-id"]


def test_each_response_gets_a_new_request_id(api: Api) -> None:
    assert get(api).headers["request-id"] != get(api).headers["request-id"]


def test_an_error_echoes_the_client_request_id_in_the_envelope(api: Api) -> None:
    response = get(api, headers={"client-request-id": "abc-123"})
    error = assert_error(response, 404, "itemNotFound")
    assert error["innerError"]["client-request-id"] == "abc-123"


# -- PUT and GET --------------------------------------------------------------------------


def test_put_creates_the_session_and_get_reads_the_same_representation(api: Api) -> None:
    created = create(api)
    assert created.status_code == 200
    etag = created.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    session = session_of(created)
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
    assert session["size"] == SIZE
    assert session["missingRanges"] == [{"start": "0", "end": str(SIZE - 1)}]
    read = get(api)
    assert read.status_code == 200
    assert read.headers["ETag"] == etag
    assert read.get_body() == created.get_body()


def test_the_printer_id_is_case_insensitive(api: Api) -> None:
    create(api)
    assert get(api, printer=PRINTER.lower()).status_code == 200


def test_a_repeated_put_returns_the_same_session(api: Api) -> None:
    first = session_of(create(api))
    again = create(api)
    assert again.status_code == 200
    assert session_of(again)["id"] == first["id"]


def test_a_different_put_for_the_same_document_is_a_conflict(api: Api) -> None:
    create(api)
    before = state(api)
    assert_error(create(api, {**CREATE_BODY, "size": SIZE + 1}), 409, "conflict")
    assert state(api) == before


@pytest.mark.parametrize("header", ["ETAG", "*", "W/ETAG", '"nope", ETAG'])
def test_a_matching_if_none_match_gives_304_without_a_body(api: Api, header: str) -> None:
    etag = create(api).headers["ETag"]
    response = get(api, headers={"If-None-Match": header.replace("ETAG", etag)})
    assert response.status_code == 304
    assert response.headers["ETag"] == etag
    assert response.get_body() == b""
    uuid.UUID(response.headers["request-id"])


def test_a_stale_if_none_match_gives_the_session(api: Api) -> None:
    etag = create(api).headers["ETag"]
    post(api, 0, 99)
    response = get(api, headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert response.headers["ETag"] != etag
    assert session_of(response)["missingRanges"][0] == {"start": "100", "end": str(SIZE - 1)}


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"not json", b"[]", b'"text"', b"[" * 50_000, b"\xff\xfe"]
)
def test_put_with_a_body_that_is_not_a_json_object_is_400(api: Api, raw: bytes) -> None:
    error = assert_error(request(api, "PUT", body=raw), 400, "invalidRequest")
    assert "JSON" in error["message"]
    assert get(api).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**CREATE_BODY, "extra": 1}, "extra"),
        ({**CREATE_BODY, "size": "10"}, "size"),
        ({**CREATE_BODY, "size": 0}, "size"),
        ({**CREATE_BODY, "contentType": "pdf"}, "contentType"),
        ({**CREATE_BODY, "documentName": ""}, "documentName"),
        ({**CREATE_BODY, "documentName": "\ud800"}, "documentName"),
    ],
)
def test_put_with_a_bad_field_is_400_naming_it(api: Api, body: dict[str, Any], field: str) -> None:
    error = assert_error(create(api, body), 400, "invalidRequest")
    assert field in error["message"]
    assert get(api).status_code == 404


@pytest.mark.parametrize(
    ("printer", "job", "document", "field"),
    [
        ("not-a-guid", JOB, DOCUMENT, "printerId"),
        (PRINTER, "../etc", DOCUMENT, "jobId"),
        (PRINTER, "a" * 65, DOCUMENT, "jobId"),
        (PRINTER, "a%00", DOCUMENT, "jobId"),
        (PRINTER, JOB, "x'; drop", "documentId"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "POST"])
def test_a_bad_identifier_is_400_before_any_storage_call(
    api: Api, method: str, printer: str, job: str, document: str, field: str
) -> None:
    calls = api.store.calls.copy()
    if method == "POST":
        response = post(api, 0, 9, printer=printer, job=job, document=document)
    elif method == "PUT":
        response = create(api, printer=printer, job=job, document=document)
    else:
        response = request(api, method, printer=printer, job=job, document=document)
    error = assert_error(response, 400, "invalidRequest")
    assert field in error["message"]
    assert api.store.calls == calls


def test_get_of_an_absent_session_is_404(api: Api) -> None:
    assert_error(get(api), 404, "itemNotFound")


# -- authentication and permissions -------------------------------------------------------


def test_no_authorization_header_is_401_with_a_plain_challenge(api: Api) -> None:
    create(api)
    response = get(api, token=None)
    assert_error(response, 401, "InvalidAuthenticationToken")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer")
    assert "error=" not in challenge


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer garbage",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
        "Bearer " + "a" * 20000,
    ],
)
def test_a_bad_token_is_401_invalid_token(api: Api, authorization: str) -> None:
    create(api)
    before = state(api)
    for method in ("GET", "PUT", "DELETE"):
        response = request(api, method, headers={"Authorization": authorization})
        assert_error(response, 401, "InvalidAuthenticationToken")
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert authorization.split()[-1] not in response.get_body().decode()
    assert state(api) == before


def test_an_expired_token_or_a_foreign_audience_is_401(api: Api) -> None:
    for claims in (
        delegated_claims(now=1_000_000_000),
        delegated_claims(aud="api://someone-else"),
    ):
        response = get(api, token=api.token(claims))
        assert_error(response, 401, "InvalidAuthenticationToken")
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_token_without_write_scope_cannot_create(api: Api) -> None:
    token = api.token(delegated_claims(scp="PrintJob.Read Printer.Read.All"))
    response = create(api, token=token)
    assert_error(response, 403, "accessDenied")
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert get(api).status_code == 404


def test_an_application_without_roles_for_the_printer_is_403(api: Api) -> None:
    create(api)
    token = api.token(app_claims(roles=["PrintJob.ReadWrite.All"]))
    response = get(api, token=token)
    assert_error(response, 403, "accessDenied")
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_a_tenant_without_a_subscription_is_403_saying_so(api: Api) -> None:
    token = api.token(delegated_claims(tenant=UNSUBSCRIBED_TENANT))
    error = assert_error(create(api, token=token), 403, "accessDenied")
    assert "subscription" in error["message"]


def test_a_personal_account_is_403(api: Api) -> None:
    token = api.token(delegated_claims(tenant=PERSONAL_ACCOUNT_TENANT))
    error = assert_error(get(api, token=token), 403, "accessDenied")
    assert "not supported" in error["message"]


def test_a_user_without_all_cannot_see_someone_elses_session(api: Api) -> None:
    create(api)
    token = api.token(delegated_claims(user=OTHER_USER, scp="PrintJob.ReadWrite Printer.Read.All"))
    assert_error(get(api, token=token), 404, "itemNotFound")
    assert_error(post(api, 0, 9, token=token), 404, "itemNotFound")
    assert_error(request(api, "DELETE", token=token), 404, "itemNotFound")
    assert get(api).status_code == 200


def test_someone_who_sees_but_did_not_create_the_session_cannot_delete_it(api: Api) -> None:
    create(api)
    before = state(api)
    response = request(api, "DELETE", token=api.token(app_claims()))
    assert_error(response, 403, "accessDenied")
    assert state(api) == before


# -- POST $value --------------------------------------------------------------------------


def test_segments_answer_202_until_the_one_that_completes_answers_201(api: Api) -> None:
    session_id = session_of(create(api))["id"]
    first = post(api, 0, 4095, headers={"If-Match": session_id})
    assert first.status_code == 202
    assert first.headers["ETag"]
    assert session_of(first)["missingRanges"] == [{"start": "4096", "end": str(SIZE - 1)}]
    assert post(api, 8192, SIZE - 1).status_code == 202
    last = post(api, 4096, 8191, headers={"If-Match": get(api).headers["ETag"]})
    assert last.status_code == 201
    assert last.headers["ETag"]
    body = session_of(last)
    assert body["missingRanges"] == [] and body["nextExpectedRanges"] == []
    assert get(api).get_body() == last.get_body()
    stored = api.store.document(api.store.sessions()[0].key)
    assert stored is not None and stored.data == DATA
    assert stored.content_type == "application/pdf"


def test_the_bytes_equals_form_of_content_range_is_accepted(api: Api) -> None:
    create(api)
    response = post(api, 0, 9, headers={"Content-Range": f"bytes=0-9/{SIZE}"})
    assert response.status_code == 202


def test_a_good_content_md5_is_accepted(api: Api) -> None:
    create(api)
    digest = base64.b64encode(hashlib.md5(DATA[:10]).digest()).decode()
    assert post(api, 0, 9, headers={"Content-MD5": digest}).status_code == 202


def test_an_identical_retry_answers_with_the_current_state(api: Api) -> None:
    create(api)
    post(api, 0, 9)
    post(api, 20, 29)
    before = state(api)
    retry = post(api, 0, 9)
    assert retry.status_code == 202
    assert retry.get_body() == before[1]
    assert state(api) == before


def test_content_type_charset_parameter_is_allowed(api: Api) -> None:
    create(api)
    headers = {"Content-Type": "Application/Octet-Stream; foo=bar"}
    assert post(api, 0, 9, headers=headers).status_code == 202


@dataclass(frozen=True)
class Bad:
    headers: dict[str, str]
    body: bytes | None
    status: int
    code: str


BAD_UPLOADS = {
    "no content type": Bad({"Content-Type": ""}, None, 415, "invalidRequest"),
    "json content type": Bad({"Content-Type": "application/json"}, None, 415, "invalidRequest"),
    "missing if-match": Bad({"If-Match": ""}, None, 428, "preconditionFailed"),
    "stale if-match": Bad({"If-Match": '"0123456789abcdef"'}, None, 412, "preconditionFailed"),
    "body over the segment limit": Bad(
        {"Content-Range": f"bytes 0-{MAX_SEGMENT}/{SIZE}"},
        DATA[: MAX_SEGMENT + 1],
        413,
        "invalidRequest",
    ),
    "body over the limit with a valid range": Bad(
        {"Content-Range": f"bytes 0-9/{SIZE}"}, DATA[: MAX_SEGMENT + 1], 413, "invalidRequest"
    ),
    "range over the segment limit": Bad(
        {"Content-Range": f"bytes 0-{MAX_SEGMENT}/{SIZE}"}, DATA[:10], 413, "invalidRequest"
    ),
    "body shorter than the range": Bad({}, DATA[:9], 400, "invalidRequest"),
    "body longer than the range": Bad({}, DATA[:11], 400, "invalidRequest"),
    "empty body": Bad({}, b"", 400, "invalidRequest"),
    "wrong content-md5": Bad(
        {"Content-MD5": base64.b64encode(hashlib.md5(b"other").digest()).decode()},
        None,
        400,
        "invalidRequest",
    ),
    "content-md5 not base64": Bad({"Content-MD5": "not base64!"}, None, 400, "invalidRequest"),
    "content-md5 as hex": Bad(
        {"Content-MD5": hashlib.md5(DATA[:10]).hexdigest()}, None, 400, "invalidRequest"
    ),
    "other size": Bad({"Content-Range": f"bytes 0-9/{SIZE + 1}"}, None, 416, "invalidRange"),
    "beyond the end": Bad(
        {"Content-Range": f"bytes {SIZE}-{SIZE + 9}/{SIZE}"}, None, 416, "invalidRange"
    ),
    "overlapping": Bad({"Content-Range": f"bytes 15-24/{SIZE}"}, DATA[15:25], 416, "invalidRange"),
    "same range other bytes": Bad(
        {"Content-Range": f"bytes 20-29/{SIZE}"}, bytes(10), 416, "invalidRange"
    ),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS), ids=list(BAD_UPLOADS))
def test_a_bad_upload_is_refused_and_changes_nothing(api: Api, case: str) -> None:
    bad = BAD_UPLOADS[case]
    create(api)
    post(api, 20, 29)
    before = state(api)
    staged = api.store.staged(api.store.sessions()[0].key)
    response = post(api, 0, 9, headers=bad.headers, body=bad.body)
    assert_error(response, bad.status, bad.code)
    if bad.status == 416:
        assert response.headers["Content-Range"] == f"bytes */{SIZE}"
    assert state(api) == before
    assert api.store.staged(api.store.sessions()[0].key) == staged


@pytest.mark.parametrize(
    "content_range",
    [
        "",
        "bytes",
        "bytes 0-9",
        "bytes 0-9/*",
        f"bytes */{SIZE}",
        f"bytes -1-9/{SIZE}",
        f"bytes 0--9/{SIZE}",
        f"bytes 0-9/-{SIZE}",
        f"bytes 9-0/{SIZE}",
        f"bytes 00000000000000000000-9/{SIZE}",
        f"bytes 0-99999999999999999999/{SIZE}",
        "bytes 0-9/99999999999999999999",
        f"items 0-9/{SIZE}",
        f"bytes 0 - 9/{SIZE}",
        f"bytes 0x0-0x9/{SIZE}",
        f"bytes +0-9/{SIZE}",
        f"bytes 0-9/{SIZE}, bytes 20-29/{SIZE}",
        f"bytes \uff10-\uff19/{SIZE}",  # fullwidth digits
        f"bytes 0-9/{SIZE}garbage",
    ],
)
def test_a_malformed_content_range_is_400(api: Api, content_range: str) -> None:
    create(api)
    before = state(api)
    calls = api.store.calls.copy()
    response = post(api, 0, 9, headers={"Content-Range": content_range})
    error = assert_error(response, 400, "invalidRequest")
    assert "Content-Range" in error["message"]
    assert state(api) == before
    assert api.store.calls["stage"] == calls["stage"] == 0


def test_a_bad_content_md5_stores_nothing(api: Api) -> None:
    create(api)
    wrong = base64.b64encode(hashlib.md5(b"x").digest()).decode()
    assert_error(post(api, 0, 9, headers={"Content-MD5": wrong}), 400, "invalidRequest")
    assert api.store.calls["stage"] == 0
    assert api.store.staged(api.store.sessions()[0].key) == {}


def test_upload_to_an_absent_session_is_404(api: Api) -> None:
    assert_error(post(api, 0, 9), 404, "itemNotFound")


# -- DELETE -------------------------------------------------------------------------------


def test_delete_answers_204_and_then_the_session_is_gone(api: Api) -> None:
    create(api)
    post(api, 0, 9)
    response = request(api, "DELETE")
    assert response.status_code == 204
    assert response.get_body() == b""
    uuid.UUID(response.headers["request-id"])
    assert_error(get(api), 404, "itemNotFound")
    assert_error(request(api, "DELETE"), 404, "itemNotFound")
    assert create(api).status_code == 200  # the document can be started again


# -- failures -----------------------------------------------------------------------------


def test_a_storage_outage_is_503_with_retry_after(api: Api) -> None:
    create(api)

    def outage(operation: str) -> None:
        raise ServiceUnavailable("Storage is unreachable; try again later", retry_after=7)

    api.store.before = outage
    for response in (get(api), create(api), post(api, 0, 9), request(api, "DELETE")):
        assert_error(response, 503, "serviceUnavailable")
        assert response.headers["Retry-After"] == "7"
    api.store.before = None
    assert session_of(get(api))["missingRanges"] == [{"start": "0", "end": str(SIZE - 1)}]


def test_an_unexpected_exception_is_500_without_internals(api: Api) -> None:
    create(api)

    def bug(operation: str) -> None:
        raise RuntimeError("secret internals in /srv/uploadsession/store.py")

    api.store.before = bug
    response = get(api)
    assert_error(response, 500, "generalException")
    text = response.get_body().decode()
    for leaked in ("Traceback", "RuntimeError", "secret", "store.py", 'File "'):
        assert leaked not in text


# -- behaviours hand-made mutants showed untested ------------------------------------------


@pytest.mark.parametrize("client_request_id", ["", "has space", "x" * 129, "tab\tinside"])
def test_an_invalid_client_request_id_is_replaced_by_the_request_id(
    api: Api, client_request_id: str
) -> None:
    response = get(api, headers={"client-request-id": client_request_id})
    assert response.headers["client-request-id"] == response.headers["request-id"]


def test_session_responses_are_private_and_revalidated(api: Api) -> None:
    for response in (create(api), get(api), post(api, 0, 9)):
        assert response.headers.get("Cache-Control") == "private, no-cache"


@pytest.mark.parametrize("quoted", [False, True])
def test_if_match_may_name_the_session_id_quoted_or_not(api: Api, quoted: bool) -> None:
    session_id = session_of(create(api))["id"]
    tag = f'"{session_id}"' if quoted else session_id.upper()
    response = post(api, 0, 9, headers={"If-Match": tag})
    assert response.status_code == 202
    assert session_of(response)["missingRanges"][0] == {"start": "10", "end": str(SIZE - 1)}
