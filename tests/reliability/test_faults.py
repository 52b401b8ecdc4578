"""Fault injection with real processes: storage stopped mid-upload, the JWKS gone, the host
killed mid-upload. Each time: no 500, no traceback, a 503 with Retry-After where the service
cannot answer, and afterwards the client resumes from GET ``missingRanges`` and the committed
document is byte-identical — nothing a 2xx acknowledged is ever lost.

Each test has its own Azurite and `uploadsession serve` (the ``own_api`` fixture), or a port
nothing listens on, so stopping them hurts no other test.
"""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Api
from tests.processes import AZURITE_KEY, Azurite, Server, free_port
from tests.reliability.conftest import (
    assert_envelope,
    blob_bytes,
    create_session,
    new_url,
    segment_headers,
)
from tests.unit import tokens
from uploadsession.config import StorageSettings
from uploadsession.errors import ServiceUnavailable
from uploadsession.models import DocumentKey
from uploadsession.ports import CommittedDocument
from uploadsession.store import AzureStorage

KIB = 1024
SEGMENT = 256 * KIB


@dataclass
class Upload:
    """One document sent in parallel segments; what was acknowledged and what was refused."""

    api: Api
    url: str
    data: bytes
    acked: list[tuple[int, int]] = field(default_factory=list)
    refusals: list[httpx.Response] = field(default_factory=list)
    transport_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send_until_refused(self, starts: list[int]) -> None:
        """Send each segment; stop at the first refusal or dropped connection, as a client
        whose service went away would, and resume later from GET."""
        with httpx.Client(timeout=60) as client:
            for start in starts:
                chunk = self.data[start : start + SEGMENT]
                try:
                    response = client.post(
                        self.url + "/$value",
                        content=chunk,
                        headers=segment_headers(self.api, chunk, start, len(self.data)),
                    )
                except httpx.TransportError:
                    with self.lock:
                        self.transport_errors += 1
                    return
                with self.lock:
                    if response.status_code in (201, 202):
                        self.acked.append((start, start + len(chunk) - 1))
                    else:
                        self.refusals.append(response)
                        return

    def run_parallel(self, clients: int, during: Callable[[], None]) -> None:
        """Upload from ``clients`` threads; call ``during`` while they run."""
        starts = list(range(0, len(self.data), SEGMENT))
        random.Random(11).shuffle(starts)
        threads = [
            threading.Thread(target=self.send_until_refused, args=(starts[i::clients],))
            for i in range(clients)
        ]
        for thread in threads:
            thread.start()
        try:
            during()
        finally:
            for thread in threads:
                thread.join(120)

    def wait_for_acks(self, count: int, deadline_s: float = 30) -> None:
        deadline = time.monotonic() + deadline_s
        while len(self.acked) < count:
            assert time.monotonic() < deadline, f"only {len(self.acked)} segments acknowledged"
            time.sleep(0.01)

    def resume(self) -> dict[str, object]:
        """Read missingRanges, check nothing acknowledged is missing, send what is."""
        with httpx.Client(timeout=60) as client:
            session = client.get(self.url, headers=self.api.headers())
            assert session.status_code == 200, session.text
            missing = [(int(r["start"]), int(r["end"])) for r in session.json()["missingRanges"]]
            for start, end in self.acked:
                assert all(end < m_start or start > m_end for m_start, m_end in missing), (
                    f"acknowledged bytes {start}-{end} are missing again: {missing}"
                )
            last: httpx.Response | None = None
            for m_start, m_end in missing:
                for start in range(m_start, m_end + 1, SEGMENT):
                    chunk = self.data[start : min(start + SEGMENT, m_end + 1)]
                    last = client.post(
                        self.url + "/$value",
                        content=chunk,
                        headers=segment_headers(self.api, chunk, start, len(self.data)),
                    )
                    assert last.status_code in (201, 202), last.text
            assert last is not None and last.status_code == 201
            final = client.get(self.url, headers=self.api.headers()).json()
            assert final["missingRanges"] == [] and final["nextExpectedRanges"] == []
            return dict(final)


def server_log_is_clean(api: Api) -> None:
    """No traceback, no 500, and no storage secret among the logged storage errors."""
    log = Path(api.server.log).read_text(errors="replace")
    assert "Traceback" not in log
    assert '" 500 ' not in log
    assert AZURITE_KEY not in log and AZURITE_KEY[:20] not in log


def test_storage_stopped_mid_upload_gives_503_and_the_upload_resumes_byte_identical(
    own_api: Api,
    own_azurite: Azurite,
) -> None:
    azurite = own_azurite
    data = random.randbytes(8 * 1024 * KIB + 4321)
    upload = Upload(own_api, new_url(own_api), data)
    with httpx.Client(timeout=60) as client:
        create_session(client, own_api, upload.url, len(data))

    stopped: list[float] = []

    def outage() -> None:
        upload.wait_for_acks(6)
        azurite.stop()  # mid-upload: segments are in flight
        stopped.append(time.monotonic())

    upload.run_parallel(4, outage)
    try:
        # Promptly: a blob call once waited out the storage SDK's 15 s + 18 s retries.
        assert time.monotonic() - stopped[0] < 10
        # Every client met the outage as a 503 with Retry-After (or, if its request was on
        # the wire, at worst a dropped connection) — never a 500 or a traceback.
        assert upload.refusals, "no request met the outage"
        for refused in upload.refusals:
            assert_envelope(refused, 503, "serviceUnavailable")
            assert int(refused.headers["Retry-After"]) >= 1
        with httpx.Client(timeout=60) as client:
            asked = time.monotonic()
            down = client.get(upload.url, headers=own_api.headers())
            assert time.monotonic() - asked < 5
        assert_envelope(down, 503, "serviceUnavailable")
        assert int(down.headers["Retry-After"]) >= 1
    finally:
        azurite.start()  # the same ports and data directory

    final = upload.resume()
    assert blob_bytes(own_api, upload.url) == data
    assert final["size"] == len(data)
    server_log_is_clean(own_api)
    assert "storage unreachable" in Path(own_api.server.log).read_text(errors="replace")
    print(
        f"\nstorage outage: {len(upload.acked)} segments acknowledged before it, "
        f"{len(upload.refusals)} refused with 503; {len(data)} bytes verified"
    )


def test_the_host_killed_mid_upload_restarts_and_the_upload_resumes_byte_identical(
    own_api: Api,
) -> None:
    data = random.randbytes(8 * 1024 * KIB + 999)
    upload = Upload(own_api, new_url(own_api), data)
    with httpx.Client(timeout=60) as client:
        create_session(client, own_api, upload.url, len(data))

    def crash() -> None:
        upload.wait_for_acks(6)
        own_api.server.stop(signal.SIGKILL)

    upload.run_parallel(4, crash)
    assert upload.transport_errors >= 1  # the clients saw the host go away
    assert not upload.refusals, [r.text for r in upload.refusals]
    own_api.server.start()  # a new process on the same port: nothing in memory survives
    upload.resume()
    assert blob_bytes(own_api, upload.url) == data
    server_log_is_clean(own_api)
    print(
        f"\nhost SIGKILL: {len(upload.acked)} segments acknowledged before it; "
        f"{len(data)} bytes verified"
    )


def test_with_the_jwks_gone_cached_keys_still_validate_and_a_cold_host_answers_503(
    own_api: Api,
    tmp_path: Path,
) -> None:
    jwks = tmp_path / "jwks.json"
    document = jwks.read_text()
    with httpx.Client(timeout=60) as client:
        url = new_url(own_api)
        assert client.get(url, headers=own_api.headers()).status_code == 404  # keys now cached
        jwks.unlink()  # unreadable: gone (chmod 000 does not stop root)

        for _ in range(3):
            assert client.get(url, headers=own_api.headers()).status_code == 404
        assert (
            client.put(
                url,
                json={"size": 1, "contentType": "a/b", "documentName": "x"},
                headers=own_api.headers(),
            ).status_code
            == 200
        )
        # An unknown kid makes the cache try the JWKS once; the failure keeps the old keys.
        stranger = tokens.mint(
            tokens.generate_key(), "rotated-kid", **tokens.delegated_claims(aud=tokens.AUDIENCE)
        )
        refused = client.get(url, headers={"Authorization": f"Bearer {stranger}"})
        assert_envelope(refused, 401, "InvalidAuthenticationToken")
        assert client.get(url, headers=own_api.headers()).status_code == 200

        cold = Server(dict(own_api.server.env), tmp_path / "cold.log")
        cold.start()
        try:
            cold_url = url.replace(own_api.base_url, cold.base_url)
            for method in ("GET", "PUT", "POST", "DELETE"):
                response = client.request(
                    method,
                    cold_url + ("/$value" if method == "POST" else ""),
                    headers=own_api.headers(),
                )
                assert_envelope(response, 503, "serviceUnavailable")
                assert int(response.headers["Retry-After"]) >= 1
                assert "WWW-Authenticate" not in response.headers
            retry_after = int(response.headers["Retry-After"])

            jwks.write_text(document)  # the keys come back: the cold host recovers
            time.sleep(retry_after + 0.5)
            assert client.get(cold_url, headers=own_api.headers()).status_code == 200
        finally:
            cold.stop()
        log = (tmp_path / "cold.log").read_text(errors="replace")
        assert "Traceback" not in log and '" 500 ' not in log
    server_log_is_clean(own_api)


def test_every_storage_call_gives_up_within_seconds_when_storage_is_down() -> None:
    """Tables and blobs alike: two quick retries, then a 503 (the blob SDK's default retry
    policy once held a request for ~40 s first)."""
    closed = free_port()
    connection = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{closed}/devstoreaccount1;"
        f"TableEndpoint=http://127.0.0.1:{closed}/devstoreaccount1;"
    )
    storage = AzureStorage(StorageSettings(connection_string=connection))
    key = DocumentKey.parse(tokens.TENANT, str(uuid.uuid4()), "down", str(uuid.uuid4()))
    calls: dict[str, Callable[[], object]] = {
        "read a session": lambda: storage.get_session(key),
        "stage a segment": lambda: storage.stage(key, "0" * 56, b"abc"),
        "check a document": lambda: storage.document_exists(key),
        "reserve a document": lambda: storage.fence(key, "s"),
        "commit": lambda: storage.commit(
            key, ["0" * 56], CommittedDocument("s", "a/b", "a.txt", "app", None), '"0x1"'
        ),
    }
    for what, call in calls.items():
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            call()
        assert time.monotonic() - started < 5, what
