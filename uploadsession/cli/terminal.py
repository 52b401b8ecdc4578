"""Drawing on a terminal: the upload's progress bar, redrawn in place on stderr."""

from __future__ import annotations

import shutil
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from uploadsession.client import Progress


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def render_progress(progress: Progress, width: int = 80) -> str:
    """One line: ``45% [#####-----] 9.0 MiB/20.0 MiB 6.2 MiB/s ETA 0:02``, at most ``width``."""
    percent = f"{progress.fraction * 100:3.0f}%"
    amounts = f"{human_bytes(progress.position)}/{human_bytes(progress.size)}"
    rate = f"{human_bytes(progress.rate)}/s" if progress.rate > 0 else "--/s"
    if progress.finished:
        tail = f"in {clock(progress.elapsed)}"
    else:
        eta = progress.eta
        tail = "ETA --:--" if eta is None else f"ETA {clock(eta)}"
    text = f" {amounts}  {rate}  {tail}"
    bar_width = max(0, min(40, width - len(percent) - len(text) - 4))
    if bar_width >= 5:
        filled = int(bar_width * progress.fraction)
        return f"{percent} [{'#' * filled}{'-' * (bar_width - filled)}]{text}"[:width]
    return f"{percent}{text}"[:width]


class TerminalProgress:
    """A progress bar redrawn in place (``\\r``) on a terminal stream."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._drawn = 0

    def __call__(self, progress: Progress) -> None:
        width = shutil.get_terminal_size((80, 24)).columns - 1
        line = render_progress(progress, width)
        self.stream.write("\r" + line + " " * max(0, self._drawn - len(line)))
        self._drawn = len(line)
        if progress.finished:
            self.close()
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line (if one was drawn) so later messages start on their own."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0
