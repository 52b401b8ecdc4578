"""Reliability fixtures: the service on its own Azurite (so faults hurt nobody else), and
helpers every reliability test uses to read what a client and the storage account saw."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Api, start_api
from tests.processes import Azurite

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# One line per request Azurite received (its --debug log).
STORAGE_REQUEST = re.compile(r"StorageContextMiddleware: RequestMethod=(\S+) RequestURL=(\S+)")


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    """``response`` has ``status`` and Graph's error envelope with ``code``; no traceback."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    inner = error["innerError"]
    assert set(inner) == {"date", "request-id", "client-request-id"}
    assert inner["request-id"] == response.headers["request-id"]
    assert GUID.match(inner["request-id"])
    assert inner["client-request-id"] == response.headers["client-request-id"]
    assert "Traceback" not in response.text
    return dict(error)


def storage_requests(debug_log: Path) -> list[tuple[str, str]]:
    """(method, URL) of every request Azurite logged so far."""
    if not debug_log.exists():
        return []
    text = debug_log.read_text(encoding="utf-8", errors="replace")
    return STORAGE_REQUEST.findall(text)


def segment_headers(
    api: Api, data: bytes, start: int, size: int, if_match: str = "*"
) -> dict[str, str]:
    return {
        **api.headers(),
        "Content-Type": "application/octet-stream",
        "Content-Range": f"bytes {start}-{start + len(data) - 1}/{size}",
        "If-Match": if_match,
        "Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode(),
    }


def create_session(client: httpx.Client, api: Api, url: str, size: int) -> dict[str, object]:
    body = {"size": size, "contentType": "application/octet-stream", "documentName": "doc.bin"}
    response = client.put(url, json=body, headers=api.headers())
    assert response.status_code == 200, response.text
    return dict(response.json())


def complement(size: int, received: list[tuple[int, int]]) -> list[dict[str, str]]:
    """``missingRanges`` as the service must write them for these received ranges."""
    missing: list[dict[str, str]] = []
    position = 0
    for start, end in sorted(received):
        if start > position:
            missing.append({"start": str(position), "end": str(start - 1)})
        position = max(position, end + 1)
    if position < size:
        missing.append({"start": str(position), "end": str(size - 1)})
    return missing


def blob_bytes(api: Api, url: str) -> bytes:
    committed, _ = api.document_bytes(url)
    return committed


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as c:
        yield c


@pytest.fixture
def own_azurite(tmp_path: Path) -> Iterator[Azurite]:
    """A fresh Azurite for one test: tests may stop and restart it."""
    server = Azurite(tmp_path / "azurite")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_api(own_azurite: Azurite, tmp_path: Path) -> Iterator[Api]:
    """`uploadsession serve` on :func:`own_azurite`; tests may kill and restart it."""
    running = start_api(own_azurite, tmp_path)
    try:
        yield running
    finally:
        running.server.stop()


def new_url(api: Api) -> str:
    return api.session_url(str(uuid.uuid4()), f"job-{uuid.uuid4().hex[:8]}", str(uuid.uuid4()))
