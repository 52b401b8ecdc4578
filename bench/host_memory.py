"""RSS of `uploadsession serve` under parallel large unauthenticated chunked bodies.

An outside client with no token sends ``--streams`` (16) chunked PUTs of ``--mib`` (60) MiB each
to an upload URL at once; the script samples the serve process's resident set size
(``/proc/PID/status`` VmRSS) before, during and after, and prints one JSON line. The host must
cut each body off at its cap (the largest segment plus 1 MiB), so RSS stays near its idle size
(the hand-written host buffered them: 57 MiB → 1.1 GiB).

Bounded: each stream stops at its size, at the first send error, or at ``--seconds`` (30).
No storage is needed: the bodies are refused before any function runs. Run:
``.venv/bin/python -m bench.host_memory``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PATH = "/beta/uploadSessions/bench-unauthenticated?token=not-a-real-token"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("serve did not listen in time")


def stream(port: int, total: int, deadline: float, sent: list[int], index: int) -> None:
    chunk = b"%x\r\n" % 65536 + b"x" * 65536 + b"\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(
                f"PUT {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Range: bytes 0-999/1000\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            )
            while sent[index] < total and time.monotonic() < deadline:
                sock.sendall(chunk)
                sent[index] += 65536
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # refused: the host closed the connection


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--mib", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("UPLOADSESSION_STORAGE", "UseDevelopmentStorage=true")
    env.setdefault("AUTH_AUDIENCES", "api://bench")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uploadsession.cli", "serve", "--no-timers", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, proc)
        time.sleep(0.5)
        before = rss_mib(proc.pid)
        sent = [0] * args.streams
        deadline = time.monotonic() + args.seconds
        threads = [
            threading.Thread(
                target=stream, args=(port, args.mib * 1024 * 1024, deadline, sent, i), daemon=True
            )
            for i in range(args.streams)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        peak = before
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline + 5:
            peak = max(peak, rss_mib(proc.pid))
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        time.sleep(0.5)
        after = rss_mib(proc.pid)
        peak = max(peak, after)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    print(
        json.dumps(
            {
                "streams": args.streams,
                "mib_per_stream": args.mib,
                "client_sent_mib_total": round(sum(sent) / 2**20, 1),
                "seconds": round(elapsed, 2),
                "rss_before_mib": round(before, 1),
                "rss_peak_mib": round(peak, 1),
                "rss_after_mib": round(after, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
