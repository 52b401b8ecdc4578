"""The use cases (create, get, upload, delete, purge) over the in-memory store."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes import InMemoryStorage
from uploadsession.auth import Principal
from uploadsession.errors import (
    AccessDenied,
    ConcurrencyConflict,
    Conflict,
    InsufficientScope,
    InvalidRange,
    ItemNotFound,
    PreconditionFailed,
    ServiceUnavailable,
)
from uploadsession.models import (
    COMMITTED,
    CreateRequest,
    DocumentKey,
    Segment,
    SegmentUpload,
    Session,
    render,
)
from uploadsession.service import UploadResult, UploadSessionService

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "0b5a3d2e-1c4f-4e6a-9b8d-7f6e5d4c3b2a"
PRINTER = "016b5565-3bbf-4067-b9ff-4d68167eb1a6"
DOCUMENT = "9a6d0ba5-07a3-4e5e-9f1e-0e6f8e7b4c21"
APP = "53328905-26eb-415a-96f6-311c68bb818e"
OTHER_APP = "11111111-2222-4333-8444-555555555555"
ALICE = "853364e6-6be9-4003-ad9b-acab84b41643"
BOB = "2c1b7f5e-9d4a-4f63-8e21-0a9b8c7d6e5f"
CAROL = "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
TTL = 3600
MAX = 1024 * 1024
START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

RW = frozenset({"PrintJob.ReadWrite", "Printer.Read.All"})


def delegated(user: str, *scopes: str, tenant: str = TENANT) -> Principal:
    return Principal(tenant, APP, user, True, frozenset(scopes) if scopes else RW)


def application(*roles: str, app_id: str = APP, tenant: str = TENANT) -> Principal:
    granted = (
        frozenset(roles) if roles else frozenset({"PrintJob.ReadWrite.All", "Printer.Read.All"})
    )
    return Principal(tenant, app_id, None, False, granted)


ALICE_RW = delegated(ALICE)
BOB_RW = delegated(BOB)
ADMIN = delegated(CAROL, "PrintJob.ReadWrite.All", "Printer.Read.All")
DAEMON = application()


class Clock:
    """A controllable clock for the service."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def store() -> InMemoryStorage:
    storage = InMemoryStorage()
    storage.put_subscription(TENANT, True)
    storage.put_subscription(OTHER_TENANT, True)
    return storage


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_service(
    store: InMemoryStorage, clock: Clock, sleep: Callable[[float], None] = lambda _: None
) -> UploadSessionService:
    return UploadSessionService(store, ttl_seconds=TTL, clock=clock, sleep=sleep)


@pytest.fixture
def service(store: InMemoryStorage, clock: Clock) -> UploadSessionService:
    return make_service(store, clock)


def key_of(tenant: str = TENANT, document: str = DOCUMENT) -> DocumentKey:
    return DocumentKey.parse(tenant, PRINTER, "job-1", document)


KEY = key_of()


def request(size: int = 100, name: str = "file.pdf") -> CreateRequest:
    return CreateRequest(size=size, content_type="application/pdf", document_name=name)


def payload(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def segment_upload(
    data: bytes,
    start: int,
    end: int,
    *,
    if_match: tuple[str, ...] = ("*",),
    total: int | None = None,
) -> SegmentUpload:
    part = data[start : end + 1]
    return SegmentUpload(
        start=start,
        end=end,
        total=len(data) if total is None else total,
        data=part,
        md5=hashlib.md5(part).digest(),
        if_match=if_match,
    )


def upload(
    service: UploadSessionService,
    data: bytes,
    start: int,
    end: int,
    principal: Principal = ALICE_RW,
    key: DocumentKey = KEY,
    *,
    if_match: tuple[str, ...] = ("*",),
    total: int | None = None,
) -> UploadResult:
    segment = segment_upload(data, start, end, if_match=if_match, total=total)
    return service.upload(principal, key, segment)


def chunks(size: int, step: int) -> list[tuple[int, int]]:
    return [(s, min(size, s + step) - 1) for s in range(0, size, step)]


def snapshot(store: InMemoryStorage, key: DocumentKey = KEY) -> tuple[Session | None, str | None]:
    """The stored session and its storage ETag (the ETag changes on every write)."""
    session = store.get_session(key)
    return session, None if session is None else session.storage_etag


# -- create and get -----------------------------------------------------------------------


def test_a_created_session_is_read_back(service: UploadSessionService, clock: Clock) -> None:
    created = service.create(ALICE_RW, KEY, request(100))
    read = service.get(ALICE_RW, KEY)
    assert read == created
    assert (read.size, read.content_type, read.document_name) == (
        100,
        "application/pdf",
        "file.pdf",
    )
    assert (read.app_id, read.user_id) == (APP, ALICE)
    assert read.missing == [(0, 99)]
    assert read.expires == clock.now + timedelta(seconds=TTL)


def test_an_application_creates_a_session_without_a_user(service: UploadSessionService) -> None:
    created = service.create(DAEMON, KEY, request())
    assert (created.app_id, created.user_id) == (APP, None)


def test_each_document_gets_a_new_session_id(service: UploadSessionService) -> None:
    first = service.create(ALICE_RW, KEY, request())
    second = service.create(
        ALICE_RW, key_of(document="5b0e6c1a-2f3d-4e8a-9b7c-1d2e3f4a5b6c"), request()
    )
    assert first.id != second.id


def test_getting_a_session_that_was_never_created_is_not_found(
    service: UploadSessionService,
) -> None:
    with pytest.raises(ItemNotFound):
        service.get(ALICE_RW, KEY)


def test_repeating_a_create_returns_the_same_session(
    service: UploadSessionService, store: InMemoryStorage, clock: Clock
) -> None:
    first = service.create(ALICE_RW, KEY, request())
    # one insert, then the placeholder's ETag recorded on the row
    assert store.calls["insert_session"] == 1 and store.calls["replace_session"] == 1
    assert first.fence is not None
    clock.advance(5)
    again = service.create(ALICE_RW, KEY, request())
    assert again.id == first.id
    assert again == first and again.fence == first.fence
    assert store.calls["insert_session"] == 1 and store.calls["replace_session"] == 1
    assert store.calls["fence"] == 1


@pytest.mark.parametrize(
    "other",
    [request(size=101), request(name="other.pdf"), CreateRequest(100, "text/plain", "file.pdf")],
)
def test_a_create_with_a_different_body_conflicts(
    service: UploadSessionService, store: InMemoryStorage, other: CreateRequest
) -> None:
    service.create(ALICE_RW, KEY, request())
    before = snapshot(store)
    with pytest.raises(Conflict):
        service.create(ALICE_RW, KEY, other)
    assert snapshot(store) == before


@pytest.mark.parametrize("other", [BOB_RW, ADMIN, DAEMON, application(app_id=OTHER_APP)])
def test_a_create_by_someone_else_conflicts(
    service: UploadSessionService, store: InMemoryStorage, other: Principal
) -> None:
    service.create(ALICE_RW, KEY, request())
    before = snapshot(store)
    with pytest.raises(Conflict):
        service.create(other, KEY, request())
    assert snapshot(store) == before


def test_an_application_session_conflicts_with_another_application(
    service: UploadSessionService,
) -> None:
    service.create(DAEMON, KEY, request())
    assert service.create(DAEMON, KEY, request()).user_id is None
    with pytest.raises(Conflict):
        service.create(application(app_id=OTHER_APP), KEY, request())


def test_a_create_after_expiry_replaces_the_old_session(
    service: UploadSessionService, store: InMemoryStorage, clock: Clock
) -> None:
    old = service.create(ALICE_RW, KEY, request())
    upload(service, payload(100), 0, 9)
    clock.advance(TTL + 1)
    with pytest.raises(ItemNotFound):
        service.get(ALICE_RW, KEY)
    new = service.create(BOB_RW, KEY, request(size=50))
    assert new.id != old.id
    assert new.user_id == BOB and new.size == 50
    assert new.missing == [(0, 49)]
    assert new.expires == clock.now + timedelta(seconds=TTL)
    assert service.get(BOB_RW, KEY) == new
    assert [s.id for s in store.sessions()] == [new.id]


def test_a_create_after_the_document_completed_conflicts(
    service: UploadSessionService, clock: Clock
) -> None:
    data = payload(20)
    service.create(ALICE_RW, KEY, request(20))
    upload(service, data, 0, 19)
    with pytest.raises(Conflict):
        service.create(ALICE_RW, KEY, request(20))
    clock.advance(TTL + 1)  # the committed session expired: the document still exists
    with pytest.raises(Conflict):
        service.create(ALICE_RW, KEY, request(20))


def test_a_create_after_the_completed_session_was_purged_conflicts(
    service: UploadSessionService, store: InMemoryStorage, clock: Clock
) -> None:
    service.create(ALICE_RW, KEY, request(20))
    upload(service, payload(20), 0, 19)
    clock.advance(TTL + 1)
    service.purge()
    assert store.sessions() == []
    with pytest.raises(Conflict):
        service.create(ALICE_RW, KEY, request(20))


# -- who sees what ------------------------------------------------------------------------


def test_a_user_without_all_sees_only_own_sessions(service: UploadSessionService) -> None:
    service.create(ALICE_RW, KEY, request())
    service.get(ALICE_RW, KEY)
    for operation in (
        lambda: service.get(BOB_RW, KEY),
        lambda: upload(service, payload(100), 0, 9, principal=BOB_RW),
        lambda: service.delete(BOB_RW, KEY),
    ):
        with pytest.raises(ItemNotFound):
            operation()


def test_a_reader_sees_only_own_sessions(service: UploadSessionService) -> None:
    service.create(ALICE_RW, KEY, request())
    assert service.get(delegated(ALICE, "PrintJob.Read", "Printer.Read.All"), KEY).user_id == ALICE
    with pytest.raises(ItemNotFound):
        service.get(delegated(BOB, "PrintJob.Read", "Printer.Read.All"), KEY)


@pytest.mark.parametrize(
    "viewer",
    [
        delegated(BOB, "PrintJob.Read.All", "Printer.Read.All"),
        delegated(BOB, "PrintJob.ReadWrite.All", "Printer.Read.All"),
        application("PrintJob.Read.All", "Printer.Read.All"),
        application(app_id=OTHER_APP),
    ],
)
def test_all_scopes_and_applications_see_any_session_of_their_tenant(
    service: UploadSessionService, viewer: Principal
) -> None:
    created = service.create(ALICE_RW, KEY, request())
    assert service.get(viewer, KEY) == created


def test_a_user_session_is_visible_to_an_application_and_vice_versa(
    service: UploadSessionService,
) -> None:
    service.create(DAEMON, KEY, request())
    with pytest.raises(ItemNotFound):
        service.get(ALICE_RW, KEY)  # not the creator, no .All
    assert service.get(ADMIN, KEY).user_id is None


def test_another_tenant_never_sees_the_session(service: UploadSessionService) -> None:
    service.create(ALICE_RW, KEY, request())
    stranger = application(tenant=OTHER_TENANT)
    with pytest.raises(ItemNotFound):
        service.get(stranger, key_of(OTHER_TENANT))
    # and may create its own for the same printer/job/document ids
    assert service.create(stranger, key_of(OTHER_TENANT), request()).key.tenant_id == OTHER_TENANT


def test_an_all_reader_who_cannot_write_all_cannot_upload_to_others_sessions(
    service: UploadSessionService, store: InMemoryStorage
) -> None:
    service.create(ALICE_RW, KEY, request())
    mixed = delegated(BOB, "PrintJob.Read.All", "PrintJob.ReadWrite", "Printer.Read.All")
    before = snapshot(store)
    with pytest.raises(AccessDenied):
        upload(service, payload(100), 0, 9, principal=mixed)
    assert snapshot(store) == before
    assert store.staged(KEY) == {}


def test_a_write_all_user_may_upload_to_another_users_session(
    service: UploadSessionService,
) -> None:
    service.create(ALICE_RW, KEY, request(10))
    assert upload(service, payload(10), 0, 9, principal=ADMIN).complete


def test_a_tenant_without_a_subscription_is_denied(clock: Clock) -> None:
    service = make_service(InMemoryStorage(), clock)
    with pytest.raises(AccessDenied, match="subscription"):
        service.create(ALICE_RW, KEY, request())


def test_a_suspended_tenant_is_denied(store: InMemoryStorage, clock: Clock) -> None:
    store.put_subscription(TENANT, False)
    service = make_service(store, clock)
    for operation in (
        lambda: service.get(ALICE_RW, KEY),
        lambda: service.create(ALICE_RW, KEY, request()),
        lambda: service.delete(ALICE_RW, KEY),
    ):
        with pytest.raises(AccessDenied, match="subscription"):
            operation()
    assert store.sessions() == []


def test_a_suspension_takes_effect_once_the_60_s_cache_of_an_active_tenant_runs_out(
    store: InMemoryStorage, clock: Clock, service: UploadSessionService
) -> None:
    service.create(ALICE_RW, KEY, request())
    store.put_subscription(TENANT, False)
    clock.advance(59)
    service.get(ALICE_RW, KEY)  # still trusted from the first request
    clock.advance(2)
    with pytest.raises(AccessDenied, match="subscription"):
        service.get(ALICE_RW, KEY)


def test_an_activation_takes_effect_at_once(store: InMemoryStorage, clock: Clock) -> None:
    store.put_subscription(TENANT, False)
    service = make_service(store, clock)
    with pytest.raises(AccessDenied, match="subscription"):
        service.create(ALICE_RW, KEY, request())
    store.put_subscription(TENANT, True)
    service.create(ALICE_RW, KEY, request())


@pytest.mark.parametrize(
    "principal",
    [
        delegated(ALICE, "PrintJob.Read", "Printer.Read.All"),
        delegated(ALICE, "PrintJob.Read.All", "Printer.Read.All"),
        delegated(ALICE, "PrintJob.ReadWrite"),  # no printer permission
        delegated(ALICE, "printjob.readwrite", "Printer.Read.All"),  # case matters
        application("PrintJob.Read.All", "Printer.Read.All"),
        application("PrintJob.ReadWrite", "Printer.Read.All"),  # delegated-only name
        application("PrintJob.ReadWrite.All", "Printer.FullControl.All"),  # delegated-only
    ],
)
def test_a_caller_without_write_permission_cannot_create(
    service: UploadSessionService, store: InMemoryStorage, principal: Principal
) -> None:
    with pytest.raises(InsufficientScope):
        service.create(principal, KEY, request())
    assert store.sessions() == []


def test_a_reader_cannot_upload_or_delete(service: UploadSessionService) -> None:
    service.create(ALICE_RW, KEY, request())
    reader = delegated(ALICE, "PrintJob.Read", "Printer.Read.All")
    with pytest.raises(InsufficientScope):
        upload(service, payload(100), 0, 9, principal=reader)
    with pytest.raises(InsufficientScope):
        service.delete(reader, KEY)
    assert service.get(reader, KEY).missing == [(0, 99)]


# -- upload -------------------------------------------------------------------------------


def test_segments_in_any_order_complete_the_document_with_exactly_its_bytes(
    service: UploadSessionService, store: InMemoryStorage
) -> None:
    data = payload(1000)
    service.create(ALICE_RW, KEY, request(1000, name="Été 2024.pdf"))
    ranges = chunks(1000, 64)
    random.Random(3).shuffle(ranges)
    results = [upload(service, data, s, e) for s, e in ranges]
    assert [r.complete for r in results] == [False] * (len(ranges) - 1) + [True]
    document = store.document(KEY)
    assert document is not None
    assert document.data == data
    assert document.content_type == "application/pdf"
    assert document.metadata["sessionid"] == results[-1].session.id
    assert results[-1].session.status == COMMITTED
    assert service.get(ALICE_RW, KEY).missing == []
    assert store.calls["commit"] == 1


def test_each_accepted_segment_shrinks_the_missing_ranges(service: UploadSessionService) -> None:
    data = payload(100)
    service.create(ALICE_RW, KEY, request(100))
    assert upload(service, data, 40, 59).session.missing == [(0, 39), (60, 99)]
    assert upload(service, data, 0, 0).session.missing == [(1, 39), (60, 99)]
    assert upload(service, data, 60, 99).session.missing == [(1, 39)]
    assert service.get(ALICE_RW, KEY).missing == [(1, 39)]


def test_a_one_segment_document_completes_at_once(
    service: UploadSessionService, store: InMemoryStorage
) -> None:
    service.create(ALICE_RW, KEY, request(1))
    result = upload(service, b"x", 0, 0)
    assert result.complete and result.session.missing == []
    assert store.document(KEY) is not None and store.document(KEY).data == b"x"  # type: ignore[union-attr]


def test_nothing_is_committed_before_the_last_byte(
    service: UploadSessionService, store: InMemoryStorage
) -> None:
    data = payload(100)
    service.create(ALICE_RW, KEY, request(100))
    upload(service, data, 0, 49)
    upload(service, data, 51, 99)
    assert store.document(KEY) is None
    assert store.document_exists(KEY) is False


def test_an_identical_retry_changes_nothing(
    service: UploadSessionService, store: InMemoryStorage, clock: Clock
) -> None:
    data = payload(100)
    service.create(ALICE_RW, KEY, request(100))
    first = upload(service, data, 10, 19)
    before = snapshot(store)
    writes = (store.calls["stage"], store.calls["replace_session"])
    clock.advance(60)
    again = upload(service, data, 10, 19)
    assert again.session == first.session and not again.complete
    assert snapshot(store) == before
    assert (store.calls["stage"], store.calls["replace_session"]) == writes


def test_an_identical_retry_after_completion_reports_complete_and_commits_nothing_new(
    service: UploadSessionService, store: InMemoryStorage
) -> None:
    data = payload(30)
    service.create(ALICE_RW, KEY, request(30))
    upload(service, data, 0, 14)
    upload(service, data, 15, 29)
    commits = store.calls["commit"]
    retry = upload(service, data, 0, 14)
    assert retry.complete and retry.session.missing == []
    assert store.calls["commit"] == commits
    assert store.document(KEY).data == data  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("start", "end", "different_bytes"),
    [
        (10, 19, True),  # same range, other bytes
        (5, 14, False),  # straddles the start
        (15, 24, False),  # straddles the end
        (12, 15, False),  # inside
        (0, 99, False),  # covers
        (19, 19, False),  # the last received byte
    ],
)
def test_an_overlapping_different_segment_is_refused_and_changes_nothing(
    service: UploadSessionService,
    store: InMemoryStorage,
    start: int,
    end: int,
    different_bytes: bool,
) -> None:
    data = payload(100)
    service.create(ALICE_RW, KEY, request(100))
    upload(service, data, 10, 19)
    before = snapshot(store)
    staged_before = store.staged(KEY)
    sent = payload(100, seed=99) if different_bytes else data
    with pytest.raises(InvalidRange) as caught:
        upload(service, sent, start, end)
    assert caught.value.size == 100
    assert snapshot(store) == before
    assert store.staged(KEY) == staged_before


@pytest.mark.parametrize(
    ("start", "end", "total"),
    [(0, 9, 101), (0, 9, 99), (95, 104, 100), (100, 100, 100), (0, 100, 100)],
)
def test_a_range_outside_the_session_is_refused_with_its_size(
    service: UploadSessionService, store: InMemoryStorage, start: int, end: int, total: int
) -> None:
    service.create(ALICE_RW, KEY, request(100))
    before = snapshot(store)
    data = payload(200)
    with pytest.raises(InvalidRange) as caught:
        upload(service, data, start, end, total=total)
    assert caught.value.size == 100
    assert caught.value.headers() == {"Content-Range": "bytes */100"}
    assert snapshot(store) == before
    assert store.staged(KEY) == {}


def test_if_match_accepts_the_session_id_the_current_etag_or_a_star(
    service: UploadSessionService,
) -> None:
    data = payload(40)
    created = service.create(ALICE_RW, KEY, request(40))
    upload(service, data, 0, 9, if_match=(created.id,))
    upload(service, data, 10, 19, if_match=(created.id.upper(),))
    upload(service, data, 20, 29, if_match=(render(service.get(ALICE_RW, KEY))[1],))
    assert upload(service, data, 30, 39, if_match=("*",)).complete


def test_if_match_accepts_any_of_several_tags(service: UploadSessionService) -> None:
    created = service.create(ALICE_RW, KEY, request(10))
    assert upload(service, payload(10), 0, 9, if_match=('"stale"', created.id)).complete


def test_a_stale_etag_fails_the_precondition_and_changes_nothing(
    service: UploadSessionService, store: InMemoryStorage
) -> None:
    data = payload(40)
    service.create(ALICE_RW, KEY, request(40))
    stale = render(service.get(ALICE_RW, KEY))[1]
    upload(service, data, 0, 9, if_match=(stale,))
    before = snapshot(store)
    for tag in (stale, '"00000000000000000000000000000000"', "W/" + stale, "other"):
        with pytest.raises(PreconditionFailed):
            upload(service, data, 10, 19, if_match=(tag,))
    assert snapshot(store) == before


def test_each_accepted_segment_slides_the_expiry(
    service: UploadSessionService, clock: Clock
) -> None:
    data = payload(30)
    created = service.create(ALICE_RW, KEY, request(30))
    clock.advance(TTL - 1)
    first = upload(service, data, 0, 9)
    assert first.session.expires == clock.now + timedelta(seconds=TTL) > created.expires
    clock.advance(TTL - 1)  # past the original expiry, within the slid one
    second = upload(service, data, 10, 19)
    assert second.session.expires == clock.now + timedelta(seconds=TTL)
    assert service.get(ALICE_RW, KEY).expires == second.session.expires


def test_a_refused_segment_does_not_slide_the_expiry(
    service: UploadSessionService, clock: Clock
) -> None:
    data = payload(30)
    service.create(ALICE_RW, KEY, request(30))
    upload(service, data, 0, 9)
    expires = service.get(ALICE_RW, KEY).expires
    clock.advance(60)
    with pytest.raises(InvalidRange):
        upload(service, data, 5, 14)
    upload(service, data, 0, 9)  # identical retry
    assert service.get(ALICE_RW, KEY).expires == expires


def test_an_expired_session_refuses_uploads(service: UploadSessionService, clock: Clock) -> None:
    service.create(ALICE_RW, KEY, request(30))
    clock.advance(TTL)
    with pytest.raises(ItemNotFound):
        upload(service, payload(30), 0, 9)


# -- concurrency and crashes --------------------------------------------------------------


def test_a_lost_race_is_retried_and_no_range_is_lost(
    service: UploadSessionService, store: InMemoryStorage, clock: Clock
) -> None:
    data = payload(20)
    service.create(ALICE_RW, KEY, request(20))
    other_process = make_service(store, clock)  # its own recorder: writes race ours
    interfered = False

    def concurrent_writer(operation: str) -> None:
        nonlocal interfered
        if operation == "replace_session" and not interfered:
            interfered = True
            upload(other_process, data, 10, 19)  # lands between our read and our write

    store.before = concurrent_writer
    result = upload(service, data, 0, 9)
    assert service.write_conflicts >= 1
    assert result.complete
    assert store.document(KEY).data == data  # type: ignore[union-attr]


def test_an_injected_write_conflict_is_retried(
    service: UploadSessionService, store: InMemoryStorage
) -> None:
    data = payload(20)
    service.create(ALICE_RW, KEY, request(20))
    store.fail("replace_session", ConcurrencyConflict("injected"), times=2)
    result = upload(service, data, 0, 9)
    assert service.write_conflicts == 2
    assert result.session.missing == [(10, 19)]
    assert service.get(ALICE_RW, KEY).missing == [(10, 19)]
    assert store.calls["stage"] == 1  # staged once, recorded on the third attempt


def test_endless_write_conflicts_give_up_with_service_unavailable(
    service: UploadSessionService, store: InMemoryStorage
) -> None:
    service.create(ALICE_RW, KEY, request(20))
    store.fail("replace_session", ConcurrencyConflict("injected"), times=1000)
    with pytest.raises(ServiceUnavailable):
        upload(service, payload(20), 0, 9)


@pytest.mark.parametrize("processes", [1, 2])
def test_parallel_writers_racing_lose_no_range(
    store: InMemoryStorage, clock: Clock, processes: int
) -> None:
    """One process records parallel segments in rounds (no lost race at all); two processes
    race for the row and the loser re-applies its round."""
    services = [
        make_service(store, clock, sleep=lambda seconds: time.sleep(seconds / 10))
        for _ in range(processes)
    ]
    service = services[0]
    size, step, workers = 4096, 128, 8
    data = payload(size)
    service.create(ALICE_RW, KEY, request(size))
    ranges = chunks(size, step)
    random.Random(11).shuffle(ranges)
    # The first `workers` segments wait for each other between reading the session and
    # writing it, so they all read the same version and all but one must lose the race.
    gate = threading.Barrier(workers, timeout=10)
    stages = iter(range(workers))

    slow_writes = iter(range(3))

    def hold_first_stages(operation: str) -> None:
        if operation == "stage" and next(stages, None) is not None:
            gate.wait()
        elif operation == "replace_session" and next(slow_writes, None) is not None:
            time.sleep(0.1)  # a storage round trip: the segments arriving meanwhile queue

    store.before = hold_first_stages
    results: list[UploadResult] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    work = iter(ranges)

    def worker(number: int) -> None:
        while True:
            with lock:
                item = next(work, None)
            if item is None:
                return
            try:
                result = upload(services[number % processes], data, *item)
            except BaseException as exc:
                errors.append(exc)
                return
            with lock:
                results.append(result)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(results) == len(ranges)
    conflicts = sum(s.write_conflicts for s in services)
    rounds = sum(s.recorder.rounds for s in services)
    if processes == 1:
        assert conflicts == 0
        assert rounds < len(ranges)  # the held segments were recorded together
    else:
        assert conflicts > 0
    assert sum(r.complete for r in results) == 1
    assert service.get(ALICE_RW, KEY).missing == []
    assert store.document(KEY).data == data  # type: ignore[union-attr]


def test_a_crash_between_staging_and_recording_is_repaired_by_the_retry(
    service: UploadSessionService, store: InMemoryStorage
) -> None:
    data = payload(20)
    service.create(ALICE_RW, KEY, request(20))
    upload(service, data, 0, 9)
    store.fail("replace_session", ServiceUnavailable("storage went away"))
    with pytest.raises(ServiceUnavailable):
        upload(service, data, 10, 19)
    assert service.get(ALICE_RW, KEY).missing == [(10, 19)]  # staged, not recorded
    assert len(store.staged(KEY)) == 2
    result = upload(service, data, 10, 19)
    assert result.complete
    assert store.document(KEY).data == data  # type: ignore[union-attr]


def test_a_failed_commit_is_finished_by_an_identical_retry(
    service: UploadSessionService, store: InMemoryStorage
) -> None:
    data = payload(20)
    service.create(ALICE_RW, KEY, request(20))
    upload(service, data, 0, 9)
    store.fail("commit", ServiceUnavailable("blob storage went away"))
    with pytest.raises(ServiceUnavailable):
        upload(service, data, 10, 19)
    assert store.document(KEY) is None
    assert service.get(ALICE_RW, KEY).missing == []  # recorded, not committed
    result = upload(service, data, 10, 19)
    assert result.complete and result.session.status == COMMITTED
    assert store.document(KEY).data == data  # type: ignore[union-attr]


def test_a_retry_of_any_segment_finishes_an_unmarked_commit(
    service: UploadSessionService, store: InMemoryStorage
) -> None:
    data = payload(20)
    service.create(ALICE_RW, KEY, request(20))
    upload(service, data, 0, 9)

    def fail_the_next_write(operation: str) -> None:
        if operation == "commit":
            store.fail("replace_session", ServiceUnavailable("table went away"))

    store.before = fail_the_next_write
    with pytest.raises(ServiceUnavailable):
        upload(service, data, 10, 19)
    store.before = None
    assert store.document(KEY).data == data  # type: ignore[union-attr]
    assert store.get_session(KEY).status != COMMITTED  # type: ignore[union-attr]
    result = upload(service, data, 0, 9)  # the other segment: also identical
    assert result.complete and result.session.status == COMMITTED
    assert store.get_session(KEY).status == COMMITTED  # type: ignore[union-attr]
    assert store.document(KEY).data == data  # type: ignore[union-attr]


def test_a_block_lost_before_commit_is_asked_for_again(
    service: UploadSessionService, store: InMemoryStorage
) -> None:
    data = payload(30)
    service.create(ALICE_RW, KEY, request(30))
    upload(service, data, 0, 9)
    upload(service, data, 10, 19)
    lost = Segment(0, 9, hashlib.md5(data[0:10]).digest()).block_id
    store.drop_staged_block(KEY, lost)
    result = upload(service, data, 20, 29)
    assert not result.complete
    assert result.session.missing == [(0, 9)]
    assert service.get(ALICE_RW, KEY).missing == [(0, 9)]
    assert store.document(KEY) is None
    assert upload(service, data, 0, 9).complete
    assert store.document(KEY).data == data  # type: ignore[union-attr]


# -- delete -------------------------------------------------------------------------------


def test_the_creator_deletes_the_session_and_its_staged_bytes(
    service: UploadSessionService, store: InMemoryStorage
) -> None:
    service.create(ALICE_RW, KEY, request(30))
    upload(service, payload(30), 0, 9)
    assert store.staged(KEY) != {}
    service.delete(ALICE_RW, KEY)
    assert store.staged(KEY) == {}
    assert store.sessions() == []
    with pytest.raises(ItemNotFound):
        service.get(ALICE_RW, KEY)
    with pytest.raises(ItemNotFound):
        service.delete(ALICE_RW, KEY)


def test_after_a_delete_the_document_can_be_started_again(service: UploadSessionService) -> None:
    old = service.create(ALICE_RW, KEY, request(30))
    service.delete(ALICE_RW, KEY)
    new = service.create(ALICE_RW, KEY, request(30))
    assert new.id != old.id and new.missing == [(0, 29)]


@pytest.mark.parametrize(
    "other",
    [ADMIN, DAEMON, delegated(BOB, "PrintJob.Read.All", "PrintJob.ReadWrite", "Printer.Read.All")],
)
def test_someone_who_sees_but_did_not_create_the_session_cannot_delete_it(
    service: UploadSessionService, store: InMemoryStorage, other: Principal
) -> None:
    service.create(ALICE_RW, KEY, request(30))
    upload(service, payload(30), 0, 9)
    before, staged = snapshot(store), store.staged(KEY)
    with pytest.raises(AccessDenied):
        service.delete(other, KEY)
    assert snapshot(store) == before and store.staged(KEY) == staged


def test_an_application_deletes_its_own_session(service: UploadSessionService) -> None:
    service.create(DAEMON, KEY, request(30))
    with pytest.raises(AccessDenied):
        service.delete(application(app_id=OTHER_APP), KEY)
    service.delete(DAEMON, KEY)
    with pytest.raises(ItemNotFound):
        service.get(DAEMON, KEY)


def test_deleting_a_completed_session_keeps_the_document(
    service: UploadSessionService, store: InMemoryStorage
) -> None:
    data = payload(30)
    service.create(ALICE_RW, KEY, request(30))
    upload(service, data, 0, 29)
    service.delete(ALICE_RW, KEY)
    assert store.document(KEY).data == data  # type: ignore[union-attr]
    with pytest.raises(ItemNotFound):
        service.get(ALICE_RW, KEY)


# -- purge --------------------------------------------------------------------------------


def _three_sessions(service: UploadSessionService, data: bytes) -> Iterator[DocumentKey]:
    """A partial, a complete and a (later) renewed session, in that order."""
    documents = [
        "aaaaaaaa-0000-4000-8000-000000000001",
        "aaaaaaaa-0000-4000-8000-000000000002",
        "aaaaaaaa-0000-4000-8000-000000000003",
    ]
    for document in documents:
        key = key_of(document=document)
        service.create(ALICE_RW, key, request(len(data)))
        yield key


def test_purge_removes_expired_sessions_and_their_staged_bytes_only(
    service: UploadSessionService, store: InMemoryStorage, clock: Clock
) -> None:
    data = payload(30)
    partial, complete, renewed = _three_sessions(service, data)
    upload(service, data, 0, 9, key=partial)
    upload(service, data, 0, 29, key=complete)
    clock.advance(TTL / 2)
    upload(service, data, 0, 9, key=renewed)
    clock.advance(TTL / 2 + 1)

    report = service.purge()

    assert (report.sessions, report.staged_discarded) == (2, 1)
    assert store.get_session(partial) is None and store.staged(partial) == {}
    assert store.get_session(complete) is None
    assert store.document(complete).data == data  # type: ignore[union-attr]
    assert service.get(ALICE_RW, renewed).missing == [(10, 29)]
    assert store.staged(renewed) != {}


def test_purge_is_idempotent(
    service: UploadSessionService, store: InMemoryStorage, clock: Clock
) -> None:
    data = payload(30)
    partial, complete, _ = _three_sessions(service, data)
    upload(service, data, 0, 9, key=partial)
    upload(service, data, 0, 29, key=complete)
    clock.advance(TTL + 1)
    assert service.purge().sessions == 3
    again = service.purge()
    assert (again.sessions, again.staged_discarded) == (0, 0)
    assert store.sessions() == []
    assert store.document(complete).data == data  # type: ignore[union-attr]


def test_purge_leaves_live_sessions_alone(
    service: UploadSessionService, store: InMemoryStorage, clock: Clock
) -> None:
    service.create(ALICE_RW, KEY, request(30))
    upload(service, payload(30), 0, 9)
    before, staged = snapshot(store), store.staged(KEY)
    clock.advance(TTL - 1)
    assert service.purge().sessions == 0
    assert snapshot(store) == before and store.staged(KEY) == staged


def test_purge_spares_a_session_renewed_after_it_was_listed(
    service: UploadSessionService, store: InMemoryStorage, clock: Clock
) -> None:
    data = payload(30)
    service.create(ALICE_RW, KEY, request(30))
    upload(service, data, 0, 9)
    clock.advance(TTL + 1)
    stored = store.get_session(KEY)
    assert stored is not None

    def renew_first(operation: str) -> None:
        if operation == "replace_session":  # the purge's transition to discarding
            store.before = None
            current = store.get_session(KEY)
            assert current is not None
            store.replace_session(replace(current, expires=clock.now + timedelta(seconds=TTL)))

    store.before = renew_first
    assert service.purge().sessions == 0
    assert store.get_session(KEY) is not None
    assert store.staged(KEY) != {}


def test_an_identical_retry_carrying_the_etag_its_first_attempt_changed_is_accepted(
    service: UploadSessionService, store: InMemoryStorage
) -> None:
    data = payload(100)
    session = service.create(ALICE_RW, KEY, request(100))
    etag = render(session)[1]
    first = upload(service, data, 0, 49, if_match=(etag,))
    before = snapshot(store)
    retry = upload(service, data, 0, 49, if_match=(etag,))  # the first response was lost
    assert retry.complete is False
    assert retry.session.missing == first.session.missing == [(50, 99)]
    assert snapshot(store) == before  # nothing rewritten
    with pytest.raises(PreconditionFailed):
        upload(service, data, 50, 99, if_match=(etag,))  # a new segment with a stale ETag


def test_suspending_through_the_service_takes_effect_at_once_in_that_process(
    service: UploadSessionService,
) -> None:
    service.get(ALICE_RW, service.create(ALICE_RW, KEY, request()).key)  # active state cached
    suspended = service.set_subscription(TENANT, active=False)
    assert not suspended.active
    assert service.subscription(TENANT) == suspended
    with pytest.raises(AccessDenied, match="subscription"):
        service.get(ALICE_RW, KEY)
    service.set_subscription(TENANT, active=True)
    assert service.get(ALICE_RW, KEY).key == KEY
