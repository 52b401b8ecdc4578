"""The domain: identifiers, the session and its segments, checksums, the ETag.

Plain dataclasses with explicit validation of route values. The JSON the service reads and
writes is ``wire.py``'s pydantic models; ``CreateRequest.parse`` and ``render`` delegate to it
(imported on first use, so indexing ``function_app.py`` does not build its schemas).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import anycrc

from uploadsession.errors import InvalidRequest
from uploadsession.ranges import Range, find_overlap, missing_ranges

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_JOB_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")

#: CRC-64/NVME (anycrc): combinable, so a document's checksum is combined from its segments'
#: in offset order at commit, with no read-back. Wire form: ``crc64nvme:`` + 16 hex digits.
_CRC64 = anycrc.Model("CRC64-NVME")
CHECKSUM_PREFIX = "crc64nvme:"
_CHECKSUM = re.compile(r"^crc64nvme:[0-9a-fA-F]{16}$")


def crc64nvme(data: bytes | memoryview) -> int:
    return int(_CRC64.calc(bytes(data) if isinstance(data, memoryview) else data))


def json_object(body: bytes) -> dict[str, Any]:
    """A request body that must be one JSON object; InvalidRequest otherwise."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidRequest("The request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object")
    return data


def format_checksum(value: int) -> str:
    return f"{CHECKSUM_PREFIX}{value:016x}"


def parse_checksum(value: object, name: str = "checksum") -> int:
    """``crc64nvme:<16 hex>`` → its value; InvalidRequest naming ``name`` otherwise."""
    if not isinstance(value, str) or not _CHECKSUM.fullmatch(value):
        raise InvalidRequest(f"'{name}' must be 'crc64nvme:' followed by 16 hex digits")
    return int(value[len(CHECKSUM_PREFIX) :], 16)


ACTIVE = "active"
COMMITTED = "committed"
#: Cancelled or expired and won by a discard: its staged bytes are being dropped (see
#: docs/architecture.md "Upload protocol and concurrency"); invisible to readers.
DISCARDING = "discarding"


def is_guid(value: str) -> bool:
    return bool(_GUID.fullmatch(value))


@dataclass(frozen=True)
class DocumentKey:
    """Validated identifiers of one document; the tenant is part of every storage key."""

    tenant_id: str
    printer_id: str
    job_id: str
    document_id: str

    @classmethod
    def parse(cls, tenant_id: str, printer_id: str, job_id: str, document_id: str) -> DocumentKey:
        """Validate route values; raise InvalidRequest naming the bad one."""
        if not isinstance(printer_id, str) or not _GUID.fullmatch(printer_id):
            raise InvalidRequest("printerId must be a GUID")
        if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
            raise InvalidRequest("jobId must be 1-64 characters of A-Z, a-z, 0-9 and '-'")
        if not isinstance(document_id, str) or not _GUID.fullmatch(document_id):
            raise InvalidRequest("documentId must be a GUID")
        if not _GUID.fullmatch(tenant_id):
            raise InvalidRequest("tenant id must be a GUID")
        return cls(tenant_id.lower(), printer_id.lower(), job_id, document_id.lower())

    @property
    def blob_name(self) -> str:
        return f"{self.tenant_id}/{self.printer_id}/{self.job_id}/{self.document_id}"


@dataclass(frozen=True)
class Segment:
    """One accepted byte range and the MD5 of its bytes (to recognise an identical retry)."""

    start: int
    end: int
    md5: bytes
    #: CRC-64/NVME of the bytes, computed as they arrived (None for segments recorded before
    #: checksums existed); not part of a segment's identity.
    crc: int | None = field(default=None, compare=False)

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def block_id(self) -> str:
        """Blob block id: 56 hex characters for every segment (Blob Storage requires one id
        length per blob and at most 64 bytes; the SDK base64-encodes it), unique per
        (range, bytes), so a retried segment restages the same block."""
        return f"{self.start:012x}{self.end:012x}{self.md5.hex()}"


@dataclass(frozen=True)
class SegmentUpload:
    """One POST ``$value``, already parsed from its headers."""

    start: int
    end: int
    total: int
    data: bytes | memoryview
    md5: bytes
    if_match: tuple[str, ...]
    #: The whole document's CRC-64/NVME declared by ``Upload-Checksum`` (None: not declared);
    #: checked if this segment completes the document.
    checksum: int | None = None


@dataclass(frozen=True)
class CreateRequest:
    size: int
    content_type: str
    document_name: str
    #: The whole document's CRC-64/NVME the creator declares (optional).
    checksum: int | None = None

    @classmethod
    def parse(cls, body: bytes, *, max_document_bytes: int) -> CreateRequest:
        """Parse the legacy PUT body (``wire.CreateBody``); raise InvalidRequest naming the
        offending field."""
        from uploadsession.wire import parse_create

        return parse_create(body, max_document_bytes=max_document_bytes)


@dataclass(frozen=True)
class Session:
    """An upload session as stored. ``segments`` are sorted by start and disjoint.

    ``storage_etag`` is the store's optimistic-concurrency tag (not the HTTP ETag).
    """

    key: DocumentKey
    id: str
    size: int
    content_type: str
    document_name: str
    app_id: str
    user_id: str | None
    created: datetime
    expires: datetime
    segments: tuple[Segment, ...] = ()
    status: str = ACTIVE
    storage_etag: str | None = field(default=None, compare=False)
    #: SHA-256 of the uploadUrl's capability token (Graph protocol), once one was issued.
    upload_token_hash: bytes | None = None
    #: The document's CRC-64/NVME as declared by the creator (None: not declared).
    checksum: int | None = None
    #: The ETag of the session's placeholder blob (docs/architecture.md "Placeholder"), once
    #: put; the session's commit and discard are conditional on it.
    fence: str | None = field(default=None, compare=False)

    @property
    def received(self) -> list[Range]:
        return [(s.start, s.end) for s in self.segments]

    @property
    def missing(self) -> list[Range]:
        return missing_ranges(self.size, self.received)

    @property
    def complete(self) -> bool:
        return sum(s.length for s in self.segments) == self.size

    def records_and_gaps(self, extra: Segment | None = None) -> int:
        """Segment records plus missing ranges (with ``extra`` added): the segment cap keeps
        this bounded, so a segment that exactly fills a gap is always accepted."""
        segments = self.segments if extra is None else (*self.segments, extra)
        received = [(s.start, s.end) for s in segments]
        return len(segments) + len(missing_ranges(self.size, received))

    def expired(self, now: datetime) -> bool:
        return now >= self.expires

    def overlapping(self, start: int, end: int) -> Segment | None:
        i = find_overlap(self.received, start, end)
        return None if i is None else self.segments[i]

    def with_segment(self, segment: Segment, expires: datetime) -> Session:
        """A copy with ``segment`` added in order (the caller checked it does not overlap)."""
        segments = sorted((*self.segments, segment), key=lambda s: s.start)
        return replace(self, segments=tuple(segments), expires=expires)

    def same_creator(self, app_id: str, user_id: str | None) -> bool:
        return self.app_id == app_id and self.user_id == user_id

    def same_request(self, request: CreateRequest) -> bool:
        return (self.size, self.content_type, self.document_name, self.checksum) == (
            request.size,
            request.content_type,
            request.document_name,
            request.checksum,
        )

    def combined_checksum(self, segments: tuple[Segment, ...] | None = None) -> int | None:
        """CRC-64/NVME of the recorded segments in offset order, when they cover the whole
        document and each one's CRC is known; else None."""
        segments = self.segments if segments is None else segments
        if sum(s.length for s in segments) != self.size or any(s.crc is None for s in segments):
            return None
        value: int | None = None
        for s in sorted(segments, key=lambda s: s.start):
            assert s.crc is not None
            value = s.crc if value is None else int(_CRC64.combine(value, s.crc, s.length))
        return value

    @property
    def known_checksum(self) -> int | None:
        """What readers are told: the declared checksum, or the committed document's."""
        if self.checksum is not None:
            return self.checksum
        return self.combined_checksum() if self.status == COMMITTED else None


def format_datetime(value: datetime) -> str:
    """UTC with milliseconds and ``Z``, as Graph writes ``expiryDateTime``."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def render(session: Session) -> tuple[bytes, str]:
    """The session JSON (``wire.SessionJson``) and its strong ETag (a hash of exactly those
    bytes)."""
    from uploadsession.wire import session_json

    body = session_json(session).body()
    return body, etag_of(body)


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
