"""GET over HTTP: ``uploadsession serve`` under keep-alive clients at 1, 8 and 32 concurrency.

Measured: N threads, each with its own keep-alive HTTP/1.1 connection, GET the same session
back to back for a fixed time; throughput, p50 and p99 latency.
Baseline: N threads, each with its own ``TableClient``, ``get_entity`` of the same entity on
the same Azurite for the same time.
Target: at least 0.6x the baseline's throughput at each concurrency; p99 reported.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from azure.data.tables import TableClient

from bench.harness import (
    TENANT,
    Check,
    Config,
    Connection,
    Result,
    create_session,
    median,
    new_document,
    percentile,
    session_path,
    stack,
)
from uploadsession.config import SESSIONS_TABLE

NAME = "get_http"
TITLE = "GET over HTTP"
CONCURRENCY = (1, 8, 32)


def drive(workers: list[Callable[[], None]], seconds: float) -> tuple[float, list[float]]:
    """Run each worker in its own thread, back to back, for ``seconds``; return the
    throughput (calls/s) and every call's latency."""
    barrier = threading.Barrier(len(workers) + 1)
    state: dict[str, float] = {}
    outcomes: list[tuple[list[float], float]] = [([], 0.0)] * len(workers)
    errors: list[BaseException] = []

    def loop(index: int, work: Callable[[], None]) -> None:
        latencies: list[float] = []
        clock = time.perf_counter
        barrier.wait()
        deadline = state["deadline"]
        finished = clock()
        try:
            while True:
                started = clock()
                work()
                finished = clock()
                latencies.append(finished - started)
                if finished >= deadline:
                    break
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        outcomes[index] = (latencies, finished)

    threads = [
        threading.Thread(target=loop, args=(i, w), daemon=True) for i, w in enumerate(workers)
    ]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    state["deadline"] = began + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    latencies = [value for lat, _ in outcomes for value in lat]
    elapsed = max(end for _, end in outcomes) - began
    return len(latencies) / elapsed, latencies


def run(config: Config) -> Result:
    rounds = config.pick(5, 1)
    seconds = config.pick(2.0, 0.5)
    levels = config.pick(CONCURRENCY, (1, 8))
    with stack() as s:
        host = s.host("get-http")
        token = s.token()
        printer, job, document = new_document()
        path = session_path(printer, job, document)
        setup = Connection(host.base_url)
        create_session(setup, token, path, 1024)
        setup.close()
        headers = {"Authorization": f"Bearer {token}"}
        partition = "|".join((TENANT, printer, job, document))  # ports.document_partition

        def http_worker() -> tuple[Callable[[], None], Callable[[], None]]:
            conn = Connection(host.base_url)

            def get() -> None:
                status, body = conn.request("GET", path, headers=headers)
                if status != 200:
                    raise RuntimeError(f"GET: {status} {body[:300]!r}")

            get()  # connected and warm
            return get, conn.close

        def table_worker() -> tuple[Callable[[], None], Callable[[], None]]:
            table = TableClient.from_connection_string(s.azurite.connection_string, SESSIONS_TABLE)

            def get() -> None:
                table.get_entity(partition, "session")

            get()
            return get, table.close

        factories = {"ours": http_worker, "bare": table_worker}
        measured: dict[tuple[str, int], list[tuple[float, list[float]]]] = {}
        for concurrency in levels:
            for r in range(rounds + 1):  # round 0 warms up both
                order = list(factories) if r % 2 == 0 else list(reversed(factories))
                for kind in order:
                    made = [factories[kind]() for _ in range(concurrency)]
                    outcome = drive([get for get, _ in made], seconds if r else 0.5)
                    for _, close in made:
                        close()
                    if r:
                        measured.setdefault((kind, concurrency), []).append(outcome)

    rows, checks, chart = [], [], []
    for concurrency in levels:
        ours, bare = measured[("ours", concurrency)], measured[("bare", concurrency)]
        ratio = median([o[0] / b[0] for o, b in zip(ours, bare, strict=True)])
        row = [concurrency]
        summary = {"concurrency": concurrency, "ratio": ratio}
        for kind, outcomes in (("ours", ours), ("bare", bare)):
            pooled = [value for _, lat in outcomes for value in lat]
            tp = median([tp for tp, _ in outcomes])
            p50, p99 = percentile(pooled, 50) * 1000, percentile(pooled, 99) * 1000
            row += [tp, p50, p99]
            summary.update({f"{kind}_rps": tp, f"{kind}_p50_ms": p50, f"{kind}_p99_ms": p99})
        rows.append([*row, f"{ratio:.2f}x"])
        chart.append(summary)
        checks.append(Check(f"throughput at concurrency {concurrency}", ratio, ">=", 0.6))
    return Result(
        NAME,
        TITLE,
        measured="uploadsession serve, GET {S}, keep-alive connections",
        baseline="TableClient.get_entity of the same entity, one client per thread",
        columns=[
            "conc.",
            "GET req/s",
            "GET p50 ms",
            "GET p99 ms",
            "bare req/s",
            "bare p50 ms",
            "bare p99 ms",
            "ratio",
        ],
        rows=rows,
        checks=checks,
        settings={"rounds": rounds, "seconds_per_run": seconds, "concurrency": list(levels)},
        data={"levels": chart},
        quick=config.quick,
    )
