"""An in-memory :class:`~uploadsession.store.Storage` for unit tests.

It mirrors what the Azure adapter guarantees, so that service and HTTP tests exercise the same
contract the integration tests check against Azurite:

- every session write gives a new storage ETag; ``replace_session`` and ``delete_session``
  are conditional on it (:class:`ConcurrencyConflict` on a mismatch, and ``replace_session``
  of a vanished row too); ``insert_session`` of an existing key raises :class:`EntityExists`;
  ``delete_session`` of a row that is already gone succeeds (as ``TableClient.delete_entity``);
- a document is a blob of blocks: ``stage`` keeps an uncommitted block; ``commit`` resolves each
  id as Blob Storage's "Latest" does (uncommitted first, then committed), raises
  :class:`MissingBlocks` when one is neither, and discards every other uncommitted block; a blob
  with only uncommitted blocks does not exist (``document_exists`` is False);
  ``fence`` puts a session's placeholder (a 0-byte committed blob, never a document), and
  ``commit`` / ``discard_staged`` are conditional on its ETag as in Azure; ``discard_staged``
  never touches a committed document.

Fault injection: :meth:`InMemoryStorage.fail` queues an exception for the next call(s) of one
operation, and ``before`` (if set) is called with the operation's name before every
operation, outside the lock, so it may itself call the store (e.g. to simulate a concurrent
writer). ``calls`` counts the operations that were attempted.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from uploadsession.document_metadata import document_metadata, parse_document_metadata
from uploadsession.errors import ConcurrencyConflict, EntityExists, ForeignDocument, MissingBlocks
from uploadsession.models import DocumentKey, Session
from uploadsession.ports import SESSION_ROW, CommittedDocument, Subscription, document_partition

_MAX_BLOCK_ID_BYTES = 64


@dataclass(frozen=True)
class Document:
    """A committed blob as a reader of Blob Storage would see it."""

    data: bytes
    content_type: str
    metadata: dict[str, str]
    block_ids: tuple[str, ...]


@dataclass
class _Blob:
    uncommitted: dict[str, bytes] = field(default_factory=dict)
    committed: Document | None = None
    committed_blocks: dict[str, bytes] = field(default_factory=dict)
    #: A session's placeholder (a committed 0-byte blob): (session id, ETag).
    placeholder: tuple[str, str] | None = None


class InMemoryStorage:
    """Sessions, subscriptions and documents in dictionaries; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._etags = itertools.count(1)
        self._sessions: dict[tuple[str, str], Session] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._blobs: dict[str, _Blob] = {}
        self._faults: dict[str, list[BaseException]] = {}
        #: Called with the operation's name before every operation (outside the lock).
        self.before: Callable[[str], None] | None = None
        #: How many times each operation was attempted.
        self.calls: Counter[str] = Counter()
        self._url_key = secrets.token_bytes(32)

    # -- fault injection -----------------------------------------------------------------

    def fail(self, operation: str, error: BaseException, *, times: int = 1) -> None:
        """Make the next ``times`` calls of ``operation`` raise ``error`` (before any effect)."""
        if not hasattr(self, operation):
            raise AttributeError(f"InMemoryStorage has no operation {operation!r}")
        with self._lock:
            self._faults.setdefault(operation, []).extend([error] * times)

    def _enter(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] += 1
        if self.before is not None:
            self.before(operation)
        with self._lock:
            queued = self._faults.get(operation)
            error = queued.pop(0) if queued else None
        if error is not None:
            raise error

    def _new_etag(self) -> str:
        return f"W/\"datetime'{next(self._etags):08d}'\""

    # -- SessionStore --------------------------------------------------------------------

    @staticmethod
    def _row(key: DocumentKey) -> tuple[str, str]:
        return document_partition(key), SESSION_ROW

    def get_session(self, key: DocumentKey) -> Session | None:
        self._enter("get_session")
        with self._lock:
            return self._sessions.get(self._row(key))

    def insert_session(self, session: Session) -> Session:
        self._enter("insert_session")
        with self._lock:
            row = self._row(session.key)
            if row in self._sessions:
                raise EntityExists("creating a session")
            saved = replace(session, storage_etag=self._new_etag())
            self._sessions[row] = saved
            return saved

    def replace_session(self, session: Session) -> Session:
        self._enter("replace_session")
        if session.storage_etag is None:
            raise ValueError("replace_session needs the session's storage ETag")
        with self._lock:
            row = self._row(session.key)
            current = self._sessions.get(row)
            if current is None:
                raise ConcurrencyConflict("session vanished")
            if current.storage_etag != session.storage_etag:
                raise ConcurrencyConflict("updating a session")
            saved = replace(session, storage_etag=self._new_etag())
            self._sessions[row] = saved
            return saved

    def delete_session(self, session: Session) -> None:
        self._enter("delete_session")
        if session.storage_etag is None:
            raise ValueError("delete_session needs the session's storage ETag")
        with self._lock:
            row = self._row(session.key)
            current = self._sessions.get(row)
            if current is None:
                return  # already gone: success, as TableClient.delete_entity
            if current.storage_etag != session.storage_etag:
                raise ConcurrencyConflict("deleting a session")
            del self._sessions[row]

    def expired_sessions(self, now: datetime, page_size: int = 100) -> Iterator[Session]:
        self._enter("expired_sessions")
        with self._lock:
            expired = [s for s in self._sessions.values() if s.expires < now]
        expired.sort(key=lambda s: self._row(s.key))
        yield from expired

    def get_subscription(self, tenant_id: str) -> Subscription | None:
        self._enter("get_subscription")
        with self._lock:
            return self._subscriptions.get(tenant_id)

    def put_subscription(self, tenant_id: str, active: bool) -> Subscription:
        self._enter("put_subscription")
        with self._lock:
            subscription = Subscription(tenant_id, active, datetime.now(UTC))
            self._subscriptions[tenant_id] = subscription
            return subscription

    # -- DocumentStore -------------------------------------------------------------------

    def stage(self, key: DocumentKey, block_id: str, data: bytes | memoryview) -> None:
        self._enter("stage")
        _check_block_id(block_id)
        with self._lock:
            blob = self._blobs.setdefault(key.blob_name, _Blob())
            known = next(iter((*blob.uncommitted, *blob.committed_blocks)), None)
            if known is not None and len(known) != len(block_id):
                raise ValueError("all block ids of one blob must have the same length")
            blob.uncommitted[block_id] = bytes(data)

    def fence(self, key: DocumentKey, session_id: str) -> str:
        self._enter("fence")
        with self._lock:
            blob = self._blobs.setdefault(key.blob_name, _Blob())
            if blob.committed is not None:
                raise ForeignDocument(key.blob_name)
            if blob.placeholder is not None and blob.placeholder[0] != session_id:
                holder = self._sessions.get((document_partition(key), SESSION_ROW))
                if holder is None or holder.id != session_id:
                    raise ConcurrencyConflict("another session holds the document")
                blob.placeholder = None  # the stale placeholder is deleted
            if blob.placeholder is None:
                blob.uncommitted = {}  # an empty Put Block List drops uncommitted blocks
                blob.placeholder = (session_id, f"blob-{next(self._etags)}")
            return blob.placeholder[1]

    def commit(
        self,
        key: DocumentKey,
        block_ids: Sequence[str],
        document: CommittedDocument,
        fence: str | None,
    ) -> None:
        self._enter("commit")
        content_type = document.content_type
        metadata = document_metadata(document)  # the adapter's encoding, checked as Azure would
        for name, value in metadata.items():
            if not name.isidentifier() or not value.isascii():
                raise ValueError(f"blob metadata must be ASCII name/value pairs: {name!r}")
        with self._lock:
            blob = self._blobs.setdefault(key.blob_name, _Blob())
            if blob.committed is not None:  # as AzureStorage.commit
                if blob.committed.metadata.get("sessionid") == metadata.get("sessionid"):
                    return  # this session's own earlier commit
                raise ForeignDocument(key.blob_name)
            if fence is not None and blob.placeholder is None:
                raise MissingBlocks(key.blob_name)  # the blocks went with the placeholder
            if fence is not None and blob.placeholder is not None and blob.placeholder[1] != fence:
                raise ConcurrencyConflict("another session holds the document")
            blocks: dict[str, bytes] = {}
            for block_id in block_ids:
                if block_id in blob.uncommitted:
                    blocks[block_id] = blob.uncommitted[block_id]
                elif block_id in blob.committed_blocks:
                    blocks[block_id] = blob.committed_blocks[block_id]
                else:
                    raise MissingBlocks(key.blob_name)
            blob.committed = Document(
                data=b"".join(blocks[b] for b in block_ids),
                content_type=content_type,
                metadata=dict(metadata),
                block_ids=tuple(block_ids),
            )
            blob.committed_blocks = blocks
            blob.uncommitted = {}
            blob.placeholder = None

    def staged_block_ids(self, key: DocumentKey) -> set[str]:
        self._enter("staged_block_ids")
        with self._lock:
            blob = self._blobs.get(key.blob_name)
            if blob is None:
                return set()
            return {*blob.uncommitted, *blob.committed_blocks}

    def document_exists(self, key: DocumentKey) -> bool:
        self._enter("document_exists")
        with self._lock:
            blob = self._blobs.get(key.blob_name)
            return blob is not None and blob.committed is not None

    def discard_staged(self, key: DocumentKey, session_id: str, fence: str | None = None) -> None:
        self._enter("discard_staged")
        with self._lock:
            blob = self._blobs.get(key.blob_name)
            if blob is None or blob.committed is not None:
                return  # nothing staged, or a committed document: keep it
            if fence is not None and blob.placeholder is not None and blob.placeholder[1] != fence:
                return  # another session's placeholder (If-Match fails): not ours to drop
            del self._blobs[key.blob_name]

    # -- Graph protocol ------------------------------------------------------------------

    def upload_url_key(self) -> bytes:
        return self._url_key

    def read_url(self, key: DocumentKey, lifetime: timedelta) -> str:
        return f"memory://documents/{key.blob_name}?lifetime={int(lifetime.total_seconds())}"

    def read_range(self, key: DocumentKey, start: int, length: int) -> bytes | None:
        document = self.document(key)
        return None if document is None else document.data[start : start + length]

    def committed_document(self, key: DocumentKey) -> CommittedDocument | None:
        document = self.document(key)
        if document is None:
            return None
        return parse_document_metadata(document.metadata, document.content_type)

    # -- inspection and tampering (tests only; not part of the protocol) ----------------

    def document(self, key: DocumentKey) -> Document | None:
        """The committed document, or None."""
        with self._lock:
            blob = self._blobs.get(key.blob_name)
            return None if blob is None else blob.committed

    def staged(self, key: DocumentKey) -> dict[str, bytes]:
        """The uncommitted blocks of the document's blob (a copy)."""
        with self._lock:
            blob = self._blobs.get(key.blob_name)
            return {} if blob is None else dict(blob.uncommitted)

    def drop_staged_block(self, key: DocumentKey, block_id: str) -> None:
        """Lose one uncommitted block, as Blob Storage's garbage collection might."""
        with self._lock:
            del self._blobs[key.blob_name].uncommitted[block_id]

    def sessions(self) -> list[Session]:
        """Every stored session, expired or not."""
        with self._lock:
            return list(self._sessions.values())


def _check_block_id(block_id: str) -> None:
    try:
        raw = base64.b64decode(block_id, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"block id is not base64: {block_id!r}") from None
    if len(raw) > _MAX_BLOCK_ID_BYTES:
        raise ValueError(f"block id longer than {_MAX_BLOCK_ID_BYTES} bytes before encoding")
