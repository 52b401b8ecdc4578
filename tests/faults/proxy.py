"""A fault-injecting HTTP proxy between the app and Azurite (one request per connection).

Each rule matches a storage request by method (``"PUT|PATCH"``: any of them), port role
(``blob`` / ``table``) and a predicate on the request line and body, lets the first ``skip``
matching requests pass, and does one thing to the next ``times`` ones:

- ``fail500`` / ``fail503``: answer for storage without forwarding (nothing happened);
- ``drop``: close the connection without forwarding (nothing happened, the caller waits in vain
  only until the connection closes);
- ``lose_reply``: forward, let storage apply it, then close without relaying the answer (the
  step happened; the caller does not know);
- ``hold``: do not answer until :meth:`FaultProxy.release` (a black-holed endpoint);
- ``forward``: pass it on as if no rule matched; with ``then``, an observer;
- ``then``: an extra callback run after the action (e.g. SIGKILL the host at that moment).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

Predicate = Callable[[str, str, bytes], bool]  # method, target (path?query), body


@dataclass
class Rule:
    role: str
    method: str
    match: Predicate
    action: str
    times: int = 1
    then: Callable[[], None] | None = None
    hits: int = 0
    skip: int = 0  # matching requests let pass before the first fault
    seen: int = 0


@dataclass
class FaultProxy:
    upstream: dict[str, int]  # role → Azurite port
    ports: dict[str, int] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    log: list[tuple[str, str, str]] = field(default_factory=list)
    #: every Put Block List: (target, whether it lists blocks — a commit, not a placeholder)
    block_lists: list[tuple[str, bool]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _released: threading.Event = field(default_factory=threading.Event)
    _sockets: list[socket.socket] = field(default_factory=list)
    hold_all: bool = False

    def start(self) -> FaultProxy:
        for role, port in self.upstream.items():
            listener = socket.create_server(("127.0.0.1", 0))
            listener.settimeout(0.5)
            self._sockets.append(listener)
            self.ports[role] = listener.getsockname()[1]
            threading.Thread(target=self._accept, args=(listener, role, port), daemon=True).start()
        return self

    def stop(self) -> None:
        self._released.set()
        for s in self._sockets:
            s.close()

    def connection_string(self, key: str) -> str:
        return (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={key};"
            f"BlobEndpoint=http://127.0.0.1:{self.ports['blob']}/devstoreaccount1;"
            f"TableEndpoint=http://127.0.0.1:{self.ports['table']}/devstoreaccount1;"
        )

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
        self.hold_all = False
        self._released.set()
        self._released = threading.Event()

    def release(self) -> None:
        self.hold_all = False
        self._released.set()

    # -- plumbing ------------------------------------------------------------------------

    def _accept(self, listener: socket.socket, role: str, port: int) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, role, port), daemon=True).start()

    def _rule_for(self, role: str, method: str, target: str, body: bytes) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if (
                    rule.hits < rule.times
                    and rule.role == role
                    and method in rule.method.split("|")
                    and rule.match(method, target, body)
                ):
                    if rule.seen < rule.skip:
                        rule.seen += 1
                        continue
                    rule.hits += 1
                    return rule
        return None

    def _serve(self, conn: socket.socket, role: str, port: int) -> None:
        conn.settimeout(30)
        try:
            head, body = _read_request(conn)
            if head is None:
                return
            lines = head.split(b"\r\n")
            method, target, _ = lines[0].decode("latin-1").split(" ", 2)
            rule = self._rule_for(role, method, target, body)
            with self._lock:
                self.log.append((role, method, target))
                if "comp=blocklist" in target and method == "PUT":
                    self.block_lists.append((target, b"<Latest>" in body))
            if self.hold_all or (rule is not None and rule.action == "hold"):
                self._released.wait(60)
            action = rule.action if rule is not None else "forward"
            if action in ("fail500", "fail503"):
                status = 500 if action == "fail500" else 503
                code = "InternalError" if status == 500 else "ServerBusy"
                text = (
                    f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
                    "<Message>injected by the test proxy</Message></Error>"
                ).encode()
                conn.sendall(
                    f"HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\n"
                    f"x-ms-error-code: {code}\r\n"
                    f"Content-Length: {len(text)}\r\nConnection: close\r\n\r\n".encode()
                    + text
                )
            elif action != "drop":
                reply = _forward(port, lines, body)
                if action != "lose_reply":
                    with suppress(OSError):  # a caller that gave up (a held request) is gone
                        conn.sendall(reply)
            if rule is not None and rule.then is not None:
                rule.then()
        except OSError:
            pass
        finally:
            conn.close()


def _read_request(conn: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = conn.recv(1 << 20)
        if not chunk:
            break
        rest += chunk
    return head, rest


def _forward(port: int, lines: list[bytes], body: bytes) -> bytes:
    kept = [
        line
        for line in lines[1:]
        if line and line.split(b":", 1)[0].strip().lower() not in (b"connection", b"keep-alive")
    ]
    request = b"\r\n".join([lines[0], *kept, b"Connection: close", b"", b""]) + body
    with socket.create_connection(("127.0.0.1", port), timeout=30) as up:
        up.sendall(request)
        reply = b""
        while chunk := up.recv(1 << 20):
            reply += chunk
    return reply
