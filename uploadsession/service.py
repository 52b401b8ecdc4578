"""Use cases: create, get, upload a segment, delete, purge. No HTTP, no Azure SDK.

Upload protocol (why a 2xx means the bytes are durable, and why a crash is repairable):

0. the create put the session's placeholder blob and recorded its ETag (``Session.fence``):
   the commit and the discard are conditional on it, so no request of an earlier session of
   the document — however late storage applies it — can drop this session's blocks;
1. read the session (one point read) and check If-Match, size and overlap;
2. stage the segment as a blob block whose id encodes (start, end, md5) — restaging the
   same segment rewrites the same block, so a retry is harmless;
3. record the segment: the segments of one session that arrive in parallel are recorded
   together in one ETag-conditional replace per round (group commit,
   :class:`~uploadsession.concurrency.SegmentRecorder`), each re-checked against the row
   it is written into; a write lost to another process re-reads and re-applies (bounded,
   with jitter), so parallel segments are never lost or double counted;
4. the segment that records the last missing byte commits the recorded blocks in offset
   order and marks the session committed.

A crash after 2 leaves an unrecorded block: the client's retry restages and records it. A
crash after 3 (complete but uncommitted) is finished by the retry of any accepted segment,
which sees an identical segment and commits. If a commit finds recorded blocks missing
(discarded by a purge race, or garbage collected), the missing segments are un-recorded so
``missingRanges`` asks for them again — never a committed document with wrong bytes.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from uploadsession import telemetry
from uploadsession.auth import Operation, Principal, authorize, sees_all, writes_all
from uploadsession.concurrency import MAX_WRITE_ATTEMPTS, SegmentRecorder, retry_on_conflict
from uploadsession.errors import (
    AccessDenied,
    ConcurrencyConflict,
    Conflict,
    EntityExists,
    ForeignDocument,
    InvalidRange,
    InvalidRequest,
    ItemNotFound,
    MissingBlocks,
    PreconditionFailed,
)
from uploadsession.models import (
    ACTIVE,
    COMMITTED,
    DISCARDING,
    CreateRequest,
    DocumentKey,
    Segment,
    SegmentUpload,
    Session,
    crc64nvme,
    format_checksum,
    render,
)
from uploadsession.ports import CommittedDocument, Storage, Subscription

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Blob Storage commits at most 50,000 blocks; the table entity (1 MiB) holds ~37,000 segment
#: records. 20,000 keeps a margin and still allows 1 GiB in 52 KiB segments.
MAX_SEGMENTS = 20_000
__all__ = ["MAX_SEGMENTS", "MAX_WRITE_ATTEMPTS", "UploadSessionService"]
#: How long an observed active subscription is trusted before it is read again.
SUBSCRIPTION_CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class UploadResult:
    session: Session
    #: True when the document is whole and committed (HTTP 201), else 202.
    complete: bool


@dataclass(frozen=True)
class PurgeReport:
    sessions: int
    staged_discarded: int


def is_creator(principal: Principal, app_id: str, user_id: str | None) -> bool:
    """Delegated: the same user (``oid``); application: the same app and no user."""
    if principal.delegated:
        return user_id is not None and user_id == principal.user_id
    return user_id is None and app_id == principal.app_id


def may_see(principal: Principal, op: Operation, app_id: str, user_id: str | None) -> bool:
    """Whether ``principal`` may see what the creator ``(app_id, user_id)`` made: every
    session of its tenant with ``.All`` or as an application, else only its own."""
    return sees_all(principal, op) or is_creator(principal, app_id, user_id)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class UploadSessionService:
    """The printUploadSession use cases over a :class:`~uploadsession.ports.Storage`."""

    def __init__(
        self,
        store: Storage,
        *,
        ttl_seconds: int,
        clock: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], None] = time.sleep,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.store = store
        self.ttl = timedelta(seconds=ttl_seconds)
        self._clock = clock
        self._sleep = sleep
        self._new_id = new_id
        self._active_tenants: dict[str, datetime] = {}
        self._lock = threading.Lock()
        #: ETag-conditional writes that lost a race and were retried (observable in tests).
        self.write_conflicts = 0
        self.recorder = SegmentRecorder(
            write=lambda session: self.store.replace_session(session),
            reload=lambda key: self.store.get_session(key),
            backoff=self._backoff,
        )

    # -- access --------------------------------------------------------------------------

    def admit(self, principal: Principal, operation: Operation) -> None:
        """The permission table, then the tenant's subscription (cached 60 s once active)."""
        authorize(principal, operation)
        until = self._active_tenants.get(principal.tenant_id)
        now = self._clock()
        if until is not None and until > now:
            return
        subscription = self.store.get_subscription(principal.tenant_id)
        if subscription is None or not subscription.active:
            raise AccessDenied("The tenant does not have an active Universal Print subscription")
        self._active_tenants[principal.tenant_id] = now + timedelta(
            seconds=SUBSCRIPTION_CACHE_SECONDS
        )

    @staticmethod
    def _is_creator(principal: Principal, session: Session) -> bool:
        return is_creator(principal, session.app_id, session.user_id)

    def _load_visible(
        self,
        principal: Principal,
        key: DocumentKey,
        op: Operation,
        *,
        discarding: bool = False,
    ) -> Session:
        """The live session the caller may see; otherwise 404, as if absent. A session being
        discarded is visible only to a DELETE (``discarding``), which finishes the discard."""
        session = self.store.get_session(key)
        if session is None:
            raise ItemNotFound("The upload session does not exist or has expired")
        self._check_visible(principal, session, op, discarding=discarding)
        return session

    def _check_visible(
        self, principal: Principal, session: Session, op: Operation, *, discarding: bool = False
    ) -> None:
        if session.status == DISCARDING:
            if not discarding:
                raise ItemNotFound("The upload session does not exist or has expired")
        elif session.expired(self._clock()):
            raise ItemNotFound("The upload session does not exist or has expired")
        if not may_see(principal, op, session.app_id, session.user_id):
            raise ItemNotFound("The upload session does not exist or has expired")

    def _backoff(self, attempt: int) -> None:
        with self._lock:
            self.write_conflicts += 1
        telemetry.count(telemetry.WRITE_RETRIES)
        self._sleep(random.uniform(0, min(0.25, 0.005 * 2**attempt)))

    # -- use cases -----------------------------------------------------------------------

    def get(self, principal: Principal, key: DocumentKey) -> Session:
        """The session; one whose every byte is recorded but whose commit a crash or a storage
        failure left undone is committed first (503 + Retry-After while that fails), so
        "complete" is never said of a document that does not exist."""
        self.admit(principal, Operation.READ)
        session = self._load_visible(principal, key, Operation.READ)
        if session.complete and session.status == ACTIVE:
            session = self._commit(session)
        return session

    def retry_conflicts(self, step: Callable[[], T]) -> T:
        """The one optimistic-concurrency loop: ``step`` re-reads what it writes and raises
        ConcurrencyConflict when its conditional write lost (bounded, then 503)."""
        return retry_on_conflict(step, backoff=self._backoff)

    def create(self, principal: Principal, key: DocumentKey, request: CreateRequest) -> Session:
        """Create the document's session; the same creator repeating the same body gets the
        existing session (idempotent retry); anything else while one exists → 409."""
        self.admit(principal, Operation.WRITE)

        def attempt() -> Session:
            now = self._clock()
            existing = self.store.get_session(key)
            if existing is not None and existing.status != DISCARDING and not existing.expired(now):
                if (
                    existing.status == ACTIVE
                    and self._is_creator(principal, existing)
                    and existing.same_request(request)
                ):
                    if existing.complete:  # an identical retry finishes a commit left undone
                        return self._commit(existing)
                    return self._fence(existing)  # and a placeholder a failure left unput
                if existing.status == COMMITTED:
                    raise Conflict("The document has already been uploaded")
                raise Conflict("An upload session already exists for this document")
            # Expired, or a discard left unfinished: finish what it left (commit a complete
            # one, discard an incomplete one, delete its row) before a new session starts,
            # so no discard can ever touch the new session's bytes.
            if existing is not None and self._retire(existing) is None:
                raise ConcurrencyConflict("the previous session changed meanwhile")
            if self.store.document_exists(key):
                raise Conflict("The document has already been uploaded")
            session = Session(
                key=key,
                id=self._new_id(),
                size=request.size,
                content_type=request.content_type,
                document_name=request.document_name,
                app_id=principal.app_id,
                user_id=principal.user_id if principal.delegated else None,
                created=now,
                expires=now + self.ttl,
                checksum=request.checksum,
            )
            try:
                created = self.store.insert_session(session)
            except EntityExists:
                raise ConcurrencyConflict("another create won") from None
            telemetry.count(telemetry.SESSIONS_CREATED)
            try:
                return self._fence(created)
            except Conflict:
                # committed by someone else after the check above: this session cannot be
                with contextlib.suppress(ConcurrencyConflict):
                    self.store.delete_session(created)
                raise

        return self.retry_conflicts(attempt)

    def upload(self, principal: Principal, key: DocumentKey, upload: SegmentUpload) -> UploadResult:
        """Accept one byte-range segment (see the module docstring for the protocol)."""
        self.admit(principal, Operation.WRITE)
        segment = Segment(upload.start, upload.end, upload.md5, crc=crc64nvme(upload.data))

        def attempt() -> UploadResult:
            session = self._load_visible(principal, key, Operation.WRITE)
            if self._with_segment(principal, session, segment, upload) is None:
                # An identical retry (its first attempt's response was lost): 2xx with the
                # current state even if If-Match names the ETag that attempt changed (RFC 9110
                # §13.1.1 allows a 2xx when the requested change has already been made).
                # Nothing to write, but finish a commit a crash left undone.
                if session.complete and session.status != COMMITTED:
                    session = self._commit(session)
                return UploadResult(session, session.complete)
            if session.fence is None and not session.segments:
                # its create failed before the placeholder was put (a session with segments
                # and none was staged before placeholders existed: it commits as it began)
                session = self._fence(session)
            self.store.stage(key, segment.block_id, upload.data)
            changed = False

            def apply(state: Session) -> Session | None:
                nonlocal changed
                if state.id != session.id:  # replaced meanwhile: stage again for the new one
                    raise ConcurrencyConflict("the session was replaced")
                self._check_visible(principal, state, Operation.WRITE)
                updated = self._with_segment(principal, state, segment, upload)
                changed = updated is not None
                return updated

            saved = self.recorder.record(key, session, apply)
            if changed:
                telemetry.count(telemetry.SEGMENTS_ACCEPTED)
                telemetry.count(telemetry.BYTES_ACCEPTED, len(upload.data))
            if saved.complete and saved.status != COMMITTED:
                saved = self._commit(saved)
            return UploadResult(saved, saved.complete)

        return self.retry_conflicts(attempt)

    def _with_segment(
        self, principal: Principal, session: Session, segment: Segment, upload: SegmentUpload
    ) -> Session | None:
        """``session`` with ``segment`` recorded, None for an identical retry, or the refusal:
        not the writer, out of range, If-Match, overlap, the cap, a checksum mismatch."""
        self._check_writer(principal, session)
        if upload.total != session.size or upload.end >= session.size:
            raise InvalidRange(
                f"The range must lie within the session's {session.size} bytes",
                size=session.size,
            )
        other = session.overlapping(upload.start, upload.end)
        if other == segment:
            return None
        self._check_if_match(session, upload.if_match)
        if other is not None:
            raise InvalidRange(
                f"bytes {upload.start}-{upload.end} overlap bytes already received "
                f"({other.start}-{other.end})",
                size=session.size,
            )
        if session.records_and_gaps(segment) > MAX_SEGMENTS:
            # records + gaps ≤ cap holds for every session, and a segment that exactly
            # fills a gap keeps the sum: sending missingRanges as listed always completes.
            raise InvalidRequest(
                f"A session accepts at most {MAX_SEGMENTS} segments and missing ranges; "
                "send each missing range (missingRanges) whole"
            )
        updated = session.with_segment(segment, expires=self._clock() + self.ttl)
        if updated.complete:
            # declared at creation, or by Upload-Checksum on the request that completes it
            for declared in (session.checksum, upload.checksum):
                if declared is not None:
                    self._check_checksum(updated, declared)
        return updated

    @staticmethod
    def _check_checksum(session: Session, declared: int) -> None:
        """Refuse the segment that would complete a document whose bytes differ from the
        declared checksum: nothing is recorded or committed, the session stays incomplete."""
        combined = session.combined_checksum()
        if combined is not None and combined != declared:
            raise Conflict(
                f"The bytes received ({format_checksum(combined)}) do not match the "
                f"checksum declared for this document ({format_checksum(declared)}); nothing "
                "was committed: cancel the upload session (DELETE) and upload the document again"
            )

    def _check_writer(self, principal: Principal, session: Session) -> None:
        if not (writes_all(principal) or self._is_creator(principal, session)):
            raise AccessDenied("Only the creator of this upload session can upload to it")

    @staticmethod
    def _check_if_match(session: Session, if_match: tuple[str, ...]) -> None:
        if "*" in if_match:
            return
        ids = {session.id.lower(), f'"{session.id.lower()}"'}
        if any(tag.lower() in ids for tag in if_match):
            return  # what parallel uploaders send: no need to render the session for its ETag
        etag = render(session)[1]
        if not any(tag.lower() == etag for tag in if_match):
            raise PreconditionFailed(
                "If-Match must be the session id, the session's current ETag, or *"
            )

    def _fence(self, session: Session) -> Session:
        """``session`` with its placeholder put and its ETag recorded (docs/architecture.md
        "Placeholder"), before any of its blocks is staged: from then on no blob write of an
        earlier session of the document can take effect. Repeatable."""
        if session.fence is not None:
            return session
        try:
            fence = self.store.fence(session.key, session.id)
        except ForeignDocument:
            raise Conflict("The document has already been uploaded") from None
        current = session

        def mark() -> Session:
            nonlocal current
            if current.fence is not None:
                return current
            try:
                return self.store.replace_session(replace(current, fence=fence))
            except ConcurrencyConflict:
                fresh = self.store.get_session(current.key)
                if fresh is None or fresh.id != current.id or fresh.status == DISCARDING:
                    raise ItemNotFound("The upload session does not exist or has expired") from None
                current = fresh
                raise

        return self.retry_conflicts(mark)

    def _commit(self, session: Session) -> Session:
        """Commit the recorded segments as the document and mark the session committed.

        Returns the committed session, or — if some recorded blocks were missing — the
        session with those segments un-recorded so the client sends them again.
        """
        document = CommittedDocument(
            session_id=session.id,
            content_type=session.content_type,
            document_name=session.document_name,
            app_id=session.app_id,
            user_id=session.user_id,
            checksum=session.combined_checksum(),
        )
        self.recorder.forget(session.key)
        try:
            self.store.commit(  # If-Match the placeholder; our own earlier commit is success
                session.key, [s.block_id for s in session.segments], document, session.fence
            )
        except MissingBlocks:
            log.warning("recorded blocks missing at commit; asking the client again")
            return self._forget_unstaged(session)
        except ForeignDocument:
            raise Conflict("The document has already been uploaded") from None
        current = session

        def mark() -> Session:
            nonlocal current
            if current.status == COMMITTED:
                return current
            try:
                committed = self.store.replace_session(replace(current, status=COMMITTED))
            except ConcurrencyConflict:
                fresh = self.store.get_session(current.key)
                if fresh is None or fresh.id != current.id:
                    return replace(current, status=COMMITTED)  # removed meanwhile
                current = fresh
                raise
            telemetry.count(telemetry.SESSIONS_COMPLETED)
            return committed

        return self.retry_conflicts(mark)

    def _forget_unstaged(self, session: Session) -> Session:
        self.recorder.forget(session.key)
        present = self.store.staged_block_ids(session.key)
        current = session

        def forget() -> Session:
            nonlocal current
            kept = tuple(s for s in current.segments if s.block_id in present)
            try:  # and the placeholder is looked up again (its blocks may have gone with it)
                return self.store.replace_session(replace(current, segments=kept, fence=None))
            except ConcurrencyConflict:
                fresh = self.store.get_session(current.key)
                if fresh is None or fresh.id != current.id or fresh.status != ACTIVE:
                    raise ItemNotFound("The upload session was deleted") from None
                current = fresh
                raise

        return self.retry_conflicts(forget)

    def _retire(self, session: Session) -> str | None:
        """Finish a cancelled or expired session and delete its row (docs/architecture.md
        "Upload protocol and concurrency"): a complete one is committed (never discarded), an
        incomplete one goes to ``discarding`` (ETag-conditional), its staged bytes are dropped,
        then the row is deleted. Every step is repeatable, so whoever finds the row next — a
        DELETE retry, the purge, a PUT — finishes it. Returns what was done (``committed``,
        ``discarded``, ``removed``), or None when another writer changed the row first."""
        outcome = "removed"
        self.recorder.forget(session.key)
        try:
            if session.status == ACTIVE and session.complete:
                session = self._commit(session)  # may un-record lost blocks: incomplete again
                outcome = "committed"
            if session.status == ACTIVE:
                now = self._clock()
                session = self.store.replace_session(
                    replace(session, status=DISCARDING, expires=min(session.expires, now))
                )
            if session.status == DISCARDING:
                self.store.discard_staged(session.key, session.id, session.fence)
                outcome = "discarded"
            self.store.delete_session(session)
        except ConcurrencyConflict:
            return None
        return outcome

    def delete(self, principal: Principal, key: DocumentKey) -> None:
        """Cancel: creator only. An incomplete document's staged bytes are discarded; a
        complete one is committed and kept (a response may already have said complete); a
        DELETE retried after a failure in the middle finishes the discard (204)."""
        self.admit(principal, Operation.WRITE)

        def attempt() -> None:
            session = self._load_visible(principal, key, Operation.WRITE, discarding=True)
            if not self._is_creator(principal, session):
                raise AccessDenied("Only the creator of an upload session can delete it")
            if self._retire(session) is None:
                raise ConcurrencyConflict("the session changed meanwhile")

        self.retry_conflicts(attempt)
        telemetry.count(telemetry.SESSIONS_CANCELLED)

    # -- operator ------------------------------------------------------------------------

    def subscription(self, tenant_id: str) -> Subscription | None:
        """The tenant's recorded Universal Print subscription (operator use: no principal)."""
        return self.store.get_subscription(tenant_id)

    def set_subscription(self, tenant_id: str, *, active: bool) -> Subscription:
        """Activate or suspend a tenant. This process forgets a cached active state at once;
        other processes trust theirs for up to ``SUBSCRIPTION_CACHE_SECONDS``."""
        subscription = self.store.put_subscription(tenant_id, active)
        self._active_tenants.pop(tenant_id, None)
        return subscription

    def purge(self, *, page_size: int = 100) -> PurgeReport:
        """Finish expired sessions: commit complete ones, discard incomplete ones (only after
        winning the row's transition to ``discarding``, so a renewed session is never
        touched), finish discards left undone; idempotent."""
        sessions = discarded = 0
        for session in self.store.expired_sessions(self._clock(), page_size):
            try:
                outcome = self._retire(session)
            except Conflict:
                log.error("purge: a foreign document sits at a session's location; skipped")
                continue
            if outcome is None:
                continue  # renewed or changed meanwhile: not ours to finish now
            sessions += 1
            if outcome == "discarded":
                discarded += 1
        telemetry.count(telemetry.SESSIONS_PURGED, sessions)
        return PurgeReport(sessions=sessions, staged_discarded=discarded)
