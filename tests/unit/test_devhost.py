"""The local Functions host behind `uploadsession serve`, driven over real sockets on 127.0.0.1."""

from __future__ import annotations

import errno
import gc
import hashlib
import io
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from pathlib import Path

import azure.functions as func
import httpx
import pytest

from uploadsession.dev.host import DevHost, load_app, load_route_prefix

# waitress spools bodies over 512 KiB to a temporary file and sometimes leaves one to the
# garbage collector: collected in the host fixture's teardown, under this filter.
pytestmark = pytest.mark.filterwarnings(
    "ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"
)


class Recorder:
    """What the test app's timer saw."""

    def __init__(self) -> None:
        self.ticks: list[func.TimerRequest] = []
        self.ticked = threading.Event()
        self.raise_next = False


def build_app(recorder: Recorder, *, run_on_startup: bool = False) -> func.FunctionApp:
    bp = func.Blueprint()  # type: ignore[no-untyped-call]

    @bp.function_name("get_item")
    @bp.route(route="items/{itemId}", methods=["GET"])
    def get_item(req: func.HttpRequest) -> func.HttpResponse:
        payload = {
            "method": req.method,
            "url": req.url,
            "route": dict(req.route_params),
            "query": dict(req.params),
            "accept": req.headers.get("accept"),
            "x-multi": req.headers.get("x-multi"),
        }
        return func.HttpResponse(json.dumps(payload), mimetype="application/json")

    @bp.function_name("latest_item")
    @bp.route(route="items/latest", methods=["GET"])
    def latest_item(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("latest")

    @bp.function_name("put_item")
    @bp.route(route="items/{itemId}", methods=["PUT"])
    def put_item(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(
            req.get_body(),
            headers={"X-Item": req.route_params["itemId"]},
            mimetype="application/octet-stream",
        )

    @bp.function_name("upload_value")
    @bp.route(route="items/{itemId}/$value", methods=["POST"])
    def upload_value(req: func.HttpRequest) -> func.HttpResponse:
        body = req.get_body()
        response = func.HttpResponse(
            hashlib.sha256(body).hexdigest(),
            status_code=201,
            headers={"X-Length": str(len(body)), "X-Item": req.route_params["itemId"]},
        )
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        return response

    @bp.function_name("delete_item")
    @bp.route(route="items/{itemId}", methods=["DELETE"])
    def delete_item(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(status_code=204)

    @bp.function_name("slow")
    @bp.route(route="slow", methods=["GET"])
    def slow(req: func.HttpRequest) -> func.HttpResponse:
        time.sleep(0.2)
        return func.HttpResponse("done")

    @bp.function_name("boom")
    @bp.route(route="boom", methods=["GET"])
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("secret-internal-detail")

    @bp.function_name("any_method")
    @bp.route(route="any")
    def any_method(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(f"you sent {req.method}")

    @bp.function_name("tick")
    @bp.timer_trigger(schedule="*/1 * * * * *", arg_name="timer", run_on_startup=run_on_startup)
    def tick(timer: func.TimerRequest) -> None:
        if recorder.raise_next:
            recorder.raise_next = False
            raise RuntimeError("timer failure")
        recorder.ticks.append(timer)
        recorder.ticked.set()

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    app.register_functions(bp)
    return app


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
        max_body_bytes=4 * 1024 * 1024,
        log=log,
    ) as running:
        yield running
    gc.collect()


@pytest.fixture
def client(host: DevHost) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.url, timeout=10) as http:
        yield http


def raw_exchange(host: DevHost, request: bytes) -> bytes:
    """Send raw bytes; return everything the server sends before it closes the connection."""
    address = host.url.removeprefix("http://").split(":")
    with socket.create_connection((address[0], int(address[1])), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


# --- the route table -----------------------------------------------------------------------


def test_routes_list_every_http_function_of_the_app_under_the_prefix(host: DevHost) -> None:
    app = build_app(Recorder())
    expected = {
        f.get_function_name()
        for f in app.get_functions()
        if (trigger := f.get_trigger()) is not None and trigger.type == "httpTrigger"
    }
    routes = host.routes()

    assert {name for _, _, name in routes} == expected
    table = {name: (template, methods) for template, methods, name in routes}
    assert table["upload_value"] == ("/beta/items/{itemId}/$value", ("POST",))
    assert table["get_item"] == ("/beta/items/{itemId}", ("GET",))
    assert set(table["any_method"][1]) >= {"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"}


def test_banner_lists_each_function_with_its_url(host: DevHost) -> None:
    banner = host.banner()

    assert f"upload_value: [POST] {host.url}/beta/items/{{itemId}}/$value" in banner
    assert "tick: timerTrigger" in banner


def test_url_reports_the_port_actually_bound(host: DevHost) -> None:
    assert host.url.startswith("http://127.0.0.1:")
    assert not host.url.endswith(":0")


# --- dispatch ------------------------------------------------------------------------------


def test_get_passes_route_and_query_parameters(client: httpx.Client) -> None:
    response = client.get(
        "/beta/items/abc-1", params={"x": "1", "y": "two words"}, headers={"Accept": "text/csv"}
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    seen = response.json()
    assert seen["method"] == "GET"
    assert seen["route"] == {"itemId": "abc-1"}
    assert seen["query"] == {"x": "1", "y": "two words"}
    assert seen["accept"] == "text/csv"
    assert seen["url"].endswith("/beta/items/abc-1?x=1&y=two+words")


def test_repeated_request_headers_and_query_parameters_are_joined(client: httpx.Client) -> None:
    response = client.get("/beta/items/a?x=1&x=2", headers=[("X-Multi", "one"), ("X-Multi", "two")])

    assert response.json()["x-multi"] == "one,two"
    assert response.json()["query"] == {"x": "1,2"}


def test_put_returns_the_binary_body_byte_for_byte(client: httpx.Client) -> None:
    body = os.urandom(1024 * 1024)

    response = client.put("/beta/items/doc", content=body)

    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(body))
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-item"] == "doc"
    assert response.content == body


def test_post_to_dollar_value_route_receives_the_whole_body(client: httpx.Client) -> None:
    body = os.urandom(1024 * 1024)

    response = client.post("/beta/items/doc/$value", content=body)

    assert response.status_code == 201
    assert response.headers["x-length"] == str(len(body))
    assert response.text == hashlib.sha256(body).hexdigest()
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]


def test_literal_segments_match_case_insensitively(client: httpx.Client) -> None:
    response = client.post("/BETA/Items/Doc/$VALUE", content=b"x")

    assert response.status_code == 201
    assert response.headers["x-item"] == "Doc"


def test_percent_encoded_route_parameter_is_decoded_and_may_contain_a_slash(
    client: httpx.Client,
) -> None:
    response = client.get("/beta/items/a%20b%2Fc%C3%A9")

    assert response.status_code == 200
    assert response.json()["route"] == {"itemId": "a b/cé"}


def test_literal_route_wins_over_a_parameter(client: httpx.Client) -> None:
    assert client.get("/beta/items/latest").text == "latest"
    assert client.get("/beta/items/latest2").json()["route"] == {"itemId": "latest2"}


def test_trailing_slash_is_ignored(client: httpx.Client) -> None:
    assert client.get("/beta/items/abc/").json()["route"] == {"itemId": "abc"}


def test_function_without_methods_accepts_any_method(client: httpx.Client) -> None:
    assert client.patch("/beta/any").text == "you sent PATCH"


def test_head_has_the_content_length_of_get_and_no_body(host: DevHost) -> None:
    connection = HTTPConnection("127.0.0.1", int(host.url.rsplit(":", 1)[1]), timeout=5)
    try:
        connection.request("HEAD", "/beta/any")
        head = connection.getresponse()
        assert head.read() == b""
        assert head.getheader("Content-Length") == str(len("you sent HEAD"))
        connection.request("GET", "/beta/any")  # the connection is still usable
        assert connection.getresponse().read() == b"you sent GET"
    finally:
        connection.close()


def test_204_has_no_body_and_no_content_length(host: DevHost) -> None:
    connection = HTTPConnection("127.0.0.1", int(host.url.rsplit(":", 1)[1]), timeout=5)
    try:
        connection.request("DELETE", "/beta/items/x")
        deleted = connection.getresponse()
        assert deleted.status == 204
        assert deleted.getheader("Content-Length") is None
        assert deleted.getheader("Content-Type") is None
        assert deleted.read() == b""
        connection.request("GET", "/beta/any")
        assert connection.getresponse().read() == b"you sent GET"
    finally:
        connection.close()


# --- refusals ------------------------------------------------------------------------------


def test_unknown_path_is_an_empty_404_as_the_functions_host_answers(client: httpx.Client) -> None:
    response = client.get("/beta/nothing/here", headers={"client-request-id": "c-1"})

    assert response.status_code == 404
    assert response.content == b""
    assert client.get("/items/abc").status_code == 404  # the prefix is required


def test_known_path_with_wrong_method_is_405_with_allow(client: httpx.Client) -> None:
    response = client.patch("/beta/items/abc")

    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "PUT", "DELETE"}
    assert response.content == b""


def test_function_exception_is_an_empty_500_and_the_traceback_goes_to_the_log(
    client: httpx.Client, log: io.StringIO
) -> None:
    response = client.get("/beta/boom")

    assert response.status_code == 500
    assert response.content == b""
    assert "secret-internal-detail" not in response.text
    assert "Traceback" not in response.text
    assert "secret-internal-detail" in log.getvalue()
    assert "Traceback" in log.getvalue()
    assert client.get("/beta/any").status_code == 200  # the host carries on


def test_body_over_the_limit_is_413_without_reading_it(host: DevHost) -> None:
    too_big = 4 * 1024 * 1024 + 1
    request = (
        f"PUT /beta/items/a HTTP/1.1\r\nHost: x\r\nContent-Length: {too_big}\r\n"
        "Expect: 100-continue\r\n\r\n"
    ).encode()

    # No body is sent: the host must answer from the header alone, without 100 Continue.
    answer = raw_exchange(host, request)

    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in answer
    assert b"Connection: close" in answer


def test_chunked_body_over_the_limit_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(5):
            yield b"x" * (1024 * 1024)

    response = client.put("/beta/items/a", content=chunks())

    assert response.status_code == 413


def test_malformed_content_length_is_400(host: DevHost) -> None:
    answer = raw_exchange(
        host, b"PUT /beta/items/a HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n"
    )

    assert answer.startswith(b"HTTP/1.1 400 ")


def test_chunked_request_body_is_reassembled(client: httpx.Client) -> None:
    parts = [os.urandom(1000), b"", os.urandom(70000), os.urandom(3)]

    response = client.put(
        "/beta/items/chunky", content=iter([p for p in parts if p])
    )  # a generator body makes httpx send Transfer-Encoding: chunked

    assert response.status_code == 200
    assert response.content == b"".join(parts)


def test_raw_chunked_request_with_extension_and_trailer(host: DevHost) -> None:
    request = (
        b"PUT /beta/items/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n"
        b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )

    answer = raw_exchange(host, request)

    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"\r\n\r\nhello world")


# --- connections ---------------------------------------------------------------------------


def test_fifty_requests_reuse_one_keep_alive_connection(client: httpx.Client) -> None:
    local_addresses = set()
    for number in range(50):
        response = client.put(f"/beta/items/n{number}", content=str(number).encode())
        assert response.status_code == 200
        assert response.content == str(number).encode()
        local_addresses.add(response.extensions["network_stream"].get_extra_info("client_addr"))

    assert len(local_addresses) == 1


def test_sixteen_slow_requests_are_served_in_parallel(host: DevHost) -> None:
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    with httpx.Client(base_url=host.url, limits=limits, timeout=10) as http:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(lambda _: http.get("/beta/slow").status_code, range(16)))
        elapsed = time.perf_counter() - started

    assert statuses == [200] * 16
    assert elapsed < 16 * 0.2 / 2, f"16 requests took {elapsed:.2f}s: not parallel"


def test_one_log_line_per_request_without_query_values_or_tokens(
    client: httpx.Client, log: io.StringIO
) -> None:
    client.get(
        "/beta/items/abc", params={"code": "s3cr3t"}, headers={"Authorization": "Bearer t0k3n"}
    )

    lines = [line for line in log.getvalue().splitlines() if "/beta/items/abc" in line]
    assert len(lines) == 1
    timestamp, rest = lines[0].split(" ", 1)
    assert timestamp.endswith("Z") and "T" in timestamp  # UTC, ISO 8601
    assert rest.startswith('127.0.0.1 "GET /beta/items/abc HTTP/1.1" 200 ')
    assert "ms " in lines[0]
    assert "s3cr3t" not in log.getvalue()
    assert "t0k3n" not in log.getvalue()


def test_shutdown_closes_idle_keep_alive_connections_promptly(log: io.StringIO) -> None:
    host = DevHost(build_app(Recorder()), port=0, run_timers=False, log=log)
    host.start()
    connection = HTTPConnection("127.0.0.1", int(host.url.rsplit(":", 1)[1]), timeout=5)
    try:
        connection.request("GET", "/api/any")
        assert connection.getresponse().read() == b"you sent GET"
        started = time.perf_counter()
        host.shutdown()
        assert time.perf_counter() - started < 2
        assert not [t for t in threading.enumerate() if t.name.startswith("devhost-")]
    finally:
        connection.close()
    host.shutdown()  # idempotent


def test_shutdown_survives_the_loop_closing_the_trigger_before_the_wake_up_is_written(
    log: io.StringIO,
) -> None:
    # The race seen in CI: the event loop, woken by a worker, runs the queued close before
    # pull_trigger writes its byte to the (by then closed) trigger pipe.
    host = DevHost(build_app(Recorder()), port=0, run_timers=False, log=log)
    host.start()
    port = int(host.url.rsplit(":", 1)[1])
    trigger = host._server.trigger
    real_pull = trigger._physical_pull

    def loop_wins_the_race() -> None:
        real_pull()  # wake the loop: it runs the queued close_all and closes the trigger
        deadline = time.monotonic() + 5
        while not trigger._closed and time.monotonic() < deadline:
            time.sleep(0.01)
        # the caller's own write, on the pipe closed meanwhile (not written: its number may
        # already be reused)
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    trigger._physical_pull = loop_wins_the_race
    host.shutdown()

    assert trigger._closed
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert not [t for t in threading.enumerate() if t.name.startswith("devhost-")]


def test_ctrl_c_in_serve_forever_closes_the_host_at_once(log: io.StringIO) -> None:
    host = DevHost(build_app(Recorder()), port=0, run_timers=False, log=log)
    port = int(host.url.rsplit(":", 1)[1])

    def interrupted() -> None:
        raise KeyboardInterrupt  # what Ctrl-C raises in the event loop

    host._loop = interrupted  # type: ignore[method-assign]
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        host.serve_forever()

    # not after waiting out a wake-up that the stopped event loop can no longer read (5 s)
    assert time.perf_counter() - started < 2.5
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_host_that_never_started_shuts_down_cleanly() -> None:
    DevHost(build_app(Recorder()), port=0, log=None).shutdown()


# --- timers --------------------------------------------------------------------------------


def test_timer_runs_on_its_schedule(log: io.StringIO) -> None:
    recorder = Recorder()
    with DevHost(build_app(recorder), port=0, log=log):
        assert recorder.ticked.wait(3), "the */1 second timer did not run within 3 s"

    assert isinstance(recorder.ticks[0], func.TimerRequest)
    assert recorder.ticks[0].past_due is False
    assert "timer tick succeeded" in log.getvalue()


def test_timer_survives_an_exception_and_honours_run_on_startup(log: io.StringIO) -> None:
    recorder = Recorder()
    recorder.raise_next = True  # the startup run fails
    with DevHost(build_app(recorder, run_on_startup=True), port=0, log=log):
        assert recorder.ticked.wait(3)

    assert "timer failure" in log.getvalue()
    assert "timer 'tick' failed" in log.getvalue()


def test_timers_do_not_run_when_disabled() -> None:
    recorder = Recorder()
    with DevHost(build_app(recorder, run_on_startup=True), port=0, run_timers=False, log=None):
        time.sleep(1.2)

    assert recorder.ticks == []


# --- building the host ---------------------------------------------------------------------


def single_route_app(route: str) -> func.FunctionApp:
    bp = func.Blueprint()  # type: ignore[no-untyped-call]

    @bp.function_name("only")
    @bp.route(route=route, methods=["GET"])
    def only(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps(dict(req.route_params)), mimetype="application/json")

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    app.register_functions(bp)
    return app


@pytest.mark.parametrize(
    "route", ["items/x{id}", "items/{id:int}", "files/{*rest}", "docs/{name?}", "{a}/{A}"]
)
def test_unsupported_route_templates_are_refused_when_the_host_is_built(route: str) -> None:
    with pytest.raises(ValueError, match="route"):
        DevHost(single_route_app(route), port=0, log=None)


def test_function_needing_an_unbound_parameter_is_refused() -> None:
    bp = func.Blueprint()  # type: ignore[no-untyped-call]

    @bp.route(route="x")
    def needs_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return func.HttpResponse("")

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    app.register_functions(bp)

    with pytest.raises(ValueError, match="context"):
        DevHost(app, port=0, log=None)


def test_invalid_timer_schedule_is_refused_with_the_function_name() -> None:
    bp = func.Blueprint()  # type: ignore[no-untyped-call]

    @bp.timer_trigger(schedule="61 * * * * *", arg_name="timer")
    def bad_timer(timer: func.TimerRequest) -> None:
        pass

    app = func.FunctionApp()
    app.register_functions(bp)

    with pytest.raises(ValueError, match="bad_timer"):
        DevHost(app, port=0, log=None)


def test_timer_schedule_may_name_an_app_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVHOST_TEST_SCHEDULE", "0 */5 * * * *")
    bp = func.Blueprint()  # type: ignore[no-untyped-call]

    @bp.timer_trigger(schedule="%DEVHOST_TEST_SCHEDULE%", arg_name="timer")
    def from_setting(timer: func.TimerRequest) -> None:
        pass

    app = func.FunctionApp()
    app.register_functions(bp)
    DevHost(app, port=0, log=None).shutdown()

    monkeypatch.delenv("DEVHOST_TEST_SCHEDULE")
    with pytest.raises(ValueError, match="DEVHOST_TEST_SCHEDULE"):
        DevHost(app, port=0, log=None)


# --- host.json and function_app.py ---------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "prefix"),
    [
        ({"version": "2.0", "extensions": {"http": {"routePrefix": "beta"}}}, "beta"),
        ({"version": "2.0", "extensions": {"http": {"routePrefix": ""}}}, ""),
        ({"version": "2.0", "extensions": {"http": {}}}, "api"),
        ({"version": "2.0"}, "api"),
    ],
)
def test_load_route_prefix(tmp_path: Path, content: object, prefix: str) -> None:
    host_json = tmp_path / "host.json"
    host_json.write_text(json.dumps(content))

    assert load_route_prefix(host_json) == prefix


def test_the_projects_host_json_uses_the_graph_version_as_prefix() -> None:
    assert load_route_prefix(Path(__file__).parents[2] / "host.json") == ""


def test_empty_route_prefix_serves_at_the_root(log: io.StringIO) -> None:
    with DevHost(single_route_app("items/{id}"), port=0, route_prefix="", log=log) as host:
        assert host.routes()[0][0] == "/items/{id}"
        assert httpx.get(host.url + "/items/9", timeout=5).json() == {"id": "9"}


def test_load_app_imports_the_module_from_the_app_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = "devhost_test_function_app"
    (tmp_path / f"{module}.py").write_text(
        "import azure.functions as func\n"
        "app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)\n"
        "@app.route(route='hello')\n"
        "def hello(req: func.HttpRequest) -> func.HttpResponse:\n"
        "    return func.HttpResponse('hi')\n"
    )
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, module, raising=False)

    app = load_app(module, tmp_path)

    assert [f.get_function_name() for f in app.get_functions()] == ["hello"]
    sys.modules.pop(module, None)
