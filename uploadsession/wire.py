"""The wire models: every JSON body the service reads or writes, as pydantic v2 models.

- requests: the legacy create body (:class:`CreateBody`) and createUploadSession's
  ``{"properties": …}`` (:class:`CreateUploadSessionBody`); a pydantic ``ValidationError``
  never leaves this module — :func:`invalid_request` turns it into our
  :class:`~uploadsession.errors.InvalidRequest` with a message naming the offending field;
- responses: the session JSON (DESIGN §2, the seed's property order), Graph's uploadSession
  and printDocument (§2.1) and the error envelope (§4).

The domain (``DocumentKey``, ``Session``, ``Segment``, byte ranges) stays plain code in
``models.py`` and ``ranges.py``; this module only translates it to and from JSON.

Imported on first use, not when the Functions host indexes ``function_app.py`` (``models``,
``http`` and ``graph`` import it inside their functions): building the models' schemas is work
a cold start does not need before its first request.

Response bodies are serialised by pydantic-core with no whitespace and non-ASCII characters
as UTF-8 — byte for byte what ``json.dumps(…, separators=(",", ":"), ensure_ascii=False)``
wrote before (a session's ETag is a hash of exactly these bytes). Range lists are passed as
plain dicts and strings (``TypedDict``), not one model instance per range: a session can have
thousands of gaps.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from uploadsession.errors import InvalidRequest
from uploadsession.models import (
    CreateRequest,
    Session,
    format_checksum,
    format_datetime,
    json_object,
    parse_checksum,
)
from uploadsession.ranges import Range

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_CONTENT_TYPE = re.compile(rf"^{_TOKEN}/{_TOKEN}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc
# JSON's "\ud800" escapes decode to lone surrogates, which no UTF-8 response or store can carry.
_SURROGATE = re.compile(r"[\ud800-\udfff]")

#: What a wrong JSON type of each request property is told (pydantic's own messages do not
#: name the field).
_TYPE_MESSAGES = {
    "size": "'size' must be an integer",
    "contentType": "'contentType' must be a string of at most 255 characters",
    "documentName": "'documentName' must be a string of 1-255 characters",
    "checksum": "'checksum' must be 'crc64nvme:' followed by 16 hex digits",
    "properties": "'properties' must be an object",
}

#: At most this many ``nextExpectedRanges`` in a PUT uploadUrl's 202 answer (Graph documents
#: the list as possibly incomplete, and both official SDKs read only its first range); GET
#: uploadUrl and the session JSON always list every missing range.
PROGRESS_RANGES_LIMIT = 64

# -- requests ------------------------------------------------------------------------------


class CreateBody(BaseModel):
    """The legacy ``PUT {S}`` body, also createUploadSession's ``properties``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    size: int
    content_type: str = Field(alias="contentType")
    document_name: str = Field(alias="documentName")
    #: The whole document's CRC-64/NVME the creator declares (optional).
    checksum: str | None = None

    @field_validator("size")
    @classmethod
    def _size_in_range(cls, value: int, info: ValidationInfo) -> int:
        limit = int((info.context or {})["max_document_bytes"])
        if not 1 <= value <= limit:
            raise ValueError(f"'size' must be between 1 and {limit}")
        return value

    @field_validator("content_type")
    @classmethod
    def _media_type(cls, value: str) -> str:
        if len(value) > 255:
            raise ValueError(_TYPE_MESSAGES["contentType"])
        if not _CONTENT_TYPE.fullmatch(value):
            raise ValueError("'contentType' must be a media type 'type/subtype'")
        return value

    @field_validator("document_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not 1 <= len(value) <= 255:
            raise ValueError(_TYPE_MESSAGES["documentName"])
        if _CONTROL.search(value):
            raise ValueError("'documentName' must not contain control characters")
        if _SURROGATE.search(value):
            raise ValueError("'documentName' must not contain unpaired surrogates")
        return value

    @field_validator("checksum")
    @classmethod
    def _checksum(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_checksum(value)
            except InvalidRequest as exc:
                raise ValueError(exc.message) from None
        return value

    def request(self) -> CreateRequest:
        return CreateRequest(
            size=self.size,
            content_type=self.content_type,
            document_name=self.document_name,
            checksum=None if self.checksum is None else parse_checksum(self.checksum),
        )


def _annotation(name: object) -> bool:
    return isinstance(name, str) and (
        name.startswith("@odata.") or name.startswith("@microsoft.graph.")
    )


def _without_annotations(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if not _annotation(k)}


class CreateUploadSessionBody(BaseModel):
    """``POST {D}/createUploadSession``: ``{"properties": {…}}``. OData annotations
    (``@odata.*``, ``@microsoft.graph.*``) are dropped at either level before validation."""

    model_config = ConfigDict(extra="forbid", strict=True)

    properties: CreateBody


def invalid_request(error: ValidationError) -> InvalidRequest:
    """Our 400 for pydantic's first error, naming the field: unknown properties first (the
    outermost, then by name), then the fields in declaration order."""
    errors = error.errors()
    extras = sorted(
        (e for e in errors if e["type"] == "extra_forbidden"),
        key=lambda e: (len(e["loc"]), [str(p) for p in e["loc"]]),
    )
    first = extras[0] if extras else errors[0]
    field = str(first["loc"][-1]) if first["loc"] else "body"
    if first["type"] == "extra_forbidden":
        return InvalidRequest(f"Unknown property '{field}'")
    if first["type"] == "missing":
        return InvalidRequest(f"'{field}' is required")
    if first["type"] == "value_error":
        return InvalidRequest(str(first["ctx"]["error"]))
    return InvalidRequest(_TYPE_MESSAGES.get(field, f"'{field}' is invalid"))


def parse_create(body: bytes, *, max_document_bytes: int) -> CreateRequest:
    """The legacy create body; InvalidRequest naming the offending field."""
    data = json_object(body)
    try:
        model = CreateBody.model_validate(data, context={"max_document_bytes": max_document_bytes})
    except ValidationError as exc:
        raise invalid_request(exc) from None
    return model.request()


def parse_create_upload_session(body: bytes, *, max_document_bytes: int) -> CreateRequest:
    """createUploadSession's body; InvalidRequest naming the offending field."""
    data = _without_annotations(json_object(body))
    properties = data.get("properties")
    if isinstance(properties, dict):
        data["properties"] = _without_annotations(properties)
    try:
        model = CreateUploadSessionBody.model_validate(
            data, context={"max_document_bytes": max_document_bytes}
        )
    except ValidationError as exc:
        raise invalid_request(exc) from None
    return model.properties.request()


# -- responses -----------------------------------------------------------------------------


class _Response(BaseModel):
    """A response body: built from trusted domain values (``model_construct``, no
    validation), written with the wire names, absent optional properties left out."""

    model_config = ConfigDict(populate_by_name=True)

    def body(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


class Identity(_Response):
    id: str


class CreatedBy(_Response):
    application: Identity
    user: Identity | None = None


class MissingRange(TypedDict):
    start: str
    end: str


class SessionJson(_Response):
    """Graph's printUploadSession, in the seed's property order (DESIGN §2); ``checksum``
    appended once known."""

    id: str
    size: int
    content_type: str = Field(alias="contentType")
    document_name: str = Field(alias="documentName")
    expiry_date_time: str = Field(alias="expiryDateTime")
    created_by: CreatedBy = Field(alias="createdBy")
    missing_ranges: list[MissingRange] = Field(alias="missingRanges")
    next_expected_ranges: list[str] = Field(alias="nextExpectedRanges")
    checksum: str | None = None


class UploadSessionJson(_Response):
    """Graph's uploadSession: ``uploadUrl`` on create and GET, not on a PUT's 202."""

    odata_context: str | None = Field(default=None, alias="@odata.context")
    upload_url: str | None = Field(default=None, alias="uploadUrl")
    expiration_date_time: str = Field(alias="expirationDateTime")
    next_expected_ranges: list[str] = Field(alias="nextExpectedRanges")


class PrintDocumentJson(_Response):
    """Graph's printDocument, the completing PUT's 201."""

    id: str
    display_name: str = Field(alias="displayName")
    content_type: str = Field(alias="contentType")
    size: int
    uploaded_date_time: str = Field(alias="uploadedDateTime")


class InnerError(_Response):
    date: str
    request_id: str = Field(alias="request-id")
    client_request_id: str = Field(alias="client-request-id")


class ErrorDetail(_Response):
    code: str
    message: str
    inner_error: InnerError = Field(alias="innerError")


class ErrorEnvelope(_Response):
    """Graph's error envelope (DESIGN §4)."""

    error: ErrorDetail


def next_expected_ranges(missing: list[Range]) -> list[str]:
    """Graph's ``uploadSession`` form: closed ``"{start}-{end}"`` strings (never the open
    ``"{start}-"``, which an official SDK cannot parse)."""
    return [f"{s}-{e}" for s, e in missing]


def session_json(session: Session) -> SessionJson:
    missing = session.missing
    user = None if session.user_id is None else Identity.model_construct(id=session.user_id)
    checksum = session.known_checksum
    return SessionJson.model_construct(
        id=session.id,
        size=session.size,
        content_type=session.content_type,
        document_name=session.document_name,
        expiry_date_time=format_datetime(session.expires),
        created_by=CreatedBy.model_construct(
            application=Identity.model_construct(id=session.app_id), user=user
        ),
        missing_ranges=[{"start": str(s), "end": str(e)} for s, e in missing],
        next_expected_ranges=next_expected_ranges(missing),
        checksum=None if checksum is None else format_checksum(checksum),
    )


def upload_session_json(
    session: Session,
    upload_url: str | None,
    *,
    odata_context: str | None = None,
    limit: int | None = None,
) -> UploadSessionJson:
    """``limit``: list at most that many of the missing ranges (the first ones)."""
    missing = session.missing
    if limit is not None:
        missing = missing[:limit]
    return UploadSessionJson.model_construct(
        odata_context=odata_context,
        upload_url=upload_url,
        expiration_date_time=format_datetime(session.expires),
        next_expected_ranges=next_expected_ranges(missing),
    )


def print_document_json(session: Session, uploaded: datetime) -> PrintDocumentJson:
    return PrintDocumentJson.model_construct(
        id=session.key.document_id,
        display_name=session.document_name,
        content_type=session.content_type,
        size=session.size,
        uploaded_date_time=format_datetime(uploaded),
    )


def error_envelope(code: str, message: str, request_id: str, client_request_id: str) -> bytes:
    inner = InnerError.model_construct(
        date=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        request_id=request_id,
        client_request_id=client_request_id,
    )
    detail = ErrorDetail.model_construct(code=code, message=message, inner_error=inner)
    return ErrorEnvelope.model_construct(error=detail).body()
