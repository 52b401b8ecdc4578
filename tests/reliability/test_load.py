"""Load: 32 concurrent clients mixing PUT, POST segments, GET and DELETE on many sessions
through `uploadsession serve` + Azurite, then an audit of every session.

Held when: no 5xx and no answer a client could not expect; every GET during the run shows
nothing acknowledged as missing; at the end every session's ``missingRanges`` is exactly the
complement of the segments acknowledged with a 2xx, every completed document is byte-identical,
every deleted session is gone. Throughput and p99 latency are printed.
``LOAD_SECONDS`` sets the duration (10 in ``make test``, 60 in ``make load``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.e2e.conftest import Api, start_api
from tests.processes import Azurite
from tests.reliability.conftest import complement

SECONDS = float(os.environ.get("LOAD_SECONDS", "10"))
CLIENTS = 32
MAX_OPEN = 48  # sessions being uploaded at once
PER_SESSION = 4  # segments in flight per session (DESIGN: at least 4 in parallel)
KIB = 1024


@dataclass
class Doc:
    """One session: its bytes (from a seed), its segment plan, what was acknowledged."""

    url: str
    seed: int
    size: int
    pending: list[tuple[int, int]]
    session_id: str = ""
    acked: set[tuple[int, int]] = field(default_factory=set)
    in_flight: int = 0
    # Segments sent but not yet answered: the server may have recorded them already, so a
    # 201 (or missingRanges []) may reach the client before their own 202s do.
    sending: set[tuple[int, int]] = field(default_factory=set)
    state: str = "open"  # open → complete, or open → deleting → deleted
    completions: int = 0
    puts_in_flight: int = 0  # a repeated PUT after a DELETE would create a new session

    def data(self) -> bytes:
        return random.Random(self.seed).randbytes(self.size)

    def segment(self, start: int, end: int) -> bytes:
        return self.data()[start : end + 1]


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def record(self, method: str, status: int, seconds: float) -> None:
        with self.lock:
            self.statuses[(method, status)] += 1
            self.latencies.append(seconds)

    def problem(self, text: str) -> None:
        with self.lock:
            if len(self.problems) < 50:
                self.problems.append(text)


class Load:
    def __init__(self, api: Api, seconds: float) -> None:
        self.api = api
        self.deadline = time.monotonic() + seconds
        self.lock = threading.Lock()
        self.docs: list[Doc] = []
        self.tally = Tally()
        self.auth = api.headers(scp="PrintJob.ReadWrite Printer.Read.All")

    # -- picking work (under the lock) --

    def _open(self) -> list[Doc]:
        return [d for d in self.docs if d.state == "open"]

    def take_segment(self, rng: random.Random) -> tuple[Doc, tuple[int, int]] | None:
        with self.lock:
            ready = [d for d in self._open() if d.pending and d.in_flight < PER_SESSION]
            if not ready:
                return None
            doc = rng.choice(ready)
            doc.in_flight += 1
            segment = doc.pending.pop()
            doc.sending.add(segment)
            return doc, segment

    def call(self, client: httpx.Client, method: str, url: str, **kwargs: object) -> httpx.Response:
        started = time.perf_counter()
        response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
        self.tally.record(method, response.status_code, time.perf_counter() - started)
        if response.status_code >= 500:
            self.tally.problem(f"{method} {url}: {response.status_code} {response.text[:200]}")
        return response

    # -- operations --

    def create(self, client: httpx.Client, rng: random.Random) -> None:
        size = rng.randint(16 * KIB, 256 * KIB)
        step = rng.choice([4 * KIB, 8 * KIB, 16 * KIB, 32 * KIB, 5000, 12345])
        plan = [(s, min(s + step, size) - 1) for s in range(0, size, step)]
        rng.shuffle(plan)
        doc = Doc(self.api.session_url(), rng.getrandbits(64), size, plan)
        body = {
            "size": size,
            "contentType": "application/octet-stream",
            "documentName": f"load-{doc.seed:x}.bin",
        }
        response = self.call(client, "PUT", doc.url, json=body, headers=self.auth)
        if response.status_code != 200:
            self.tally.problem(f"PUT {doc.url}: {response.status_code} {response.text[:200]}")
            return
        doc.session_id = response.json()["id"]
        with self.lock:
            self.docs.append(doc)

    def upload(self, client: httpx.Client, rng: random.Random) -> bool:
        taken = self.take_segment(rng)
        if taken is None:
            return False
        doc, (start, end) = taken
        data = doc.segment(start, end)
        # Parallel uploaders use the session id as If-Match (the ETag changes per segment).
        if_match = rng.choice([doc.session_id, f'"{doc.session_id}"', "*"])
        response = self.call(
            client,
            "POST",
            doc.url + "/$value",
            content=data,
            headers={
                **self.auth,
                "Content-Type": "application/octet-stream",
                "If-Match": if_match,
                "Content-Range": f"bytes {start}-{end}/{doc.size}",
                "Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode(),
            },
        )
        with self.lock:
            doc.in_flight -= 1
            doc.sending.discard((start, end))
            if response.status_code in (201, 202):
                doc.acked.add((start, end))
                # Every byte must be acknowledged or still awaiting its answer.
                covered = sum(e - s + 1 for s, e in doc.acked | doc.sending) == doc.size
                if response.status_code == 201:
                    doc.completions += 1
                    if not covered:
                        self.tally.problem(f"201 before every byte was sent: {doc.url}")
                    doc.state = "complete" if doc.state == "open" else doc.state
                if response.json()["missingRanges"] == [] and not covered:
                    self.tally.problem(f"missingRanges [] too early: {doc.url}")
            elif response.status_code == 404 and doc.state in ("deleting", "deleted"):
                pass
            else:
                self.tally.problem(
                    f"POST {doc.url} {start}-{end}: {response.status_code} {response.text[:200]}"
                )
        return True

    def retry_acked(self, client: httpx.Client, rng: random.Random) -> None:
        """An identical retry of an acknowledged segment: a 2xx, nothing changes."""
        with self.lock:
            candidates = [d for d in self.docs if d.state in ("open", "complete") and d.acked]
            if not candidates:
                return
            doc = rng.choice(candidates)
            start, end = rng.choice(sorted(doc.acked))
        data = doc.segment(start, end)
        response = self.call(
            client,
            "POST",
            doc.url + "/$value",
            content=data,
            headers={
                **self.auth,
                "Content-Type": "application/octet-stream",
                "If-Match": "*",
                "Content-Range": f"bytes {start}-{end}/{doc.size}",
            },
        )
        if response.status_code not in (201, 202) and not (
            response.status_code == 404 and doc.state in ("deleting", "deleted")
        ):
            self.tally.problem(f"identical retry {doc.url}: {response.status_code}")

    def read(self, client: httpx.Client, rng: random.Random) -> None:
        with self.lock:
            if not self.docs:
                return
            doc = rng.choice(self.docs)
            acked_before = set(doc.acked)
            state_before = doc.state
        response = self.call(client, "GET", doc.url, headers=self.auth)
        if response.status_code == 404 and state_before in ("deleting", "deleted"):
            return
        if response.status_code != 200:
            self.tally.problem(f"GET {doc.url}: {response.status_code} {response.text[:200]}")
            return
        missing = [(int(r["start"]), int(r["end"])) for r in response.json()["missingRanges"]]
        for start, end in acked_before:
            if any(not (end < ms or start > me) for ms, me in missing):
                self.tally.problem(f"GET {doc.url}: acknowledged {start}-{end} in {missing}")

    def repeat_create(self, client: httpx.Client, rng: random.Random) -> None:
        """The creator repeating its PUT: the same session (200), or 409 once complete."""
        with self.lock:
            candidates = [d for d in self.docs if d.state in ("open", "complete")]
            if not candidates:
                return
            doc = rng.choice(candidates)
            state = doc.state
            doc.puts_in_flight += 1
        body = {
            "size": doc.size,
            "contentType": "application/octet-stream",
            "documentName": f"load-{doc.seed:x}.bin",
        }
        try:
            response = self.call(client, "PUT", doc.url, json=body, headers=self.auth)
        finally:
            with self.lock:
                doc.puts_in_flight -= 1
        if response.status_code == 200 and response.json()["id"] == doc.session_id:
            return
        with self.lock:
            # Completed on the server, its 201 possibly not yet back: every byte acknowledged
            # or still awaiting its answer.
            may_be_complete = sum(e - s + 1 for s, e in doc.acked | doc.sending) == doc.size
        if response.status_code == 409 and (
            state == "complete" or doc.state != "open" or may_be_complete
        ):
            return
        self.tally.problem(f"repeated PUT {doc.url} ({state}): {response.status_code}")

    def delete(self, client: httpx.Client, rng: random.Random) -> None:
        with self.lock:
            candidates = [d for d in self._open() if not d.puts_in_flight]
            if not candidates:
                return
            doc = rng.choice(candidates)
            doc.state = "deleting"
        response = self.call(client, "DELETE", doc.url, headers=self.auth)
        with self.lock:
            if response.status_code == 204:
                doc.state = "deleted"
            else:
                self.tally.problem(f"DELETE {doc.url}: {response.status_code} {response.text}")

    def client_loop(self, number: int) -> None:
        rng = random.Random(number)
        with httpx.Client(timeout=60) as client:
            while time.monotonic() < self.deadline:
                try:
                    with self.lock:
                        open_count = len(self._open())
                    roll = rng.random()
                    if open_count < 8 or (roll < 0.10 and open_count < MAX_OPEN):
                        self.create(client, rng)
                    elif roll < 0.72:
                        if not self.upload(client, rng):
                            if open_count < MAX_OPEN:
                                self.create(client, rng)
                            else:
                                self.read(client, rng)
                    elif roll < 0.80:
                        self.retry_acked(client, rng)
                    elif roll < 0.93:
                        self.read(client, rng)
                    elif roll < 0.96:
                        self.repeat_create(client, rng)
                    else:
                        self.delete(client, rng)
                except httpx.HTTPError as error:
                    self.tally.problem(f"client {number}: {type(error).__name__}: {error}")

    def run(self) -> float:
        started = time.monotonic()
        threads = [threading.Thread(target=self.client_loop, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(SECONDS + 120)
        return time.monotonic() - started


@pytest.fixture(scope="module")
def load_api(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    running = start_api(azurite, tmp_path_factory.mktemp("load"))
    try:
        yield running
    finally:
        running.server.stop()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def test_32_clients_mixing_every_operation_lose_nothing(load_api: Api) -> None:
    load = Load(load_api, SECONDS)
    elapsed = load.run()
    tally = load.tally
    requests_sent = sum(tally.statuses.values())

    # The audit: every session, after the run, as a client reads it.
    verified_bytes = completed = partial = deleted = 0
    with httpx.Client(timeout=60) as client:
        for doc in load.docs:
            response = client.get(doc.url, headers=load.auth)
            if doc.state == "deleted":
                assert response.status_code == 404, (doc.url, response.text)
                deleted += 1
                continue
            assert doc.state != "deleting", doc.url  # every DELETE had its answer
            assert response.status_code == 200, (doc.url, response.text)
            session = response.json()
            assert session["id"] == doc.session_id
            assert session["missingRanges"] == complement(doc.size, sorted(doc.acked)), doc.url
            assert session["nextExpectedRanges"] == [
                f"{r['start']}-{r['end']}" for r in session["missingRanges"]
            ]
            if session["missingRanges"] == []:
                assert doc.completions >= 1, doc.url
                assert load_api.document_bytes(doc.url)[0] == doc.data(), doc.url
                verified_bytes += doc.size
                completed += 1
            else:
                partial += 1

    p50 = percentile(tally.latencies, 0.50) * 1000
    p99 = percentile(tally.latencies, 0.99) * 1000
    print(
        f"\nload: {CLIENTS} clients, {elapsed:.1f}s, {requests_sent} requests, "
        f"{requests_sent / elapsed:.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms; "
        f"sessions: {completed} completed ({verified_bytes} bytes verified), {partial} partial "
        f"(missingRanges audited), {deleted} deleted; statuses {sorted(tally.statuses.items())}"
    )

    assert not tally.problems, "\n".join(tally.problems)
    log = load_api.server.log.read_text(errors="replace")
    assert "Traceback" not in log
    assert not [s for (_, s) in tally.statuses if s >= 500]
    assert {m for m, _ in tally.statuses} == {"GET", "PUT", "POST", "DELETE"}
    assert completed >= 5 and partial + deleted >= 1
    assert requests_sent >= 50 * SECONDS
