"""Scale with data: GET latency with 1k and 100k sessions in the table, and of a fragmented one.

Measured (in-process GET function, as in ``get_inprocess``, on its own in-memory Azurite):
p50 of GET for one fresh session while the sessions table holds 1k, then 100k sessions of the
same tenant — one partition, the worst case — inserted with ``submit_transaction`` batches of
100 real session entities; and p50 of GET for a session with 1,000 missing ranges (2,000
alternating segments, every other one received).
Baseline: GET of a fresh session while the table is small (a handful of sessions).
Also shown: a bare ``get_entity`` of each of the two entities at each size, to separate the
storage's share from the app's.
Target: the 1k and 100k p50s within 20% of the small-table p50 (flat); the 1,000-range session
at most 1.5x the fresh one.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from azure.data.tables import TableClient

from bench.get_inprocess import create, request
from bench.harness import (
    TENANT,
    USER,
    Check,
    Config,
    Result,
    interleaved,
    median,
    new_document,
    per_round,
    stack,
)
from uploadsession import http
from uploadsession.config import SESSIONS_TABLE
from uploadsession.dev import tokens as devtoken
from uploadsession.models import DocumentKey, Segment, Session
from uploadsession.ports import SESSION_ROW, document_partition
from uploadsession.runtime import build_runtime, set_runtime
from uploadsession.store import session_to_entity

NAME = "scale"
TITLE = "Scale with data"
BATCH = 100  # the most a table transaction holds
FRAGMENT_SEGMENTS = 2_000
FRAGMENT_BYTES = 4096


def fragmented_session(ids: tuple[str, str, str]) -> Session:
    """A session of 2,000 segments of which every other one was received: 1,000 missing."""
    now = datetime.now(UTC)
    received = tuple(
        Segment(i * FRAGMENT_BYTES, (i + 1) * FRAGMENT_BYTES - 1, uuid.uuid4().bytes)
        for i in range(0, FRAGMENT_SEGMENTS, 2)
    )
    return Session(
        key=DocumentKey(TENANT, *ids),
        id=str(uuid.uuid4()),
        size=FRAGMENT_SEGMENTS * FRAGMENT_BYTES,
        content_type="application/pdf",
        document_name="fragmented.pdf",
        app_id=devtoken.DEV_APP,
        user_id=USER,
        created=now,
        expires=now + timedelta(days=1),
        segments=received,
    )


def filler(number: int) -> dict[str, object]:
    """A real session entity of the same tenant (the same partition)."""
    now = datetime.now(UTC)
    printer = str(uuid.UUID(int=number))
    session = Session(
        key=DocumentKey(TENANT, printer, "filler", str(uuid.uuid4())),
        id=str(uuid.uuid4()),
        size=1024,
        content_type="application/pdf",
        document_name=f"filler-{number}.pdf",
        app_id=devtoken.DEV_APP,
        user_id=USER,
        created=now,
        expires=now + timedelta(days=1),
    )
    return session_to_entity(session)


def fill(connection_string: str, start: int, stop: int, threads: int = 2) -> None:
    """Insert sessions ``start``..``stop`` in batches of 100, ``threads`` transactions at once."""
    batches = list(range(start, stop, BATCH))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def loop() -> None:
        table = TableClient.from_connection_string(connection_string, SESSIONS_TABLE)
        while not errors:
            with lock:
                if not batches:
                    return
                first = batches.pop()
            try:
                table.submit_transaction(
                    [("create", filler(n)) for n in range(first, min(first + BATCH, stop))]
                )
            except BaseException as error:
                errors.append(error)

    pool = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise errors[0]


def run(config: Config) -> Result:
    rounds = config.pick(7, 3)
    calls = config.pick(200, 50)
    sizes = config.pick((1_000, 100_000), (1_000, 5_000))
    p50: dict[str, dict[int, float]] = {
        "fresh": {},
        "fragmented": {},
        "bare": {},
        "bare_fragmented": {},
    }
    insert_seconds: dict[int, float] = {}
    with stack(in_memory=True) as s:
        set_runtime(build_runtime(s.settings()))
        try:
            token = s.token()
            fresh_ids, fragment_ids = new_document(), new_document()
            create(token, fresh_ids)
            s.storage.insert_session(fragmented_session(fragment_ids))
            get_fresh = request("GET", token, fresh_ids)
            get_fragment = request("GET", token, fragment_ids)
            fresh_row = document_partition(DocumentKey(TENANT, *fresh_ids))
            fragment_row = document_partition(DocumentKey(TENANT, *fragment_ids))
            table = TableClient.from_connection_string(s.azurite.connection_string, SESSIONS_TABLE)

            def fresh() -> None:
                if http.get_upload_session(get_fresh).status_code != 200:
                    raise RuntimeError("GET fresh failed")

            def fragmented() -> None:
                response = http.get_upload_session(get_fragment)
                if response.status_code != 200 or response.get_body().count(b'"start"') != 2000:
                    raise RuntimeError("GET fragmented failed")

            def bare() -> None:
                table.get_entity(fresh_row, SESSION_ROW)

            def bare_fragmented() -> None:
                table.get_entity(fragment_row, SESSION_ROW)

            functions = {
                "fresh": fresh,
                "fragmented": fragmented,
                "bare": bare,
                "bare_fragmented": bare_fragmented,
            }
            interleaved(functions, 2, 100)  # warm up (Azurite, connections, caches)
            inserted = 0
            for size in (2, *sizes):
                if size > inserted + 2:
                    began = time.perf_counter()
                    fill(s.azurite.connection_string, inserted, size - 2)
                    insert_seconds[size] = time.perf_counter() - began
                    inserted = size - 2
                    interleaved(functions, 1, 20)
                lat = interleaved(functions, rounds, calls)
                for name in functions:
                    p50[name][size] = median(per_round(lat[name], median)) * 1e6
        finally:
            set_runtime(None)

    small = 2
    rows = [
        [
            f"{size:,}",
            p50["fresh"][size],
            p50["fragmented"][size],
            p50["bare"][size],
            p50["bare_fragmented"][size],
            f"{p50['fresh'][size] / p50['fresh'][small]:.2f}x",
            f"{insert_seconds[size]:.0f} s" if size in insert_seconds else "—",
        ]
        for size in (small, *sizes)
    ]
    checks = [
        Check(
            f"GET p50 with {size:,} sessions vs small table",
            p50["fresh"][size] / p50["fresh"][small],
            "within",
            0.2,
        )
        for size in sizes
    ]
    checks.append(
        Check(
            "GET p50, 1,000 missing ranges vs fresh session",
            p50["fragmented"][small] / p50["fresh"][small],
            "<=",
            1.5,
        )
    )
    floor = p50["bare_fragmented"][small] / p50["fresh"][small]
    notes = [
        f"The storage read alone of the 1,000-range entity (a 28 KB binary property) is "
        f"{floor:.2f}x the fresh session's whole GET; the rest is the app turning 1,000 packed "
        "records into Segment objects and writing 2,000 ranges of JSON."
    ]
    return Result(
        NAME,
        TITLE,
        measured="in-process GET p50 with the sessions table at 1k / 100k rows (one partition); "
        "GET of a session with 1,000 missing ranges",
        baseline="in-process GET p50 of a fresh session, small table",
        columns=[
            "sessions in table",
            "GET fresh p50 µs",
            "GET 1,000-range p50 µs",
            "bare get_entity p50 µs",
            "bare get_entity, 1,000-range p50 µs",
            "fresh vs small",
            "insert time",
        ],
        rows=rows,
        checks=checks,
        notes=notes,
        settings={"rounds": rounds, "calls_per_round": calls, "sizes": list(sizes)},
        data={"p50_us": {k: {str(n): v for n, v in d.items()} for k, d in p50.items()}},
        quick=config.quick,
    )
