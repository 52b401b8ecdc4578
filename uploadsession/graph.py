"""Graph's current upload protocol over the same sessions: createUploadSession, the
pre-authenticated uploadUrl (PUT a range, GET status, DELETE cancel) and ``GET {D}/$value``.

No HTTP here (``graph_http.py`` translates); the byte rules are the service's own
(``UploadSessionService.upload``), called as the session's creator once the uploadUrl's
capability token has been checked.

The capability token (docs/architecture.md, "Graph protocol"):

- ``token = base64url(HMAC-SHA256(deployment key, "{tenant}|{session id}"))``, 256 bits; the
  deployment key is 256 random bits kept in storage (``Storage.upload_url_key``);
- the session entity stores only ``SHA-256(token)``; a request's token is hashed and compared
  with ``hmac.compare_digest``;
- an idempotent createUploadSession re-derives the same token, so it returns the same
  uploadUrl; a new session (a new id) gets a new token, so a cancelled, expired or replaced
  session's uploadUrl never works again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from uploadsession.errors import ConcurrencyConflict, InvalidRange, InvalidRequest, ItemNotFound
from uploadsession.models import (
    COMMITTED,
    CreateRequest,
    DocumentKey,
    SegmentUpload,
    Session,
)
from uploadsession.ports import CommittedDocument

if TYPE_CHECKING:  # auth and service import PyJWT and the storage SDKs: not at indexing
    from uploadsession.auth import Principal
    from uploadsession.service import UploadResult, UploadSessionService

#: How long a ``GET {D}/$value`` redirect stays usable (DESIGN §2.2: at most 10 minutes).
READ_URL_LIFETIME = timedelta(minutes=10)
#: Route of the uploadUrl (after the version segment): at least two path segments.
UPLOAD_URL_ROUTE = "uploadSessions/{sessionRef}"
TOKEN_PARAMETER = "tempauthtoken"

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
_WRITER_SCOPES = frozenset({"PrintJob.ReadWrite", "Printer.Read.All"})
_WRITER_ROLES = frozenset({"PrintJob.ReadWrite.All", "Printer.Read.All"})


class GraphStorage(Protocol):
    """What the Graph protocol needs from the store beyond the service's ports."""

    def upload_url_key(self) -> bytes: ...
    def read_url(self, key: DocumentKey, lifetime: timedelta) -> str: ...
    def committed_document(self, key: DocumentKey) -> CommittedDocument | None: ...
    def read_range(self, key: DocumentKey, start: int, length: int) -> bytes | None: ...


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def upload_token(url_key: bytes, session: Session) -> str:
    message = f"{session.key.tenant_id}|{session.id}".encode()
    return _b64url(hmac.new(url_key, message, hashlib.sha256).digest())


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


def session_ref(key: DocumentKey) -> str:
    """The uploadUrl's opaque path segment: the document's storage key (one point read)."""
    text = f"{key.tenant_id}:{key.printer_id}:{key.job_id}:{key.document_id}"
    return _b64url(text.encode("ascii"))


def parse_session_ref(ref: str) -> DocumentKey:
    """The key a :func:`session_ref` names; ItemNotFound for anything else."""
    try:
        text = base64.urlsafe_b64decode(ref + "=" * (-len(ref) % 4)).decode("ascii")
        tenant, printer, job, document = text.split(":")
        return DocumentKey.parse(tenant, printer, job, document)
    except (binascii.Error, UnicodeDecodeError, ValueError, InvalidRequest):
        raise ItemNotFound("The upload session does not exist or has ended") from None


def parse_create_body(body: bytes, *, max_document_bytes: int) -> CreateRequest:
    """``{"properties": {documentName, contentType, size}}`` (``wire.CreateUploadSessionBody``);
    OData annotations are ignored at either level, any other unknown property is 400 naming
    it."""
    from uploadsession.wire import parse_create_upload_session

    return parse_create_upload_session(body, max_document_bytes=max_document_bytes)


def creator_principal(session: Session) -> Principal:
    """The principal the uploadUrl acts as: the session's creator, with write permission."""
    from uploadsession.auth import Principal

    if session.user_id is not None:
        return Principal(
            session.key.tenant_id, session.app_id, session.user_id, True, _WRITER_SCOPES
        )
    return Principal(session.key.tenant_id, session.app_id, None, False, _WRITER_ROLES)


@dataclass(frozen=True)
class Issued:
    session: Session
    token: str


class GraphProtocol:
    """The Graph protocol's use cases over the legacy service and its store."""

    def __init__(self, service: UploadSessionService, store: GraphStorage) -> None:
        self.service = service
        self.store = store

    # -- createUploadSession -------------------------------------------------------------

    def create(self, principal: Principal, key: DocumentKey, request: CreateRequest) -> Issued:
        """The legacy create (same rules, same idempotency), then the session's token: the
        same on every idempotent repeat; its hash recorded once."""
        session = self.service.create(principal, key, request)
        url_key = self.store.upload_url_key()

        def issue() -> Issued:
            nonlocal session
            token = upload_token(url_key, session)
            wanted = token_hash(token)
            if session.upload_token_hash is not None and hmac.compare_digest(
                session.upload_token_hash, wanted
            ):
                return Issued(session, token)
            try:
                saved = self.service.store.replace_session(
                    replace(session, upload_token_hash=wanted)
                )
            except ConcurrencyConflict:
                fresh = self.service.store.get_session(key)
                if fresh is None or fresh.id != session.id:
                    raise ItemNotFound("The upload session ended meanwhile") from None
                session = fresh
                raise
            return Issued(saved, token)

        return self.service.retry_conflicts(issue)

    # -- uploadUrl -----------------------------------------------------------------------

    def resolve(self, ref: str, token: str | None, now: datetime) -> Session:
        """The live session the uploadUrl names, if its token matches; else 404, the same
        for a wrong token, an unknown, cancelled, expired or replaced session."""
        key = parse_session_ref(ref)
        gone = ItemNotFound("The upload session does not exist or has ended")
        if token is None or not _TOKEN.fullmatch(token):
            raise gone
        session = self.service.store.get_session(key)
        if session is None or session.expired(now) or session.upload_token_hash is None:
            raise gone
        if not hmac.compare_digest(session.upload_token_hash, token_hash(token)):
            raise gone
        return session

    def upload(self, session: Session, upload: SegmentUpload) -> UploadResult:
        """PUT uploadUrl: the service's rules, as the creator. After completion a PUT whose
        range lies in the document with an empty body is the completing answer again."""
        if not upload.data and session.status != COMMITTED:
            raise InvalidRequest(
                f"The body has 0 bytes but Content-Range names {upload.end - upload.start + 1}"
            )
        if not upload.data:
            if upload.total != session.size or upload.end >= session.size:
                raise InvalidRange(
                    f"The range must lie within the session's {session.size} bytes",
                    size=session.size,
                )
            from uploadsession.service import UploadResult

            return UploadResult(session, True)
        try:
            return self.service.upload(creator_principal(session), session.key, upload)
        except InvalidRange:
            # Complete: bytes identical to the document's, cut at other boundaries, are the
            # same answer as an identical segment (compared with the committed blob).
            if session.status != COMMITTED or upload.total != session.size:
                raise
            if upload.end >= session.size:
                raise
            stored = self.store.read_range(session.key, upload.start, len(upload.data))
            if stored is None or not hmac.compare_digest(stored, bytes(upload.data)):
                raise
            from uploadsession.service import UploadResult

            return UploadResult(session, True)

    def cancel(self, session: Session) -> None:
        self.service.delete(creator_principal(session), session.key)

    # -- GET {D}/$value ------------------------------------------------------------------

    def read_url(self, principal: Principal, key: DocumentKey, now: datetime) -> str:
        """A short-lived read-only URL for the committed document, for whoever could read its
        session — also once the session is purged (the blob's metadata names the creator)."""
        from uploadsession.auth import Operation
        from uploadsession.service import may_see

        self.service.admit(principal, Operation.READ)
        missing = ItemNotFound("The document does not exist or is not complete")
        session = self.service.store.get_session(key)
        if session is not None and not session.expired(now):
            if not may_see(principal, Operation.READ, session.app_id, session.user_id):
                raise missing
            if session.status != COMMITTED:
                raise missing
        else:
            document = self.store.committed_document(key)  # None for a placeholder too
            if document is None:
                raise missing
            if not may_see(principal, Operation.READ, document.app_id, document.user_id):
                raise missing
        return self.store.read_url(key, READ_URL_LIFETIME)


def uploaded_at(session: Session, ttl: timedelta) -> datetime:
    """When the completing segment was accepted (each accepted segment set the expiry to then
    + the TTL): printDocument's ``uploadedDateTime``."""
    return session.expires - ttl
