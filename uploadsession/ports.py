"""The ports of the service: what it needs from storage, with no Azure SDK in sight.

``store.py`` is the Azure adapter that implements them; ``tests/fakes.py`` is an in-memory
one for unit tests of pure logic. Importing this module loads no storage SDK.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from uploadsession.models import DocumentKey, Session


@dataclass(frozen=True)
class CommittedDocument:
    """What a committed document records about itself: the session that committed it and its
    creator (who may read it once that session is purged), its name, type and checksum. How it
    is written down (blob metadata) is the store's business."""

    session_id: str
    content_type: str
    document_name: str
    app_id: str
    user_id: str | None
    #: The document's CRC-64/NVME, when every segment's was known.
    checksum: int | None = None


@dataclass(frozen=True)
class Subscription:
    """A tenant's Universal Print subscription as recorded by the operator."""

    tenant_id: str
    active: bool
    updated: datetime


#: Separates the ids in a document's partition key: ids are GUIDs and job ids of
#: ``[A-Za-z0-9-]``, so ``|`` never appears in one (and Table keys allow it).
KEY_SEPARATOR = "|"
#: The RowKey of a document's session row in its partition.
SESSION_ROW = "session"


def document_partition(key: DocumentKey) -> str:
    """The PartitionKey of a document's rows: ``{tenant}|{printer}|{job}|{document}``, one
    partition per document (docs/architecture.md "Storage layout"), built only from the
    validated ids of :class:`DocumentKey`."""
    return KEY_SEPARATOR.join((key.tenant_id, key.printer_id, key.job_id, key.document_id))


def parse_document_partition(partition: str) -> DocumentKey:
    """The inverse of :func:`document_partition` (for keys this service wrote)."""
    tenant_id, printer_id, job_id, document_id = partition.split(KEY_SEPARATOR)
    return DocumentKey(tenant_id, printer_id, job_id, document_id)


class SessionStore(Protocol):
    """State of sessions and tenant subscriptions."""

    def get_session(self, key: DocumentKey) -> Session | None: ...
    def insert_session(self, session: Session) -> Session: ...
    def replace_session(self, session: Session) -> Session: ...
    def delete_session(self, session: Session) -> None: ...
    def expired_sessions(self, now: datetime, page_size: int) -> Iterator[Session]: ...
    def get_subscription(self, tenant_id: str) -> Subscription | None: ...
    def put_subscription(self, tenant_id: str, active: bool) -> Subscription: ...


class DocumentStore(Protocol):
    """Bytes of documents: a placeholder (``fence``), staged blocks, then one commit."""

    def fence(self, key: DocumentKey, session_id: str) -> str: ...
    def stage(self, key: DocumentKey, block_id: str, data: bytes | memoryview) -> None: ...
    def commit(
        self,
        key: DocumentKey,
        block_ids: Sequence[str],
        document: CommittedDocument,
        fence: str | None,
    ) -> None: ...
    def staged_block_ids(self, key: DocumentKey) -> set[str]: ...
    def document_exists(self, key: DocumentKey) -> bool: ...
    def discard_staged(
        self, key: DocumentKey, session_id: str, fence: str | None = None
    ) -> None: ...


class Storage(SessionStore, DocumentStore, Protocol):
    """Both ports; one adapter serves both."""
