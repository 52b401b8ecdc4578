"""Parallel segments of one session over HTTP, on `uploadsession serve` + Azurite (issue 14).

Segments of one session that arrive together are recorded in one session write per round
(docs/architecture.md "Recording segments"). These tests race real requests: the proxy in
front of Azurite can hold chosen storage calls so that segments reach the recording step at the
same instant, and it logs every storage request so commits can be counted.
"""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote

import httpx
import pytest

from tests.e2e.conftest import Api
from tests.faults.proxy import FaultProxy, Rule

KIB = 1024


def create(client: httpx.Client, api: Api, url: str, size: int) -> dict[str, object]:
    body = {"size": size, "contentType": "application/octet-stream", "documentName": "d.bin"}
    response = client.put(url, json=body, headers=api.headers())
    assert response.status_code == 200, response.text
    return dict(response.json())


def post(
    client: httpx.Client, api: Api, url: str, data: bytes, start: int, size: int
) -> httpx.Response:
    return client.post(
        url + "/$value",
        content=data,
        headers={
            **api.headers(),
            "Content-Type": "application/octet-stream",
            "Content-Range": f"bytes {start}-{start + len(data) - 1}/{size}",
            "If-Match": "*",
            "Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode(),
        },
    )


def document_id(url: str) -> str:
    return url.split("/")[-2].lower()


def commits(proxy: FaultProxy, url: str) -> int:
    """Put Block List requests for the document that list blocks (the session's placeholder
    is an empty one)."""
    doc = document_id(url)
    return sum(
        1
        for target, lists_blocks in list(proxy.block_lists)
        if lists_blocks and doc in unquote(target).lower()
    )


def is_stage(method: str, target: str, body: bytes) -> bool:
    return "comp=block" in target and "comp=blocklist" not in target


def hold_stages(proxy: FaultProxy, count: int) -> Rule:
    return proxy.add(Rule("blob", "PUT", is_stage, "hold", count))


def release_when_held(proxy: FaultProxy, rule: Rule, count: int) -> None:
    """Release the held stage requests once all ``count`` arrived: their segments then reach
    the recording step at the same instant."""
    deadline = time.monotonic() + 30
    while rule.hits < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rule.hits == count
    time.sleep(0.05)
    proxy.release()


def send_together(
    api: Api, url: str, proxy: FaultProxy, parts: list[tuple[int, bytes]], size: int
) -> list[httpx.Response]:
    rule = hold_stages(proxy, len(parts))
    barrier = threading.Barrier(len(parts), timeout=30)

    def send(part: tuple[int, bytes]) -> httpx.Response:
        start, data = part
        with httpx.Client(timeout=60) as c:
            barrier.wait()
            return post(c, api, url, data, start, size)

    with ThreadPoolExecutor(len(parts)) as pool:
        futures = [pool.submit(send, part) for part in parts]
        release_when_held(proxy, rule, len(parts))
        return [f.result() for f in futures]


def session_state(client: httpx.Client, api: Api, url: str) -> dict[str, object]:
    response = client.get(url, headers=api.headers())
    assert response.status_code == 200, response.text
    return dict(response.json())


def ranges(*pairs: tuple[int, int]) -> list[dict[str, str]]:
    return [{"start": str(s), "end": str(e)} for s, e in pairs]


@pytest.mark.parametrize("streams", [32])
def test_32_streams_into_one_session_no_503_byte_identical_one_commit(
    proxied_api: Api, clean_proxy: FaultProxy, streams: int
) -> None:
    segment = 4 * KIB
    count = 8 * streams
    size = count * segment - 123
    data = random.randbytes(size)
    url = proxied_api.session_url()
    with httpx.Client(timeout=60) as c:
        create(c, proxied_api, url, size)
    starts = list(range(0, size, segment))
    random.Random(14).shuffle(starts)
    statuses: list[int] = []
    lock = threading.Lock()

    def stream(number: int) -> None:
        with httpx.Client(timeout=60) as c:
            for start in starts[number::streams]:
                response = post(c, proxied_api, url, data[start : start + segment], start, size)
                with lock:
                    statuses.append(response.status_code)
                assert response.status_code in (201, 202), response.text

    with ThreadPoolExecutor(streams) as pool:
        list(pool.map(stream, range(streams)))
    assert sorted(set(statuses)) == [201, 202] and 503 not in statuses
    assert statuses.count(201) == 1
    assert len(statuses) == count
    with httpx.Client(timeout=60) as c:
        final = session_state(c, proxied_api, url)
    assert final["missingRanges"] == []
    assert proxied_api.document_bytes(url)[0] == data
    assert commits(clean_proxy, url) == 1


def test_overlapping_segments_at_the_same_instant_one_wins_the_other_416(
    proxied_api: Api, clean_proxy: FaultProxy
) -> None:
    size = 100
    data = random.randbytes(size)
    url = proxied_api.session_url()
    with httpx.Client(timeout=60) as c:
        create(c, proxied_api, url, size)
    first, second = (0, data[0:40]), (20, data[20:60])
    responses = send_together(proxied_api, url, clean_proxy, [first, second], size)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202, 416], [r.text for r in responses]
    winner = next(i for i, r in enumerate(responses) if r.status_code == 202)
    loser = responses[1 - winner]
    assert loser.json()["error"]["code"] == "invalidRange"
    won = (0, 39) if winner == 0 else (20, 59)
    expected_missing = ranges((40, 99)) if winner == 0 else ranges((0, 19), (60, 99))
    assert responses[winner].json()["missingRanges"] == expected_missing
    with httpx.Client(timeout=60) as c:
        assert session_state(c, proxied_api, url)["missingRanges"] == expected_missing
        # the rest completes the document with the winner's bytes
        rest = [(0, 19), (60, 99)] if won == (20, 59) else [(40, 99)]
        for start, end in rest:
            assert post(c, proxied_api, url, data[start : end + 1], start, size).status_code in (
                201,
                202,
            )
        assert session_state(c, proxied_api, url)["missingRanges"] == []
    assert proxied_api.document_bytes(url)[0] == data


def test_identical_segments_at_the_same_instant_both_succeed_and_count_once(
    proxied_api: Api, clean_proxy: FaultProxy
) -> None:
    size = 100
    data = random.randbytes(size)
    url = proxied_api.session_url()
    with httpx.Client(timeout=60) as c:
        create(c, proxied_api, url, size)
    responses = send_together(proxied_api, url, clean_proxy, [(0, data[:50]), (0, data[:50])], size)
    assert [r.status_code for r in responses] == [202, 202], [r.text for r in responses]
    for r in responses:
        assert r.json()["missingRanges"] == ranges((50, 99))
    with httpx.Client(timeout=60) as c:
        assert session_state(c, proxied_api, url)["missingRanges"] == ranges((50, 99))
        last = post(c, proxied_api, url, data[50:], 50, size)
        assert last.status_code == 201, last.text
    assert proxied_api.document_bytes(url)[0] == data
    assert commits(clean_proxy, url) == 1


def test_parallel_final_segments_complete_the_document_exactly_once(
    proxied_api: Api, clean_proxy: FaultProxy
) -> None:
    parts, piece = 8, 1000
    size = 2 * parts * piece
    data = random.randbytes(size)
    url = proxied_api.session_url()
    with httpx.Client(timeout=60) as c:
        create(c, proxied_api, url, size)
        for start in range(0, size, 2 * piece):  # every other piece first
            assert (
                post(c, proxied_api, url, data[start : start + piece], start, size).status_code
                == 202
            )
    finals = [(start, data[start : start + piece]) for start in range(piece, size, 2 * piece)]
    responses = send_together(proxied_api, url, clean_proxy, finals, size)
    statuses = [r.status_code for r in responses]
    assert sorted(statuses) == [201] + [202] * (parts - 1), [r.text for r in responses]
    completed = responses[statuses.index(201)].json()
    assert completed["missingRanges"] == []
    for r in responses:
        if r.status_code == 202:
            assert r.json()["missingRanges"] != []  # no other response said complete
    assert proxied_api.document_bytes(url)[0] == data
    assert commits(clean_proxy, url) == 1
