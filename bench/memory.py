"""Memory: peak RSS of ``uploadsession serve`` during a 256 MiB and a 1 GiB upload.

Measured: a fresh host per upload, warmed with a 64 KiB upload (runtime, JWKS, storage
connections); its ``VmRSS`` then; the document in 8 MiB segments, 4 in parallel; its ``VmHWM``
(peak RSS, ``/proc/<pid>/status``) after. Growth = peak - warm RSS: what the upload cost.
The 1 GiB upload runs twice: with glibc's default allocator settings and with
``MALLOC_MMAP_THRESHOLD_`` pinned to 1 MiB (segment buffers are then returned to the system
when freed), which separates the app's own copies from the allocator's retention.
Target: bounded by segment size x concurrency (8 MiB x 4 = 32 MiB in flight), not by document
size: the 1 GiB growth within 20% of the 256 MiB growth, and at most 2x the bytes in flight
(one copy of each segment in flight, plus slack).
"""

from __future__ import annotations

from typing import Any

from bench.harness import Check, Config, MiB, Result, Stack, stack
from bench.upload import PARALLEL, SEGMENT, document_bytes, segments, upload_through_api

NAME = "memory"
TITLE = "Host memory during uploads"
PINNED = {"MALLOC_MMAP_THRESHOLD_": str(MiB)}


def measure(s: Stack, token: str, data: bytes, size: int, env: dict[str, str]) -> dict[str, Any]:
    host = s.host(f"memory-{size // MiB}", extra_env=env)
    try:
        upload_through_api(s, host.base_url, token, segments(64 * 1024, data), 64 * 1024)
        warm = host.rss()
        seconds = upload_through_api(s, host.base_url, token, segments(size, data), size)
        peak = host.peak_rss()
    finally:
        s.stop_host(host)
    return {
        "document_mib": size / MiB,
        "allocator": "pinned" if env else "default",
        "warm_mib": warm / MiB,
        "peak_mib": peak / MiB,
        "growth_mib": (peak - warm) / MiB,
        "seconds": seconds,
    }


def run(config: Config) -> Result:
    small_size, large_size = config.pick((256 * MiB, 1024 * MiB), (32 * MiB, 64 * MiB))
    data = document_bytes(min(256 * MiB, large_size))
    in_flight = SEGMENT * PARALLEL / MiB
    with stack() as s:
        token = s.token()
        small = measure(s, token, data, small_size, {})
        large = measure(s, token, data, large_size, {})
        pinned = measure(s, token, data, large_size, PINNED)
    rows = [
        [
            f"{m['document_mib']:.0f} MiB",
            "glibc default" if m["allocator"] == "default" else "MALLOC_MMAP_THRESHOLD_=1 MiB",
            m["warm_mib"],
            m["peak_mib"],
            m["growth_mib"],
            f"{m['growth_mib'] / in_flight:.2f}x",
        ]
        for m in (small, large, pinned)
    ]
    label = f"{large['document_mib']:.0f} MiB"
    return Result(
        NAME,
        TITLE,
        measured="VmHWM of uploadsession serve during the upload, fresh host per upload",
        baseline=f"segment size x concurrency = {SEGMENT // MiB} MiB x {PARALLEL} = "
        f"{in_flight:.0f} MiB in flight",
        columns=[
            "document",
            "allocator",
            "warm RSS MiB",
            "peak MiB",
            "growth MiB",
            "growth ÷ in flight",
        ],
        rows=rows,
        checks=[
            Check(
                f"growth, {label} vs {small['document_mib']:.0f} MiB document",
                large["growth_mib"] / small["growth_mib"],
                "<=",
                1.2,
            ),
            Check(f"growth ÷ in flight, {label}", large["growth_mib"] / in_flight, "<=", 2.0),
            Check(
                f"growth ÷ in flight, {label}, MALLOC_MMAP_THRESHOLD_=1 MiB",
                pinned["growth_mib"] / in_flight,
                "<=",
                2.0,
            ),
        ],
        settings={"segment_mib": SEGMENT // MiB, "parallel": PARALLEL},
        data={"uploads": [small, large, pinned], "in_flight_mib": in_flight},
        quick=config.quick,
    )
