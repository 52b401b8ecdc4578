"""A local host for an ``azure.functions.FunctionApp``: what ``uploadsession serve`` runs.

Azure Functions Core Tools (``func start``) is not always available, so this module hosts the
app in-process with the standard library: it reads the functions the app registers
(``app.get_functions()``), serves their HTTP triggers over HTTP/1.1 and runs their timer
triggers on schedule. It mirrors the Functions host where a client can tell the difference:

- URLs are ``/{routePrefix}/{route}`` (``routePrefix`` from ``host.json``, see
  :func:`load_route_prefix`; ``route`` defaults to the function name); literal segments match
  case-insensitively, as in ASP.NET routing. ``{name}`` matches one non-empty path segment;
  ``{name?}`` and ``{name=default}`` may be omitted at the end of the path; ``{*rest}`` /
  ``{**rest}`` as the last segment takes the rest of the path; the constraints ``:int``,
  ``:long``, ``:guid``, ``:alpha`` and ``:bool`` are checked. Other template features (other
  constraints, several parameters or text and a parameter in one segment, ``{{`` escapes)
  are refused with :class:`ValueError` when the host is built. When several routes match,
  literal segments win over parameters, as in ASP.NET. A trailing ``/`` is ignored.
- Parameter values are percent-decoded after the path is split on ``/``, so ``%2F`` stays
  inside one value; query parameters and request headers that occur more than once are joined
  with ``,``, as the host's ``StringValues.ToString()`` does.
- ``methods`` default to all; a path that matches with another method answers 405 with
  ``Allow``; an unknown path 404. Both carry Graph's error envelope (and ``request-id`` /
  ``client-request-id``; a ``client-request-id`` is echoed only when it is 1-128 printable
  ASCII characters), as does everything the host itself refuses: 400 for a malformed request
  line, ``Content-Length`` or chunked body, or a transfer coding other than ``chunked`` (as
  Kestrel), 414 for a request line over 64 KiB, 431 for a header line over 64 KiB or more than
  100 headers, 413 for a body over ``max_body_bytes`` (the Functions
  limit, 100 MiB, by default; refused from its ``Content-Length`` or while reading chunks,
  never buffered whole), 500 when the function raises (the traceback goes to the log, never to
  the client) or returns something other than a ``func.HttpResponse``, ``str`` or ``bytes``.
- Responses keep every header the function set (repeated ones too) and get ``Content-Type``
  from ``mimetype``/``charset`` when the function set none, as the Python worker does; they
  always carry ``Content-Length``, except 204 and 304, which never have a body.
- Each connection has its own thread; requests on a connection are served in order
  (keep-alive), connections in parallel. ``Expect: 100-continue`` is answered only once the
  request is known to be acceptable.
- Timer triggers run in one daemon thread each on their NCRONTAB or TimeSpan schedule
  (:mod:`uploadsession.dev.ncrontab`, UTC; ``%NAME%`` reads the schedule from an app setting),
  called with a ``func.TimerRequest``; ``run_on_startup`` is honoured; an exception is logged
  and the schedule continues.
- With ``ssl_context`` (``uploadsession serve --https``, :mod:`uploadsession.dev.cert`) each
  connection's TLS handshake runs in its own thread; request URLs, :attr:`DevHost.url` and
  the banner then carry ``https``.

Not emulated: auth levels and keys (the app is anonymous), CORS, other triggers and bindings
(a function needing a parameter other than its trigger, such as ``context``, is refused when
the host is built), HTTP streaming, ``local.settings.json`` (the caller sets the environment),
time zones and ``useMonitor``. ``GET /`` and ``GET /admin/host/status`` answer as a health
check when no function route claims them.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import os
import re
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func
from azure.functions.decorators.function_app import Function
from azure.functions.timer import TimerRequest

from uploadsession.dev.ncrontab import Schedule, parse_schedule

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DevHost", "load_app", "load_route_prefix"]

DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024
"""The Functions host's default request body limit (``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT``)."""

_ALL_METHODS = tuple(method.value for method in func.HttpMethod)
_IDLE_TIMEOUT_SECONDS = 130.0  # Kestrel's keep-alive timeout
_SHUTDOWN_JOIN_SECONDS = 5.0
_LINGER_SECONDS = 2.0
_PAST_DUE_TOLERANCE = timedelta(seconds=1)
_MAX_TRAILER_LINES = 100
_NO_BODY_STATUSES = frozenset({204, 304})
# Headers this host computes itself; a function's values for them are not sent.
_HOST_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_DIGITS = re.compile(r"[0-9]{1,19}")
_CLIENT_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
_GUID = re.compile(r"[0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}|\{[0-9A-Fa-f-]{36}\}")
_CONSTRAINTS: dict[str, Callable[[str], bool]] = {
    "int": lambda value: (
        re.fullmatch(r"-?[0-9]+", value) is not None and -(2**31) <= int(value) < 2**31
    ),
    "long": lambda value: (
        re.fullmatch(r"-?[0-9]+", value) is not None and -(2**63) <= int(value) < 2**63
    ),
    "guid": lambda value: _GUID.fullmatch(value) is not None,
    "alpha": lambda value: re.fullmatch(r"[A-Za-z]+", value) is not None,
    "bool": lambda value: value.lower() in ("true", "false"),
}


def load_route_prefix(host_json: Path) -> str:
    """``extensions.http.routePrefix`` from ``host.json``: "api" when absent, "" allowed."""
    try:
        config = json.loads(host_json.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{host_json} is not valid JSON: {error}") from None
    prefix: object = "api"
    extensions = config.get("extensions") if isinstance(config, dict) else None
    http_section = extensions.get("http") if isinstance(extensions, dict) else None
    if isinstance(http_section, dict):
        prefix = http_section.get("routePrefix", "api")
    if not isinstance(prefix, str):
        raise ValueError(f"{host_json}: extensions.http.routePrefix must be a string")
    return prefix.strip("/")


def load_app(module: str = "function_app", app_dir: Path | None = None) -> func.FunctionApp:
    """Import ``module`` from ``app_dir`` (default: the working directory); return its ``app``."""
    directory = str((app_dir or Path.cwd()).resolve())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    loaded = importlib.import_module(module)
    app = getattr(loaded, "app", None)
    if not isinstance(app, func.FunctionApp):
        raise TypeError(f"{module}.app is not an azure.functions.FunctionApp")
    return app


# --- routing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Part:
    """One segment of a route template."""

    literal: str | None = None  # lower-cased
    name: str = ""
    constraint: Callable[[str], bool] | None = None
    optional: bool = False
    default: str | None = None
    catch_all: bool = False

    @property
    def rank(self) -> int:
        """ASP.NET route precedence: lower is more specific."""
        if self.literal is not None:
            return 0
        if self.catch_all:
            return 4
        if self.optional:
            return 3
        return 1 if self.constraint is not None else 2


def _parse_part(text: str, template: str) -> _Part:
    if "{" not in text and "}" not in text:
        if not text:
            raise ValueError(f"route {template!r}: empty segment")
        return _Part(literal=text.lower())
    if not (text.startswith("{") and text.endswith("}")) or text.count("{") != 1:
        raise ValueError(
            f"route {template!r}: segment {text!r} is not supported by uploadsession serve "
            "(a segment must be literal text or one whole {parameter})"
        )
    inner = text[1:-1]
    catch_all = inner.startswith("*")
    inner = inner.lstrip("*")
    default: str | None = None
    if "=" in inner:
        inner, _, default = inner.partition("=")
    optional = inner.endswith("?") or default is not None
    inner = inner.rstrip("?")
    name, _, constraint_name = inner.partition(":")
    constraint = None
    if constraint_name:
        constraint = _CONSTRAINTS.get(constraint_name.lower())
        if constraint is None:
            raise ValueError(
                f"route {template!r}: constraint {constraint_name!r} is not supported by "
                f"uploadsession serve (supported: {', '.join(_CONSTRAINTS)})"
            )
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"route {template!r}: invalid parameter name {name!r}")
    return _Part(
        name=name, constraint=constraint, optional=optional, default=default, catch_all=catch_all
    )


@dataclass(frozen=True)
class _Route:
    template: str  # "/beta/print/{id}"
    methods: tuple[str, ...]
    function_name: str
    arg_name: str
    function: Callable[..., Any]
    parts: tuple[_Part, ...]

    @classmethod
    def build(
        cls,
        prefix: str,
        route: str,
        methods: tuple[str, ...],
        function_name: str,
        arg_name: str,
        function: Callable[..., Any],
    ) -> _Route:
        template = "/" + "/".join(piece for piece in (prefix, route.strip("/")) if piece)
        parts = tuple(_parse_part(piece, template) for piece in template.split("/")[1:] if piece)
        for index, part in enumerate(parts):
            if part.catch_all and index != len(parts) - 1:
                raise ValueError(f"route {template!r}: a catch-all parameter must come last")
            if part.optional and not all(p.optional or p.catch_all for p in parts[index:]):
                raise ValueError(f"route {template!r}: only trailing parameters may be optional")
        names = [part.name for part in parts if part.literal is None]
        if len(names) != len({name.lower() for name in names}):
            raise ValueError(f"route {template!r}: a parameter name is repeated")
        return cls(template, methods, function_name, arg_name, function, parts)

    @property
    def precedence(self) -> tuple[tuple[int, ...], str]:
        return tuple(part.rank for part in self.parts), self.template

    def match(self, segments: list[str]) -> dict[str, str] | None:
        """Route values for the decoded path ``segments``, or None when the route does not match."""
        values: dict[str, str] = {}
        position = 0
        for part in self.parts:
            if part.catch_all:
                rest = segments[position:]
                if rest:
                    values[part.name] = "/".join(rest)
                elif part.default is not None:
                    values[part.name] = part.default
                return values
            if position >= len(segments):
                if not part.optional:
                    return None
                if part.default is not None:
                    values[part.name] = part.default
                continue
            segment = segments[position]
            if part.literal is not None:
                if segment.lower() != part.literal:
                    return None
            elif not segment or (part.constraint is not None and not part.constraint(segment)):
                return None
            else:
                values[part.name] = segment
            position += 1
        return values if position == len(segments) else None


@dataclass(frozen=True)
class _Timer:
    function_name: str
    arg_name: str
    function: Callable[..., Any]
    schedule: Schedule
    run_on_startup: bool


def _functions_of(app: func.FunctionApp) -> list[Function]:
    """``app.get_functions()``, callable more than once.

    ``get_functions`` records the names it returns and refuses them on a second call (its
    duplicate-name check), so a host built after anything else indexed the app would fail.
    The check still runs, against a fresh record, and the app's own record is left as it was.
    """
    recorded = app.functions_bindings
    app.functions_bindings = {}
    try:
        return app.get_functions()
    finally:
        app.functions_bindings = recorded


def _check_parameters(function_name: str, function: Callable[..., Any], arg_name: str) -> None:
    for parameter in inspect.signature(function).parameters.values():
        if parameter.name == arg_name or parameter.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            continue
        if parameter.default is inspect.Parameter.empty:
            raise ValueError(
                f"function {function_name!r}: parameter {parameter.name!r} needs a binding "
                "that uploadsession serve does not provide (only the trigger is bound)"
            )


def _invoke(function: Callable[..., Any], arg_name: str, argument: object) -> Any:
    if inspect.iscoroutinefunction(function):
        return asyncio.run(function(**{arg_name: argument}))
    return function(**{arg_name: argument})


def _resolve_setting(expression: str) -> str:
    """``%NAME%`` reads the app setting NAME, as binding expressions in function.json do."""
    match = re.fullmatch(r"%([^%]+)%", expression.strip())
    if match is None:
        return expression
    value = os.environ.get(match.group(1))
    if value is None:
        raise ValueError(f"schedule {expression!r}: app setting {match.group(1)} is not set")
    return value


# --- responses -----------------------------------------------------------------------------


@dataclass
class _Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    close: bool = False


def _envelope(status: int, code: str, message: str, client_request_id: str | None) -> _Response:
    request_id = str(uuid.uuid4())
    # Echoed only when it is 1-128 printable ASCII characters, as the app does: a folded
    # (multi-line) or non-ASCII value must not be copied into a response header.
    valid = client_request_id is not None and _CLIENT_REQUEST_ID.fullmatch(client_request_id)
    client_id = client_request_id if valid and client_request_id else request_id
    payload = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": client_id,
            },
        }
    }
    return _Response(
        status,
        [
            ("Content-Type", "application/json"),
            ("request-id", request_id),
            ("client-request-id", client_id),
        ],
        json.dumps(payload).encode(),
    )


def _from_function_result(result: object) -> _Response:
    """What the Python worker would send for a function's return value."""
    if isinstance(result, str):
        return _Response(200, [("Content-Type", "text/plain; charset=utf-8")], result.encode())
    if isinstance(result, bytes | bytearray):
        return _Response(200, [("Content-Type", "application/octet-stream")], bytes(result))
    if not isinstance(result, func.HttpResponse):
        raise TypeError(
            f"the function returned {type(result).__name__}, expected azure.functions.HttpResponse"
        )
    status = int(result.status_code)
    if not 200 <= status <= 599:
        raise ValueError(f"the function returned status {status}")
    headers = [(str(name), str(value)) for name, value in result.headers.items()]
    body = result.get_body()
    if status not in _NO_BODY_STATUSES and not any(
        name.lower() == "content-type" for name, _ in headers
    ):
        mimetype, charset = result.mimetype, result.charset
        content_type = (
            f"{mimetype}; charset={charset}" if mimetype.startswith("text/") else mimetype
        )
        headers.append(("Content-Type", content_type))
    for name, value in headers:
        if any(char in name + value for char in "\r\n\0") or not name.isascii():
            raise ValueError(f"the function set an invalid header {name!r}")
        value.encode("latin-1")  # UnicodeEncodeError: not representable on the wire
    return _Response(status, headers, body)


# --- the HTTP server -----------------------------------------------------------------------


class _RequestRefused(Exception):
    """The request cannot be served; ``response`` says why and the connection closes."""

    def __init__(self, response: _Response) -> None:
        super().__init__(response.status)
        self.response = response


class _ClientGone(ConnectionError):
    """The client closed the connection before sending the whole body."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "uploadsession-devhost"
    timeout = _IDLE_TIMEOUT_SECONDS
    disable_nagle_algorithm = True

    expect_continue = False

    @property
    def devhost(self) -> DevHost:
        return cast(_Server, self.server).devhost

    def handle_expect_100(self) -> bool:
        # Deferred: 100 Continue goes out only once the request is known to be served.
        self.expect_continue = True
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Refusals by http.server's own parser (malformed request line, 414 request line too
        long, 431 header line too long or too many headers, 505 version) in Graph's envelope
        like every other refusal of this host, not as an HTML page; the connection closes.
        The message is generic: the parser's own quotes the request line, query and all."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        self.log_error("refused by the HTTP parser: %d %s", code, phrase)
        self.close_connection = True
        response = _envelope(code, "invalidRequest", f"{phrase}: the request is malformed", None)
        response.close = True
        head, payload = self._encode(response)
        self.wfile.write(head + payload)
        self._linger()  # the rest of the request is unread: no reset before the answer

    def handle_one_request(self) -> None:
        try:
            self.expect_continue = False
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.requestline = self.request_version = self.command = ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self._serve()
        except _ClientGone:
            self.log_error("the client closed the connection before sending the whole body")
            self.close_connection = True
        except (TimeoutError, ConnectionError):
            self.close_connection = True  # idle keep-alive timeout, or the client went away

    def _serve(self) -> None:
        started = time.perf_counter()
        response, function_name = self._respond()
        if response.close:
            self.close_connection = True
        head, payload = self._encode(response)
        # Logged before writing, so the line exists once the client has the response.
        self.devhost._log_request(
            self.client_address[0],
            f"{self.command} {_path_of(self.path)} {self.request_version}",
            response.status,
            (time.perf_counter() - started) * 1000,
            len(payload),
            function_name,
            next((v for k, v in response.headers if k.lower() == "request-id"), None),
        )
        if len(payload) <= 65536:
            self.wfile.write(head + payload)
        else:
            self.wfile.write(head)
            self.wfile.write(payload)
        if response.close:
            self._linger()

    def _linger(self) -> None:
        """Discard what the client still sends for a moment before closing.

        Closing a socket with unread data makes the kernel reset the connection, and a client
        still sending its body would then see the reset instead of the 413 or 404 it was sent.
        """
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + _LINGER_SECONDS
            while (remaining := deadline - time.monotonic()) > 0:
                self.connection.settimeout(remaining)
                if not self.connection.recv(65536):
                    break

    def _respond(self) -> tuple[_Response, str | None]:
        host = self.devhost
        client_request_id = self.headers.get("client-request-id")
        target = urlsplit(self.path) if "://" in self.path else None
        raw_path, _, query = (
            (target.path, "?", target.query) if target else self.path.partition("?")
        )
        if not raw_path.startswith("/"):
            refusal = _envelope(400, "invalidRequest", "invalid request target", client_request_id)
            refusal.close = True
            return refusal, None
        segments = raw_path[1:].split("/")
        if segments[-1] == "":
            segments.pop()  # "/" and a trailing slash
        decoded = [unquote(segment) for segment in segments]
        found = host._find_route(self.command, decoded, client_request_id)
        if isinstance(found, _Response):
            if (
                self.headers.get("Content-Length", "0") != "0"
                or "Transfer-Encoding" in self.headers
            ):
                found.close = True  # the body is left unread
            return found, None
        route, route_params = found
        try:
            body = self._read_body()
        except _RequestRefused as refused:
            refused.response.close = True
            return refused.response, route.function_name
        authority = self.headers.get("Host") or host.authority
        request = func.HttpRequest(
            self.command,
            f"{host.url.partition(':')[0]}://{authority}{raw_path}"
            + (f"?{query}" if query else ""),
            headers=_joined(self.headers.items(), lower=True),
            params=_joined(parse_qsl(query, keep_blank_values=True)),
            route_params=route_params,
            body=body,
        )
        try:
            result = _invoke(route.function, route.arg_name, request)
            return _from_function_result(result), route.function_name
        except Exception:
            host._log_error(
                f"function {route.function_name!r} failed on {self.command} "
                f"{_path_of(self.path)}:\n{traceback.format_exc()}"
            )
            return (
                _envelope(
                    500,
                    "generalException",
                    "An internal error occurred; see the host log.",
                    client_request_id,
                ),
                route.function_name,
            )

    def _read_body(self) -> bytes:
        limit = self.devhost.max_body_bytes
        client_request_id = self.headers.get("client-request-id")
        transfer_encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if transfer_encodings:
            codings = [c.strip().lower() for v in transfer_encodings for c in v.split(",")]
            if lengths:
                raise _RequestRefused(
                    _envelope(
                        400,
                        "invalidRequest",
                        "Content-Length and Transfer-Encoding must not both be sent",
                        client_request_id,
                    )
                )
            if codings != ["chunked"]:
                # 400, as Kestrel answers a final transfer coding other than chunked.
                raise _RequestRefused(
                    _envelope(
                        400,
                        "invalidRequest",
                        "only Transfer-Encoding: chunked is supported",
                        client_request_id,
                    )
                )
            self._continue()
            return self._read_chunked(limit, client_request_id)
        if not lengths:
            return b""
        values = {value.strip() for value in lengths}
        text = values.pop()
        if values or not _DIGITS.fullmatch(text):
            raise _RequestRefused(
                _envelope(400, "invalidRequest", "malformed Content-Length", client_request_id)
            )
        length = int(text)
        if length > limit:
            raise _RequestRefused(_too_large(limit, client_request_id))
        if length == 0:
            return b""
        self._continue()
        body = self.rfile.read(length)
        if len(body) < length:
            raise _ClientGone()
        return body

    def _continue(self) -> None:
        if self.expect_continue:
            self.expect_continue = False
            self.wfile.write(f"{self.protocol_version} 100 Continue\r\n\r\n".encode())

    def _read_chunked(self, limit: int, client_request_id: str | None) -> bytes:
        def malformed(what: str) -> _RequestRefused:
            return _RequestRefused(
                _envelope(
                    400, "invalidRequest", f"malformed chunked body: {what}", client_request_id
                )
            )

        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(4097)
            if not line:
                raise _ClientGone()
            if not line.endswith(b"\n"):
                raise malformed("chunk size line too long")
            size_text = line.split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise malformed("invalid chunk size")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > limit:
                raise _RequestRefused(_too_large(limit, client_request_id))
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise _ClientGone()
            chunks.append(chunk)
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise malformed("missing CRLF after chunk data")
        for _ in range(_MAX_TRAILER_LINES):
            line = self.rfile.readline(65537)
            if not line:
                raise _ClientGone()
            if line in (b"\r\n", b"\n"):
                return b"".join(chunks)
        raise malformed("too many trailer lines")

    def _encode(self, response: _Response) -> tuple[bytes, bytes]:
        """The status line and headers, and the body to send (none for HEAD, 204, 304)."""
        status = response.status
        head_only = self.command == "HEAD"
        body = b"" if status in _NO_BODY_STATUSES else response.body
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        lines = [f"{self.protocol_version} {status} {reason}"]
        names = set()
        for name, value in response.headers:
            if name.lower() in _HOST_HEADERS:
                continue
            names.add(name.lower())
            lines.append(f"{name}: {value}")
        if "date" not in names:
            lines.append(f"Date: {self.date_time_string()}")
        if "server" not in names:
            lines.append(f"Server: {self.server_version}")
        if status not in _NO_BODY_STATUSES:
            lines.append(f"Content-Length: {len(body)}")
        if self.close_connection:
            lines.append("Connection: close")
        elif self.request_version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head, b"" if head_only else body

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _serve writes the one line per request

    def log_message(self, format: str, *args: Any) -> None:
        self.devhost._log_error(f"{self.client_address[0]} {format % args}")


def _too_large(limit: int, client_request_id: str | None) -> _Response:
    return _envelope(
        413,
        "invalidRequest",
        f"the request body exceeds the host limit of {limit} bytes",
        client_request_id,
    )


def _path_of(target: str) -> str:
    """The request target without its query, which may carry secrets."""
    return target.split("?", 1)[0]


def _joined(pairs: Iterable[tuple[str, str]], *, lower: bool = False) -> dict[str, str]:
    """One value per name; repeated names joined with "," as ASP.NET's StringValues does."""
    joined: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower() if lower else name
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, devhost: DevHost, address: tuple[str, int]) -> None:
        self.devhost = devhost
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"devhost-connection-{client_address}",
            daemon=True,
        )
        with self._connections_lock:
            self._connections[thread] = request
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            context = self.devhost._ssl_context
            if context is not None:  # the handshake runs here, not in the accept loop
                request.settimeout(_IDLE_TIMEOUT_SECONDS)
                request = context.wrap_socket(request, server_side=True)
                with self._connections_lock:  # close_connections must see the TLS socket
                    self._connections[threading.current_thread()] = request
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._connections_lock:
                self._connections.pop(threading.current_thread(), None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        self.devhost._log_error(f"error serving {client_address}:\n{traceback.format_exc()}")

    def close_connections(self, timeout: float) -> None:
        """Stop reading from open connections (an idle keep-alive ends at once) and wait."""
        with self._connections_lock:
            connections = list(self._connections.items())
        for _, connection in connections:
            with contextlib.suppress(OSError):  # already closed
                connection.shutdown(socket.SHUT_RD)
        deadline = time.monotonic() + timeout
        for thread, _ in connections:
            thread.join(max(0.0, deadline - time.monotonic()))


# --- the host ------------------------------------------------------------------------------


class DevHost:
    """Serves the HTTP functions of ``app`` and runs its timers; see the module docstring.

    The socket is bound in the constructor (so :attr:`url` is known, also with ``port=0``);
    :meth:`start` serves in background threads, :meth:`serve_forever` in the calling thread,
    :meth:`shutdown` stops both. Usable as a context manager (start/shutdown).
    ``log`` receives one line per request and per timer run; errors and tracebacks go to
    ``log``, or to ``sys.stderr`` when ``log`` is None.
    """

    def __init__(
        self,
        app: func.FunctionApp,
        *,
        host: str = "127.0.0.1",
        port: int = 7071,
        route_prefix: str = "api",
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        run_timers: bool = True,
        log: TextIO | None = sys.stderr,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self._ssl_context = ssl_context
        self._log = log
        self._log_lock = threading.Lock()
        self._run_timers = run_timers
        self._routes: list[_Route] = []
        self._timers: list[_Timer] = []
        self._other: list[tuple[str, str]] = []
        self._read_functions(app, route_prefix.strip("/"))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._state_lock = threading.Lock()
        self._started = False
        self._serving = False
        self._closed = False
        self._server = _Server(self, (host, port))

    # -- reading the app --

    def _read_functions(self, app: func.FunctionApp, prefix: str) -> None:
        for function in _functions_of(app):
            user_function = function.get_user_function()
            name = function.get_function_name() or user_function.__name__
            bindings = json.loads(function.get_function_json())["bindings"]
            trigger = next((b for b in bindings if str(b["type"]).endswith("Trigger")), None)
            if trigger is None:
                self._other.append((name, "no trigger"))
                continue
            arg_name = str(trigger["name"])
            if trigger["type"] == "httpTrigger":
                _check_parameters(name, user_function, arg_name)
                methods = tuple(str(m).upper() for m in trigger.get("methods") or _ALL_METHODS)
                route = str(trigger.get("route") or name)
                self._routes.append(
                    _Route.build(prefix, route, methods, name, arg_name, user_function)
                )
            elif trigger["type"] == "timerTrigger":
                _check_parameters(name, user_function, arg_name)
                expression = _resolve_setting(str(trigger["schedule"]))
                try:
                    schedule = parse_schedule(expression)
                except ValueError as error:
                    raise ValueError(f"function {name!r}: {error}") from None
                self._timers.append(
                    _Timer(
                        name, arg_name, user_function, schedule, bool(trigger.get("runOnStartup"))
                    )
                )
            else:
                self._other.append((name, str(trigger["type"])))
        self._routes.sort(key=lambda route: route.precedence)

    # -- public API --

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:7071`` (with the real port when port=0);
        ``https://`` when serving TLS (``ssl_context``)."""
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self.authority}"

    @property
    def authority(self) -> str:
        host, port = self._server.server_address[:2]
        host = str(host)
        if host in ("0.0.0.0", "", "::"):
            host = "localhost"
        elif ":" in host:
            host = f"[{host}]"
        return f"{host}:{port}"

    def routes(self) -> list[tuple[str, tuple[str, ...], str]]:
        """``(template with prefix, methods, function name)`` per HTTP function, in match order."""
        return [(route.template, route.methods, route.function_name) for route in self._routes]

    def banner(self) -> str:
        """The function list ``func start`` prints: one line per function with its URL."""
        lines = ["Functions:", ""]
        for route in sorted(self._routes, key=lambda r: r.function_name):
            methods = ",".join(route.methods)
            lines.append(f"        {route.function_name}: [{methods}] {self.url}{route.template}")
        for timer in sorted(self._timers, key=lambda t: t.function_name):
            state = "" if self._run_timers else " (not run: timers disabled)"
            lines.append(f"        {timer.function_name}: timerTrigger{state}")
        for name, trigger in sorted(self._other):
            lines.append(f"        {name}: {trigger} (not run by uploadsession serve)")
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Serve in background daemon threads; returns at once."""
        self._begin()
        thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="devhost-server",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()

    def serve_forever(self) -> None:
        """Print the function list and serve until :meth:`shutdown` or Ctrl-C; the
        ``KeyboardInterrupt`` of a Ctrl-C propagates once the host is closed (the CLI turns it
        into exit status 130)."""
        self._begin()
        if self._log is not None:
            self._write(self.banner() + f"\nListening on {self.url} (Ctrl-C to stop)\n")
        try:
            self._server.serve_forever(poll_interval=0.25)
        finally:
            self._close()

    def shutdown(self) -> None:
        """Stop serving and the timers, close the socket and open connections. Idempotent."""
        with self._state_lock:
            serving = self._serving
            self._serving = False
        if serving:
            self._server.shutdown()  # returns once the serve_forever loop has exited
        self._close()

    def __enter__(self) -> DevHost:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    # -- internals --

    def _begin(self) -> None:
        with self._state_lock:
            if self._started or self._closed:
                raise RuntimeError("DevHost can be started once")
            self._started = self._serving = True
        if self._run_timers:
            for timer in self._timers:
                thread = threading.Thread(
                    target=self._run_timer,
                    args=(timer,),
                    name=f"devhost-timer-{timer.function_name}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()

    def _close(self) -> None:
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
            self._serving = False
        self._stop.set()
        self._server.server_close()
        self._server.close_connections(_SHUTDOWN_JOIN_SECONDS)
        current = threading.current_thread()
        for thread in self._threads:
            if thread is not current:
                thread.join(_SHUTDOWN_JOIN_SECONDS)

    def _find_route(
        self, method: str, segments: list[str], client_request_id: str | None
    ) -> tuple[_Route, dict[str, str]] | _Response:
        allowed: list[str] = []
        for route in self._routes:
            values = route.match(segments)
            if values is None:
                continue
            if method in route.methods:
                return route, values
            allowed.extend(m for m in route.methods if m not in allowed)
        if allowed:
            response = _envelope(
                405,
                "invalidRequest",
                f"{method} is not allowed on this resource",
                client_request_id,
            )
            response.headers.append(("Allow", ", ".join(allowed)))
            return response
        if method in ("GET", "HEAD") and segments in ([], ["admin", "host", "status"]):
            body = {"state": "Running", "functions": [r.function_name for r in self._routes]}
            return _Response(200, [("Content-Type", "application/json")], json.dumps(body).encode())
        return _envelope(404, "itemNotFound", "no function matches this path", client_request_id)

    def _run_timer(self, timer: _Timer) -> None:
        last: datetime | None = None
        if timer.run_on_startup and not self._stop.is_set():
            last = _utcnow()
            self._fire(timer, last, past_due=False, last=None)
        anchor = _utcnow()
        while not self._stop.is_set():
            due = timer.schedule.next_after(anchor)
            if due <= _utcnow():  # the previous run overran: skip what was missed
                due = timer.schedule.next_after(_utcnow())
            while (delay := (due - _utcnow()).total_seconds()) > 0:
                if self._stop.wait(delay):
                    return
            fired = _utcnow()
            self._fire(timer, fired, past_due=fired - due > _PAST_DUE_TOLERANCE, last=last)
            last, anchor = fired, due

    def _fire(self, timer: _Timer, now: datetime, *, past_due: bool, last: datetime | None) -> None:
        request = TimerRequest(
            past_due=past_due,
            schedule_status={
                "Last": (last or now).isoformat(),
                "Next": timer.schedule.next_after(now).isoformat(),
                "LastUpdated": now.isoformat(),
            },
            schedule={"AdjustForDST": False},
        )
        started = time.perf_counter()
        try:
            _invoke(timer.function, timer.arg_name, request)
        except Exception:
            self._log_error(f"timer {timer.function_name!r} failed:\n{traceback.format_exc()}")
            outcome = "failed"
        else:
            outcome = "succeeded"
        if self._log is not None:
            elapsed = (time.perf_counter() - started) * 1000
            self._write(f"timer {timer.function_name} {outcome} {elapsed:.1f}ms\n")

    def _log_request(
        self,
        client: str,
        request_line: str,
        status: int,
        milliseconds: float,
        sent: int,
        function_name: str | None,
        request_id: str | None = None,
    ) -> None:
        """One line: time, client, request line (no query), status, duration, bytes sent,
        function, request-id."""
        if self._log is not None:
            suffix = f" {function_name}" if function_name else ""
            if request_id:
                suffix += f" request-id={request_id}"
            when = _utcnow().isoformat(timespec="milliseconds").replace("+00:00", "Z")
            self._write(
                f'{when} {client} "{request_line}" {status} {milliseconds:.1f}ms {sent}B{suffix}\n'
            )

    def _log_error(self, message: str) -> None:
        self._write(message.rstrip("\n") + "\n", stream=self._log or sys.stderr)

    def _write(self, text: str, stream: TextIO | None = None) -> None:
        target = stream or self._log
        if target is None:
            return
        with self._log_lock:
            try:
                target.write(text)
                target.flush()
            except (OSError, ValueError):
                pass  # a closed log must not take the server down


def _utcnow() -> datetime:
    return datetime.now(UTC)
