"""``uploadsession serve`` (the waitress-based dev host) at the socket: the limits that keep an
unauthenticated client from exhausting it, and host-level answers as the Functions host gives
them. Raw sockets on 127.0.0.1, every wait bounded."""

from __future__ import annotations

import gc
import hashlib
import io
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.test_devhost import Recorder, build_app
from uploadsession.dev.host import DevHost

CAP = 1024 * 1024

# waitress spools bodies over 512 KiB to a temporary file and, after some exchanges here (a
# 1 MiB echo, a refused chunked body), leaves one to the garbage collector: collected in the
# fixture's teardown, under this filter, so the warning is not blamed on a later test.
pytestmark = pytest.mark.filterwarnings(
    "ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"
)


@pytest.fixture
def log() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def host(log: io.StringIO) -> Iterator[DevHost]:
    with DevHost(
        build_app(Recorder()),
        port=0,
        route_prefix="beta",
        run_timers=False,
        max_body_bytes=CAP,
        header_timeout=1.0,
        log=log,
    ) as running:
        yield running
    gc.collect()


def connect(host: DevHost) -> socket.socket:
    address, port = host.authority.rsplit(":", 1)
    return socket.create_connection((address, int(port)), timeout=5)


def read_until_closed(sock: socket.socket, deadline_seconds: float = 5.0) -> bytes:
    received = b""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the connection stayed open; received {received[:200]!r}")


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One response with a Content-Length: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before the response head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return head, body


def test_a_content_length_over_the_cap_is_refused_before_the_body_is_read(host: DevHost) -> None:
    with connect(host) as sock:
        # Only the head: the refusal must come from the Content-Length alone. With
        # Expect: 100-continue the client must not be invited to send the body either.
        sock.sendall(
            f"PUT /beta/items/a HTTP/1.1\r\nHost: x\r\nContent-Length: {CAP + 1}\r\n"
            "Expect: 100-continue\r\n\r\n".encode()
        )
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]
    assert b"100 Continue" not in answer


def test_a_body_of_exactly_the_cap_is_served(host: DevHost) -> None:
    body = os.urandom(CAP)
    with connect(host) as sock:
        sock.sendall(
            f"PUT /beta/items/a HTTP/1.1\r\nHost: x\r\nContent-Length: {CAP}\r\n\r\n".encode()
            + body
        )
        head, echoed = read_response(sock)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert echoed == body


def test_a_chunked_body_over_the_cap_is_refused_while_it_arrives(host: DevHost) -> None:
    # The host stops reading at the cap: sending 32 times the cap must fail (reset, broken
    # pipe, or a send that stalls into the socket timeout once the kernel buffers are full).
    bound = 32 * CAP
    with connect(host) as sock:
        sock.sendall(b"PUT /beta/items/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % 65536 + b"x" * 65536 + b"\r\n"
        sent = 0
        with pytest.raises(OSError):
            while sent < bound:
                sock.sendall(chunk)
                sent += 65536
        assert sent < bound


def test_a_client_that_never_finishes_its_headers_is_disconnected(host: DevHost) -> None:
    with connect(host) as sock:
        sock.sendall(b"GET /beta/items/a HTTP/1.1\r\nHost: x\r\n")  # no blank line, ever
        started = time.monotonic()
        answer = read_until_closed(sock, deadline_seconds=10)
        elapsed = time.monotonic() - started
    assert answer == b""
    assert elapsed < 8, f"disconnected after {elapsed:.1f}s with a 1 s header deadline"


def test_unknown_route_is_an_empty_404(host: DevHost) -> None:
    with connect(host) as sock:
        sock.sendall(b"GET /beta/nothing/here HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = read_response(sock)
    assert head.startswith(b"HTTP/1.1 404 ")
    assert body == b""


def test_wrong_method_is_an_empty_405_with_allow(host: DevHost) -> None:
    with connect(host) as sock:
        sock.sendall(b"PATCH /beta/items/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        head, body = read_response(sock)
    assert head.startswith(b"HTTP/1.1 405 ")
    assert b"\r\nAllow: " in head
    assert body == b""


def test_a_chunked_upload_reaches_the_function_whole(host: DevHost) -> None:
    parts = [os.urandom(1000), os.urandom(70000), os.urandom(3)]
    framed = b"".join(b"%x;ext=1\r\n" % len(part) + part + b"\r\n" for part in parts)
    with connect(host) as sock:
        sock.sendall(
            b"POST /beta/items/a/$value HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + framed
            + b"0\r\nX-Trailer: t\r\n\r\n"
        )
        head, body = read_response(sock)
    assert head.startswith(b"HTTP/1.1 201 ")
    assert body.decode() == hashlib.sha256(b"".join(parts)).hexdigest()


def test_the_log_line_has_no_query_string(host: DevHost, log: io.StringIO) -> None:
    with connect(host) as sock:
        sock.sendall(b"GET /beta/items/a?token=s3cr3t&x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = read_response(sock)
    assert head.startswith(b"HTTP/1.1 200 ")
    lines = [line for line in log.getvalue().splitlines() if "/beta/items/a" in line]
    assert len(lines) == 1
    assert '"GET /beta/items/a HTTP/1.1" 200 ' in lines[0]
    assert "s3cr3t" not in log.getvalue()
    assert "?" not in lines[0]


def test_a_taken_port_raises_at_construction() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            DevHost(build_app(Recorder()), port=port, log=None)


def test_serve_on_a_taken_port_says_so_in_one_line_and_exits_1() -> None:
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = {
            **os.environ,
            "UPLOADSESSION_STORAGE": "UseDevelopmentStorage=true",
            "AUTH_AUDIENCES": "api://test",
        }
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "uploadsession.cli",
                "serve",
                "--no-timers",
                "--port",
                str(port),
            ],
            env=env,
            cwd=Path(__file__).resolve().parents[2],  # the repository: function_app.py
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"port {port}" in lines[0] and "PORT=" in lines[0]
    assert "Traceback" not in done.stderr
