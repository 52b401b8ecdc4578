"""Optimistic concurrency on the session row: one retry loop, and the group commit of segments.

Every change to a session is an ETag-conditional replace of its one row. Two helpers:

- :func:`retry_on_conflict` runs a step that re-reads what it changes until its conditional
  write wins (bounded, jittered back-off, then 503): the one loop of the service.
- :class:`SegmentRecorder` records the segments that arrive for one session in parallel in
  *one* write per round (group commit; docs/architecture.md "Recording segments"): the first
  request to arrive leads, applies every segment queued so far to the row in arrival order,
  writes once, answers them all, and hands the lead to the first request that queued during
  its write. Parallel streams of one session therefore never race each other for the row;
  only writers in other processes (or other use cases) can make the write lose, and then the
  round re-reads the row and re-applies its segments.

No storage SDK and no HTTP here; the service passes the store's operations in.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from uploadsession.errors import ConcurrencyConflict, ItemNotFound, ServiceUnavailable
from uploadsession.models import DocumentKey, Session

T = TypeVar("T")

MAX_WRITE_ATTEMPTS = 12


def busy() -> ServiceUnavailable:
    return ServiceUnavailable("The session is busy; try again", retry_after=1)


def retry_on_conflict(
    step: Callable[[], T],
    *,
    backoff: Callable[[int], None],
    attempts: int = MAX_WRITE_ATTEMPTS,
) -> T:
    """``step()`` until it does not raise :class:`ConcurrencyConflict`, at most ``attempts``
    times with ``backoff(attempt)`` between; then 503 "busy". ``step`` must re-read what it
    writes (each attempt starts from fresh state)."""
    for attempt in range(attempts):
        try:
            return step()
        except ConcurrencyConflict:
            backoff(attempt)
    raise busy()


#: ``apply(state)`` → the state with one segment added, or None when the segment changes
#: nothing (an identical retry); raises a :class:`~uploadsession.errors.DomainError` to refuse
#: that segment alone (overlap, If-Match, the cap, a checksum mismatch, a replaced session).
Apply = Callable[[Session], Session | None]


@dataclass(eq=False)
class _Pending:
    loaded: Session
    apply: Apply
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    result: Session | None = None
    error: BaseException | None = None

    def finish(self, result: Session | None, error: BaseException | None) -> None:
        self.result, self.error = result, error
        self.done.set()

    def outcome(self) -> Session:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@dataclass(eq=False)
class _Queue:
    pending: list[_Pending] = field(default_factory=list)
    busy: bool = False


class SegmentRecorder:
    """Group commit of a session's segments within one process (see the module docstring).

    ``write`` is the store's conditional replace (raises ConcurrencyConflict when the row
    changed), ``reload`` its point read. The last row this process wrote for a session is
    remembered (bounded LRU) so a round needs no read; a stale one costs one lost write.
    """

    def __init__(
        self,
        *,
        write: Callable[[Session], Session],
        reload: Callable[[DocumentKey], Session | None],
        backoff: Callable[[int], None],
        attempts: int = MAX_WRITE_ATTEMPTS,
        wait_seconds: float = 30.0,
        remembered: int = 1024,
    ) -> None:
        self._write = write
        self._reload = reload
        self._backoff = backoff
        self._attempts = attempts
        self._wait_seconds = wait_seconds
        self._remembered = remembered
        self._lock = threading.Lock()
        self._queues: dict[DocumentKey, _Queue] = {}
        self._known: OrderedDict[DocumentKey, Session] = OrderedDict()
        #: Rounds written, and segments they carried (observable in tests and benchmarks).
        self.rounds = 0
        self.recorded = 0

    def record(self, key: DocumentKey, loaded: Session, apply: Apply) -> Session:
        """Apply one segment to the session row and make it durable; returns the session as it
        was right after this segment (the row as written when this segment was the last one
        its round changed). Raises what ``apply`` raised for this segment, 404 when the row is
        gone, or 503 when the write keeps losing or storage fails."""
        mine = _Pending(loaded, apply)
        with self._lock:
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue()
            queue.pending.append(mine)
            lead = not queue.busy
            queue.busy = True
        if not lead and not self._wait(queue, mine):
            return mine.outcome()
        try:
            self._round(key, queue)
        finally:
            self._hand_over(key, queue)
        return mine.outcome()

    # -- the lead ------------------------------------------------------------------------

    def _wait(self, queue: _Queue, mine: _Pending) -> bool:
        """Wait until a round answers ``mine`` (False) or the lead is handed to it (True)."""
        if not mine.done.wait(self._wait_seconds):
            with self._lock:
                if not mine.lead:
                    if mine in queue.pending:  # never applied: nothing was recorded
                        queue.pending.remove(mine)
                    raise busy()
        return mine.lead

    def _hand_over(self, key: DocumentKey, queue: _Queue) -> None:
        with self._lock:
            if queue.pending:
                successor = queue.pending[0]
                successor.lead = True
                successor.done.set()
            else:
                queue.busy = False
                del self._queues[key]

    def forget(self, key: DocumentKey) -> None:
        """Drop the remembered row: another use case is about to write it."""
        self._remember(key, None)

    def _start(self, key: DocumentKey, batch: list[_Pending]) -> tuple[Session, bool]:
        """Where a round starts: the row this process last wrote (True) or the row the first
        request read (False)."""
        with self._lock:
            known = self._known.get(key)
        loaded = batch[0].loaded
        if known is not None and known.id == loaded.id:
            return known, True
        return loaded, False

    def _remember(self, key: DocumentKey, session: Session | None) -> None:
        with self._lock:
            if session is None:
                self._known.pop(key, None)
                return
            self._known[key] = session
            self._known.move_to_end(key)
            while len(self._known) > self._remembered:
                self._known.popitem(last=False)

    def _round(self, key: DocumentKey, queue: _Queue) -> None:
        """One write for every segment queued so far; each is answered only after it."""
        with self._lock:
            batch, queue.pending = queue.pending, []
            for item in batch:
                item.lead = False
                item.done.clear()
        error: BaseException = busy()
        try:
            state, remembered = self._start(key, batch)
            for attempt in range(self._attempts):
                applied, final = self._apply(state, batch)
                if final is state and remembered:
                    # Nothing to write, so no write proves the remembered row current: answer
                    # identical retries and refusals from the row as stored now.
                    fresh = self._reload(key)
                    if fresh is None:
                        error = ItemNotFound("The upload session does not exist or has expired")
                        break
                    state, remembered = fresh, False
                    applied, final = self._apply(state, batch)
                if final is state:  # nothing to write: identical retries and refusals only
                    self._answer(applied, final, state)
                    return
                try:
                    saved = self._write(final)
                except ConcurrencyConflict:
                    self._backoff(attempt)
                    fresh = self._reload(key)
                    if fresh is None:
                        error = ItemNotFound("The upload session does not exist or has expired")
                        break
                    state, remembered = fresh, False
                    continue
                with self._lock:
                    self.rounds += 1
                    self.recorded += sum(1 for _, snapshot, _ in applied if snapshot is not None)
                self._remember(key, saved)
                self._answer(applied, final, saved)
                return
        except BaseException as exc:  # storage trouble: no segment of this round is answered 2xx
            error = exc
        self._remember(key, None)
        for item in batch:
            item.finish(None, error)

    @staticmethod
    def _apply(state: Session, batch: list[_Pending]) -> tuple[list[_Outcome], Session]:
        """Each segment applied in arrival order to the state the previous ones left."""
        applied: list[_Outcome] = []
        current = state
        for item in batch:
            try:
                changed = item.apply(current)
            except Exception as exc:  # this segment alone is refused
                applied.append((item, None, exc))
                continue
            if changed is not None:
                current = changed
                applied.append((item, current, None))
            else:
                applied.append((item, None, None))  # identical retry: the state as it ends
        return applied, current

    @staticmethod
    def _answer(applied: list[_Outcome], final: Session, saved: Session) -> None:
        for item, snapshot, refused in applied:
            if refused is not None:
                item.finish(None, refused)
            elif snapshot is None or snapshot is final:
                item.finish(saved, None)
            else:  # an earlier point of the round: not the row as stored, no storage ETag
                item.finish(replace(snapshot, storage_etag=None), None)


#: A segment's outcome in a round: (its request, the state right after it when it changed the
#: row, its refusal).
_Outcome = tuple[_Pending, Session | None, BaseException | None]
