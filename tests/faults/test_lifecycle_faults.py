"""Issue 11: each storage step of commit and cancel failed (500/503), dropped, its reply lost,
or the host SIGKILLed at that moment; then the invariants through the HTTP API and the blob:
complete means durable, cancel leaves nothing, a new PUT for the document succeeds, and a
black-holed storage answers 503 + Retry-After within 15 s."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError

from tests.e2e.conftest import Api
from tests.faults import purge_child
from tests.faults.proxy import FaultProxy, Rule
from tests.reliability.conftest import blob_bytes, create_session, new_url, segment_headers
from uploadsession.service import UploadSessionService

pytestmark = pytest.mark.usefixtures("no_faults_left")

SIZE = 64 * 1024
#: A killed host leaves dead keep-alive connections behind: one connection per request.
NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)
HALF = SIZE // 2


def is_commit(_m: str, target: str, body: bytes) -> bool:
    return "comp=blocklist" in target and b"<Latest>" in body


def is_any(_m: str, _t: str, _b: bytes) -> bool:
    return True


def is_entity(_m: str, target: str, _b: bytes) -> bool:
    return "PartitionKey=" in target


def post(client: httpx.Client, api: Api, url: str, data: bytes, start: int) -> httpx.Response:
    chunk = data[start : start + HALF]
    return client.post(
        url + "/$value", content=chunk, headers=segment_headers(api, chunk, start, len(data))
    )


def blob_or_none(api: Api, url: str) -> bytes | None:
    try:
        return blob_bytes(api, url)
    except ResourceNotFoundError:
        return None


KILLED: list[int] = []  # pids the proxy killed, waited for by restart_if_killed


def killer(api: Api) -> Callable[[], None]:
    def kill() -> None:
        proc = api.server.proc
        if proc is not None:
            proc.send_signal(signal.SIGKILL)
            KILLED.append(proc.pid)

    return kill


def restart_if_killed(api: Api) -> None:
    proc = api.server.proc
    if proc is not None and proc.pid in KILLED:
        proc.wait(10)
        api.server.proc = None
        api.server.start()


def purger(proxy: FaultProxy, hours: int = 48) -> UploadSessionService:
    """The purge, in-process on the same tables through the proxy, its clock past the TTL."""
    from tests.processes import AZURITE_KEY

    return purge_child.purger(proxy.connection_string(AZURITE_KEY), hours)


# (role, method, predicate, action, times): the commit's Put Block List
# (3 hits: more than any retry policy of the storage SDK makes, before or after issue 11)
COMMIT_FAULTS = {
    "commit-503": ("fail503", 3),
    "commit-500": ("fail500", 3),
    "commit-reply-lost": ("lose_reply", 1),
    "commit-dropped": ("drop", 3),
    "commit-kill": ("lose_reply", 1),
}


@pytest.mark.parametrize("fault", list(COMMIT_FAULTS))
def test_a_commit_that_failed_is_finished_by_the_next_get_never_said_complete_before(
    faulty_api: Api, proxy: FaultProxy, fault: str
) -> None:
    data = random.randbytes(SIZE)
    url = new_url(faulty_api)
    action, times = COMMIT_FAULTS[fault]
    with httpx.Client(timeout=30, limits=NO_KEEPALIVE) as client:
        create_session(client, faulty_api, url, SIZE)
        assert post(client, faulty_api, url, data, 0).status_code == 202
        then = killer(faulty_api) if fault == "commit-kill" else None
        proxy.add(Rule("blob", "PUT", is_commit, action, times, then))
        try:
            last = post(client, faulty_api, url, data, HALF)
            status: int | None = last.status_code
        except httpx.TransportError:
            status = None
        restart_if_killed(faulty_api)
        if status in (201,):  # the SDK's retry found our own commit: fine
            assert blob_bytes(faulty_api, url) == data
        else:
            assert status in (None, 503), status
            # while storage keeps failing the commit, GET says 503, never "complete"
            proxy.add(Rule("blob", "PUT", is_commit, "fail503", 3))
            held = client.get(url, headers=faulty_api.headers())
            if held.status_code == 200:  # the killed commit had landed: ours, so complete
                assert blob_bytes(faulty_api, url) == data
            else:
                assert held.status_code == 503 and held.headers["Retry-After"], held.text
                proxy.clear()
        read = client.get(url, headers=faulty_api.headers())
        assert read.status_code == 200, read.text
        assert read.json()["missingRanges"] == []
        assert blob_bytes(faulty_api, url) == data


# storage steps of a cancel: (role, method, predicate)
CANCEL_STEPS: dict[str, tuple[str, str, Callable[[str, str, bytes], bool]]] = {
    "row-to-discarding": ("table", "PUT", is_entity),
    "placeholder-delete": ("blob", "DELETE", is_any),
    "row-delete": ("table", "DELETE", is_entity),
}
CANCEL_FAULTS = ["fail503", "fail500", "drop", "lose_reply", "kill"]


@pytest.mark.parametrize("fault", CANCEL_FAULTS)
@pytest.mark.parametrize("step", list(CANCEL_STEPS))
def test_a_cancel_interrupted_at_any_step_leaves_nothing_and_the_document_can_start_over(
    faulty_api: Api, proxy: FaultProxy, step: str, fault: str
) -> None:
    data = random.randbytes(SIZE)
    url = new_url(faulty_api)
    role, method, match = CANCEL_STEPS[step]
    with httpx.Client(timeout=30, limits=NO_KEEPALIVE) as client:
        create_session(client, faulty_api, url, SIZE)
        assert post(client, faulty_api, url, data, 0).status_code == 202
        kill = fault == "kill"
        proxy.add(
            Rule(
                role,
                method,
                match,
                "lose_reply" if kill else fault,
                3,  # more than the SDK retries
                killer(faulty_api) if kill else None,
            )
        )
        try:
            first: int | None = client.delete(url, headers=faulty_api.headers()).status_code
        except httpx.TransportError:
            first = None
        restart_if_killed(faulty_api)
        proxy.clear()
        assert first in (None, 204, 503), first
        if first != 204:
            retry = client.delete(url, headers=faulty_api.headers())
            assert retry.status_code in (204, 404), retry.text
            if retry.status_code == 404:  # the retry found nothing: only a purge may finish
                purger(proxy).purge()
        assert blob_or_none(faulty_api, url) is None
        assert client.get(url, headers=faulty_api.headers()).status_code == 404
        again = client.put(
            url,
            json={"size": SIZE, "contentType": "application/pdf", "documentName": "b.pdf"},
            headers=faulty_api.headers(),
        )
        assert again.status_code == 200, again.text


def is_placeholder_put(_m: str, target: str, body: bytes) -> bool:
    return "comp=blocklist" in target and b"<Latest>" not in body


def is_blob_write(_m: str, target: str, _b: bytes) -> bool:
    return "/documents/" in target and "comp=block&" not in target


def test_a_cancels_storage_request_applied_late_changes_nothing_of_the_next_session(
    faulty_api: Api, proxy: FaultProxy
) -> None:
    """The first blob write of a cancel is held in the network; the SDK times out and retries,
    the cancel completes, a new session of the document gets a segment acknowledged — and only
    then does storage apply the held request. The new session's bytes must be untouched."""
    first, second = random.randbytes(SIZE), random.randbytes(SIZE)
    url = new_url(faulty_api)
    applied = threading.Event()
    with httpx.Client(timeout=60, limits=NO_KEEPALIVE) as client:
        create_session(client, faulty_api, url, SIZE)
        assert post(client, faulty_api, url, first, 0).status_code == 202
        held = proxy.add(Rule("blob", "PUT|DELETE", is_blob_write, "hold", 1, applied.set))
        cancelled = client.delete(url, headers=faulty_api.headers())
        assert cancelled.status_code == 204, cancelled.text
        assert held.hits == 1, "the cancel wrote no blob"
        create_session(client, faulty_api, url, SIZE)
        assert post(client, faulty_api, url, second, 0).status_code == 202
        proxy.release()
        assert applied.wait(30), "the held request never reached storage"
        gaps = client.get(url, headers=faulty_api.headers()).json()["missingRanges"]
        assert gaps == [{"start": str(HALF), "end": str(SIZE - 1)}]
        last = post(client, faulty_api, url, second, HALF)
        assert last.status_code == 201, last.text
    assert blob_bytes(faulty_api, url) == second


def test_a_session_whose_placeholder_a_failed_create_left_unput_is_fenced_then_cancelled(
    faulty_api: Api, proxy: FaultProxy
) -> None:
    """The create fails at the placeholder (503 past the SDK's retries): the row exists
    without one. An upload to it puts the placeholder before staging; a cancel leaves nothing."""
    data = random.randbytes(SIZE)
    url = new_url(faulty_api)
    body = {"size": SIZE, "contentType": "application/pdf", "documentName": "a.pdf"}
    with httpx.Client(timeout=30, limits=NO_KEEPALIVE) as client:
        proxy.add(Rule("blob", "PUT", is_placeholder_put, "fail503", 3))
        failed = client.put(url, json=body, headers=faulty_api.headers())
        proxy.clear()
        assert failed.status_code == 503, failed.text
        with pytest.raises(ResourceNotFoundError):
            faulty_api.document_blob(url).get_blob_properties()
        assert post(client, faulty_api, url, data, 0).status_code == 202
        metadata = faulty_api.document_blob(url).get_blob_properties().metadata
        assert "pendingsession" in metadata, metadata
        assert client.delete(url, headers=faulty_api.headers()).status_code == 204
        assert blob_or_none(faulty_api, url) is None
        again = client.put(url, json=body, headers=faulty_api.headers())
        assert again.status_code == 200, again.text
        assert post(client, faulty_api, url, data, 0).status_code == 202
        assert post(client, faulty_api, url, data, HALF).status_code == 201
    assert blob_bytes(faulty_api, url) == data


def test_black_holed_storage_answers_503_within_15_s_and_the_upload_then_completes(
    faulty_api: Api, proxy: FaultProxy
) -> None:
    data = random.randbytes(SIZE)
    url = new_url(faulty_api)
    with httpx.Client(timeout=60) as client:
        create_session(client, faulty_api, url, SIZE)
        assert post(client, faulty_api, url, data, 0).status_code == 202
        proxy.hold_all = True
        calls: list[Callable[[], httpx.Response]] = [
            lambda: client.get(url, headers=faulty_api.headers()),
            lambda: post(client, faulty_api, url, data, HALF),
        ]
        for call in calls:
            began = time.monotonic()
            response = call()
            took = time.monotonic() - began
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"]
            assert took < 15, took
        proxy.release()
        last = post(client, faulty_api, url, data, HALF)
        assert last.status_code == 201, last.text
    assert blob_bytes(faulty_api, url) == data
