"""Resource limits a caller cannot push past: segments per session, session size, segment size.

A segment flood is simulated by writing a session that already holds MAX_SEGMENTS segments
straight into its table row (20,000 uploads over HTTP would take minutes); everything else is
over HTTP against `uploadsession serve` + Azurite.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from tests.e2e.conftest import TENANT, Api, start_api
from tests.processes import Azurite
from tests.reliability.conftest import assert_envelope, segment_headers
from uploadsession.models import DocumentKey, Segment
from uploadsession.service import MAX_SEGMENTS


@pytest.fixture(scope="module")
def limits_api(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    running = start_api(azurite, tmp_path_factory.mktemp("limits"))
    try:
        yield running
    finally:
        running.server.stop()


def test_a_session_holding_the_most_segments_refuses_another_and_still_reads(
    limits_api: Api,
    client: httpx.Client,
) -> None:
    api = limits_api
    printer, document = str(uuid.uuid4()), str(uuid.uuid4())
    url = api.session_url(printer, "flood", document)
    size = 2 * MAX_SEGMENTS + 10
    created = client.put(
        url,
        json={"size": size, "contentType": "application/octet-stream", "documentName": "flood.bin"},
        headers=api.headers(),
    )
    assert created.status_code == 200, created.text
    key = DocumentKey.parse(TENANT, printer, "flood", document)
    session = api.storage.get_session(key)
    assert session is not None
    # One-byte segments at every even offset: MAX_SEGMENTS separate missing ranges.
    flooded = replace(
        session, segments=tuple(Segment(2 * i, 2 * i, bytes(16)) for i in range(MAX_SEGMENTS))
    )
    api.storage.replace_session(flooded)  # ~560 KB of segment records in one table row

    started = time.monotonic()
    read = client.get(url, headers=api.headers())
    assert read.status_code == 200
    assert time.monotonic() - started < 5
    missing = read.json()["missingRanges"]
    assert len(missing) == MAX_SEGMENTS
    assert missing[0] == {"start": "1", "end": "1"}
    assert missing[-1] == {"start": str(2 * MAX_SEGMENTS - 1), "end": str(size - 1)}

    refused = client.post(
        url + "/$value", content=b"x", headers=segment_headers(api, b"x", 1, size)
    )
    assert_envelope(refused, 400, "invalidRequest")
    assert str(MAX_SEGMENTS) in refused.json()["error"]["message"]
    after = client.get(url, headers=api.headers())
    assert after.headers["ETag"] == read.headers["ETag"]


def test_a_session_cannot_be_larger_than_max_document_bytes(
    limits_api: Api,
    client: httpx.Client,
) -> None:
    for size, status in ((1073741824, 200), (1073741825, 400)):
        response = client.put(
            limits_api.session_url(),
            json={"size": size, "contentType": "application/pdf", "documentName": "big.pdf"},
            headers=limits_api.headers(),
        )
        assert response.status_code == status, response.text
