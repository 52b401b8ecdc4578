"""Contention: parallel streams into one session through a storage delay proxy, vs. the ceiling.

Loopback Azurite answers in well under a millisecond, so lost write races barely cost anything;
here ``uploadsession serve`` talks to Azurite through :mod:`bench.delay_proxy`, which holds every
storage request for a fixed latency (20 ms, and 100 ms in the full run) — per request, not per
byte — and counts the requests by kind and status.

Measured: one session, 8 / 16 / 32 keep-alive streams POSTing 4 KiB segments (and 1 MiB segments
at 16 streams) for a fixed time; segments/s, MiB/s, lost write races per accepted segment (table
entity writes that answered 412 through the proxy), 503 responses (the client waits 1 s, as
``Retry-After`` says, and resends), storage operations and the host's CPU per accepted segment.
"segments/s" of the separate sessions is all of them together (the ceiling one session's
streams are compared with).
Baseline (same run, same proxy): the contention-free ceiling — the same number of streams, each
to a session of its own; for 1 MiB segments also bare ``stage_block`` at 16 streams to one blob.
Targets (issue 14): 0 x 503 at 32 streams; one session at 32 streams ≥ 0.8x 32 separate
sessions; one session at 32 streams ≥ 1.5x at 8 streams; 1 MiB at 16 streams through the API
≥ 0.8x bare ``stage_block``.
Also counted (proxy latency 0, one request at a time): storage operations per PUT, per segment,
per final (committing) segment, per GET, per DELETE and per purged session.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobClient, BlobServiceClient

from bench.delay_proxy import ProxyProcess, total
from bench.harness import (
    Check,
    Config,
    Connection,
    MiB,
    Result,
    Stack,
    create_session,
    new_document,
    session_path,
    stack,
)
from bench.processes import REPO
from bench.upload import document_bytes

NAME = "contention"
TITLE = "Contention: parallel streams into one session (storage delay proxy)"
SMALL = 4096
LARGE = MiB
STREAMS = (8, 16, 32)
LARGE_STREAMS = 16
#: Most a session accepts (DESIGN); the 4 KiB budget stays well under it.
SMALL_BUDGET = 4000
LARGE_BUDGET = 400
RETRY_AFTER_S = 1.0


def _git(*args: str) -> str:
    try:
        result = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip()


def code_version() -> str:
    """The commit the measured code is at, and whether ``uploadsession/`` had local edits."""
    commit = _git("rev-parse", "--short=12", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--", "uploadsession")
    return f"{commit} + uncommitted edits" if dirty else commit


# -- one measured run ------------------------------------------------------------------------


@dataclass
class Item:
    path: str
    session_id: str
    start: int
    end: int
    size: int


@dataclass
class Outcome:
    seconds: float = 0.0
    accepted: int = 0
    unavailable: int = 0
    other: Counter[str] = field(default_factory=Counter)
    lost_races: int = 0
    storage_ops: int = 0
    completed: int = 0
    host_cpu: float = 0.0

    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lost_races(counts: Mapping[str, Mapping[str, int]]) -> int:
    """Table entity writes (replace, merge, delete) that lost an ETag race: answered 412."""
    return sum(
        by_status.get("412", 0)
        for kind, by_status in counts.items()
        if kind.startswith("table ") and "(entity)" in kind and " GET " not in kind
    )


def new_sessions(
    base_url: str, token: str, count: int, segments: int, segment: int
) -> list[list[Item]]:
    """``count`` fresh sessions of ``segments`` segments each; their items in offset order."""
    conn = Connection(base_url)
    out = []
    try:
        for _ in range(count):
            path = session_path(*new_document())
            size = segments * segment
            session_id = create_session(conn, token, path, size)["id"]
            out.append(
                [
                    Item(path + "/$value", session_id, s, s + segment - 1, size)
                    for s in range(0, size, segment)
                ]
            )
    finally:
        conn.close()
    return out


def post(conn: Connection, token: str, item: Item, body: bytes) -> tuple[int, bytes]:
    return conn.request(
        "POST",
        item.path,
        body,
        {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/octet-stream",
            "Content-Range": f"bytes {item.start}-{item.end}/{item.size}",
            "If-Match": item.session_id,
            "Content-Length": str(len(body)),
        },
    )


def drive(
    base_url: str,
    token: str,
    queues: list[queue.SimpleQueue[Item]],
    streams: int,
    body: bytes,
    run_seconds: float,
) -> Outcome:
    """``streams`` threads, stream ``i`` taking from ``queues[i % len(queues)]`` until it is
    empty or ``run_seconds`` have passed; in-flight requests finish (and are counted)."""
    outcome = Outcome()
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + run_seconds
    hard_stop = deadline + 60  # a hung request cannot hold the benchmark for ever

    def stream(number: int) -> None:
        pending = queues[number % len(queues)]
        conn: Connection | None = None
        accepted = unavailable = completed = 0
        other: Counter[str] = Counter()
        try:
            while time.perf_counter() < deadline:
                try:
                    item = pending.get_nowait()
                except queue.Empty:
                    break
                if conn is None:
                    conn = Connection(base_url, timeout=max(1.0, hard_stop - time.perf_counter()))
                try:
                    status, _ = post(conn, token, item, body)
                except OSError as error:
                    other[type(error).__name__] += 1
                    conn.close()
                    conn = None
                    pending.put(item)
                    continue
                if status in (201, 202):
                    accepted += 1
                    completed += status == 201
                elif status == 503:
                    unavailable += 1
                    pending.put(item)
                    time.sleep(max(0.0, min(RETRY_AFTER_S, deadline - time.perf_counter())))
                else:
                    other[str(status)] += 1
        finally:
            if conn is not None:
                conn.close()
            with lock:
                outcome.accepted += accepted
                outcome.unavailable += unavailable
                outcome.completed += completed
                outcome.other.update(other)

    threads = [threading.Thread(target=stream, args=(n,), daemon=True) for n in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, hard_stop - time.perf_counter()))
    outcome.seconds = time.perf_counter() - started
    return outcome


def through_api(
    s: Stack,
    base_url: str,
    token: str,
    proxy: ProxyProcess,
    *,
    host_pid: int,
    streams: int,
    sessions: int,
    segment: int,
    budget: int,
    body: bytes,
    run_seconds: float,
) -> Outcome:
    """``streams`` streams into ``sessions`` sessions (1 = all into one; ``streams`` = one
    each) of ``budget`` segments in all."""
    items = new_sessions(base_url, token, sessions, budget // sessions, segment)
    queues: list[queue.SimpleQueue[Item]] = []
    for session_items in items:
        q: queue.SimpleQueue[Item] = queue.SimpleQueue()
        for item in session_items:
            q.put(item)
        queues.append(q)
    proxy.reset()
    cpu = cpu_seconds(host_pid)
    outcome = drive(base_url, token, queues, streams, body, run_seconds)
    outcome.host_cpu = cpu_seconds(host_pid) - cpu
    counts = proxy.counts()
    outcome.lost_races = lost_races(counts)
    outcome.storage_ops = total(counts)
    return outcome


def bare_stage_block(
    proxy: ProxyProcess, streams: int, body: bytes, budget: int, run_seconds: float
) -> Outcome:
    """``stage_block`` of ``budget`` blocks to one blob through the proxy, ``streams`` threads."""
    name = f"bare/{new_document()[2]}"
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for number in range(budget):
        pending.put(number)
    outcome = Outcome()
    lock = threading.Lock()
    proxy.reset()
    started = time.perf_counter()
    deadline = started + run_seconds

    def stream() -> None:
        blob = BlobClient.from_connection_string(proxy.connection_string, "bench", name)
        done = 0
        try:
            while time.perf_counter() < deadline:
                try:
                    number = pending.get_nowait()
                except queue.Empty:
                    break
                blob.stage_block(f"{number:012x}", body, length=len(body))
                done += 1
        finally:
            with lock:
                outcome.accepted += done

    threads = [threading.Thread(target=stream, daemon=True) for _ in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(run_seconds + 60)
    outcome.seconds = time.perf_counter() - started
    outcome.storage_ops = total(proxy.counts())
    return outcome


# -- storage operations per request ------------------------------------------------------------


def _delta(proxy: ProxyProcess) -> dict[str, int]:
    counts = proxy.counts()
    proxy.reset()
    return {kind: sum(by_status.values()) for kind, by_status in counts.items()}


def _describe(ops: Mapping[str, float]) -> str:
    return ", ".join(f"{kind} {n:g}" for kind, n in sorted(ops.items()))


def count_operations(
    s: Stack, base_url: str, token: str, proxy: ProxyProcess, failures: list[str]
) -> dict[str, Any]:
    """Storage operations per request, one request at a time (latency 0): a warm host, a
    subscription already cached. What could not be counted is appended to ``failures``."""
    segments = 10
    auth = {"Authorization": f"Bearer {token}"}
    conn = Connection(base_url)
    out: dict[str, Any] = {}
    try:
        # Warm-up: the host's clients, the subscription cache; removed before the purge.
        (warm,) = new_sessions(base_url, token, 1, 1, SMALL)
        conn.request("GET", warm[0].path.removesuffix("/$value"), headers=auth)
        proxy.reset()
        path = session_path(*new_document())
        session_id = create_session(conn, token, path, segments * SMALL)["id"]
        out["PUT (create session)"] = _delta(proxy)
        status, _ = conn.request("GET", path, headers=auth)
        out["GET (active session)"] = _delta(proxy)
        body = bytes(SMALL)
        per: Counter[str] = Counter()
        for n in range(segments - 1):
            item = Item(path + "/$value", session_id, n * SMALL, (n + 1) * SMALL - 1, 10 * SMALL)
            status, payload = post(conn, token, item, body)
            if status != 202:
                raise RuntimeError(f"segment {n}: {status} {payload[:200]!r}")
            per.update(_delta(proxy))
        out["POST segment (not the last)"] = {k: v / (segments - 1) for k, v in per.items()}
        last = Item(
            path + "/$value", session_id, (segments - 1) * SMALL, 10 * SMALL - 1, 10 * SMALL
        )
        status, payload = post(conn, token, last, body)
        if status != 201:
            raise RuntimeError(f"last segment: {status} {payload[:200]!r}")
        out["POST last segment (records + commits)"] = _delta(proxy)
        status, payload = post(conn, token, last, body)
        out["POST identical retry of the last"] = _delta(proxy)
        conn.request("GET", path, headers=auth)
        out["GET (completed session)"] = _delta(proxy)
        (cancel,) = new_sessions(base_url, token, 1, 2, SMALL)
        post(conn, token, cancel[0], body)
        proxy.reset()
        status, _ = conn.request("DELETE", cancel[0].path.removesuffix("/$value"), headers=auth)
        out["DELETE (active session, 1 staged segment)"] = _delta(proxy)
        # Only the expired sessions to purge stay in the table.
        conn.request("DELETE", path, headers=auth)
        conn.request("DELETE", warm[0].path.removesuffix("/$value"), headers=auth)
        purged = 10
        for first, *_rest in new_sessions(base_url, token, purged, 2, SMALL):
            post(conn, token, first, body)
        proxy.reset()
        try:
            out["purge, per expired session (1 staged segment)"] = purge_operations(proxy, purged)
        except Exception as error:  # the service's purge API may change; report, go on
            failures.append(f"purge not counted: {type(error).__name__}: {error}")
    finally:
        conn.close()
    return out


def purge_operations(proxy: ProxyProcess, expected: int) -> dict[str, float]:
    """Run the service's purge in this process through the proxy, a day past every expiry."""
    from uploadsession.config import StorageSettings
    from uploadsession.service import UploadSessionService
    from uploadsession.store import AzureStorage

    storage = AzureStorage(StorageSettings(connection_string=proxy.connection_string))
    later = datetime.now(UTC) + timedelta(days=3)
    service = UploadSessionService(storage, ttl_seconds=86400, clock=lambda: later)
    report = service.purge()
    ops = _delta(proxy)
    if report.sessions != expected:
        raise RuntimeError(f"purge removed {report.sessions} sessions, expected {expected}")
    return {kind: n / expected for kind, n in ops.items()}


# -- the benchmark ---------------------------------------------------------------------------


def run(config: Config) -> Result:
    latencies = config.pick((20, 100), (20,))
    run_seconds = config.pick(5.0, 2.0)
    small_budget = config.pick(SMALL_BUDGET, 1200)
    large_budget = config.pick(LARGE_BUDGET, 96)
    small_body = bytes(document_bytes(SMALL, seed=14))
    large_body = document_bytes(LARGE, seed=15)
    version = code_version()
    rows: list[list[Any]] = []
    checks: list[Check] = []
    data: dict[str, Any] = {"runs": []}
    with stack() as s:
        proxy = ProxyProcess(
            s.azurite.blob_port, s.azurite.table_port, 0, s.workdir / "proxy.log"
        ).start()
        try:
            host = s.host("contention", {"UPLOADSESSION_STORAGE": proxy.connection_string})
            token = s.token()
            BlobServiceClient.from_connection_string(s.azurite.connection_string).create_container(
                "bench"
            )
            failures: list[str] = []
            operations = count_operations(s, host.base_url, token, proxy, failures)
            for latency in latencies:
                proxy.set_latency(latency)
                # Warm-up: connections through the proxy and the host's pool at this latency.
                through_api(
                    s,
                    host.base_url,
                    token,
                    proxy,
                    host_pid=host.pid,
                    streams=32,
                    sessions=32,
                    segment=SMALL,
                    budget=128,
                    body=small_body,
                    run_seconds=1.0,
                )
                measured: dict[tuple[str, int, int], Outcome] = {}
                plan = [(m, n, SMALL) for n in STREAMS for m in ("one session", "separate")]
                plan += [("one session", LARGE_STREAMS, LARGE), ("separate", LARGE_STREAMS, LARGE)]
                for mode, streams, segment in plan:
                    outcome = through_api(
                        s,
                        host.base_url,
                        token,
                        proxy,
                        host_pid=host.pid,
                        streams=streams,
                        sessions=1 if mode == "one session" else streams,
                        segment=segment,
                        budget=small_budget if segment == SMALL else large_budget,
                        body=small_body if segment == SMALL else large_body,
                        run_seconds=run_seconds,
                    )
                    measured[(mode, streams, segment)] = outcome
                bare = bare_stage_block(proxy, LARGE_STREAMS, large_body, large_budget, run_seconds)
                measured[("bare stage_block", LARGE_STREAMS, LARGE)] = bare
                for (mode, streams, segment), o in measured.items():
                    rate = o.rate()
                    accepted = max(o.accepted, 1)
                    rows.append(
                        [
                            mode,
                            latency,
                            streams,
                            "4 KiB" if segment == SMALL else "1 MiB",
                            1 if mode != "separate" else streams,
                            rate,
                            rate * segment / MiB,
                            o.lost_races / accepted,
                            o.unavailable,
                            o.storage_ops / accepted,
                            o.host_cpu / accepted * 1000 if mode != "bare stage_block" else "-",
                            ", ".join(f"{k}x{v}" for k, v in sorted(o.other.items())) or "-",
                        ]
                    )
                    data["runs"].append(
                        {
                            "latency_ms": latency,
                            "mode": mode,
                            "streams": streams,
                            "segment_bytes": segment,
                            "seconds": o.seconds,
                            "accepted": o.accepted,
                            "completed": o.completed,
                            "segments_per_s": rate,
                            "mib_per_s": rate * segment / MiB,
                            "lost_races": o.lost_races,
                            "unavailable": o.unavailable,
                            "storage_ops": o.storage_ops,
                            "host_cpu_s": o.host_cpu,
                            "other": dict(o.other),
                        }
                    )
                one = {n: measured[("one session", n, SMALL)] for n in STREAMS}
                sep32 = measured[("separate", 32, SMALL)]
                attempts32 = one[32].accepted + one[32].unavailable
                checks += [
                    Check(
                        f"{latency} ms: 503s per segment, one session, 32 streams",
                        one[32].unavailable / max(attempts32, 1),
                        "<=",
                        0.0,
                        detail=f"{one[32].unavailable} of {attempts32} POSTs",
                    ),
                    Check(
                        f"{latency} ms: one session vs 32 separate sessions, 32 streams",
                        one[32].rate() / max(sep32.rate(), 1e-9),
                        ">=",
                        0.8,
                    ),
                    Check(
                        f"{latency} ms: one session, 32 streams vs 8 streams",
                        one[32].rate() / max(one[8].rate(), 1e-9),
                        ">=",
                        1.5,
                    ),
                    Check(
                        f"{latency} ms: 1 MiB x16 through the API vs bare stage_block x16",
                        measured[("one session", LARGE_STREAMS, LARGE)].rate()
                        / max(bare.rate(), 1e-9),
                        ">=",
                        0.8,
                    ),
                ]
        finally:
            proxy.stop()
    notes = [
        f"storage operations per request (proxy latency 0, one request at a time, code at "
        f"{version}):"
    ]
    for request, ops in operations.items():
        notes.append(f"{request}: {sum(ops.values()):g} ({_describe(ops)})")
    notes += failures
    data["operations"] = {k: dict(v) for k, v in operations.items()}
    data["code"] = version
    return Result(
        NAME,
        TITLE,
        measured=f"uploadsession serve -> delay proxy ({', '.join(map(str, latencies))} ms per "
        f"storage request) -> Azurite; one session, {'/'.join(map(str, STREAMS))} streams of "
        f"4 KiB, {LARGE_STREAMS} of 1 MiB, {run_seconds:g} s per run",
        baseline="the same streams each to a session of its own (contention-free ceiling); "
        f"bare stage_block x{LARGE_STREAMS} through the same proxy for 1 MiB",
        columns=[
            "run",
            "latency ms",
            "streams",
            "segment",
            "sessions",
            "segments/s",
            "MiB/s",
            "lost races/segment",
            "503s",
            "storage ops/segment",
            "host CPU ms/segment",
            "other",
        ],
        rows=rows,
        checks=checks,
        notes=notes,
        data=data,
        settings={
            "latencies_ms": list(latencies),
            "run_seconds": run_seconds,
            "small_budget": small_budget,
            "large_budget": large_budget,
            "cpus": os.cpu_count(),
        },
        quick=config.quick,
    )
