"""The processes a benchmark runs: Azurite and ``uploadsession serve``, on free 127.0.0.1 ports.

A minimal copy of ``tests/processes.py`` (so the suite does not depend on the tests), plus an
in-memory Azurite for the large table and the host's memory counters from ``/proc``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_for_ports(
    ports: list[int], proc: subprocess.Popen[bytes], what: str, log: Path, deadline_s: float = 60
) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if all(_port_open(p) for p in ports):
            return
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{what} did not listen on {ports} within {deadline_s}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def proc_status(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` counter in bytes (``VmHWM`` = peak RSS, ``VmRSS`` = now)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            value, unit = line.split()[1:3]
            assert unit == "kB", line
            return int(value) * 1024
    raise KeyError(field)


class Azurite:
    """Azurite from ``node_modules`` on free ports; data under ``location`` or in memory."""

    def __init__(self, location: Path, *, in_memory: bool = False) -> None:
        self.location = location
        self.in_memory = in_memory
        self.blob_port, self.queue_port, self.table_port = free_port(), free_port(), free_port()
        self.log = location / "azurite.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/devstoreaccount1;"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/devstoreaccount1;"
        )

    def start(self) -> Azurite:
        binary = REPO / "node_modules" / ".bin" / "azurite"
        if not binary.exists():
            raise RuntimeError("Azurite is not installed: run `make bench` (it runs npm ci)")
        self.location.mkdir(parents=True, exist_ok=True)
        args = [
            str(binary),
            "--silent",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.blob_port),
            "--queueHost",
            "127.0.0.1",
            "--queuePort",
            str(self.queue_port),
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(self.table_port),
        ]
        args += ["--inMemoryPersistence"] if self.in_memory else ["--location", str(self.location)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        _wait_for_ports([self.blob_port, self.table_port], self.proc, "Azurite", self.log)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None


class Host:
    """``uploadsession serve`` (timers off) in a subprocess on a free 127.0.0.1 port."""

    def __init__(self, env: Mapping[str, str], log: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/beta"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Host:
        args = [
            sys.executable,
            "-m",
            "uploadsession",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--app-dir",
            str(REPO),
            "--no-timers",
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                args, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        _wait_for_ports([self.port], self.proc, "uploadsession serve", self.log)
        return self

    def peak_rss(self) -> int:
        return proc_status(self.pid, "VmHWM")

    def rss(self) -> int:
        return proc_status(self.pid, "VmRSS")

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None
