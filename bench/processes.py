"""The processes a benchmark runs: the tests' Azurite and ``uploadsession serve`` (one
implementation, in ``tests/processes.py``), plus the host's memory counters from ``/proc``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tests.processes import REPO, Azurite, Server

__all__ = ["REPO", "Azurite", "Host", "proc_status"]


def proc_status(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` counter in bytes (``VmHWM`` = peak RSS, ``VmRSS`` = now)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            value, unit = line.split()[1:3]
            assert unit == "kB", line
            return int(value) * 1024
    raise KeyError(field)


class Host(Server):
    """``uploadsession serve`` with timers off, and its memory counters."""

    def __init__(self, env: Mapping[str, str], log: Path) -> None:
        super().__init__(env, log, timers=False)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def peak_rss(self) -> int:
        return proc_status(self.pid, "VmHWM")

    def rss(self) -> int:
        return proc_status(self.pid, "VmRSS")
