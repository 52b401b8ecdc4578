"""A delay proxy in front of Azurite: a fixed latency per storage request, and request counts.

Loopback Azurite answers in well under a millisecond, so contention between writers (lost
ETag races, retries) hardly shows. Azure Storage round trips take milliseconds to tens of
milliseconds; this proxy makes every storage call take at least that long, the way real storage
exposes contention, and counts the calls so a benchmark can report storage operations per API
request.

- One listener per upstream (``blob``, ``table``) on ``127.0.0.1``; each client connection gets
  its own upstream connection (HTTP/1.1 keep-alive, requests in order, no pipelining — what the
  Azure SDK's ``requests`` transport does).
- **Per request, not per byte**: each request is read whole, held for ``latency`` seconds, then
  forwarded; the answer is passed back as it arrives. Bodies are never inspected.
- Each request is counted by kind — service, method, resource (table name, ``$batch``,
  ``Tables``, or the blob container; ``(entity)`` for a point address, ``?query`` for a table
  query) and the ``comp=`` / ``restype=`` of the query string — and by its answer's status.
- A third listener is the control: ``GET /counts`` (JSON ``{kind: {status: n}}``),
  ``POST /reset``, ``POST /latency?ms=N``.

Run it in-process (:class:`DelayProxy`, a background thread with its own event loop) or as
``python -m bench.delay_proxy --blob PORT --table PORT --latency-ms 20`` (prints its ports as
JSON on one line; :class:`ProxyProcess` starts it so and talks to its control port).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.processes import AZURITE_KEY, REPO

MAX_HEADER = 64 * 1024
CHUNK = 256 * 1024


# -- classification --------------------------------------------------------------------------


def kind_of(service: str, method: str, target: str) -> str:
    """``table GET uploadsessions(entity)``, ``blob PUT documents comp=block``, …"""
    parts = urlsplit(target)
    path = unquote(parts.path).lstrip("/")
    # Azurite's path-style addressing: /<account>/<resource>...
    segments = path.split("/", 2)
    resource = segments[1] if len(segments) > 1 else ""
    query = parse_qs(parts.query, keep_blank_values=True)
    if service == "table":
        if resource.startswith("$batch"):
            name = "$batch"
        elif "(" in resource:
            table, _, inside = resource.partition("(")
            name = f"{table}(entity)" if inside.strip(")") else f"{table}?query"
        else:
            name = f"{resource}?query" if "$filter" in query and resource != "Tables" else resource
    else:
        name = resource
    extras = [f"{key}={query[key][0]}" for key in ("restype", "comp") if key in query]
    return " ".join([service, method, name, *extras])


# -- HTTP/1.1 framing ------------------------------------------------------------------------


class Closed(Exception):
    """The peer closed the connection between messages."""


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            raise Closed from None
        raise
    except asyncio.LimitOverrunError:
        raise ValueError("header too large") from None
    return head


def _headers(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    out: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            out[name.strip().lower()] = value.strip()
    return lines[0], out


async def _copy_body(
    reader: asyncio.StreamReader,
    headers: Mapping[str, str],
    writer: asyncio.StreamWriter | None,
    *,
    until_close: bool = False,
) -> bytes:
    """Copy one message body to ``writer`` (or return it when ``writer`` is None)."""
    kept = bytearray()

    async def emit(data: bytes) -> None:
        if writer is None:
            kept.extend(data)
        else:
            writer.write(data)
            await writer.drain()

    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readuntil(b"\r\n")
            await emit(size_line)
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    line = await reader.readuntil(b"\r\n")
                    await emit(line)
                    if line == b"\r\n":
                        return bytes(kept)
            remaining = size + 2  # the data and its CRLF
            while remaining:
                data = await reader.read(min(CHUNK, remaining))
                if not data:
                    raise asyncio.IncompleteReadError(b"", remaining)
                remaining -= len(data)
                await emit(data)
    length = headers.get("content-length")
    if length is not None:
        remaining = int(length)
        while remaining:
            data = await reader.read(min(CHUNK, remaining))
            if not data:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(data)
            await emit(data)
    elif until_close:
        while data := await reader.read(CHUNK):
            await emit(data)
    return bytes(kept)


# -- the proxy -------------------------------------------------------------------------------


class DelayProxy:
    """Listeners for each upstream port plus a control port, on a loop in a daemon thread."""

    def __init__(self, upstreams: Mapping[str, int], latency: float = 0.02) -> None:
        self.upstreams = dict(upstreams)
        self.latency = latency
        self.ports: dict[str, int] = {}
        self._counts: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []
        self._ready = threading.Event()

    # counters

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for (kind, status), n in sorted(self._counts.items()):
                out.setdefault(kind, {})[str(status)] = n
        return out

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def _count(self, kind: str, status: int) -> None:
        with self._lock:
            self._counts[(kind, status)] += 1

    # lifecycle

    def start(self) -> DelayProxy:
        self._thread = threading.Thread(target=self._run, name="delay-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the delay proxy did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._listen())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            for server in self._servers:
                server.close()
            loop.close()

    async def _listen(self) -> None:
        for name, upstream in self.upstreams.items():
            server = await asyncio.start_server(
                lambda r, w, n=name, u=upstream: self._client(r, w, n, u),
                "127.0.0.1",
                0,
                limit=MAX_HEADER,
            )
            self._servers.append(server)
            self.ports[name] = server.sockets[0].getsockname()[1]
        control = await asyncio.start_server(self._control, "127.0.0.1", 0, limit=MAX_HEADER)
        self._servers.append(control)
        self.ports["control"] = control.sockets[0].getsockname()[1]

    async def _client(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        service: str,
        upstream_port: int,
    ) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                try:
                    head = await _read_head(reader)
                except Closed:
                    return
                request_line, headers = _headers(head)
                method, target, _ = request_line.split(" ", 2)
                body = await _copy_body(reader, headers, None)
                await asyncio.sleep(self.latency)  # per request, not per byte
                if upstream is None:
                    upstream = await asyncio.open_connection(
                        "127.0.0.1", upstream_port, limit=MAX_HEADER
                    )
                up_reader, up_writer = upstream
                up_writer.write(head + body)
                await up_writer.drain()
                response_head = await _read_head(up_reader)
                status_line, response_headers = _headers(response_head)
                status = int(status_line.split(" ", 2)[1])
                self._count(kind_of(service, method, target), status)
                writer.write(response_head)
                no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
                close = response_headers.get("connection", "").lower() == "close"
                if not no_body:
                    await _copy_body(up_reader, response_headers, writer, until_close=close)
                await writer.drain()
                if close or headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, Closed):
            return
        finally:
            writer.close()
            if upstream is not None:
                upstream[1].close()

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await _read_head(reader)
                except Closed:
                    return
                request_line, headers = _headers(head)
                await _copy_body(reader, headers, None)
                method, target, _ = request_line.split(" ", 2)
                parts = urlsplit(target)
                payload: Any
                if method == "GET" and parts.path == "/counts":
                    payload = self.counts()
                elif method == "POST" and parts.path == "/reset":
                    self.reset()
                    payload = {}
                elif method == "POST" and parts.path == "/latency":
                    self.latency = float(parse_qs(parts.query)["ms"][0]) / 1000
                    payload = {"latency_ms": self.latency * 1000}
                else:
                    payload = {"error": "unknown"}
                data = json.dumps(payload).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, KeyError):
            return
        finally:
            writer.close()


# -- as a process ----------------------------------------------------------------------------


def connection_string(blob_port: int, table_port: int) -> str:
    """Azurite's account, addressed through the proxy's ports."""
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{blob_port}/devstoreaccount1;"
        f"TableEndpoint=http://127.0.0.1:{table_port}/devstoreaccount1;"
    )


class ProxyProcess:
    """``python -m bench.delay_proxy`` in a subprocess (its own interpreter and GIL, so the
    proxy does not compete with the benchmark's client threads), driven by its control port."""

    def __init__(self, blob_port: int, table_port: int, latency_ms: float, log: Path) -> None:
        self.args = [
            sys.executable,
            "-m",
            "bench.delay_proxy",
            "--blob",
            str(blob_port),
            "--table",
            str(table_port),
            "--latency-ms",
            str(latency_ms),
        ]
        self.log = log
        self.proc: subprocess.Popen[str] | None = None
        self.ports: dict[str, int] = {}

    def start(self) -> ProxyProcess:
        self.proc = subprocess.Popen(
            self.args,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self.log.open("ab"),
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the child prints its ports once listening
        if not line:
            raise RuntimeError(f"the delay proxy exited: {self.log.read_text()[-2000:]}")
        self.ports = {k: int(v) for k, v in json.loads(line).items()}
        return self

    @property
    def connection_string(self) -> str:
        return connection_string(self.ports["blob"], self.ports["table"])

    def _call(self, method: str, path: str) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.ports["control"], timeout=10)
        try:
            conn.request(method, path)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def counts(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = self._call("GET", "/counts")
        return result

    def reset(self) -> None:
        self._call("POST", "/reset")

    def set_latency(self, ms: float) -> None:
        self._call("POST", f"/latency?ms={ms}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


def total(counts: Mapping[str, Mapping[str, int]]) -> int:
    return sum(sum(by_status.values()) for by_status in counts.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delay_proxy", description=__doc__)
    parser.add_argument("--blob", type=int, required=True, help="Azurite's blob port")
    parser.add_argument("--table", type=int, required=True, help="Azurite's table port")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    proxy = DelayProxy({"blob": args.blob, "table": args.table}, args.latency_ms / 1000).start()
    print(json.dumps(proxy.ports), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
