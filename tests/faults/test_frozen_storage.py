"""Issue 11, bounded waits: Azurite frozen (SIGSTOP: connections are accepted by the kernel and
never answered) → GET and POST answer 503 + Retry-After within 15 s; after SIGCONT the upload
completes byte-exact."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable

import httpx

from tests.e2e.conftest import Api
from tests.processes import Azurite
from tests.reliability.conftest import (
    assert_envelope,
    blob_bytes,
    create_session,
    new_url,
    segment_headers,
)

SIZE = 512 * 1024
HALF = SIZE // 2


def test_frozen_storage_answers_503_within_15_s_and_the_upload_completes_after(
    own_api: Api, own_azurite: Azurite
) -> None:
    data = random.randbytes(SIZE)
    url = new_url(own_api)

    def post(client: httpx.Client, start: int) -> httpx.Response:
        chunk = data[start : start + HALF]
        return client.post(
            url + "/$value", content=chunk, headers=segment_headers(own_api, chunk, start, SIZE)
        )

    with httpx.Client(timeout=60) as client:
        create_session(client, own_api, url, SIZE)
        assert post(client, 0).status_code == 202
        assert own_azurite.proc is not None
        own_azurite.proc.send_signal(signal.SIGSTOP)
        try:
            calls: list[Callable[[], httpx.Response]] = [
                lambda: client.get(url, headers=own_api.headers()),
                lambda: post(client, HALF),
            ]
            for call in calls:
                began = time.monotonic()
                response = call()
                took = time.monotonic() - began
                assert_envelope(response, 503, "serviceUnavailable")
                assert int(response.headers["Retry-After"]) >= 1
                assert took < 15, took
                print(f"\nfrozen storage: 503 after {took:.1f} s")
        finally:
            own_azurite.proc.send_signal(signal.SIGCONT)
        last = post(client, HALF)
        assert last.status_code == 201, last.text
    assert blob_bytes(own_api, url) == data
