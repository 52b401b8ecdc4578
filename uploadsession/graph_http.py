"""The Graph protocol's HTTP functions (DESIGN §2.1, §2.2): createUploadSession, the
uploadUrl (PUT / GET / DELETE) and ``GET {D}/$value``. It only translates; the rules live
in ``graph.py`` and ``service.py``. Responses and errors go through ``http._respond`` (ids,
envelope, the request record — which never carries the URL, so never the uploadUrl's token).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

import azure.functions as func

from uploadsession import telemetry
from uploadsession.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from uploadsession.graph import (
    TOKEN_PARAMETER,
    UPLOAD_URL_ROUTE,
    GraphProtocol,
    GraphStorage,
    parse_create_body,
    session_ref,
    uploaded_at,
)
from uploadsession.http import (
    _CONTENT_RANGE,
    DOCUMENT_ROUTE,
    _digests,
    _principal_and_key,
    _respond,
    _tags,
    check_version,
)
from uploadsession.models import SegmentUpload, Session
from uploadsession.runtime import Runtime, get_runtime

if TYPE_CHECKING:  # pydantic is imported on the first request, not at indexing
    from uploadsession.wire import _Response

bp = func.Blueprint()  # type: ignore[no-untyped-call]

CREATE_ROUTE = DOCUMENT_ROUTE + "/createUploadSession"
CONTENT_ROUTE = DOCUMENT_ROUTE + "/$value"
UPLOAD_ROUTE = "{version}/" + UPLOAD_URL_ROUTE

_HOST = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
_JSON = "application/json"


def _protocol(runtime: Runtime) -> GraphProtocol:
    return GraphProtocol(runtime.service, cast(GraphStorage, runtime.service.store))


def _json(body: _Response, status: int) -> func.HttpResponse:
    return func.HttpResponse(
        body.body(),
        status_code=status,
        headers={"Cache-Control": "no-store"},
        mimetype=_JSON,
    )


def public_origin(req: func.HttpRequest) -> str:
    """Scheme and host the caller used: the request URL's, overridden by X-Forwarded-Proto
    and X-Forwarded-Host (first value each) when a front end set them and they are sane."""
    scheme, _, rest = req.url.partition("://")
    host = rest.split("/", 1)[0]
    forwarded_proto = req.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    if forwarded_proto in ("http", "https"):
        scheme = forwarded_proto
    forwarded_host = req.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
    if forwarded_host and _HOST.fullmatch(forwarded_host):
        host = forwarded_host
    return f"{scheme.lower()}://{host}"


def upload_url(req: func.HttpRequest, version: str, session: Session, token: str) -> str:
    ref = session_ref(session.key)
    return f"{public_origin(req)}/{version}/uploadSessions/{ref}?{TOKEN_PARAMETER}={token}"


# -- POST {D}/createUploadSession ---------------------------------------------------------


def _create(req: func.HttpRequest) -> func.HttpResponse:
    version = check_version(req)
    runtime, principal, key = _principal_and_key(req)
    request = parse_create_body(
        req.get_body(), max_document_bytes=runtime.settings.max_document_bytes
    )
    issued = _protocol(runtime).create(principal, key, request)
    from uploadsession.wire import upload_session_json

    body = upload_session_json(
        issued.session,
        upload_url(req, version, issued.session, issued.token),
        odata_context=f"{public_origin(req)}/{version}/$metadata#microsoft.graph.uploadSession",
    )
    return _json(body, 200)


# -- the uploadUrl --------------------------------------------------------------------------


def _resolve(req: func.HttpRequest) -> tuple[Runtime, GraphProtocol, Session, str]:
    """The uploadUrl's session (404 alike for every failure). Authorization is ignored."""
    version = check_version(req)
    runtime = get_runtime()
    protocol = _protocol(runtime)
    session = protocol.resolve(
        req.route_params.get("sessionRef", ""),
        req.params.get(TOKEN_PARAMETER),
        datetime.now(UTC),
    )
    telemetry.annotate(tenant=session.key.tenant_id)
    telemetry.annotate(document=session.key.blob_name)
    return runtime, protocol, session, version


def parse_range_put(req: func.HttpRequest, max_segment_bytes: int) -> SegmentUpload:
    """PUT uploadUrl: Content-Range (and the body) required; Content-Type, Content-MD5 and
    If-Match checked only when present, as for POST ``$value``. An empty body is passed on
    (it is the completing answer again once the document is complete)."""
    headers = req.headers
    content_type = headers.get("Content-Type")
    if content_type is not None and content_type.strip():
        media_type = content_type.split(";")[0].strip().lower()
        if media_type != "application/octet-stream":
            raise UnsupportedMediaType("Content-Type must be application/octet-stream")
    data = req.get_body()
    if len(data) > max_segment_bytes:
        raise PayloadTooLarge(f"A segment may be at most {max_segment_bytes} bytes")
    match = _CONTENT_RANGE.fullmatch(headers.get("Content-Range", "").strip())
    if match is None:
        raise InvalidRequest("Content-Range must be 'bytes {start}-{end}/{size}'")
    start, end, total = (int(g) for g in match.groups())
    if start > end:
        raise InvalidRequest("Content-Range end must not be before its start")
    if end - start + 1 > max_segment_bytes:
        raise PayloadTooLarge(f"A segment may be at most {max_segment_bytes} bytes")
    if data and len(data) != end - start + 1:
        raise InvalidRequest(
            f"The body has {len(data)} bytes but Content-Range names {end - start + 1}"
        )
    md5, checksum = _digests(headers, data)
    if_match = _tags(headers.get("If-Match")) or ("*",)
    return SegmentUpload(start, end, total, data, md5, if_match, checksum)


def _put_range(req: func.HttpRequest) -> func.HttpResponse:
    runtime, protocol, session, _ = _resolve(req)
    upload = parse_range_put(req, runtime.settings.max_segment_bytes)
    result = protocol.upload(session, upload)
    from uploadsession.wire import PROGRESS_RANGES_LIMIT, print_document_json, upload_session_json

    if result.complete:
        uploaded = uploaded_at(result.session, protocol.service.ttl)
        return _json(print_document_json(result.session, uploaded), 201)
    # Only the first missing ranges: Graph's nextExpectedRanges may be incomplete, the SDKs
    # read its first range, and the answer stays small however many gaps there are.
    progress = upload_session_json(result.session, None, limit=PROGRESS_RANGES_LIMIT)
    return _json(progress, 202)


def _get_status(req: func.HttpRequest) -> func.HttpResponse:
    _, _, session, version = _resolve(req)
    token = req.params.get(TOKEN_PARAMETER, "")
    from uploadsession.wire import upload_session_json

    return _json(upload_session_json(session, upload_url(req, version, session, token)), 200)


def _cancel(req: func.HttpRequest) -> func.HttpResponse:
    _, protocol, session, _ = _resolve(req)
    protocol.cancel(session)
    return func.HttpResponse(status_code=204)


# -- GET {D}/$value ---------------------------------------------------------------------------


def _content(req: func.HttpRequest) -> func.HttpResponse:
    runtime, principal, key = _principal_and_key(req)
    location = _protocol(runtime).read_url(principal, key, datetime.now(UTC))
    return func.HttpResponse(
        status_code=302, headers={"Location": location, "Cache-Control": "no-store"}
    )


# -- registration -----------------------------------------------------------------------------


@bp.function_name("graph_create_upload_session")
@bp.route(route=CREATE_ROUTE, methods=["POST"])
def graph_create_upload_session(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(req, _create, "graph_create_upload_session")


@bp.function_name("graph_upload_range")
@bp.route(route=UPLOAD_ROUTE, methods=["PUT"])
def graph_upload_range(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(req, _put_range, "graph_upload_range")


@bp.function_name("graph_get_upload_status")
@bp.route(route=UPLOAD_ROUTE, methods=["GET"])
def graph_get_upload_status(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(req, _get_status, "graph_get_upload_status")


@bp.function_name("graph_cancel_upload")
@bp.route(route=UPLOAD_ROUTE, methods=["DELETE"])
def graph_cancel_upload(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(req, _cancel, "graph_cancel_upload")


@bp.function_name("get_document_content")
@bp.route(route=CONTENT_ROUTE, methods=["GET"])
def get_document_content(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(req, _content, "get_document_content")
