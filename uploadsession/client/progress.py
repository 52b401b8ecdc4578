"""What an upload reports while it runs: a :class:`Progress` snapshot per callback, and the
sliding-window rate it carries. Pure, no I/O (the CLI draws it: ``uploadsession.cli.terminal``)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

#: Progress callbacks while bytes are on the wire come at most this often.
PROGRESS_INTERVAL_SECONDS = 0.1


@dataclass(frozen=True)
class Progress:
    """A snapshot of an upload, handed to the ``progress`` callback."""

    size: int
    #: Bytes the server has acknowledged, including any it had before this run.
    done: int
    #: Bytes written to the network for segments not yet acknowledged.
    in_flight: int
    #: Bytes acknowledged in this run.
    sent: int
    elapsed: float
    #: Recent transfer rate in bytes per second (0.0 until measurable).
    rate: float
    finished: bool = False

    @property
    def position(self) -> int:
        """Where a progress bar should stand: acknowledged plus on-the-wire bytes."""
        return min(self.size, self.done + self.in_flight)

    @property
    def fraction(self) -> float:
        return 1.0 if self.size <= 0 else self.position / self.size

    @property
    def eta(self) -> float | None:
        """Seconds until done at the current rate, or None when the rate is unknown."""
        remaining = self.size - self.position
        if remaining <= 0:
            return 0.0
        if self.rate <= 0:
            return None
        return remaining / self.rate


class RateMeter:
    """Bytes per second over a sliding window of (time, total bytes) samples."""

    def __init__(self, window_seconds: float = 5.0) -> None:
        self.window = window_seconds
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, when: float, total: int) -> None:
        self._samples.append((when, total))
        while len(self._samples) > 2 and when - self._samples[1][0] >= self.window:
            self._samples.popleft()

    @property
    def rate(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return 0.0 if t1 <= t0 else max(0.0, (b1 - b0) / (t1 - t0))
