"""Real processes the tests and benchmarks run: Azurite and `uploadsession serve`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Self

REPO = Path(__file__).resolve().parents[1]
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: every socket stays bound until all are chosen, so the
    kernel cannot hand out the same port twice (binding and closing one at a time can)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for_ports(
    ports: list[int], proc: subprocess.Popen[bytes], what: str, log: Path, deadline_s: float = 30.0
) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if all(port_open(p) for p in ports):
            return
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(
        f"{what} did not listen on {ports} within {deadline_s}s: {log.read_text()[-2000:]}"
    )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class Azurite:
    """Azurite on free 127.0.0.1 ports with its data in ``location``; can stop and restart
    (on the same ports). ``debug_log``: Azurite's debug log, one line per storage request."""

    def __init__(
        self, location: Path, *, debug_log: Path | None = None, in_memory: bool = False
    ) -> None:
        self.location = location
        self.debug_log = debug_log
        self.in_memory = in_memory  # --inMemoryPersistence: nothing survives a stop
        self.blob_port, self.queue_port, self.table_port = free_ports(3)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = location / "azurite.log"

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/devstoreaccount1;"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/devstoreaccount1;"
        )

    def start(self) -> Self:
        binary = REPO / "node_modules" / ".bin" / "azurite"
        if not binary.exists():
            raise RuntimeError("Azurite is not installed: run `make` (it runs npm ci)")
        self.location.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = self._popen(binary, out)
        wait_for_ports([self.blob_port, self.table_port], self.proc, "Azurite", self.log)
        return self

    def _popen(self, binary: Path, out: object) -> subprocess.Popen[bytes]:
        debug = ["--debug", str(self.debug_log)] if self.debug_log is not None else []
        storage = (
            ["--inMemoryPersistence"] if self.in_memory else ["--location", str(self.location)]
        )
        return subprocess.Popen(
            [
                str(binary),
                "--silent",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                *storage,
                *debug,
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
            ],
            stdout=out,
            stderr=subprocess.STDOUT,  # type: ignore[arg-type]
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


class Server:
    """`uploadsession serve` in a subprocess on a free port."""

    def __init__(
        self, env: Mapping[str, str], log: Path, *, timers: bool = False, https: bool = False
    ) -> None:
        self.https = https  # `serve --https`, its dev certificate made next to the log
        self.cert_file = log.parent / "tls" / "devcert.pem"
        self.port = free_port()
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.log = log
        self.timers = timers
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        scheme = "https" if self.https else "http"
        return f"{scheme}://127.0.0.1:{self.port}/beta"

    def start(self) -> Self:
        args = [
            sys.executable,
            "-m",
            "uploadsession.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--app-dir",
            str(REPO),
        ]
        if not self.timers:
            args.append("--no-timers")
        if self.https:
            args += ["--https", "--cert-dir", str(self.cert_file.parent)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                args,
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for_ports([self.port], self.proc, "uploadsession serve", self.log)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop(self.proc, sig)
            self.proc = None
