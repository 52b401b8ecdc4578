"""Upload: a 256 MiB document in 8 MiB segments, 4 in parallel, through ``uploadsession serve``.

Measured: PUT a session, then 4 threads, each with a keep-alive connection, POST the 32
segments (``Content-Range``, ``If-Match`` = the session id) until the last one answers 201 —
the document is committed; MiB/s over the POSTs.
Baseline: the same bytes straight to Azurite with ``azure-storage-blob``: 4 threads
``stage_block`` the 32 blocks, then ``commit_block_list`` in offset order.
Target: at least 0.7x the baseline's MiB/s.
"""

from __future__ import annotations

import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from azure.storage.blob import BlobBlock, BlobServiceClient

from bench.harness import (
    TENANT,
    Check,
    Config,
    Connection,
    MiB,
    Result,
    Stack,
    create_session,
    median,
    new_document,
    session_path,
    stack,
)

NAME = "upload"
TITLE = "Upload"
SEGMENT = 8 * MiB
PARALLEL = 4


def document_bytes(size: int, seed: int = 6) -> bytes:
    """Incompressible bytes (nothing on the path compresses, but no shortcut either)."""
    rng = random.Random(seed)
    return b"".join(rng.randbytes(min(MiB, size - i)) for i in range(0, size, MiB))


def segments(size: int, data: bytes, segment: int = SEGMENT) -> list[tuple[int, int, bytes]]:
    """``(start, end, bytes)`` for each segment; documents larger than ``data`` repeat it."""
    out = []
    for start in range(0, size, segment):
        end = min(start + segment, size) - 1
        offset = start % len(data)
        out.append((start, end, data[offset : offset + end - start + 1]))
    return out


def _parallel(work: Callable[[Any], object], items: list[Any], threads: int) -> None:
    """Run ``work`` over ``items`` on ``threads`` threads; re-raise the first failure."""
    pending: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for item in items:
        pending.put(item)
    errors: list[BaseException] = []

    def loop() -> None:
        while not errors:
            try:
                item = pending.get_nowait()
            except queue.Empty:
                return
            try:
                work(item)
            except BaseException as error:
                errors.append(error)

    pool = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise errors[0]


def upload_through_api(
    s: Stack,
    base_url: str,
    token: str,
    parts: list[tuple[int, int, bytes]],
    size: int,
    parallel: int = PARALLEL,
) -> float:
    """Upload ``parts`` as one document through the API; the seconds the POSTs took."""
    printer, job, document = new_document()
    path = session_path(printer, job, document) + "/$value"
    setup = Connection(base_url)
    session_id = create_session(setup, token, path.removesuffix("/$value"), size)["id"]
    setup.close()
    local = threading.local()
    statuses: list[int] = []
    connections: list[Connection] = []
    lock = threading.Lock()

    def post(part: tuple[int, int, bytes]) -> None:
        start, end, data = part
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = Connection(base_url)
            with lock:
                connections.append(conn)
        status, body = conn.request(
            "POST",
            path,
            data,
            {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/octet-stream",
                "Content-Range": f"bytes {start}-{end}/{size}",
                "If-Match": session_id,
                "Content-Length": str(len(data)),
            },
        )
        if status not in (201, 202):
            raise RuntimeError(f"POST {start}-{end}: {status} {body[:300]!r}")
        with lock:
            statuses.append(status)

    started = time.perf_counter()
    _parallel(post, parts, parallel)
    seconds = time.perf_counter() - started
    for conn in connections:
        conn.close()
    if statuses.count(201) < 1:
        raise RuntimeError("no POST completed the document")
    blob = s.storage._get_clients().documents.get_blob_client(
        f"{TENANT}/{printer}/{job}/{document}"
    )
    if blob.get_blob_properties().size != size:
        raise RuntimeError("the committed document has the wrong size")
    blob.delete_blob()  # keep Azurite's disk small between rounds
    return seconds


def upload_to_blob(
    service: BlobServiceClient, parts: list[tuple[int, int, bytes]], parallel: int = PARALLEL
) -> float:
    """The baseline: stage the same blocks straight to Azurite, then commit them in order."""
    blob = service.get_blob_client("bench", f"baseline/{uuid.uuid4()}")
    ids = {start: f"{start:012x}" for start, _, _ in parts}
    started = time.perf_counter()
    _parallel(
        lambda part: blob.stage_block(ids[part[0]], part[2], length=len(part[2])), parts, parallel
    )
    blob.commit_block_list([BlobBlock(ids[start]) for start, _, _ in parts])
    seconds = time.perf_counter() - started
    blob.delete_blob()
    return seconds


def run(config: Config) -> Result:
    rounds = config.pick(5, 1)
    size = config.pick(256 * MiB, 32 * MiB)
    data = document_bytes(size)
    parts = segments(size, data)
    with stack() as s:
        host = s.host("upload")
        token = s.token()
        service = BlobServiceClient.from_connection_string(s.azurite.connection_string)
        service.create_container("bench")
        # Warm-up: runtime, connections, Azurite's extent files.
        warm = parts[: PARALLEL * 2]
        warm_size = sum(len(p[2]) for p in warm)
        upload_through_api(s, host.base_url, token, warm, warm_size)
        upload_to_blob(service, warm)
        times: dict[str, list[float]] = {"ours": [], "bare": []}
        for r in range(rounds):
            for kind in ("ours", "bare") if r % 2 == 0 else ("bare", "ours"):
                if kind == "ours":
                    times[kind].append(upload_through_api(s, host.base_url, token, parts, size))
                else:
                    times[kind].append(upload_to_blob(service, parts))
    mib = size / MiB
    ours = [mib / t for t in times["ours"]]
    bare = [mib / t for t in times["bare"]]
    ratio = median([o / b for o, b in zip(ours, bare, strict=True)])
    return Result(
        NAME,
        TITLE,
        measured=f"{mib:.0f} MiB through uploadsession serve, {SEGMENT // MiB} MiB segments, "
        f"{PARALLEL} parallel",
        baseline=f"stage_block x{len(parts)} ({PARALLEL} parallel) + commit_block_list, "
        "straight to Azurite",
        columns=["", "MiB/s", "seconds", "per segment ms"],
        rows=[
            [
                "upload through the API",
                median(ours),
                median(times["ours"]),
                median(times["ours"]) / len(parts) * PARALLEL * 1000,
            ],
            [
                "bare stage_block + commit",
                median(bare),
                median(times["bare"]),
                median(times["bare"]) / len(parts) * PARALLEL * 1000,
            ],
        ],
        checks=[Check("MiB/s vs bare stage_block + commit", ratio, ">=", 0.7)],
        settings={
            "rounds": rounds,
            "document_mib": mib,
            "segment_mib": SEGMENT // MiB,
            "parallel": PARALLEL,
        },
        data={"ours_mib_s": median(ours), "bare_mib_s": median(bare)},
        quick=config.quick,
    )
