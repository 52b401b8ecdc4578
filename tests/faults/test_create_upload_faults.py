"""Issue 11: each storage step of CREATE and UPLOAD, for both protocols (legacy ``PUT
…/uploadSession`` + ``POST …/uploadSession/$value``; Graph ``createUploadSession`` + PUT to the
``uploadUrl``), failed (500/503), dropped, its reply lost, or the host SIGKILLed at that moment.
Then, through the HTTP API and the committed blob: storage trouble is 503 + Retry-After (never a
500), no half-written session (the retried create succeeds with the same session), an
acknowledged segment is never asked for again, and after the client sends what is missing the
document commits byte-exact."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError

from tests.e2e.conftest import Api
from tests.faults.proxy import FaultProxy, Rule
from tests.faults.test_lifecycle_faults import (
    NO_KEEPALIVE,
    blob_or_none,
    killer,
    restart_if_killed,
)
from tests.reliability.conftest import blob_bytes, new_url, segment_headers

pytestmark = pytest.mark.usefixtures("no_faults_left")

SIZE = 64 * 1024
HALF = SIZE // 2
HALVES = [(0, HALF), (HALF, SIZE)]
BODY = {"size": SIZE, "contentType": "application/octet-stream", "documentName": "doc.bin"}

Match = Callable[[str, str, bytes], bool]
Send = Callable[[httpx.Client, Api, str, bytes, int], httpx.Response]  # sends half 0 or 1


def session_row(_m: str, target: str, _b: bytes) -> bool:
    return "/uploadsessions(" in target and "~keys" not in target


def keys_row(_m: str, target: str, _b: bytes) -> bool:
    return "/uploadsessions(" in target and "~keys" in target


def row_insert(_m: str, target: str, body: bytes) -> bool:
    return target.endswith("/uploadsessions") and b"~keys" not in body


def keys_insert(_m: str, target: str, body: bytes) -> bool:
    return target.endswith("/uploadsessions") and b"~keys" in body


def index_row(_m: str, target: str, _b: bytes) -> bool:
    return "/uploadexpiries(" in target


def document_blob(_m: str, target: str, _b: bytes) -> bool:
    return "/documents/" in target


def placeholder_put(_m: str, target: str, body: bytes) -> bool:
    return "comp=blocklist" in target and b"<Latest>" not in body


def stage(_m: str, target: str, _b: bytes) -> bool:
    return "comp=block&" in target


#: fault → (proxy action, hits): 3 hits outlast every retry the storage SDKs make
FAULTS: dict[str, tuple[str, int]] = {
    "503": ("fail503", 3),
    "500": ("fail500", 3),
    "dropped": ("drop", 3),
    "reply-lost": ("lose_reply", 1),
    "kill": ("lose_reply", 1),  # storage applies the step, the host dies before the answer
}

# storage steps of a create: (role, method, predicate, skip)
CREATE_STEPS: dict[str, tuple[str, str, Match, int]] = {
    "session-read": ("table", "GET", session_row, 0),
    "document-head": ("blob", "HEAD", document_blob, 0),
    "index-write": ("table", "PUT|PATCH", index_row, 0),
    "row-insert": ("table", "POST", row_insert, 0),
    "placeholder-put": ("blob", "PUT", placeholder_put, 0),
    "placeholder-record": ("table", "PUT|PATCH", session_row, 0),
}
# createUploadSession also stores the uploadUrl token's hash on the row it just inserted
GRAPH_CREATE_STEPS = {**CREATE_STEPS, "token-write": ("table", "PUT|PATCH", session_row, 1)}

# storage steps of an upload: (segment index, role, method, predicate, skip)
UPLOAD_STEPS: dict[str, tuple[int, str, str, Match, int]] = {
    "session-read": (0, "table", "GET", session_row, 0),
    "stage": (0, "blob", "PUT", stage, 0),
    "record": (0, "table", "PUT|PATCH", session_row, 0),
    "final-record": (1, "table", "PUT|PATCH", session_row, 0),
    "final-mark-committed": (1, "table", "PUT|PATCH", session_row, 1),
}
# the uploadUrl PUT reads the row twice: to resolve the token, then as the upload's session read
GRAPH_UPLOAD_STEPS = {
    "token-resolve": (0, "table", "GET", session_row, 0),
    **UPLOAD_STEPS,
    "session-read": (0, "table", "GET", session_row, 1),
}


def rule_for(api: Api, role: str, method: str, match: Match, skip: int, fault: str) -> Rule:
    action, times = FAULTS[fault]
    then = killer(api) if fault == "kill" else None
    return Rule(role, method, match, action, times, then, skip=skip)


def attempt(call: Callable[[], httpx.Response]) -> httpx.Response | None:
    """The response, or None when the connection died with the host."""
    try:
        return call()
    except httpx.TransportError:
        return None


def assert_documented(response: httpx.Response | None, fault: str, *ok: int) -> None:
    """A success, or storage trouble as 503 + Retry-After; never a 500 or a traceback. A step
    that keeps failing (longer than the SDK retries) is a 503; a killed host answers nothing."""
    if fault == "kill":
        assert response is None, response.text if response is not None else None
        return
    assert response is not None
    expected = (503,) if FAULTS[fault][1] > 1 else (*ok, 503)
    assert response.status_code in expected, (response.status_code, response.text)
    if response.status_code == 503:
        assert response.headers.get("Retry-After"), response.headers
        assert response.json()["error"]["code"], response.text
        assert "Traceback" not in response.text


def legacy_create(client: httpx.Client, api: Api, url: str) -> httpx.Response:
    return client.put(url, json=BODY, headers=api.headers())


def graph_create(client: httpx.Client, api: Api, url: str) -> httpx.Response:
    doc = url.removesuffix("/uploadSession")
    return client.post(
        doc + "/createUploadSession", json={"properties": BODY}, headers=api.headers()
    )


def legacy_send(client: httpx.Client, api: Api, url: str, data: bytes, part: int) -> httpx.Response:
    start, end = HALVES[part]
    chunk = data[start:end]
    return client.post(
        url + "/$value", content=chunk, headers=segment_headers(api, chunk, start, SIZE)
    )


def graph_send(upload_url: str) -> Send:
    def send(client: httpx.Client, _api: Api, _url: str, data: bytes, part: int) -> httpx.Response:
        start, end = HALVES[part]
        headers = {"Content-Range": f"bytes {start}-{end - 1}/{SIZE}"}
        return client.put(upload_url, content=data[start:end], headers=headers)

    return send


def missing(client: httpx.Client, api: Api, url: str) -> list[tuple[int, int]]:
    """The session's missing ranges (inclusive ends) as the legacy GET reports them."""
    read = client.get(url, headers=api.headers())
    assert read.status_code == 200, read.text
    return [(int(r["start"]), int(r["end"])) for r in read.json()["missingRanges"]]


def finish(
    client: httpx.Client,
    api: Api,
    url: str,
    data: bytes,
    send: Send,
) -> None:
    """The client's recovery: send each half the session still misses, then check the blob."""
    for part, (start, end) in enumerate(HALVES):
        if any(s < end and e >= start for s, e in missing(client, api, url)):
            answer = send(client, api, url, data, part)
            assert answer.status_code in (201, 202), answer.text
    assert missing(client, api, url) == []
    assert blob_bytes(api, url) == data


@pytest.fixture
def killed_restarted(faulty_api: Api) -> Iterator[None]:
    yield
    restart_if_killed(faulty_api)  # a failing assertion must not leave the next test hostless


# -- create ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("killed_restarted")
@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize(
    ("protocol", "step"),
    [("legacy", s) for s in CREATE_STEPS] + [("graph", s) for s in GRAPH_CREATE_STEPS],
)
def test_a_create_interrupted_at_any_storage_step_leaves_no_half_session(
    faulty_api: Api, proxy: FaultProxy, protocol: str, step: str, fault: str
) -> None:
    data = random.randbytes(SIZE)
    url = new_url(faulty_api)
    create = legacy_create if protocol == "legacy" else graph_create
    role, method, match, skip = (CREATE_STEPS if protocol == "legacy" else GRAPH_CREATE_STEPS)[step]
    with httpx.Client(timeout=30, limits=NO_KEEPALIVE) as client:
        fired = proxy.add(rule_for(faulty_api, role, method, match, skip, fault))
        first = attempt(lambda: create(client, faulty_api, url))
        restart_if_killed(faulty_api)
        proxy.clear()
        assert fired.hits >= 1, "the step was never reached"
        assert_documented(first, fault, 200)
        # the same create, retried: succeeds, with the session the first attempt made if any
        again = create(client, faulty_api, url)
        assert again.status_code == 200, again.text
        seen = client.get(url, headers=faulty_api.headers())
        assert seen.status_code == 200, seen.text
        assert seen.json()["missingRanges"] == [{"start": "0", "end": str(SIZE - 1)}]
        assert seen.json()["size"] == SIZE
        if first is not None and first.status_code == 200 and protocol == "legacy":
            assert first.json()["id"] == again.json()["id"] == seen.json()["id"]
        assert blob_or_none(faulty_api, url) == b""  # the placeholder only, never a document
        placeholder = faulty_api.document_blob(url).get_blob_properties().metadata
        assert "pendingsession" in placeholder and "sessionid" not in placeholder
        if protocol == "legacy":
            send: Send = legacy_send
        else:
            assert again.json()["nextExpectedRanges"] == [f"0-{SIZE - 1}"]
            send = graph_send(str(again.json()["uploadUrl"]))
            if first is not None and first.status_code == 200:  # its uploadUrl works too
                early = graph_send(str(first.json()["uploadUrl"]))
                assert early(client, faulty_api, url, data, 0).status_code == 202
        finish(client, faulty_api, url, data, send)


# -- upload ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("killed_restarted")
@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize(
    ("protocol", "step"),
    [("legacy", s) for s in UPLOAD_STEPS] + [("graph", s) for s in GRAPH_UPLOAD_STEPS],
)
def test_an_upload_interrupted_at_any_storage_step_never_loses_an_acknowledged_segment(
    faulty_api: Api, proxy: FaultProxy, protocol: str, step: str, fault: str
) -> None:
    data = random.randbytes(SIZE)
    url = new_url(faulty_api)
    part, role, method, match, skip = (
        UPLOAD_STEPS if protocol == "legacy" else GRAPH_UPLOAD_STEPS
    )[step]
    with httpx.Client(timeout=30, limits=NO_KEEPALIVE) as client:
        if protocol == "legacy":
            assert legacy_create(client, faulty_api, url).status_code == 200
            send: Send = legacy_send
        else:
            created = graph_create(client, faulty_api, url)
            assert created.status_code == 200, created.text
            send = graph_send(str(created.json()["uploadUrl"]))
        acknowledged: list[int] = []
        if part == 1:
            assert send(client, faulty_api, url, data, 0).status_code == 202
            acknowledged.append(0)
        fired = proxy.add(rule_for(faulty_api, role, method, match, skip, fault))
        answer = attempt(lambda: send(client, faulty_api, url, data, part))
        restart_if_killed(faulty_api)
        proxy.clear()
        assert fired.hits >= 1, "the step was never reached"
        assert_documented(answer, fault, 201 if part == 1 else 202)
        if answer is not None and answer.status_code in (201, 202):
            acknowledged.append(part)
        gaps = missing(client, faulty_api, url)
        for done in acknowledged:  # a 2xx segment is never asked for again
            start, end = HALVES[done]
            assert not any(s < end and e >= start for s, e in gaps), (done, gaps)
        finish(client, faulty_api, url, data, send)


# -- the deployment's uploadUrl key (read once per process, created once per deployment) -------


KEYS_STEPS: dict[str, tuple[str, Match]] = {
    "keys-read": ("GET", keys_row),
    "keys-insert": ("POST", keys_insert),
}


@pytest.mark.parametrize("fault", ["503", "kill"])
@pytest.mark.parametrize("step", list(KEYS_STEPS))
def test_a_create_interrupted_at_the_upload_url_key_leaves_one_usable_key(
    faulty_api: Api, proxy: FaultProxy, step: str, fault: str
) -> None:
    data = random.randbytes(SIZE)
    url = new_url(faulty_api)
    sessions = faulty_api.storage._get_clients().sessions
    saved = sessions.get_entity("~keys", "uploadUrl")
    method, match = KEYS_STEPS[step]
    try:
        if step == "keys-insert":
            sessions.delete_entity("~keys", "uploadUrl")
        # a fresh process: the key is not cached yet
        faulty_api.server.stop()
        faulty_api.server.start()
        with httpx.Client(timeout=30, limits=NO_KEEPALIVE) as client:
            fired = proxy.add(rule_for(faulty_api, "table", method, match, 0, fault))
            first = attempt(lambda: graph_create(client, faulty_api, url))
            restart_if_killed(faulty_api)
            proxy.clear()
            assert fired.hits >= 1, "the step was never reached"
            assert_documented(first, fault, 200)
            again = graph_create(client, faulty_api, url)
            assert again.status_code == 200, again.text
            if first is not None and first.status_code == 200:  # both URLs are usable
                assert (
                    graph_send(str(first.json()["uploadUrl"]))(
                        client, faulty_api, url, data, 0
                    ).status_code
                    == 202
                )
            finish(client, faulty_api, url, data, graph_send(str(again.json()["uploadUrl"])))
    finally:
        restart_if_killed(faulty_api)
        proxy.clear()
        try:
            current = sessions.get_entity("~keys", "uploadUrl")
        except ResourceNotFoundError:
            current = None
        if current is None or current["Key"] != saved["Key"]:
            # restore the deployment's key, and a host that has not cached another one
            sessions.upsert_entity(dict(saved))
            faulty_api.server.stop()
            faulty_api.server.start()
