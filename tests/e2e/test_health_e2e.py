"""GET /health on a real `uploadsession serve`: 200 with storage up, a quick 503 with it down,
200 again once it is back; and the console span exporter shows each request's request-id."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Api, start_api
from tests.processes import REPO, Azurite
from uploadsession.dev.host import load_route_prefix


@pytest.fixture(scope="module")
def own_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """An Azurite of this module's own, so stopping it leaves the others' alone."""
    server = Azurite(tmp_path_factory.mktemp("azurite-health"), in_memory=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def health_api(own_azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    running = start_api(
        own_azurite, tmp_path_factory.mktemp("health"), UPLOADSESSION_OTEL_CONSOLE="1"
    )
    try:
        yield running
    finally:
        running.server.stop()


def health_url(api: Api) -> str:
    prefix = load_route_prefix(REPO / "host.json")
    return f"http://127.0.0.1:{api.server.port}" + (f"/{prefix}" if prefix else "") + "/health"


def server_log(api: Api) -> str:
    log: Path = api.server.log
    return log.read_text(errors="replace")


def test_health_follows_storage_up_and_down(health_api: Api, own_azurite: Azurite) -> None:
    url = health_url(health_api)
    with httpx.Client(timeout=30) as client:
        up = client.get(url)
        assert up.status_code == 200, up.text
        assert up.json() == {"status": "healthy"}
        assert up.headers["request-id"]

        own_azurite.stop()
        try:
            started = time.monotonic()
            down = client.get(url)
            elapsed = time.monotonic() - started
        finally:
            own_azurite.start()
        assert down.status_code == 503, down.text
        assert elapsed < 5, f"the unhealthy answer took {elapsed:.1f}s"
        body = down.json()
        assert body["status"] == "unhealthy"
        assert body["reason"] and "AccountKey" not in body["reason"]
        assert int(down.headers["Retry-After"]) > 0
        for secret in ("AccountKey", "devstoreaccount1", "127.0.0.1"):
            assert secret not in down.text

        deadline = time.monotonic() + 30
        while (again := client.get(url)).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert again.status_code == 200, again.text


def test_console_exporter_and_request_line_show_the_request_id(health_api: Api) -> None:
    with httpx.Client(timeout=30) as client:
        response = client.get(health_url(health_api), params={"code": "s3cr3t"})
    assert response.status_code == 200
    request_id = response.headers["request-id"]
    deadline = time.monotonic() + 10
    text = server_log(health_api)
    while text.count(request_id) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        text = server_log(health_api)
    lines = [line for line in text.splitlines() if request_id in line]
    # the host's request line, the request record, and the span's request_id attribute
    assert any(line.endswith(f"health request-id={request_id}") for line in lines), lines
    assert any('"request_id": "' + request_id in line for line in lines), lines
    assert "s3cr3t" not in text
