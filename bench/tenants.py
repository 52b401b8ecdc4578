"""Tenant spread: N sessions of one tenant uploaded in parallel vs the same N over N tenants.

Measured: ``uploadsession serve`` talking to Azurite through :mod:`bench.delay_proxy` at 20 ms
per storage request (as ``bench.contention``); N keep-alive streams, each creating a session of
its own and POSTing 4 KiB segments into it for a fixed window; the segments accepted within the
window per second, all streams together (median of 5 alternating rounds). With one partition
per document the sessions of one tenant share no partition, so the two runs should match (on
real storage, one partition per tenant capped a tenant at ~2,000 entity operations/s; Azurite
does not model that cap, so this benchmark checks that nothing in the service itself
serialises a tenant).
Baseline: the same N streams spread over N tenants (each with its own token and subscription).
Target (issue 14): ratio within ±20%.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from bench.delay_proxy import ProxyProcess
from bench.harness import (
    AUDIENCE,
    READ_WRITE,
    TENANT,
    Check,
    Config,
    Connection,
    Result,
    Stack,
    create_session,
    new_document,
    session_path,
    stack,
)
from bench.upload import document_bytes
from uploadsession.dev import tokens as devtoken

NAME = "tenants"
TITLE = "Tenant spread: one tenant's sessions vs the same sessions over many tenants"
SEGMENT = 4096
SEGMENTS = 2000  # per session, more than a run sends
LATENCY_MS = 20


def token_for(s: Stack, tenant: str) -> str:
    claims = devtoken.dev_claims(audience=AUDIENCE, scopes=READ_WRITE, tenant=tenant)
    return devtoken.mint(s.key_dir, claims)


def drive(
    base_url: str, tokens: list[str], run_seconds: float, body: bytes
) -> tuple[int, float, float]:
    """One stream per token, each into a session of its own, for ``run_seconds``: (segments
    accepted within the window, the window's seconds, the slowest request's seconds).

    Windowed: a segment counts only if its 202 arrived before the deadline, and the rate's
    denominator is the window, not the time until the last in-flight request ends — so one
    request stalled on this shared machine costs one segment, not the whole round."""
    accepted = [0]
    slowest = [0.0]
    errors: list[str] = []
    lock = threading.Lock()
    ready = threading.Barrier(len(tokens) + 1)
    deadline = [0.0]

    def stream(token: str) -> None:
        conn = Connection(base_url)
        done = 0
        worst = 0.0
        try:
            path = session_path(*new_document())
            for attempt in range(10):  # a cold host through the proxy may answer 503 at first
                try:
                    session_id = create_session(conn, token, path, SEGMENTS * SEGMENT)["id"]
                    break
                except RuntimeError:
                    if attempt == 9:
                        ready.abort()
                        raise
                    time.sleep(1)
            ready.wait(60)
            start = 0
            while time.perf_counter() < deadline[0] and start < SEGMENTS * SEGMENT:
                sent = time.perf_counter()
                status, payload = conn.request(
                    "POST",
                    path + "/$value",
                    body,
                    {
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"bytes {start}-{start + SEGMENT - 1}/"
                        f"{SEGMENTS * SEGMENT}",
                        "If-Match": session_id,
                    },
                )
                answered = time.perf_counter()
                worst = max(worst, answered - sent)
                if status == 202:
                    done += answered <= deadline[0]
                    start += SEGMENT
                elif status != 503:
                    errors.append(f"{status} {payload[:200]!r}")
                    return
        finally:
            conn.close()
            with lock:
                accepted[0] += done
                slowest[0] = max(slowest[0], worst)

    threads = [threading.Thread(target=stream, args=(t,), daemon=True) for t in tokens]
    for thread in threads:
        thread.start()
    ready.wait(120)
    began = time.perf_counter()
    deadline[0] = began + run_seconds
    for thread in threads:
        thread.join(run_seconds + 60)
    if errors:
        raise RuntimeError(f"uploads failed: {errors[0]}")
    return accepted[0], run_seconds, slowest[0]


def run(config: Config) -> Result:
    streams = config.pick(32, 16)
    run_seconds = config.pick(5.0, 2.0)
    rounds = config.pick(5, 1)
    body = bytes(document_bytes(SEGMENT, seed=21))
    rates: dict[str, list[float]] = {"one tenant": [], "many tenants": []}
    slowest: dict[str, float] = {"one tenant": 0.0, "many tenants": 0.0}
    with stack() as s:
        proxy = ProxyProcess(
            s.azurite.blob_port, s.azurite.table_port, LATENCY_MS, s.workdir / "proxy.log"
        ).start()
        try:
            host = s.host("tenants", {"UPLOADSESSION_STORAGE": proxy.connection_string})
            tenants = [str(uuid.uuid4()) for _ in range(streams)]
            for tenant in tenants:
                s.storage.put_subscription(tenant, active=True)
            one = [s.token()] * streams
            many = [token_for(s, tenant) for tenant in tenants]
            drive(host.base_url, many[:4], 1.0, body)  # warm-up
            for r in range(rounds):
                order = (
                    ("one tenant", "many tenants") if r % 2 == 0 else ("many tenants", "one tenant")
                )
                for mode in order:
                    accepted, seconds, worst = drive(
                        host.base_url, one if mode == "one tenant" else many, run_seconds, body
                    )
                    rates[mode].append(accepted / seconds)
                    slowest[mode] = max(slowest[mode], worst)
        finally:
            proxy.stop()
    median_rate = {mode: sorted(v)[len(v) // 2] for mode, v in rates.items()}
    rows: list[list[Any]] = [
        [
            mode,
            streams,
            LATENCY_MS,
            median_rate[mode],
            ", ".join(f"{x:.1f}" for x in rates[mode]),
            slowest[mode],
        ]
        for mode in rates
    ]
    ratio = median_rate["one tenant"] / max(median_rate["many tenants"], 1e-9)
    return Result(
        NAME,
        TITLE,
        measured=f"{streams} parallel sessions of tenant {TENANT[:8]}…, 4 KiB segments through "
        f"a {LATENCY_MS} ms storage delay proxy: segments/s of all together",
        baseline=f"the same {streams} sessions spread over {streams} tenants",
        columns=[
            "tenants",
            "sessions",
            "latency ms",
            "segments/s (median)",
            "per round",
            "slowest request s",
        ],
        rows=rows,
        checks=[Check("one tenant vs many tenants, segments/s", ratio, "within", 0.2)],
        settings={"streams": streams, "run_seconds": run_seconds, "rounds": rounds},
        data={"segments_per_s": rates, "slowest_request_s": slowest},
        quick=config.quick,
    )
