"""Issue 11: each storage step of the PURGE failed (500/503), dropped, its reply lost, or the
purging process SIGKILLed at that moment — for an expired incomplete session (discarded) and an
expired complete one whose commit had failed (committed). The purge runs in a process of its
own (``tests/faults/purge_child.py``), its clock past the TTL; then one more purge, fault-free,
and the invariants through the HTTP API and the blob: an incomplete session leaves no blob and
the document can start over; a complete one is committed byte-exact and stays readable.

The step tables are checked against what a fault-free purge really sends, so a purge that gains
a storage request fails here until that request has its fault cases."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import partial

import httpx
import pytest

from tests.e2e.conftest import Api
from tests.faults.proxy import FaultProxy, Rule
from tests.faults.test_create_upload_faults import FAULTS
from tests.faults.test_lifecycle_faults import (
    HALF,
    NO_KEEPALIVE,
    SIZE,
    blob_or_none,
    is_any,
    is_commit,
    post,
    purger,
)
from tests.processes import AZURITE_KEY, REPO
from tests.reliability.conftest import blob_bytes, create_session, new_url

pytestmark = pytest.mark.usefixtures("no_faults_left")

#: (role, method, does this request belong to the step, given the document's id)
Step = tuple[str, str, Callable[[str, str, bytes], bool]]


def steps_of(document: str) -> dict[str, Step]:
    """Every storage request a purge sends for one due session, by step, in order."""

    def ours(target: str) -> bool:
        return document in target.lower()

    def row(target: str) -> bool:
        return "/uploadsessions(" in target and ours(target)

    return {
        "index-query": ("table", "GET", lambda _m, t, _b: "/uploadexpiries()" in t),
        "row-check": ("table", "GET", lambda _m, t, _b: row(t) and "$select=" in t),
        "row-read": ("table", "GET", lambda _m, t, _b: row(t) and "$select=" not in t),
        "commit": ("blob", "PUT", lambda m, t, b: is_commit(m, t, b) and ours(t)),
        "mark-committed": ("table", "PUT", lambda _m, t, _b: row(t)),
        "row-to-discarding": ("table", "PUT", lambda _m, t, _b: row(t)),
        "placeholder-delete": ("blob", "DELETE", lambda _m, t, _b: ours(t)),
        "row-delete": ("table", "DELETE", lambda _m, t, _b: row(t)),
        "index-delete": ("table", "DELETE", lambda _m, t, _b: "/uploadexpiries(" in t and ours(t)),
    }


#: what the purge does to each kind of due session, step by step
SCENARIOS: dict[str, list[str]] = {
    "incomplete": [
        "index-query",
        "row-check",
        "row-read",
        "row-to-discarding",
        "placeholder-delete",
        "row-delete",
        "index-delete",
    ],
    "complete": [
        "index-query",
        "row-check",
        "row-read",
        "commit",
        "mark-committed",
        "row-delete",
        "index-delete",
    ],
}


def due_session(
    client: httpx.Client, api: Api, proxy: FaultProxy, scenario: str
) -> tuple[str, bytes]:
    """A session the purge will find due: half sent, or complete with its commit failed."""
    data = random.randbytes(SIZE)
    url = new_url(api)
    create_session(client, api, url, SIZE)
    assert post(client, api, url, data, 0).status_code == 202
    if scenario == "complete":
        proxy.add(Rule("blob", "PUT", is_commit, "fail503", 3))
        assert post(client, api, url, data, HALF).status_code == 503
        proxy.clear()
        assert blob_or_none(api, url) == b""  # the placeholder: acknowledged, not committed
    return url, data


def document_of(url: str) -> str:
    return url.split("/")[-2].lower()


def purge_in_a_child(proxy: FaultProxy, kill_on: Rule | None = None) -> int:
    """One purge in its own process through the proxy; ``kill_on`` SIGKILLs it at that rule.
    The kill is armed just after the start, long before the child has imported the storage SDK
    and reached storage; were it ever late, the child would exit 0 and the test would say so."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.purge_child", proxy.connection_string(AZURITE_KEY)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if kill_on is not None:
        kill_on.then = child.kill
    return child.wait(120)


@pytest.fixture
def drained(proxy: FaultProxy) -> Iterator[None]:
    """Nothing else is due: the purge under test meets only the test's own session."""
    proxy.clear()
    purger(proxy).purge()
    yield


def assert_finished(client: httpx.Client, api: Api, url: str, data: bytes, scenario: str) -> None:
    body = {"size": SIZE, "contentType": "application/pdf", "documentName": "b.pdf"}
    if scenario == "incomplete":  # cancel leaves nothing; the document can start over
        assert blob_or_none(api, url) is None
        assert client.get(url, headers=api.headers()).status_code == 404
        again = client.put(url, json=body, headers=api.headers())
        assert again.status_code == 200, again.text
        assert again.json()["missingRanges"] == [{"start": "0", "end": str(SIZE - 1)}]
    else:  # complete means durable: committed byte-exact, readable after the purge
        assert blob_bytes(api, url) == data
        document = url.removesuffix("/uploadSession") + "/$value"
        read = client.get(document, headers=api.headers(), follow_redirects=False)
        assert read.status_code == 302, read.text
        again = client.put(url, json=body, headers=api.headers())
        assert again.status_code == 409, again.text


@pytest.mark.usefixtures("drained")
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_step_table_is_every_storage_request_of_a_purge(
    faulty_api: Api, proxy: FaultProxy, scenario: str
) -> None:
    with httpx.Client(timeout=30, limits=NO_KEEPALIVE) as client:
        url, data = due_session(client, faulty_api, proxy, scenario)
        steps = steps_of(document_of(url))
        seen: list[str] = []  # each request the purge sends, named by the step it matches
        for name in SCENARIOS[scenario]:
            role, method, match = steps[name]
            proxy.add(Rule(role, method, match, "forward", 100, partial(seen.append, name)))
        for role in ("blob", "table"):
            unnamed = partial(seen.append, f"a {role} request without a fault case")
            proxy.add(
                Rule(role, "GET|HEAD|PUT|POST|PATCH|MERGE|DELETE", is_any, "forward", 100, unnamed)
            )
        assert purge_in_a_child(proxy) == 0
        proxy.clear()
        assert seen == SCENARIOS[scenario]
        assert_finished(client, faulty_api, url, data, scenario)


@pytest.mark.usefixtures("drained")
@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize(
    ("scenario", "step"), [(c, s) for c, names in SCENARIOS.items() for s in names]
)
def test_a_purge_interrupted_at_any_storage_step_is_finished_by_the_next_purge(
    faulty_api: Api, proxy: FaultProxy, scenario: str, step: str, fault: str
) -> None:
    with httpx.Client(timeout=30, limits=NO_KEEPALIVE) as client:
        url, data = due_session(client, faulty_api, proxy, scenario)
        role, method, match = steps_of(document_of(url))[step]
        action, times = FAULTS[fault]
        # each scenario sends one row PUT, so the first request that matches is the step
        rule = proxy.add(Rule(role, method, match, action, times))
        code = purge_in_a_child(proxy, rule if fault == "kill" else None)
        proxy.clear()
        assert rule.hits >= 1, "the step was never reached"
        if fault == "kill":
            assert code == -9, code
        # one more purge run finishes whatever the interrupted one left
        purger(proxy).purge()
        assert_finished(client, faulty_api, url, data, scenario)
