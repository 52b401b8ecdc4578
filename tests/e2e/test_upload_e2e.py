"""Upload data, errors that change nothing, and expiry — over HTTP, on Azurite."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import TENANT, Api, start_api
from tests.e2e.test_sessions_e2e import assert_envelope
from tests.processes import Azurite
from uploadsession.models import DocumentKey

MIB = 1024 * 1024


def create(
    client: httpx.Client,
    api: Api,
    url: str,
    size: int,
    content_type: str = "application/octet-stream",
) -> dict[str, object]:
    body = {"size": size, "contentType": content_type, "documentName": "doc.bin"}
    response = client.put(url, json=body, headers=api.headers())
    assert response.status_code == 200, response.text
    return dict(response.json())


def post(
    client: httpx.Client, api: Api, url: str, data: bytes, start: int, size: int, **headers: str
) -> httpx.Response:
    end = start + len(data) - 1
    sent = {
        **api.headers(),
        "Content-Type": "application/octet-stream",
        "Content-Range": f"bytes {start}-{end}/{size}",
        "If-Match": "*",
        "Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode(),
    }
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    return client.post(url + "/$value", content=data, headers=sent)


def test_a_25_mb_document_from_4_parallel_clients_arrives_byte_identical(
    api: Api,
) -> None:
    size = 25 * MIB + 12345
    data = random.randbytes(size)
    url = api.session_url()
    with httpx.Client(timeout=120) as c:
        create(c, api, url, size)
    starts = list(range(0, size, MIB))
    rng = random.Random(7)
    work = starts + rng.sample(starts, 6)  # some segments are sent twice
    rng.shuffle(work)
    statuses: list[int] = []

    def send(batch: list[int]) -> None:
        with httpx.Client(timeout=120) as c:
            for start in batch:
                response = post(c, api, url, data[start : start + MIB], start, size)
                assert response.status_code in (201, 202), response.text
                statuses.append(response.status_code)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, [work[i::4] for i in range(4)]))
    assert len(statuses) == len(work)
    assert statuses.count(201) >= 1
    with httpx.Client(timeout=60) as c:
        final = c.get(url, headers=api.headers()).json()
    assert final["missingRanges"] == [] and final["nextExpectedRanges"] == []
    committed, content_type = api.document_bytes(url)
    assert hashlib.sha256(committed).hexdigest() == hashlib.sha256(data).hexdigest()
    assert content_type == "application/octet-stream"


def test_two_segments_with_bytes_form_and_session_id_if_match_complete_with_201(
    api: Api,
    client: httpx.Client,
) -> None:
    url = api.session_url()
    session = create(client, api, url, 11, "text/plain")
    first = post(client, api, url, b"hello ", 0, 11, If_Match=str(session["id"]))
    assert first.status_code == 202
    assert first.json()["missingRanges"] == [{"start": "6", "end": "10"}]
    etag = first.headers["ETag"]
    second = client.post(
        url + "/$value",
        content=b"world",
        headers={
            **api.headers(),
            "Content-Type": "application/octet-stream",
            "Content-Range": "bytes=6-10/11",
            "If-Match": etag,
        },
    )
    assert second.status_code == 201, second.text
    assert second.json()["missingRanges"] == []
    assert api.document_bytes(url) == (b"hello world", "text/plain")
    retry = post(client, api, url, b"world", 6, 11)
    assert retry.status_code == 201  # an identical retry after completion
    assert_envelope(
        client.put(
            url,
            json={"size": 11, "contentType": "text/plain", "documentName": "doc.bin"},
            headers=api.headers(),
        ),
        409,
        "conflict",
    )


BAD_UPLOADS = [
    # (description, data, start, size, extra headers, status, code)
    ("wrong content type", b"abc", 0, 100, {"Content_Type": "text/plain"}, 415, "invalidRequest"),
    ("no If-Match", b"abc", 0, 100, {"If_Match": ""}, 428, "preconditionFailed"),
    ("stale ETag", b"abc", 0, 100, {"If_Match": '"0000"'}, 412, "preconditionFailed"),
    ("malformed range", b"abc", 0, 100, {"Content_Range": "bytes 0-2"}, 400, "invalidRequest"),
    ("negative range", b"abc", 0, 100, {"Content_Range": "bytes -1-1/100"}, 400, "invalidRequest"),
    (
        "64-bit overflow",
        b"abc",
        0,
        100,
        {"Content_Range": "bytes 0-2/99999999999999999999999"},
        400,
        "invalidRequest",
    ),
    (
        "body shorter than range",
        b"abc",
        0,
        100,
        {"Content_Range": "bytes 0-9/100"},
        400,
        "invalidRequest",
    ),
    (
        "bad Content-MD5",
        b"abc",
        0,
        100,
        {"Content_MD5": base64.b64encode(hashlib.md5(b"xyz").digest()).decode()},
        400,
        "invalidRequest",
    ),
    ("size mismatch", b"abc", 0, 99, {}, 416, "invalidRange"),
    ("beyond the end", b"abc", 98, 100, {}, 416, "invalidRange"),
    ("overlapping different bytes", b"XYZ", 1, 100, {}, 416, "invalidRange"),
    ("segment over the limit", b"a" * (10 * MIB + 1), 0, 100, {}, 413, "invalidRequest"),
]


def test_one_byte_segments_over_http_complete_a_document(api: Api, client: httpx.Client) -> None:
    url = api.session_url()
    create(client, api, url, 3)
    statuses = [post(client, api, url, bytes([b]), i, 3).status_code for i, b in enumerate(b"abc")]
    assert statuses == [202, 202, 201]
    assert api.document_bytes(url) == (b"abc", "application/octet-stream")


@pytest.mark.parametrize(
    ("what", "data", "start", "size", "headers", "status", "code"),
    BAD_UPLOADS,
    ids=[b[0] for b in BAD_UPLOADS],
)
def test_a_bad_upload_gets_its_status_and_changes_nothing(
    api: Api,
    client: httpx.Client,
    what: str,
    data: bytes,
    start: int,
    size: int,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    url = api.session_url()
    create(client, api, url, 100)
    assert post(client, api, url, b"0123", 0, 100).status_code == 202
    before = client.get(url, headers=api.headers())
    response = post(client, api, url, data, start, size, **headers)
    assert_envelope(response, status, code)
    if status == 416:
        assert response.headers["Content-Range"] == "bytes */100"
    after = client.get(url, headers=api.headers())
    assert after.json() == before.json()
    assert after.headers["ETag"] == before.headers["ETag"]


@pytest.fixture(scope="module")
def short_lived_api(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    running = start_api(azurite, tmp_path_factory.mktemp("ttl"), UPLOAD_SESSION_TTL_SECONDS="2")
    try:
        yield running
    finally:
        running.server.stop()


def test_expired_sessions_vanish_and_purge_keeps_committed_documents(
    short_lived_api: Api,
    azurite: Azurite,
    client: httpx.Client,
) -> None:
    api = short_lived_api
    incomplete, complete = api.session_url(), api.session_url()
    create(client, api, incomplete, 10)
    create(client, api, complete, 4)
    assert post(client, api, incomplete, b"01234", 0, 10).status_code == 202
    assert post(client, api, complete, b"done", 0, 4).status_code == 201
    parts = incomplete.split("/")
    time.sleep(2.5)
    assert_envelope(client.get(incomplete, headers=api.headers()), 404, "itemNotFound")
    assert_envelope(client.get(complete, headers=api.headers()), 404, "itemNotFound")
    key = DocumentKey.parse(TENANT, parts[-6], parts[-4], parts[-2])
    assert api.storage.staged_block_ids(key)  # staged bytes still there before the purge
    purge = subprocess.run(
        [sys.executable, "-m", "uploadsession.cli", "purge"],
        env={**os.environ, "UPLOADSESSION_STORAGE": azurite.connection_string},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert purge.returncode == 0, purge.stderr
    assert '"sessions": ' in purge.stdout
    assert api.storage.staged_block_ids(key) == set()
    assert api.document_bytes(complete) == (b"done", "application/octet-stream")
