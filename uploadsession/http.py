"""The HTTP blueprint: HttpRequest → service → HttpResponse. It only translates.

Every response carries ``request-id`` and ``client-request-id``; every error is Graph's
envelope (see ``errors.py`` for the status/code table). Header parsing order for an upload:
Content-Type (415) → body size (413) → If-Match present (428) → Content-Range (400) →
body length (400) → Content-MD5 (400) → Upload-Checksum syntax (400) → then the service
(404, 412, 416, 2xx).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import azure.functions as func

from uploadsession import telemetry
from uploadsession.errors import (
    ApiError,
    ConfigError,
    InvalidRequest,
    ItemNotFound,
    PayloadTooLarge,
    PreconditionRequired,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from uploadsession.models import CreateRequest, DocumentKey, SegmentUpload, parse_checksum, render
from uploadsession.runtime import Runtime, get_runtime

if TYPE_CHECKING:
    from uploadsession.auth import Principal

log = logging.getLogger(__name__)
#: One record per request (function, status, duration, outcome, tenant, document key).
_REQUEST_LOG = logging.getLogger("uploadsession.request")

#: Every route carries Graph's version segment (host.json's routePrefix is ""); see
#: :func:`check_version` for the two served.
DOCUMENT_ROUTE = "{version}/print/printers/{printerId}/jobs/{jobId}/documents/{documentId}"
SESSION_ROUTE = DOCUMENT_ROUTE + "/uploadSession"
VALUE_ROUTE = SESSION_ROUTE + "/$value"

_CONTENT_RANGE = re.compile(r"^bytes[ =](\d{1,19})-(\d{1,19})/(\d{1,19})$", re.ASCII)
_CLIENT_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}$")

bp = func.Blueprint()  # type: ignore[no-untyped-call]

Handler = Callable[[func.HttpRequest], func.HttpResponse]


def error_body(error: ApiError, request_id: str, client_request_id: str) -> bytes:
    """Graph's error envelope (``wire.ErrorEnvelope``)."""
    from uploadsession.wire import error_envelope

    return error_envelope(error.code, error.message, request_id, client_request_id)


def _respond(req: func.HttpRequest, action: Handler, function: str) -> func.HttpResponse:
    """Run ``action`` for the registered ``function``; map every failure to the envelope;
    add the id headers.

    One server span and one ``uploadsession.request`` log record per request, both with the
    request-id and client-request-id (which every other record of the request carries too);
    never the Authorization header, a capability or the query string.
    """
    started = time.perf_counter()
    telemetry.configure()
    request_id = str(uuid.uuid4())
    client_request_id = req.headers.get("client-request-id", "")
    if not _CLIENT_REQUEST_ID.fullmatch(client_request_id):
        client_request_id = request_id
    with telemetry.request_scope(function, request_id, client_request_id) as scope:
        outcome = "ok"
        try:
            response = action(req)
        except ApiError as exc:
            outcome = exc.code
            if exc.status in (401, 403):
                log.info("request refused (%d %s): %s", exc.status, exc.code, exc.message)
            elif isinstance(exc, ServiceUnavailable):
                telemetry.count(telemetry.UNAVAILABLE, cause=telemetry.unavailable_cause(exc))
            response = _error(exc, request_id, client_request_id)
        except ConfigError as exc:
            outcome = "misconfigured"
            log.error("configuration error: %s", exc)
            telemetry.count(telemetry.UNAVAILABLE, cause="misconfigured")
            response = _error(
                ApiError(f"The service is misconfigured: {exc}"), request_id, client_request_id
            )
        except Exception:
            outcome = "unhandled"
            log.exception("unhandled error (request-id %s)", request_id)
            response = _error(
                ApiError("An unexpected error occurred"), request_id, client_request_id
            )
        response.headers["request-id"] = request_id
        response.headers["client-request-id"] = client_request_id
        status = response.status_code
        if outcome == "ok" and status >= 400:
            outcome = "error"  # a handler's own error response (GET /health's 503)
        telemetry.finish(scope, status, outcome)
        milliseconds = round((time.perf_counter() - started) * 1000, 1)
        _REQUEST_LOG.info(
            "%s %s %d %s %.1fms request-id=%s",
            function,
            req.method,
            status,
            outcome,
            milliseconds,
            request_id,
            extra={
                "function": function,
                "method": req.method,
                "status": status,
                "outcome": outcome,
                "duration_ms": milliseconds,
                "tenant_id": scope.tenant or "",
                "document_key": scope.document or "",
            },
        )
    return response


def _error(error: ApiError, request_id: str, client_request_id: str) -> func.HttpResponse:
    return func.HttpResponse(
        error_body(error, request_id, client_request_id),
        status_code=error.status,
        headers=error.headers(),
        mimetype="application/json",
    )


def _session_response(session_body: bytes, etag: str, status: int) -> func.HttpResponse:
    return func.HttpResponse(
        session_body,
        status_code=status,
        headers={"ETag": etag, "Cache-Control": "private, no-cache"},
        mimetype="application/json",
    )


#: Graph's version segments; any other → 404, as if the route did not exist.
VERSIONS = frozenset({"v1.0", "beta"})


def check_version(req: func.HttpRequest) -> str:
    """The request's version segment (route value, else the URL's first path segment);
    404 ``itemNotFound`` unless it is ``v1.0`` or ``beta`` (matched exactly, as Graph does)."""
    version: object = req.route_params.get("version")
    if not isinstance(version, str):
        path = urlsplit(req.url).path.lstrip("/")
        version = path.split("/", 1)[0]
    if version not in VERSIONS:
        raise ItemNotFound("No such API version; use /v1.0 or /beta")
    return version


def _principal_and_key(req: func.HttpRequest) -> tuple[Runtime, Principal, DocumentKey]:
    check_version(req)
    runtime = get_runtime()
    principal = runtime.validator.validate(req.headers.get("Authorization"))
    telemetry.annotate(tenant=principal.tenant_id)
    params = req.route_params
    key = DocumentKey.parse(
        principal.tenant_id,
        params.get("printerId", ""),
        params.get("jobId", ""),
        params.get("documentId", ""),
    )
    telemetry.annotate(document=key.blob_name)
    return runtime, principal, key


def _tags(header: str | None) -> tuple[str, ...]:
    if header is None:
        return ()
    return tuple(t.strip() for t in header.split(",") if t.strip())


# -- GET / PUT / DELETE {S} --------------------------------------------------------------


def _get(req: func.HttpRequest) -> func.HttpResponse:
    runtime, principal, key = _principal_and_key(req)
    body, etag = render(runtime.service.get(principal, key))
    wanted = {t.removeprefix("W/") for t in _tags(req.headers.get("If-None-Match"))}
    if "*" in wanted or etag in wanted:
        return func.HttpResponse(status_code=304, headers={"ETag": etag})
    return _session_response(body, etag, 200)


def _put(req: func.HttpRequest) -> func.HttpResponse:
    runtime, principal, key = _principal_and_key(req)
    request = CreateRequest.parse(
        req.get_body(), max_document_bytes=runtime.settings.max_document_bytes
    )
    body, etag = render(runtime.service.create(principal, key, request))
    return _session_response(body, etag, 200)


def _delete(req: func.HttpRequest) -> func.HttpResponse:
    runtime, principal, key = _principal_and_key(req)
    runtime.service.delete(principal, key)
    return func.HttpResponse(status_code=204)


# -- POST {S}/$value ---------------------------------------------------------------------


def parse_segment(req: func.HttpRequest, max_segment_bytes: int) -> SegmentUpload:
    """Translate the upload's headers and body; raise the documented 4xx."""
    headers = req.headers
    media_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media_type != "application/octet-stream":
        raise UnsupportedMediaType("Content-Type must be application/octet-stream")
    data = req.get_body()
    if len(data) > max_segment_bytes:
        raise PayloadTooLarge(f"A segment may be at most {max_segment_bytes} bytes")
    if_match = _tags(headers.get("If-Match"))
    if not if_match:
        raise PreconditionRequired("If-Match is required: the session id, the session's ETag, or *")
    match = _CONTENT_RANGE.fullmatch(headers.get("Content-Range", "").strip())
    if match is None:
        raise InvalidRequest("Content-Range must be 'bytes {start}-{end}/{size}'")
    start, end, total = (int(g) for g in match.groups())
    if start > end:
        raise InvalidRequest("Content-Range end must not be before its start")
    if end - start + 1 > max_segment_bytes:
        raise PayloadTooLarge(f"A segment may be at most {max_segment_bytes} bytes")
    if len(data) != end - start + 1:
        raise InvalidRequest(
            f"The body has {len(data)} bytes but Content-Range names {end - start + 1}"
        )
    md5, checksum = _digests(headers, data)
    return SegmentUpload(start, end, total, data, md5, if_match, checksum)


#: The whole document's CRC-64/NVME, declared on the request that completes it
#: (``crc64nvme:<16 hex>``; docs/architecture.md "Whole-document checksum").
UPLOAD_CHECKSUM = "Upload-Checksum"


def _digests(headers: Mapping[str, str], data: bytes) -> tuple[bytes, int | None]:
    """The body's MD5 (checked against ``Content-MD5`` when sent) and the document checksum
    ``Upload-Checksum`` declares (None when absent); 400 for a malformed or wrong one."""
    md5 = hashlib.md5(data, usedforsecurity=False).digest()
    claimed = headers.get("Content-MD5")
    if claimed is not None:
        try:
            expected = base64.b64decode(claimed.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("Content-MD5 must be the base64 MD5 of the body") from None
        if expected != md5:
            raise InvalidRequest("Content-MD5 does not match the body; nothing was stored")
    declared = headers.get(UPLOAD_CHECKSUM)
    checksum = None if declared is None else parse_checksum(declared.strip(), UPLOAD_CHECKSUM)
    return md5, checksum


def _post(req: func.HttpRequest) -> func.HttpResponse:
    runtime, principal, key = _principal_and_key(req)
    upload = parse_segment(req, runtime.settings.max_segment_bytes)
    result = runtime.service.upload(principal, key, upload)
    body, etag = render(result.session)
    return _session_response(body, etag, 201 if result.complete else 202)


# -- registration ------------------------------------------------------------------------


@bp.function_name("get_upload_session")
@bp.route(route=SESSION_ROUTE, methods=["GET"])
def get_upload_session(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(req, _get, "get_upload_session")


@bp.function_name("create_upload_session")
@bp.route(route=SESSION_ROUTE, methods=["PUT"])
def create_upload_session(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(req, _put, "create_upload_session")


@bp.function_name("delete_upload_session")
@bp.route(route=SESSION_ROUTE, methods=["DELETE"])
def delete_upload_session(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(req, _delete, "delete_upload_session")


@bp.function_name("upload_segment")
@bp.route(route=VALUE_ROUTE, methods=["POST"])
def upload_segment(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(req, _post, "upload_segment")
