"""The real Table/Blob adapter and the service on it, against Azurite."""

from __future__ import annotations

import hashlib
import random
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from uploadsession.auth import Principal
from uploadsession.errors import (
    ConcurrencyConflict,
    Conflict,
    EntityExists,
    ForeignDocument,
    MissingBlocks,
    ServiceUnavailable,
)
from uploadsession.models import (
    COMMITTED,
    CreateRequest,
    DocumentKey,
    Segment,
    SegmentUpload,
    Session,
)
from uploadsession.ports import SESSION_ROW, CommittedDocument, document_partition
from uploadsession.service import UploadSessionService
from uploadsession.store import AzureStorage, expiry_bucket

TENANT = "0d6e2f1a-8a43-4c35-9f0b-3c1f6a2b9e10"
WRITER = frozenset({"PrintJob.ReadWrite", "Printer.Read.All"})


def document(content_type: str) -> CommittedDocument:
    """What a commit records (the store writes it as blob metadata)."""
    return CommittedDocument("a-session", content_type, "a.txt", "an-app", None)


def user(uid: str | None = None) -> Principal:
    return Principal(TENANT, "app-1", uid or str(uuid.uuid4()), True, WRITER)


def new_key() -> DocumentKey:
    return DocumentKey.parse(TENANT, str(uuid.uuid4()), "job-1", str(uuid.uuid4()))


def make_session(key: DocumentKey, size: int = 100, **changes: Any) -> Session:
    now = datetime.now(UTC)
    session = Session(
        key,
        str(uuid.uuid4()),
        size,
        "application/pdf",
        "a.pdf",
        "app-1",
        "u-1",
        now,
        now + timedelta(hours=1),
    )
    return replace(session, **changes)


def service_on(store: Any, ttl: int = 3600) -> UploadSessionService:
    return UploadSessionService(store, ttl_seconds=ttl)


def segment_upload(data: bytes, start: int, end: int, size: int) -> SegmentUpload:
    chunk = data[start : end + 1]
    return SegmentUpload(start, end, size, chunk, hashlib.md5(chunk).digest(), ("*",))


def committed_bytes(store: AzureStorage, key: DocumentKey) -> tuple[bytes, str]:
    blob = store._get_clients().documents.get_blob_client(key.blob_name)
    download = blob.download_blob()
    return download.readall(), download.properties.content_settings.content_type


def test_a_session_round_trips_with_many_segments_and_a_large_size(storage: AzureStorage) -> None:
    key = new_key()
    segments = tuple(
        Segment(i * 10, i * 10 + 9, hashlib.md5(str(i).encode()).digest()) for i in range(6000)
    )  # three binary chunks
    session = make_session(key, size=5 * 2**31, segments=segments)
    stored = storage.insert_session(session)
    loaded = storage.get_session(key)
    assert loaded == session
    assert loaded is not None and loaded.storage_etag == stored.storage_etag
    assert storage.get_session(new_key()) is None


def test_a_second_insert_of_the_same_document_is_refused(storage: AzureStorage) -> None:
    key = new_key()
    storage.insert_session(make_session(key))
    with pytest.raises(EntityExists):
        storage.insert_session(make_session(key))


def test_a_write_with_a_stale_etag_loses(storage: AzureStorage) -> None:
    key = new_key()
    first = storage.insert_session(make_session(key))
    storage.replace_session(replace(first, document_name="b.pdf"))
    with pytest.raises(ConcurrencyConflict):
        storage.replace_session(replace(first, document_name="c.pdf"))
    with pytest.raises(ConcurrencyConflict):
        storage.delete_session(first)
    loaded = storage.get_session(key)
    assert loaded is not None and loaded.document_name == "b.pdf"


def test_two_concurrent_creates_of_one_document_have_exactly_one_winner(
    storage: AzureStorage,
) -> None:
    storage.put_subscription(TENANT, active=True)
    service = service_on(storage)
    key = new_key()
    request = CreateRequest(1000, "application/pdf", "a.pdf")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def create(principal: Principal) -> None:
        barrier.wait()
        try:
            service.create(principal, key, request)
            outcomes.append("created")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=create, args=(user(),)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "created"]


class RacingStore:
    """Delegates to the real store; the first reads of two writers wait for each other, so
    both hold the same ETag and one conditional write must lose."""

    def __init__(self, inner: AzureStorage) -> None:
        self.inner = inner
        self.barrier = threading.Barrier(2)
        self.local = threading.local()

    def get_session(self, key: DocumentKey) -> Session | None:
        session = self.inner.get_session(key)
        if not getattr(self.local, "raced", False):
            self.local.raced = True
            self.barrier.wait(timeout=10)
        return session

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_two_writers_racing_on_one_session_both_land_through_the_etag_retry(
    storage: AzureStorage,
) -> None:
    storage.put_subscription(TENANT, active=True)
    racing = RacingStore(storage)
    processes = [service_on(racing), service_on(racing)]  # each its own segment recorder
    principal = user()
    key = new_key()
    data = random.randbytes(200)
    service_on(storage).create(principal, key, CreateRequest(200, "application/pdf", "a.pdf"))
    results = []

    def send(process: int, start: int, end: int) -> None:
        upload = segment_upload(data, start, end, 200)
        results.append(processes[process].upload(principal, key, upload))

    threads = [threading.Thread(target=send, args=r) for r in ((0, 0, 99), (1, 100, 199))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # the losing writer re-read and retried
    assert sum(p.write_conflicts for p in processes) >= 1
    assert sorted(r.complete for r in results) == [False, True]
    final = storage.get_session(key)
    assert final is not None and final.missing == [] and final.status == COMMITTED
    assert committed_bytes(storage, key) == (data, "application/pdf")


class FailOnce:
    """Delegates to the real store but fails the named operation once, like a crash or an
    outage between staging the bytes and recording the range."""

    def __init__(self, inner: AzureStorage, operation: str) -> None:
        self.inner, self.operation, self.failed = inner, operation, False

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if name != self.operation or self.failed:
            return target

        def fail(*args: Any, **kwargs: Any) -> Any:
            self.failed = True
            raise ServiceUnavailable("injected fault")

        return fail


@pytest.mark.parametrize("operation", ["replace_session", "commit"])
def test_a_fault_between_staging_and_recording_is_repaired_by_a_plain_retry(
    storage: AzureStorage,
    operation: str,
) -> None:
    storage.put_subscription(TENANT, active=True)
    principal = user()
    key = new_key()
    size = 3 * 1024 * 1024 + 7
    data = random.randbytes(size)
    healthy = service_on(storage)
    healthy.create(principal, key, CreateRequest(size, "application/octet-stream", "x.bin"))
    mib = 1024 * 1024
    ranges = [(0, mib - 1), (mib, 2 * mib - 1), (2 * mib, size - 1)]
    for start, end in ranges[:2]:
        healthy.upload(principal, key, segment_upload(data, start, end, size))
    faulty = service_on(FailOnce(storage, operation))
    last = segment_upload(data, *ranges[2], size)
    with pytest.raises(ServiceUnavailable):
        faulty.upload(principal, key, last)
    assert storage.document_exists(key) is False  # never a half-committed document
    result = faulty.upload(principal, key, last)  # the client's plain retry
    assert result.complete is True
    assert committed_bytes(storage, key) == (data, "application/octet-stream")


def test_commit_refuses_a_block_list_with_an_unstaged_block(storage: AzureStorage) -> None:
    key = new_key()
    fence = storage.fence(key, "a-session")
    staged = Segment(0, 4, hashlib.md5(b"hello").digest())
    storage.stage(key, staged.block_id, b"hello")
    ghost = Segment(5, 9, hashlib.md5(b"world").digest())
    with pytest.raises(MissingBlocks):
        storage.commit(key, [staged.block_id, ghost.block_id], document("text/plain"), fence)
    assert storage.staged_block_ids(key) == {staged.block_id}
    assert storage.document_exists(key) is False


def test_discarding_staged_bytes_never_touches_a_committed_document(
    storage: AzureStorage,
) -> None:
    key = new_key()
    seg = Segment(0, 4, hashlib.md5(b"hello").digest())
    storage.stage(key, seg.block_id, b"hello")
    storage.discard_staged(key, "session-a")  # no placeholder: one is put, then deleted
    assert storage.staged_block_ids(key) == set()
    assert storage.document_exists(key) is False
    fence = storage.fence(key, "a-session")
    storage.stage(key, seg.block_id, b"hello")
    storage.commit(key, [seg.block_id], document("text/plain"), fence)
    storage.discard_staged(key, "session-a")
    assert committed_bytes(storage, key) == (b"hello", "text/plain")


def test_a_late_write_of_an_earlier_session_cannot_touch_the_placeholder_of_the_next(
    storage: AzureStorage,
) -> None:
    key = new_key()
    old = storage.fence(key, "session-a")
    assert storage.fence(key, "session-a") == old  # repeatable: its own placeholder is found
    storage.discard_staged(key, "session-a", old)
    new = storage.fence(key, "session-b")
    assert new != old
    seg = Segment(0, 4, hashlib.md5(b"hello").digest())
    storage.stage(key, seg.block_id, b"hello")
    storage.discard_staged(key, "session-a", old)  # late: If-Match the old ETag fails
    earlier = CommittedDocument("session-a", "text/plain", "a.txt", "an-app", None)
    with pytest.raises(ConcurrencyConflict):  # nor can a late commit of session a
        storage.commit(key, [seg.block_id], earlier, old)
    assert storage.staged_block_ids(key) == {seg.block_id}
    assert storage.document_exists(key) is False  # a placeholder is no document
    assert storage.committed_document(key) is None
    storage.commit(key, [seg.block_id], document("text/plain"), new)
    assert committed_bytes(storage, key) == (b"hello", "text/plain")
    with pytest.raises(ForeignDocument):  # a committed document is never a placeholder
        storage.fence(key, "session-c")


def test_a_stale_placeholder_is_cleared_by_the_next_sessions_fence(storage: AzureStorage) -> None:
    key = new_key()
    stale = storage.fence(key, "session-a")  # session a's row is gone
    holder = storage.insert_session(make_session(key, id="session-b"))
    fresh = storage.fence(key, holder.id)
    assert fresh != stale
    blob = storage._get_clients().documents.get_blob_client(key.blob_name)
    assert blob.get_blob_properties().metadata == {"pendingsession": "session-b"}
    # a process that read session a's row long ago must not remove session b's placeholder
    with pytest.raises(ConcurrencyConflict):
        storage.fence(key, "session-a")
    assert blob.get_blob_properties().etag == fresh


def test_a_session_staged_without_a_placeholder_commits_if_none_match(
    storage: AzureStorage,
) -> None:
    """A session staged before placeholders existed commits as it began; a placeholder put
    where blocks were staged drops them (what a discard relies on)."""
    key = new_key()
    seg = Segment(0, 4, hashlib.md5(b"hello").digest())
    storage.stage(key, seg.block_id, b"hello")
    storage.commit(key, [seg.block_id], document("text/plain"), None)
    assert committed_bytes(storage, key) == (b"hello", "text/plain")
    other = new_key()
    storage.stage(other, seg.block_id, b"hello")
    storage.fence(other, "b-session")
    assert storage.staged_block_ids(other) == set()


def test_only_expired_sessions_are_listed_for_purging(storage: AzureStorage) -> None:
    now = datetime.now(UTC)
    expired = storage.insert_session(make_session(new_key(), expires=now - timedelta(seconds=1)))
    storage.insert_session(make_session(new_key(), expires=now + timedelta(hours=1)))
    listed = list(storage.expired_sessions(now, page_size=1))
    assert [s.id for s in listed] == [expired.id]


def test_subscriptions_are_stored_per_tenant(storage: AzureStorage) -> None:
    assert storage.get_subscription(TENANT) is None
    storage.put_subscription(TENANT, active=True)
    sub = storage.get_subscription(TENANT)
    assert sub is not None and sub.active
    storage.put_subscription(TENANT, active=False)
    sub = storage.get_subscription(TENANT)
    assert sub is not None and not sub.active


def test_purge_removes_expired_staged_bytes_and_keeps_committed_documents(
    storage: AzureStorage,
) -> None:
    storage.put_subscription(TENANT, active=True)
    clock = [datetime.now(UTC)]
    service = UploadSessionService(storage, ttl_seconds=60, clock=lambda: clock[0])
    principal = user()
    incomplete, complete = new_key(), new_key()
    data = random.randbytes(100)
    for key in (incomplete, complete):
        service.create(principal, key, CreateRequest(100, "text/plain", "a.txt"))
    service.upload(principal, incomplete, segment_upload(data, 0, 49, 100))
    service.upload(principal, complete, segment_upload(data, 0, 99, 100))
    assert storage.staged_block_ids(incomplete)
    clock[0] += timedelta(seconds=61)
    report = service.purge()
    assert report.sessions == 2
    assert storage.get_session(incomplete) is None and storage.get_session(complete) is None
    assert storage.staged_block_ids(incomplete) == set()
    assert committed_bytes(storage, complete) == (data, "text/plain")
    assert service.purge().sessions == 0  # idempotent


# -- keys and the expiry index (issue 14) ---------------------------------------------------


def index_rows(store: AzureStorage) -> set[tuple[str, str]]:
    table = store._get_clients().expiries
    return {(e["PartitionKey"], e["RowKey"]) for e in table.list_entities()}


def test_a_session_lives_in_a_partition_of_its_own_document(storage: AzureStorage) -> None:
    first, second = new_key(), new_key()
    for key in (first, second):
        storage.insert_session(make_session(key))
    table = storage._get_clients().sessions
    keys = {(e["PartitionKey"], e["RowKey"]) for e in table.list_entities()}
    assert keys == {(document_partition(k), SESSION_ROW) for k in (first, second)}
    assert document_partition(first).split("|") == [
        first.tenant_id,
        first.printer_id,
        first.job_id,
        first.document_id,
    ]


def test_insert_indexes_the_expiry_and_the_purge_finds_a_due_session(
    storage: AzureStorage,
) -> None:
    now = datetime.now(UTC)
    due = storage.insert_session(make_session(new_key(), expires=now - timedelta(minutes=1)))
    later = storage.insert_session(make_session(new_key(), expires=now + timedelta(hours=1)))
    assert index_rows(storage) == {
        (expiry_bucket(s.expires), document_partition(s.key)) for s in (due, later)
    }
    assert [s.id for s in storage.expired_sessions(now)] == [due.id]
    storage.delete_session(due)  # the index row goes with the session
    assert index_rows(storage) == {(expiry_bucket(later.expires), document_partition(later.key))}


def test_a_renewed_session_is_not_purged_and_its_index_row_moves(storage: AzureStorage) -> None:
    now = datetime.now(UTC)
    stored = storage.insert_session(make_session(new_key(), expires=now + timedelta(minutes=1)))
    renewed = storage.replace_session(replace(stored, expires=now + timedelta(hours=2)))
    old = (expiry_bucket(stored.expires), document_partition(stored.key))
    assert index_rows(storage) == {old}  # sliding expiry writes no index row
    purge_time = now + timedelta(minutes=10)
    assert list(storage.expired_sessions(purge_time)) == []
    assert index_rows(storage) == {(expiry_bucket(renewed.expires), old[1])}


def test_a_cancelled_session_is_found_by_the_next_purge_run(storage: AzureStorage) -> None:
    now = datetime.now(UTC)
    stored = storage.insert_session(make_session(new_key(), expires=now + timedelta(hours=1)))
    discarding = storage.replace_session(replace(stored, status="discarding", expires=now))
    # The process dies here (before the discard and the row delete): the next purge run finds
    # the row although its first index row is an hour in the future.
    found = list(storage.expired_sessions(now + timedelta(seconds=1)))
    assert [(s.id, s.status) for s in found] == [(discarding.id, "discarding")]


def test_a_stale_index_row_is_removed_by_the_purge(storage: AzureStorage) -> None:
    now = datetime.now(UTC)
    stored = storage.insert_session(make_session(new_key(), expires=now - timedelta(minutes=1)))
    table = storage._get_clients().sessions
    table.delete_entity(document_partition(stored.key), SESSION_ROW)  # as if a crash
    assert index_rows(storage)
    assert list(storage.expired_sessions(now)) == []
    assert index_rows(storage) == set()


def test_a_purge_run_is_bounded_and_the_next_run_finds_the_rest(storage: AzureStorage) -> None:
    now = datetime.now(UTC)
    due = [
        storage.insert_session(make_session(new_key(), expires=now - timedelta(minutes=1)))
        for _ in range(5)
    ]
    seen: list[str] = []
    for _run in range(3):
        batch = list(storage.expired_sessions(now, page_size=2, limit=2))
        assert len(batch) <= 2
        for session in batch:
            storage.delete_session(session)
        seen += [s.id for s in batch]
    assert sorted(seen) == sorted(s.id for s in due)
    assert index_rows(storage) == set()


class CountingTable:
    """Records the keyword arguments of every get_entity of the sessions table."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.reads = inner, []

    def get_entity(self, *args: Any, **kwargs: Any) -> Any:
        self.reads.append((args, kwargs.get("select")))
        return self.inner.get_entity(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_the_purge_reads_segment_data_only_of_the_sessions_it_finishes(
    storage: AzureStorage,
) -> None:
    now = datetime.now(UTC)
    segments = tuple(Segment(i, i, hashlib.md5(bytes([i % 256])).digest()) for i in range(50))
    due = storage.insert_session(make_session(new_key(), expires=now - timedelta(minutes=1)))
    renewed = storage.insert_session(
        make_session(new_key(), expires=now - timedelta(minutes=1), segments=segments)
    )
    storage.replace_session(replace(renewed, expires=now + timedelta(hours=1)))
    clients = storage._get_clients()
    counting = CountingTable(clients.sessions)
    storage._clients = replace(clients, sessions=counting)
    assert [s.id for s in storage.expired_sessions(now)] == [due.id]
    full = [args for args, select in counting.reads if select is None]
    assert full == [(document_partition(due.key), SESSION_ROW)]
    assert all(
        select is not None and not any(f.startswith("Segments") for f in select)
        for args, select in counting.reads
        if args[0] == document_partition(renewed.key)
    )


def test_the_service_purge_through_the_index_finishes_a_cancel_left_half_done(
    storage: AzureStorage,
) -> None:
    storage.put_subscription(TENANT, active=True)
    service = service_on(storage)
    principal = user()
    key = new_key()
    data = random.randbytes(100)
    service.create(principal, key, CreateRequest(100, "text/plain", "a.txt"))
    service.upload(principal, key, segment_upload(data, 0, 49, 100))
    session = storage.get_session(key)
    assert session is not None
    storage.replace_session(replace(session, status="discarding", expires=datetime.now(UTC)))
    report = service.purge()
    assert report.sessions == 1 and report.staged_discarded == 1
    assert storage.get_session(key) is None and storage.staged_block_ids(key) == set()
    # Left: only the creation's index row, an hour ahead; when it falls due the purge finds
    # no session there and deletes it.
    left = [b for b, row in index_rows(storage) if row == document_partition(key)]
    assert all(b > expiry_bucket(datetime.now(UTC)) for b in left)
    assert list(storage.expired_sessions(datetime.now(UTC) + timedelta(hours=2))) == []
    assert all(row != document_partition(key) for _, row in index_rows(storage))
