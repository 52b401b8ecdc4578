"""A local host for an ``azure.functions.FunctionApp``: what ``uploadsession serve`` runs.

Azure Functions Core Tools (``func start``) is not always available, so this module hosts the
app in-process: it reads the functions the app registers (``app.get_functions()``), serves
their HTTP triggers with **waitress** (a maintained WSGI server: HTTP/1.1 parsing, keep-alive,
chunked bodies, ``Expect: 100-continue``) through a small WSGI adapter, and runs their timer
triggers on schedule. It mirrors the Functions host where a client can tell the difference:

- URLs are ``/{routePrefix}/{route}`` (``routePrefix`` from ``host.json``, see
  :func:`load_route_prefix`; ``route`` defaults to the function name). A template segment is
  literal text (matched case-insensitively) or one whole ``{name}``, which matches one
  non-empty path segment; when several routes match, literal segments win. Any other template
  (constraints, optional or catch-all parameters) is refused with :class:`ValueError` when
  the host is built: the app's routes use none. A trailing ``/`` is ignored. Parameter values
  are percent-decoded after the path is split on ``/``, so ``%2F`` stays inside one value;
  query parameters and request headers that occur more than once are joined with ``,``, as
  the host's ``StringValues.ToString()`` does.
- ``methods`` default to all. Host-level refusals look like the Functions host's, not like the
  app's: no route → 404 with an empty body; a route that matches with another method → 405
  with ``Allow`` and an empty body; a function that raises → 500 with an empty body (the
  traceback goes to the log, never to the client). waitress itself answers malformed
  requests (400) and bodies over ``max_body_bytes`` (413; from ``Content-Length`` before the
  body is read, or as soon as a chunked body passes the limit).
- Limits, so that an unauthenticated client cannot exhaust the host: the body cap
  (``max_body_bytes``; ``uploadsession serve`` sets it to the largest segment the settings
  allow plus 1 MiB), ``header_timeout`` (a connection with no complete request and no
  activity for that long is closed: slow or stalled headers, idle keep-alive),
  ``connection_limit`` open connections, ``threads`` worker threads (40: 32 parallel upload
  streams and some to spare). Bodies over 512 KiB are spooled to a temporary file by waitress
  while they arrive, so parallel large bodies do not grow the process.
- Responses keep every header the function set (repeated ones too) and get ``Content-Type``
  from ``mimetype``/``charset`` when the function set none, as the Python worker does.
- Timer triggers run in one daemon thread each on their NCRONTAB or TimeSpan schedule
  (:mod:`uploadsession.dev.ncrontab`, UTC; ``%NAME%`` reads the schedule from an app setting),
  called with a ``func.TimerRequest``; ``run_on_startup`` is honoured; an exception is logged
  and the schedule continues.
- With ``ssl_context`` (``uploadsession serve --https``, :mod:`uploadsession.dev.cert`) the
  listening socket is wrapped in TLS; request URLs, :attr:`DevHost.url` and the banner then
  carry ``https``.
- One log line per request: time, client, method, path **without the query** (an uploadUrl's
  query carries its token), status, duration, function, request-id.

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
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import parse_qsl, unquote

import azure.functions as func
import waitress
import waitress.channel
import waitress.server
import waitress.wasyncore
from azure.functions.decorators.function_app import Function
from azure.functions.timer import TimerRequest

from uploadsession.dev.ncrontab import Schedule, parse_schedule

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DevHost", "load_app", "load_route_prefix"]

DEFAULT_MAX_BODY_BYTES = 11 * 1024 * 1024
"""The default body cap: the default largest segment (10 MiB) plus 1 MiB."""

DEFAULT_HEADER_TIMEOUT = 30.0
DEFAULT_CONNECTION_LIMIT = 100
DEFAULT_THREADS = 40

_ALL_METHODS = tuple(method.value for method in func.HttpMethod)
_SHUTDOWN_JOIN_SECONDS = 5.0
_PAST_DUE_TOLERANCE = timedelta(seconds=1)
_NO_BODY_STATUSES = frozenset({204, 304})
# Hop-by-hop headers waitress computes itself; a function's values for them are not sent.
_HOST_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

StartResponse = Callable[..., Any]


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
class _Route:
    template: str  # "/beta/print/{id}"
    methods: tuple[str, ...]
    function_name: str
    arg_name: str
    function: Callable[..., Any]
    parts: tuple[str | None, ...]  # lower-cased literal, or None for a parameter
    names: tuple[str, ...]  # the parameter names, in order

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
        parts: list[str | None] = []
        names: list[str] = []
        for piece in template.split("/")[1:]:
            parameter = _PARAMETER.fullmatch(piece)
            if parameter is not None:
                parts.append(None)
                names.append(parameter.group(1))
            elif piece and "{" not in piece and "}" not in piece:
                parts.append(piece.lower())
            else:
                raise ValueError(
                    f"route {template!r}: segment {piece!r} is not supported by uploadsession "
                    "serve (a segment must be literal text or one whole {parameter})"
                )
        if len(names) != len({name.lower() for name in names}):
            raise ValueError(f"route {template!r}: a parameter name is repeated")
        return cls(template, methods, function_name, arg_name, function, tuple(parts), tuple(names))

    @property
    def precedence(self) -> tuple[tuple[int, ...], str]:
        """Literal segments before parameters, position by position."""
        return tuple(0 if part is not None else 1 for part in self.parts), self.template

    def match(self, segments: list[str]) -> dict[str, str] | None:
        """Route values for the decoded path ``segments``, or None when the route does not match."""
        if len(segments) != len(self.parts):
            return None
        values: list[str] = []
        for part, segment in zip(self.parts, segments, strict=True):
            if part is None:
                if not segment:
                    return None
                values.append(segment)
            elif segment.lower() != part:
                return None
        return dict(zip(self.names, values, strict=True))


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


# --- the WSGI adapter ----------------------------------------------------------------------


@dataclass
class _Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


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
    headers = [
        (str(name), str(value))
        for name, value in result.headers.items()
        if str(name).lower() not in _HOST_HEADERS
    ]
    body = b"" if status in _NO_BODY_STATUSES else result.get_body()
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


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Status {status}"


def _joined(pairs: Iterable[tuple[str, str]], *, lower: bool = False) -> dict[str, str]:
    """One value per name; repeated names joined with "," as ASP.NET's StringValues does."""
    joined: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower() if lower else name
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


def _request_headers(environ: dict[str, Any]) -> dict[str, str]:
    pairs: list[tuple[str, str]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            pairs.append((key[5:].replace("_", "-"), str(value)))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            pairs.append((key.replace("_", "-"), str(value)))
    # waitress joins repeated headers with ", "; the Functions host with ",".
    return {name: value.replace(", ", ",") for name, value in _joined(pairs, lower=True).items()}


def _wsgi_text(value: str) -> str:
    """PEP 3333 carries the request target as latin-1 decoded bytes; back to UTF-8 text."""
    return value.encode("latin-1").decode("utf-8", errors="replace")


class _Channel(waitress.channel.HTTPChannel):  # type: ignore[misc]
    """waitress's channel, but a request already refused (413 from its Content-Length, 400)
    gets its answer instead of ``100 Continue``: waitress 3.0.2 sends the 100 and then waits
    for a body it will never read, so a client that expects 100-continue would hang."""

    def send_continue(self) -> None:
        if self.request is not None and self.request.error is not None:
            self.request.expect_continue = False
            return
        super().send_continue()

    def handle_close(self) -> None:
        # waitress leaves a half-received request's body buffer (a temporary file past
        # 512 KiB) to the garbage collector; a client that disconnects mid-body must not.
        super().handle_close()
        request: Any = getattr(self, "request", None)
        self.request = None
        if request is not None:
            request.close()


class _TLSChannel(_Channel):
    """waitress's channel on a non-blocking TLS socket: a read or write that waits for the rest
    of a TLS record (or the handshake) is retried when the socket is ready, not an error."""

    def handle_read(self) -> None:
        try:
            data = self.socket.recv(self.adj.recv_bytes)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError:
            self.handle_close()
            return
        if data:
            self.last_activity = time.time()
            self.received(data)
        else:
            self.connected = False  # the client closed

    def send(self, data: bytes, do_close: bool = True) -> int:
        try:
            return int(self.socket.send(data))
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return 0
        except OSError:
            if do_close:
                self.handle_close()
            return 0


# --- the host ------------------------------------------------------------------------------


class DevHost:
    """Serves the HTTP functions of ``app`` and runs its timers; see the module docstring.

    The socket is bound in the constructor (so :attr:`url` is known, also with ``port=0``; a
    taken port raises :class:`OSError` here); :meth:`start` serves in background threads,
    :meth:`serve_forever` in the calling thread, :meth:`shutdown` stops both. Usable as a
    context manager (start/shutdown). ``log`` receives one line per request and per timer run;
    errors and tracebacks go to ``log``, or to ``sys.stderr`` when ``log`` is None.
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
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        connection_limit: int = DEFAULT_CONNECTION_LIMIT,
        threads: int = DEFAULT_THREADS,
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
        self._closed = False
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(1024)
        except OSError:
            listener.close()
            raise
        self._address: tuple[str, int] = listener.getsockname()[:2]
        sock: socket.socket = listener
        if ssl_context is not None:
            # The handshake happens on the first read, in the event loop, never blocking it.
            sock = ssl_context.wrap_socket(
                listener, server_side=True, do_handshake_on_connect=False
            )
        self._server: Any = waitress.create_server(
            self._wsgi,
            sockets=[sock],
            threads=threads,
            connection_limit=connection_limit,
            channel_timeout=header_timeout,
            cleanup_interval=max(0.1, min(header_timeout / 2, 30.0)),
            asyncore_loop_timeout=min(1.0, max(0.05, header_timeout / 4)),
            max_request_body_size=max_body_bytes + 1,  # waitress refuses a body of exactly this
            max_request_header_size=64 * 1024,  # a larger request line or header block: 431
            recv_bytes=65536,  # one TLS record (16 KiB) fits in one read
            url_scheme="https" if ssl_context is not None else "http",
            ident="uploadsession-devhost",
            expose_tracebacks=False,
            # X-Forwarded-* reach the app untouched, as behind the Functions front end: the
            # app decides what it trusts (waitress would drop them from the environ).
            clear_untrusted_proxy_headers=False,
        )
        self._server.channel_class = _TLSChannel if ssl_context is not None else _Channel

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
        host, port = self._address
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
        thread = threading.Thread(target=self._loop, name="devhost-server", daemon=True)
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
            self._loop()
        finally:
            self._close(loop_running=False)

    def shutdown(self) -> None:
        """Stop serving and the timers, close the socket and open connections. Idempotent."""
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

    def _loop(self) -> None:
        # waitress's own run() swallows KeyboardInterrupt; its event loop does not.
        waitress.wasyncore.loop(
            timeout=self._server.adj.asyncore_loop_timeout,
            map=self._server._map,
            use_poll=True,
        )

    def _begin(self) -> None:
        with self._state_lock:
            if self._started or self._closed:
                raise RuntimeError("DevHost can be started once")
            self._started = True
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

    def _close(self, *, loop_running: bool = True) -> None:
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
            started = self._started
        self._stop.set()
        server = self._server
        done = threading.Event()

        def close_all() -> None:  # in the event loop's thread
            waitress.wasyncore.close_all(server._map)
            done.set()

        if started and loop_running:  # else nobody would read the trigger: close here
            # waitress queues the thunk before it writes the wake-up byte: an event loop that
            # is already awake (a worker's own wake-up) can run close_all, which closes the
            # trigger, before that write, which then fails. A loop not running: see below.
            with contextlib.suppress(OSError):
                server.trigger.pull_trigger(close_all)
            done.wait(_SHUTDOWN_JOIN_SECONDS)
        if not done.is_set():
            close_all()
        server.task_dispatcher.shutdown(timeout=_SHUTDOWN_JOIN_SECONDS)
        current = threading.current_thread()
        for thread in self._threads:
            if thread is not current:
                thread.join(_SHUTDOWN_JOIN_SECONDS)

    def _route(self, method: str, segments: list[str]) -> tuple[_Route, dict[str, str]] | _Response:
        allowed: list[str] = []
        for route in self._routes:
            values = route.match(segments)
            if values is None:
                continue
            if method in route.methods:
                return route, values
            allowed.extend(m for m in route.methods if m not in allowed)
        if allowed:
            return _Response(405, [("Allow", ", ".join(allowed))])
        if method in ("GET", "HEAD") and segments in ([], ["admin", "host", "status"]):
            body = {"state": "Running", "functions": [r.function_name for r in self._routes]}
            return _Response(200, [("Content-Type", "application/json")], json.dumps(body).encode())
        return _Response(404, [])

    def _wsgi(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        started = time.perf_counter()
        method = str(environ["REQUEST_METHOD"]).upper()
        raw_path, _, query = _wsgi_text(str(environ.get("REQUEST_URI") or "/")).partition("?")
        if "://" in raw_path:  # absolute-form target
            raw_path = "/" + raw_path.split("://", 1)[1].partition("/")[2]
        response, function_name = self._respond(environ, method, raw_path, query)
        request_id = next((v for k, v in response.headers if k.lower() == "request-id"), None)
        headers = list(response.headers)
        if response.status not in _NO_BODY_STATUSES:
            headers.append(("Content-Length", str(len(response.body))))
        # Logged before the response is written, so the line exists once the client has it.
        self._log_request(
            str(environ.get("REMOTE_ADDR", "-")),
            f"{method} {raw_path} {environ.get('SERVER_PROTOCOL', 'HTTP/1.1')}",
            response.status,
            (time.perf_counter() - started) * 1000,
            len(response.body),
            function_name,
            request_id,
        )
        start_response(_status_line(response.status), headers)
        return [response.body] if response.body and method != "HEAD" else []

    def _respond(
        self, environ: dict[str, Any], method: str, raw_path: str, query: str
    ) -> tuple[_Response, str | None]:
        segments = raw_path.lstrip("/").split("/") if raw_path.strip("/") else []
        if segments and segments[-1] == "":
            segments.pop()  # a trailing slash
        found = self._route(method, [unquote(segment) for segment in segments])
        if isinstance(found, _Response):
            return found, None
        route, route_params = found
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        authority = environ.get("HTTP_HOST") or self.authority
        request = func.HttpRequest(
            method,
            f"{environ['wsgi.url_scheme']}://{authority}{raw_path}"
            + (f"?{query}" if query else ""),
            headers=_request_headers(environ),
            params=_joined(parse_qsl(query, keep_blank_values=True)),
            route_params=route_params,
            body=body,
        )
        try:
            result = _invoke(route.function, route.arg_name, request)
            return _from_function_result(result), route.function_name
        except Exception:
            self._log_error(
                f"function {route.function_name!r} failed on {method} {raw_path}:\n"
                f"{traceback.format_exc()}"
            )
            return _Response(500, []), route.function_name

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
