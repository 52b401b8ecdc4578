"""A raw HTTP/1.1 client for hostile requests: sends exactly the bytes given (request targets
with raw ``#``, ``?``, backslashes or UTF-8; duplicated, folded, NUL-carrying or oversized
headers; contradictory framing) and parses the answer with the standard library."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from dataclasses import dataclass
from typing import Any

Header = tuple[str | bytes, str | bytes]


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[0] if values else None

    def header_names(self) -> set[str]:
        return {k.lower() for k, _ in self.headers}

    def json(self) -> Any:
        return json.loads(self.body)


def send(
    port: int,
    method: str,
    target: str | bytes,
    headers: list[Header],
    body: bytes = b"",
    *,
    content_length: bool = True,
    timeout: float = 30,
) -> Reply:
    """One request on a new connection (``Connection: close``), exactly as given."""
    lines = [_bytes(method) + b" " + _bytes(target) + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [_bytes(name) + b": " + _bytes(value) for name, value in headers]
    if content_length:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    lines.append(b"Connection: close")
    return exchange(port, b"\r\n".join(lines) + b"\r\n\r\n" + body, method, timeout=timeout)


def exchange(port: int, payload: bytes, method: str = "GET", *, timeout: float = 30) -> Reply:
    """Send ``payload`` as it is on a new connection; read one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # The server may answer early and close; its answer is still readable.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(payload)
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        data = response.read()
        return Reply(response.status, response.getheaders(), data)
