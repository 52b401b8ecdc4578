"""The Azure adapter of the storage ports (Table Storage for state, Blob Storage for bytes).

This is the only module that imports the Azure storage SDKs, and Azure exceptions are
translated in exactly one place, :func:`translate_azure_errors`.

Layout (documented in docs/architecture.md):

- table ``uploadsessions``: one partition per document, PartitionKey =
  ``{tenantId}|{printerId}|{jobId}|{documentId}`` (``ports.document_partition``; all validated
  before they get here), RowKey = ``session``; that entity holds the session, its accepted
  segments packed as binary chunks, and its status (active / committed / discarding);
- table ``uploadexpiries``: the expiry index, PartitionKey = a 5-minute bucket of an expiry
  (``YYYYMMDDTHHMM``, sortable), RowKey = the document's partition key; the purge reads only
  buckets that are due and re-checks each session (see :meth:`AzureStorage.expired_sessions`);
- table ``subscriptions``: PartitionKey = tenant id, RowKey = ``""``, ``State``;
- container ``documents``: blob ``{tenantId}/{printerId}/{jobId}/{documentId}``. Segments are
  staged as uncommitted blocks of that very blob and committed in offset order; a blob with
  only uncommitted blocks is invisible, so the document appears whole or not at all. The
  committed blob's metadata records its session and creator (``document_metadata.py``).

Tables and the container are created on the first "not found" from the service and the call
retried once — no existence check on the request path.
"""

from __future__ import annotations

import logging
import os
import secrets
import struct
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

import requests
from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import EdmType, EntityProperty, TableServiceClient, UpdateMode
from azure.storage.blob import BlobBlock, BlobServiceClient, ContentSettings, LinearRetry

from uploadsession.config import (
    DOCUMENTS_CONTAINER,
    SESSIONS_TABLE,
    SUBSCRIPTIONS_TABLE,
    StorageSettings,
)
from uploadsession.document_metadata import (
    PENDING_SESSION,
    document_metadata,
    parse_document_metadata,
)
from uploadsession.errors import (
    ApiError,
    ConcurrencyConflict,
    EntityExists,
    ForeignDocument,
    MissingBlocks,
    ServiceUnavailable,
    StoreError,
)
from uploadsession.models import DocumentKey, Segment, Session
from uploadsession.ports import (
    SESSION_ROW,
    CommittedDocument,
    Subscription,
    document_partition,
    parse_document_partition,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# start (uint64), length (uint32), md5 (16 bytes); 2340 records fill a 64 KiB binary property.
_RECORD = struct.Struct(">QI16s")
_RECORDS_PER_CHUNK = 65536 // _RECORD.size
_CHUNK_PREFIX = "Segments"
# CRC-64/NVME per segment, in the same order, 8 bytes each; stored only when every segment's
# CRC is known (sessions recorded before checksums existed have none).
_CRC = struct.Struct(">Q")
_CRCS_PER_CHUNK = 65536 // _CRC.size
_CRC_PREFIX = "Crcs"


#: Storage-call deadlines (docs/architecture.md "Bounded waits"): per socket operation, and one
#: retry, so a black-holed endpoint becomes a 503 within ~11 s of a request's storage call.
CONNECT_TIMEOUT_S = 3
READ_TIMEOUT_S = 5
RETRY_TOTAL = 1


@contextmanager
def translate_azure_errors(what: str) -> Iterator[None]:
    """Map Azure SDK exceptions to uploadsession's tree (the one place that does).

    ResourceExistsError → EntityExists; a lost ETag race (412 / ResourceModifiedError) →
    ConcurrencyConflict; everything else from Azure (outage, throttling, credentials, a
    refused request) → ServiceUnavailable with Retry-After. Callers that expect "not found"
    catch ResourceNotFoundError inside this context themselves.

    The Azure errors' frames are cleared on the way out (see :func:`_release_frames`).
    """

    try:
        try:
            yield
        except (ApiError, StoreError):
            raise
        except ResourceExistsError as exc:
            raise EntityExists(what) from exc
        except ResourceModifiedError as exc:
            raise ConcurrencyConflict(what) from exc
        except ClientAuthenticationError as exc:
            log.error("storage refused our credentials during %s: %s", what, type(exc).__name__)
            raise ServiceUnavailable("Storage is not accessible; try again later") from exc
        except HttpResponseError as exc:
            status = exc.status_code or 0
            if status == 412:
                raise ConcurrencyConflict(what) from exc
            throttled = status in (429, 503)
            code = getattr(exc, "error_code", "")
            log.warning("storage error during %s: %s %s", what, status, code)
            raise ServiceUnavailable(
                "Storage is busy; try again later"
                if throttled
                else "Storage failed; try again later",
                retry_after=10 if throttled else 5,
            ) from exc
        except AzureError as exc:
            log.warning("storage unreachable during %s: %s", what, type(exc).__name__)
            raise ServiceUnavailable("Storage is unreachable; try again later") from exc
    except BaseException as error:
        _release_frames(error)
        raise


def _release_frames(error: BaseException) -> None:
    """Clear the finished frames held by the Azure errors in ``error``'s chain.

    The SDKs raise errors they hold in local variables, and azure-core keeps the traceback of
    the error being handled on each new one (``exc_traceback``), so every Azure error sits in
    a reference cycle with its frames — and, through their callers, with the request's whole
    stack, an uploaded segment's bytes included — until the cyclic garbage collector runs.
    Parallel uploads lose ETag races (412) all the time, so several 8 MiB segments outlived
    their requests. With the frames' locals cleared, reference counting frees it all at once.
    Frames still running (this request's own) are left alone.
    """
    seen: set[int] = set()
    pending: list[object] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, AzureError):
            traceback.clear_frames(current.__traceback__)
            held = getattr(current, "exc_traceback", None)
            if isinstance(held, TracebackType):
                traceback.clear_frames(held)
            pending += [
                getattr(current, "inner_exception", None),
                getattr(current, "exc_value", None),
            ]
        pending += [current.__cause__, current.__context__]


def _has_error_code(exc: BaseException, code: str) -> bool:
    """Whether ``exc`` carries the storage error code ``code`` (the SDKs raise either a
    ResourceNotFoundError or a bare HttpResponseError depending on the operation)."""
    error_code = getattr(exc, "error_code", None)
    if error_code is not None:
        return str(getattr(error_code, "value", error_code)).lower() == code.lower()
    # Some table operations raise before parsing the error body: the code is in the text.
    return f'"code":"{code}"'.lower() in str(exc).lower()


#: The expiry index's table (beside ``uploadsessions``), its bucket width and the most index
#: rows one purge run examines (the rest are found by the next run).
EXPIRIES_TABLE = "uploadexpiries"
BUCKET_MINUTES = 5
PURGE_LIMIT = 1000
#: What the purge reads of a session row to decide whether it is due: never the segments.
_DUE_FIELDS = ["Expires", "Status"]


def expiry_bucket(expires: datetime) -> str:
    """The index partition of an expiry: the UTC time rounded down to 5 minutes, as a string
    that sorts like the time (``20261203T2145``)."""
    at = expires.astimezone(UTC)
    at = at.replace(minute=at.minute - at.minute % BUCKET_MINUTES, second=0, microsecond=0)
    return at.strftime("%Y%m%dT%H%M")


@dataclass(frozen=True)
class StorageClients:
    """The adapter's SDK clients, built once: the two tables of state, the expiry index and
    the documents container."""

    sessions: Any
    subscriptions: Any
    expiries: Any
    documents: Any


def _int(value: Any) -> int:
    return int(getattr(value, "value", value))


def _utc(value: Any) -> datetime:
    value = getattr(value, "value", value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def session_to_entity(session: Session) -> dict[str, Any]:
    key = session.key
    entity: dict[str, Any] = {
        "PartitionKey": document_partition(key),
        "RowKey": SESSION_ROW,
        "TenantId": key.tenant_id,
        "SessionId": session.id,
        "PrinterId": key.printer_id,
        "JobId": key.job_id,
        "DocumentId": key.document_id,
        "Size": EntityProperty(session.size, EdmType.INT64),
        "ContentType": session.content_type,
        "DocumentName": session.document_name,
        "AppId": session.app_id,
        "Created": session.created,
        "Expires": session.expires,
        "Status": session.status,
        "SegmentCount": len(session.segments),
    }
    if session.user_id is not None:
        entity["UserId"] = session.user_id
    if session.upload_token_hash is not None:
        entity["UploadTokenHash"] = session.upload_token_hash  # the hash only, never the token
    if session.checksum is not None:
        entity["Checksum"] = f"{session.checksum:016x}"
    if session.fence is not None:
        entity["FenceETag"] = session.fence
    records = [_RECORD.pack(s.start, s.length, s.md5) for s in session.segments]
    for n, i in enumerate(range(0, len(records), _RECORDS_PER_CHUNK)):
        entity[f"{_CHUNK_PREFIX}{n}"] = b"".join(records[i : i + _RECORDS_PER_CHUNK])
    if session.segments and all(s.crc is not None for s in session.segments):
        crcs = [_CRC.pack(s.crc) for s in session.segments]
        for n, i in enumerate(range(0, len(crcs), _CRCS_PER_CHUNK)):
            entity[f"{_CRC_PREFIX}{n}"] = b"".join(crcs[i : i + _CRCS_PER_CHUNK])
    return entity


def entity_to_session(entity: Any) -> Session:
    count = _int(entity.get("SegmentCount", 0))
    segments: list[Segment] = []
    n = 0
    while len(segments) < count:
        chunk = entity[f"{_CHUNK_PREFIX}{n}"]
        for start, length, md5 in _RECORD.iter_unpack(bytes(getattr(chunk, "value", chunk))):
            segments.append(Segment(start, start + length - 1, md5))
        n += 1
    crcs: list[int] = []
    n = 0
    while len(crcs) < count and f"{_CRC_PREFIX}{n}" in entity:
        chunk = entity[f"{_CRC_PREFIX}{n}"]
        crcs += [c for (c,) in _CRC.iter_unpack(bytes(getattr(chunk, "value", chunk)))]
        n += 1
    if len(crcs) == count:
        segments = [replace(s, crc=c) for s, c in zip(segments, crcs, strict=True)]
    checksum = entity.get("Checksum")
    key = DocumentKey(
        entity.get("TenantId") or parse_document_partition(entity["PartitionKey"]).tenant_id,
        entity["PrinterId"],
        entity["JobId"],
        entity["DocumentId"],
    )
    return Session(
        key=key,
        id=entity["SessionId"],
        size=_int(entity["Size"]),
        content_type=entity["ContentType"],
        document_name=entity["DocumentName"],
        app_id=entity["AppId"],
        user_id=entity.get("UserId"),
        created=_utc(entity["Created"]),
        expires=_utc(entity["Expires"]),
        segments=tuple(segments),
        status=entity["Status"],
        storage_etag=entity.metadata["etag"] if hasattr(entity, "metadata") else None,
        upload_token_hash=_bytes_or_none(entity.get("UploadTokenHash")),
        checksum=None if checksum is None else int(str(checksum), 16),
        fence=entity.get("FenceETag"),
    )


def _bytes_or_none(value: Any) -> bytes | None:
    value = getattr(value, "value", value)
    return None if value is None else bytes(value)


class AzureStorage:
    """Table + Blob adapter. Thread-safe; clients are created once, lazily, and reused."""

    def __init__(
        self,
        settings: StorageSettings,
        *,
        sessions_table: str = SESSIONS_TABLE,
        subscriptions_table: str = SUBSCRIPTIONS_TABLE,
        container: str = DOCUMENTS_CONTAINER,
        expiries_table: str | None = None,
    ) -> None:
        self._settings = settings
        if expiries_table is None:  # beside its sessions table (tests use unique names)
            expiries_table = (
                EXPIRIES_TABLE if sessions_table == SESSIONS_TABLE else f"{sessions_table}exp"
            )
        self._names = (sessions_table, subscriptions_table, expiries_table, container)
        self._lock = threading.Lock()
        self._clients: StorageClients | None = None
        #: document partition → the index bucket the running purge found it under, so
        #: delete_session removes that index row too (see expired_sessions).
        self._purging: dict[str, str] = {}
        self._url_key: bytes | None = None  # Graph protocol: see upload_url_key
        self._delegation: tuple[Any, datetime] | None = None  # user delegation key, its expiry

    # -- clients -------------------------------------------------------------------------

    def _build_clients(self) -> StorageClients:
        # One pooled HTTP session for both services, large enough for the host's concurrency.
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        options: dict[str, Any] = {
            "transport": RequestsTransport(
                session=session,
                session_owner=False,
                connection_timeout=CONNECT_TIMEOUT_S,
                read_timeout=READ_TIMEOUT_S,
                # What requests would read from the environment on every request; see below.
                connection_verify=_ca_bundle() or True,
            ),
            "retry_total": RETRY_TOTAL,
            "retry_backoff_factor": 0.2,
        }
        # The blob SDK ignores retry_backoff_factor: its own ExponentialRetry waits 15 s, then
        # 18 s (± 3 s), so a blob call with storage down took ~40 s to become a 503. The same
        # two quick retries as the tables instead (seconds as floats: the SDK annotates int
        # but draws the wait with random.uniform).
        quick_retry = LinearRetry(
            backoff=0.3,  # type: ignore[arg-type]
            retry_total=RETRY_TOTAL,
            random_jitter_range=0.1,  # type: ignore[arg-type]
        )
        blob_options = {**options, "retry_policy": quick_retry}
        s = self._settings
        if s.connection_string:
            tables = TableServiceClient.from_connection_string(s.connection_string, **options)
            blobs = BlobServiceClient.from_connection_string(s.connection_string, **blob_options)
        else:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential(managed_identity_client_id=s.client_id)
            tables = TableServiceClient(str(s.table_service_uri), credential=credential, **options)
            blobs = BlobServiceClient(
                str(s.blob_service_uri), credential=credential, **blob_options
            )
        # requests consults the environment (proxy and CA-bundle variables, ~/.netrc) on every
        # request while trust_env is set: ~0.1 ms with a small environment, ~0.4 ms with a
        # Functions host's. The CA bundle is read once, above; when no proxy and no netrc entry
        # applies to these two endpoints, the per-request lookups are switched off.
        if not _proxy_or_netrc_applies((tables.url, blobs.url)):
            session.trust_env = False
        sessions_table, subscriptions_table, expiries_table, container = self._names
        return StorageClients(
            sessions=tables.get_table_client(sessions_table),
            subscriptions=tables.get_table_client(subscriptions_table),
            expiries=tables.get_table_client(expiries_table),
            documents=blobs.get_container_client(container),
        )

    def _get_clients(self) -> StorageClients:
        if self._clients is None:
            with self._lock:
                if self._clients is None:
                    self._clients = self._build_clients()
        return self._clients

    def _table_call(self, table: Any, fn: Callable[[], T], what: str) -> T:
        return _call_creating(fn, what, "TableNotFound", table.create_table)

    def _blob_call(self, fn: Callable[[], T], what: str) -> T:
        container = self._get_clients().documents
        return _call_creating(fn, what, "ContainerNotFound", container.create_container)

    def ping(self, timeout: float = 2.0) -> None:
        """Cheap liveness probe (GET /health): one point read of an entity that never exists
        and one container property read, without retries; "not found" means storage
        answered. Raises ServiceUnavailable when either service does not answer."""
        clients = self._get_clients()
        sessions, container = clients.sessions, clients.documents
        quick = {"connection_timeout": timeout, "read_timeout": timeout, "retry_total": 0}
        with translate_azure_errors("the health probe"):
            with suppress(ResourceNotFoundError):
                sessions.get_entity("~health", "~probe", **quick)
            with suppress(ResourceNotFoundError):
                container.get_container_properties(**quick)

    # -- sessions ------------------------------------------------------------------------

    def get_session(self, key: DocumentKey) -> Session | None:
        table = self._get_clients().sessions
        with translate_azure_errors("reading a session"):
            try:
                entity = table.get_entity(document_partition(key), SESSION_ROW)
            except ResourceNotFoundError:
                return None  # no such entity, or no table yet: nothing was ever stored
        return entity_to_session(entity)

    def insert_session(self, session: Session) -> Session:
        # The index row first: a crash in between leaves at most an index row without a
        # session, which the purge re-checks and deletes.
        self._index(session.key, session.expires)
        table = self._get_clients().sessions
        entity = session_to_entity(session)
        meta = self._table_call(table, lambda: table.create_entity(entity), "creating a session")
        return _with_etag(session, meta)

    def replace_session(self, session: Session) -> Session:
        # A replace that leaves the session due (a cancel or the purge's transition to
        # ``discarding`` sets Expires to now) is the one way a session's expiry moves earlier
        # than the bucket indexed: index it where the next purge run looks, before the write.
        # Sliding expiry (later) needs no index write: the purge re-checks and moves the row.
        # (The purge's own writes need none: the index row it found the session under stays
        # until the session row is deleted.)
        if (
            session.expires <= datetime.now(UTC)
            and document_partition(session.key) not in self._purging
        ):
            self._index(session.key, session.expires)
        table = self._get_clients().sessions
        entity = session_to_entity(session)
        with translate_azure_errors("updating a session"):
            try:
                meta = table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=session.storage_etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except ResourceNotFoundError as exc:
                raise ConcurrencyConflict("session vanished") from exc
        return _with_etag(session, meta)

    def delete_session(self, session: Session) -> None:
        table = self._get_clients().sessions
        partition = document_partition(session.key)
        with translate_azure_errors("deleting a session"):
            # delete_entity treats "already gone" as success; a changed ETag raises.
            table.delete_entity(
                partition,
                SESSION_ROW,
                etag=session.storage_etag,
                match_condition=MatchConditions.IfNotModified,
            )
        # Then the index rows that point at it: the one of its expiry and the one the purge
        # found it under. A failure here leaves a stale index row, which the purge removes.
        buckets = {expiry_bucket(session.expires)}
        found = self._purging.get(partition)
        if found is not None:
            buckets.add(found)
        for bucket in sorted(buckets):
            self._unindex(bucket, partition)

    def _index(self, key: DocumentKey, expires: datetime) -> None:
        table = self._get_clients().expiries
        entity = {
            "PartitionKey": expiry_bucket(expires),
            "RowKey": document_partition(key),
            "Expires": expires,
        }
        self._table_call(
            table,
            lambda: table.upsert_entity(entity, mode=UpdateMode.REPLACE),
            "indexing a session's expiry",
        )

    def _unindex(self, bucket: str, partition: str) -> None:
        table = self._get_clients().expiries
        # Gone already, or no table: fine.
        with (
            translate_azure_errors("removing an expiry index row"),
            suppress(ResourceNotFoundError),
        ):
            table.delete_entity(bucket, partition)

    def expired_sessions(
        self, now: datetime, page_size: int = 100, *, limit: int = PURGE_LIMIT
    ) -> Iterator[Session]:
        """The sessions due at ``now``, read through the expiry index.

        Lists only the buckets up to ``now``'s (a range query on PartitionKey, in pages of
        ``page_size``, keys only) and examines at most ``limit`` index rows per call — the rest
        are found by the next run. Each index row is re-checked against its session with a
        projection (``Expires``, ``Status``; never the segments): a session that is gone has
        its index row deleted; one that is not due yet (renewed by sliding expiry) has its
        index row moved to its real bucket; a due one is read in full and yielded. After the
        caller finished it, ``delete_session`` removes the index row it was found under.
        """
        clients = self._get_clients()
        index, sessions = clients.expiries, clients.sessions
        examined = 0
        with translate_azure_errors("listing expired sessions"):
            try:
                pages = index.query_entities(
                    "PartitionKey le @due",
                    parameters={"due": expiry_bucket(now)},
                    select=["PartitionKey", "RowKey"],
                    results_per_page=page_size,
                ).by_page()
                for page in pages:
                    rows = [(row["PartitionKey"], row["RowKey"]) for row in page]
                    for bucket, partition in rows:
                        if examined >= limit:
                            return
                        examined += 1
                        session = self._due(sessions, bucket, partition, now)
                        if session is None:
                            continue
                        self._purging[partition] = bucket
                        try:
                            yield session
                        finally:
                            self._purging.pop(partition, None)
            except ResourceNotFoundError as exc:
                if not _has_error_code(exc, "TableNotFound"):
                    raise

    def _due(self, sessions: Any, bucket: str, partition: str, now: datetime) -> Session | None:
        """Re-check one index row: the session if it is due, else None (after deleting a
        stale index row or moving it to the session's real bucket)."""
        try:
            head = sessions.get_entity(partition, SESSION_ROW, select=_DUE_FIELDS)
        except ResourceNotFoundError:
            self._unindex(bucket, partition)  # the session is gone: a stale index row
            return None
        expires = _utc(head["Expires"])
        if expires >= now:
            real = expiry_bucket(expires)
            if real != bucket:  # renewed: index it where it is due, then drop this row
                self._index(parse_document_partition(partition), expires)
                self._unindex(bucket, partition)
            return None
        try:
            return entity_to_session(sessions.get_entity(partition, SESSION_ROW))
        except ResourceNotFoundError:
            self._unindex(bucket, partition)
            return None

    # -- subscriptions -------------------------------------------------------------------

    def get_subscription(self, tenant_id: str) -> Subscription | None:
        table = self._get_clients().subscriptions
        with translate_azure_errors("reading a subscription"):
            try:
                entity = table.get_entity(tenant_id, "")
            except ResourceNotFoundError:
                return None
        return Subscription(tenant_id, entity["State"] == "active", _utc(entity["Updated"]))

    def put_subscription(self, tenant_id: str, active: bool) -> Subscription:
        table = self._get_clients().subscriptions
        now = datetime.now(UTC)
        entity = {
            "PartitionKey": tenant_id,
            "RowKey": "",
            "State": "active" if active else "suspended",
            "Updated": now,
        }
        self._table_call(
            table,
            lambda: table.upsert_entity(entity, mode=UpdateMode.REPLACE),
            "writing a subscription",
        )
        return Subscription(tenant_id, active, now)

    # -- documents -----------------------------------------------------------------------

    def _blob(self, key: DocumentKey) -> Any:
        return self._get_clients().documents.get_blob_client(key.blob_name)

    def stage(self, key: DocumentKey, block_id: str, data: bytes | memoryview) -> None:
        blob = self._blob(key)
        self._blob_call(
            lambda: blob.stage_block(block_id, data, length=len(data)), "staging a segment"
        )

    def fence(self, key: DocumentKey, session_id: str) -> str:
        """Put the session's placeholder — a committed 0-byte blob with metadata
        ``pendingsession`` (an empty Put Block List with ``If-None-Match: *``, which also drops
        uncommitted blocks left there) — and return its ETag. Every later blob write of the
        session (commit, discard) is conditional on it, so a request of an earlier session
        that storage applies late finds another ETag and changes nothing.

        Another 0-byte blob there is a stale placeholder (or an old discard marker) if the
        document's session row is still this session's: it is removed (If-Match its ETag);
        otherwise :class:`ConcurrencyConflict`. A committed document raises
        :class:`ForeignDocument`. Repeatable: the session's own placeholder is found."""
        blob = self._blob(key)
        with translate_azure_errors("reserving the document's location"):
            for _ in range(3):
                try:
                    result = blob.commit_block_list(
                        [], metadata={PENDING_SESSION: session_id}, **_IF_MISSING
                    )
                    return str(result["etag"])
                except HttpResponseError as exc:
                    if _has_error_code(exc, "ContainerNotFound"):
                        _create(self._get_clients().documents.create_container)
                        continue
                    if exc.status_code not in (409, 412):  # BlobAlreadyExists / ConditionNotMet
                        raise
                try:
                    properties = blob.get_blob_properties()
                except ResourceNotFoundError:
                    continue  # removed meanwhile: try again
                if (properties.metadata or {}).get(PENDING_SESSION) == session_id:
                    return str(properties.etag)
                if properties.size > 0:
                    raise ForeignDocument(key.blob_name)
                self._remove_stale(blob, key, session_id, properties)
            raise ServiceUnavailable("The document is busy; try again", retry_after=1)

    def _remove_stale(self, blob: Any, key: DocumentKey, session_id: str, properties: Any) -> None:
        """Remove another session's 0-byte blob — only while ``session_id`` still holds the
        document's session row: a caller that read its row long ago must not remove the
        placeholder of the session that replaced it (ConcurrencyConflict)."""
        holder = self.get_session(key)
        if holder is None or holder.id != session_id:
            raise ConcurrencyConflict("another session holds the document")
        with suppress(ResourceNotFoundError, ResourceModifiedError):
            blob.delete_blob(etag=properties.etag, match_condition=MatchConditions.IfNotModified)

    def commit(
        self,
        key: DocumentKey,
        block_ids: Sequence[str],
        document: CommittedDocument,
        fence: str | None,
    ) -> None:
        """Put Block List over the session's placeholder, ``If-Match`` its ETag ``fence``
        (``If-None-Match: *`` for a session staged before placeholders existed): exactly one
        commit of a document can succeed, and a commit of an earlier session that storage
        applies late changes nothing. ``document`` is written as the blob's metadata
        (:func:`document_metadata`). A blob already committed with this ``sessionid`` is this
        session's own earlier commit (success); another document raises
        :class:`ForeignDocument`; no blob where the placeholder was means the staged blocks
        went with it (:class:`MissingBlocks`)."""
        blob = self._blob(key)
        metadata = document_metadata(document)
        session_id = document.session_id
        condition = _IF_MISSING if fence is None else _if_match(fence)
        with translate_azure_errors("committing a document"):
            for _ in range(3):
                try:
                    blob.commit_block_list(
                        [BlobBlock(block_id) for block_id in block_ids],
                        content_settings=ContentSettings(content_type=document.content_type),
                        metadata=metadata,
                        **condition,
                    )
                    return
                except HttpResponseError as exc:
                    if _has_error_code(exc, "InvalidBlockList"):
                        raise MissingBlocks(key.blob_name) from exc
                    if exc.status_code not in (404, 409, 412):  # ConditionNotMet, no blob
                        raise
                try:
                    properties = blob.get_blob_properties()
                except ResourceNotFoundError as exc:
                    if fence is None:
                        continue
                    raise MissingBlocks(key.blob_name) from exc
                existing = dict(properties.metadata or {})
                if existing.get("sessionid") == session_id:
                    return  # our own earlier (or concurrent) commit
                if properties.size > 0:
                    raise ForeignDocument(key.blob_name)
                if existing.get(PENDING_SESSION) == session_id:
                    condition = _if_match(properties.etag)  # our placeholder, another ETag
                    continue
                self._remove_stale(blob, key, session_id, properties)
                condition = _IF_MISSING
            raise ServiceUnavailable("The document is busy; try again", retry_after=1)

    def staged_block_ids(self, key: DocumentKey) -> set[str]:
        blob = self._blob(key)
        with translate_azure_errors("listing staged segments"):
            try:
                committed, uncommitted = blob.get_block_list("all")
            except ResourceNotFoundError:
                return set()
        return {b.id for b in (*committed, *uncommitted)}

    def document_exists(self, key: DocumentKey) -> bool:
        """Whether a document is committed there. A 0-byte blob is never a document (a
        session's size is at least 1) but a placeholder — of the live session, or stale — and
        counts as absent; the next session's :meth:`fence` removes a stale one."""
        blob = self._blob(key)
        with translate_azure_errors("checking a document"):
            try:
                properties = blob.get_blob_properties()
            except ResourceNotFoundError:
                return False
            return bool(properties.size > 0)

    def discard_staged(self, key: DocumentKey, session_id: str, fence: str | None = None) -> None:
        """Drop the session's staged blocks; a committed document is never touched.

        Deleting the session's placeholder (``If-Match`` its ETag ``fence``) deletes its
        uncommitted blocks with it. A session without a placeholder gets one first
        (:meth:`fence`), so the delete is conditional all the same. A placeholder already gone,
        or replaced by another (a newer session's), is left alone. Repeatable.
        """
        blob = self._blob(key)
        if fence is None:
            try:
                fence = self.fence(key, session_id)
            except ForeignDocument:
                return  # a committed document: keep it
        with (
            translate_azure_errors("discarding staged segments"),
            suppress(ResourceNotFoundError, ResourceModifiedError),
        ):
            blob.delete_blob(etag=fence, match_condition=MatchConditions.IfNotModified)

    # -- Graph protocol ------------------------------------------------------------------

    def upload_url_key(self) -> bytes:
        """The deployment's 256-bit key uploadUrl tokens are derived from (docs/architecture.md
        "Graph protocol"); created on first use, then cached for the process."""
        if self._url_key is None:
            self._url_key = _upload_url_key(self)
        return bytes(self._url_key)

    def read_url(self, key: DocumentKey, lifetime: timedelta) -> str:
        """A read-only URL for exactly the document's blob, valid for ``lifetime``."""
        return _read_url(self, key, lifetime)

    def committed_document(self, key: DocumentKey) -> CommittedDocument | None:
        """What the committed document at ``key`` records, or None when there is no document
        (nothing committed, or a blob this service did not commit, such as a placeholder)."""
        return _committed_document(self, key)

    def read_range(self, key: DocumentKey, start: int, length: int) -> bytes | None:
        """``length`` bytes of the committed document from ``start``, or None without one."""
        blob = self._blob(key)
        with translate_azure_errors("reading a document range"):
            try:
                return bytes(blob.download_blob(offset=start, length=length).readall())
            except ResourceNotFoundError:
                return None


# -- Graph protocol (uploadsession.graph): the uploadUrl key and read-only document URLs -----

#: The uploadUrl key's row: a PartitionKey no document partition (``{tenant}|…``, a GUID first)
#: can take, and never in the expiry index, so the purge never sees it.
_KEYS_PARTITION = "~keys"
_URL_KEY_ROW = "uploadUrl"


def _upload_url_key(storage: AzureStorage) -> bytes:
    table = storage._get_clients().sessions

    def read() -> bytes | None:
        try:
            entity = table.get_entity(_KEYS_PARTITION, _URL_KEY_ROW)
        except ResourceNotFoundError:
            return None
        return bytes(getattr(entity["Key"], "value", entity["Key"]))

    with translate_azure_errors("reading the uploadUrl key"):
        key = read()
    if key is None:
        candidate = secrets.token_bytes(32)
        entity = {"PartitionKey": _KEYS_PARTITION, "RowKey": _URL_KEY_ROW, "Key": candidate}
        try:
            storage._table_call(
                table, lambda: table.create_entity(entity), "creating the uploadUrl key"
            )
            key = candidate
        except EntityExists:  # another instance won the race: use its key
            with translate_azure_errors("reading the uploadUrl key"):
                key = read()
    if key is None:
        raise ServiceUnavailable("The uploadUrl key is not readable yet; try again", retry_after=1)
    return key


def _read_url(storage: AzureStorage, key: DocumentKey, lifetime: timedelta) -> str:
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    container = storage._get_clients().documents
    now = datetime.now(UTC)
    start, expiry = now - timedelta(minutes=1), now + lifetime  # a minute of clock skew
    credential = container.credential
    sas_options: dict[str, Any] = {}
    account_key = getattr(credential, "account_key", None)
    if account_key:  # a connection string (Azurite included): a service SAS
        sas_options["account_key"] = account_key
    else:  # managed identity: a user delegation SAS (Storage Blob Delegator)
        cached = storage._delegation
        if cached is None or cached[1] - now < timedelta(minutes=15):
            service = BlobServiceClient(
                f"{container.scheme}://{container.primary_hostname}", credential=credential
            )
            valid_until = now + timedelta(hours=1)
            with translate_azure_errors("getting a user delegation key"):
                delegation = service.get_user_delegation_key(start, valid_until)
            cached = storage._delegation = (delegation, valid_until)
        sas_options["user_delegation_key"] = cached[0]
    sas = generate_blob_sas(
        account_name=container.account_name,
        container_name=container.container_name,
        blob_name=key.blob_name,
        permission=BlobSasPermissions(read=True),
        start=start,
        expiry=expiry,
        protocol="https" if container.scheme == "https" else "https,http",
        **sas_options,
    )
    return f"{container.get_blob_client(key.blob_name).url}?{sas}"


def _committed_document(storage: AzureStorage, key: DocumentKey) -> CommittedDocument | None:
    blob = storage._blob(key)
    with translate_azure_errors("reading a document's properties"):
        try:
            properties = blob.get_blob_properties()
        except ResourceNotFoundError:
            return None  # never committed (staged blocks alone are invisible)
    content_type = properties.content_settings.content_type or "application/octet-stream"
    return parse_document_metadata(properties.metadata or {}, content_type)


def _ca_bundle() -> str | None:
    """The CA bundle requests takes from the environment in place of ``verify=True``."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


def _proxy_or_netrc_applies(urls: Sequence[str]) -> bool:
    """Whether requests' environment lookups would route or authenticate a request to one
    of ``urls``: a proxy variable that NO_PROXY does not bypass, or a netrc entry."""
    return any(
        requests.utils.get_environ_proxies(url) or requests.utils.get_netrc_auth(url)
        for url in urls
    )


_IF_MISSING: dict[str, Any] = {"match_condition": MatchConditions.IfMissing}


def _if_match(etag: str) -> dict[str, Any]:
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}


def _with_etag(session: Session, meta: Any) -> Session:
    return replace(session, storage_etag=meta["etag"])


def _create(create: Callable[[], Any]) -> None:
    """Create a table or container; one that already exists is fine."""
    with suppress(ResourceExistsError):
        create()


def _call_creating(fn: Callable[[], T], what: str, missing: str, create: Callable[[], Any]) -> T:
    """Run ``fn``; if the service says ``missing`` (TableNotFound / ContainerNotFound), create
    it once and retry — so no request pays for an existence check."""
    with translate_azure_errors(what):
        try:
            return fn()
        except HttpResponseError as exc:
            if not _has_error_code(exc, missing):
                raise
            _create(create)
            return fn()
