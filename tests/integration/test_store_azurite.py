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
from uploadsession.service import UploadSessionService
from uploadsession.store import AzureStorage

TENANT = "0d6e2f1a-8a43-4c35-9f0b-3c1f6a2b9e10"
WRITER = frozenset({"PrintJob.ReadWrite", "Printer.Read.All"})


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
    return UploadSessionService(store, ttl_seconds=ttl, max_document_bytes=1 << 30)


def segment_upload(data: bytes, start: int, end: int, size: int) -> SegmentUpload:
    chunk = data[start : end + 1]
    return SegmentUpload(start, end, size, chunk, hashlib.md5(chunk).digest(), ("*",))


def committed_bytes(store: AzureStorage, key: DocumentKey) -> tuple[bytes, str]:
    blob = store._get_clients()[2].get_blob_client(key.blob_name)
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
    service = service_on(racing)
    principal = user()
    key = new_key()
    data = random.randbytes(200)
    service_on(storage).create(principal, key, CreateRequest(200, "application/pdf", "a.pdf"))
    results = []

    def send(start: int, end: int) -> None:
        results.append(service.upload(principal, key, segment_upload(data, start, end, 200)))

    threads = [threading.Thread(target=send, args=r) for r in ((0, 99), (100, 199))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert service.write_conflicts >= 1  # the losing writer re-read and retried
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
    staged = Segment(0, 4, hashlib.md5(b"hello").digest())
    storage.stage(key, staged.block_id, b"hello")
    ghost = Segment(5, 9, hashlib.md5(b"world").digest())
    with pytest.raises(MissingBlocks):
        storage.commit(key, [staged.block_id, ghost.block_id], "text/plain", {})
    assert storage.staged_block_ids(key) == {staged.block_id}
    assert storage.document_exists(key) is False


def test_discarding_staged_bytes_never_touches_a_committed_document(
    storage: AzureStorage,
) -> None:
    key = new_key()
    seg = Segment(0, 4, hashlib.md5(b"hello").digest())
    storage.stage(key, seg.block_id, b"hello")
    storage.discard_staged(key)
    assert storage.staged_block_ids(key) == set()
    storage.stage(key, seg.block_id, b"hello")
    storage.commit(key, [seg.block_id], "text/plain", {"documentname": "a.txt"})
    storage.discard_staged(key)
    assert committed_bytes(storage, key) == (b"hello", "text/plain")


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
    service = UploadSessionService(
        storage, ttl_seconds=60, max_document_bytes=1 << 20, clock=lambda: clock[0]
    )
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
