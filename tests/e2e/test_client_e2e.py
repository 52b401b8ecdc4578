"""The upload client (`uploadsession upload|status|cancel` and UploadClient) against
`uploadsession serve` + Azurite: whole uploads, a killed client resuming, injected 503s and
dropped connections, a range another uploader sent meanwhile, exit codes, and no token in
any output."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.conftest import Api
from tests.processes import REPO
from tests.unit import tokens
from uploadsession.client import Progress, UploadClient, missing_bytes, missing_ranges
from uploadsession.models import crc64nvme, format_checksum

MIB = 1024 * 1024
KIB = 1024


@dataclass
class Doc:
    printer: str
    job: str
    document: str

    @classmethod
    def new(cls) -> Doc:
        return cls(str(uuid.uuid4()), f"job-{uuid.uuid4().hex[:8]}", str(uuid.uuid4()))

    def args(self, api: Api) -> list[str]:
        return [
            "--base-url",
            api.base_url,
            "--printer",
            self.printer,
            "--job",
            self.job,
            "--document",
            self.document,
        ]

    def url(self, api: Api) -> str:
        return api.session_url(self.printer, self.job, self.document)


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "UPLOADSESSION_TOKEN"}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def assert_no_secret(secrets: list[str], *outputs: str) -> None:
    for secret in secrets:
        signature = secret.rsplit(".", 1)[-1]
        for output in outputs:
            assert secret not in output
            assert len(signature) < 16 or signature not in output


def run_cli(
    *args: str, secrets: list[str], env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python -m uploadsession.cli ...`; fail if any secret shows up in stdout or stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "uploadsession.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env or cli_env(),
    )
    assert_no_secret(secrets, done.stdout, done.stderr)
    return done


def write_file(path: Path, size: int, seed: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


def get_session(api: Api, url: str) -> httpx.Response:
    return httpx.get(url, headers=api.headers(), timeout=30)


# -- a fault-injecting proxy -------------------------------------------------------------


class FaultProxy:
    """An HTTP/1.1 proxy on 127.0.0.1 forwarding to the real server, failing some segments.

    Segment requests (legacy ``POST …/$value``, Graph ``PUT …/uploadSessions/…``) are
    numbered from 1: every ``fail_every``-th gets 503 + ``Retry-After: 0`` without reaching
    the server; those in ``drop_before`` lose their connection before being forwarded, those
    in ``drop_after`` after the server answered (so the server has the bytes and the client
    does not know); ``delay`` slows every segment down. It sets ``X-Forwarded-Host`` as a
    front end does, so the uploadUrl the server builds points at the proxy; ``seen`` records
    each request's method, path and whether it carried Authorization.
    """

    HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}

    def __init__(
        self,
        target: str,
        *,
        fail_every: int = 0,
        drop_before: set[int] | None = None,
        drop_after: set[int] | None = None,
        delay: float = 0.0,
    ) -> None:
        parts = urlsplit(target)
        self.target_host, self.target_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.prefix = parts.path
        self.fail_every = fail_every
        self.drop_before = drop_before or set()
        self.drop_after = drop_after or set()
        self.delay = delay
        self.posts = 0
        self.faults = 0
        self.seen: list[tuple[str, str, bool]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy.forward(self)

            do_PUT = do_POST = do_DELETE = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.prefix}"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        number = 0
        path = handler.path.split("?", 1)[0]
        with self._lock:
            self.seen.append((handler.command, path, "Authorization" in handler.headers))
        segment = (handler.command == "POST" and path.endswith("/$value")) or (
            handler.command == "PUT" and "/uploadSessions/" in path
        )
        if segment:
            with self._lock:
                self.posts += 1
                number = self.posts
            if number in self.drop_before:
                return self._drop(handler)
            if self.fail_every and number % self.fail_every == 0:
                with self._lock:
                    self.faults += 1
                envelope = json.dumps(
                    {"error": {"code": "serviceUnavailable", "message": "injected"}}
                ).encode()
                handler.send_response(503)
                handler.send_header("Retry-After", "0")
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(len(envelope)))
                handler.end_headers()
                handler.wfile.write(envelope)
                return None
            with self._lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                time.sleep(self.delay)
            finally:
                with self._lock:
                    self.in_flight -= 1
        upstream = http.client.HTTPConnection(self.target_host, self.target_port, timeout=60)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in self.HOP}
            headers["X-Forwarded-Host"] = handler.headers.get("Host", "")
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        if number in self.drop_after:
            return self._drop(handler)
        handler.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in self.HOP:
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        return None

    def _drop(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.faults += 1
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def token(api: Api) -> str:
    return api.token()


# -- whole uploads -------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["graph", "legacy"])
def test_the_cli_uploads_20_mb_and_the_committed_document_is_byte_identical(
    api: Api, tmp_path: Path, token: str, protocol: str
) -> None:
    doc = Doc.new()
    data = write_file(tmp_path / "report.pdf", 20 * MIB + 12345, seed=1)
    done = run_cli(
        "upload",
        str(tmp_path / "report.pdf"),
        *doc.args(api),
        "--token",
        token,
        "--json",
        "--protocol",
        protocol,
        secrets=[token],
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # exactly one JSON object and nothing else
    assert result["status"] == "completed" and result["protocol"] == protocol
    assert result["size"] == result["bytesSent"] == len(data)
    assert result["segmentsSent"] == 5  # 5 MiB segments by default
    assert result["retries"] == 0 and result["alreadyPresent"] == 0
    assert result["contentType"] == "application/pdf" and result["documentName"] == "report.pdf"
    assert result["documentUrl"] == doc.url(api).removesuffix("/uploadSession")
    assert api.document_bytes(doc.url(api)) == (data, "application/pdf")
    assert get_session(api, doc.url(api)).json()["missingRanges"] == []


@pytest.mark.parametrize("protocol", ["graph", "legacy"])
def test_a_killed_client_resumes_and_sends_only_what_is_missing(
    api: Api, tmp_path: Path, token: str, protocol: str
) -> None:
    doc = Doc.new()
    path = tmp_path / "big.bin"
    data = write_file(path, 8 * MIB + 999, seed=2)
    size = len(data)
    # The first run goes through a proxy that slows each segment down, so there is time to
    # kill it between segments (locally a segment takes a few milliseconds).
    with FaultProxy(api.base_url, delay=0.05) as proxy:
        args = [
            "upload",
            str(path),
            "--base-url",
            proxy.base_url,
            "--printer",
            doc.printer,
            "--job",
            doc.job,
            "--document",
            doc.document,
            "--segment-size",
            "320KiB",
            "--parallel",
            "1",
            "--json",
            "--protocol",
            protocol,
        ]
        first = subprocess.Popen(
            [sys.executable, "-m", "uploadsession.cli", *args],
            cwd=REPO,
            text=True,
            env=cli_env(UPLOADSESSION_TOKEN=token),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        received = 0
        while time.monotonic() < deadline and first.poll() is None:
            response = get_session(api, doc.url(api))
            if response.status_code == 200:
                received = size - missing_bytes(missing_ranges(response.json()))
                if received >= 2 * 320 * KIB:
                    break
            time.sleep(0.02)
        assert first.poll() is None, "the client finished before it could be killed"
        first.send_signal(signal.SIGKILL)
        out, err = first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL
    assert_no_secret([token], out, err)
    present = size - missing_bytes(missing_ranges(get_session(api, doc.url(api)).json()))
    assert 0 < received <= present < size

    again = run_cli(
        "upload",
        str(path),
        *doc.args(api),
        "--segment-size",
        "320KiB",
        "--parallel",
        "1",
        "--json",
        "--protocol",
        protocol,
        "--token",
        token,
        secrets=[token],
    )
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["status"] == "completed"
    assert result["alreadyPresent"] == present
    assert result["bytesSent"] == size - present < size
    assert api.document_bytes(doc.url(api)) == (data, "application/octet-stream")


@pytest.mark.parametrize("protocol", ["graph", "legacy"])
def test_injected_503s_and_dropped_connections_are_retried_to_a_byte_identical_document(
    api: Api,
    tmp_path: Path,
    token: str,
    caplog: pytest.LogCaptureFixture,
    protocol: Literal["graph", "legacy"],
) -> None:
    doc = Doc.new()
    data = write_file(tmp_path / "doc.bin", 4 * MIB + 5, seed=3)  # 14 segments of 320 KiB
    caplog.set_level("INFO", logger="uploadsession.client")
    with (
        FaultProxy(api.base_url, fail_every=3, drop_before={2}, drop_after={4, 8}) as proxy,
        UploadClient(proxy.base_url, token) as client,
    ):
        result = client.upload(
            tmp_path / "doc.bin",
            doc.printer,
            doc.job,
            doc.document,
            segment_size=320 * KIB,
            parallel=4,
            protocol=protocol,
        )
    assert result.status == "completed"
    assert proxy.faults >= 5 and result.retries >= proxy.faults
    # Each retry is visible (the CLI logs INFO to stderr), numbered against the attempt limit.
    retried = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retrying (")]
    assert len(retried) >= proxy.faults
    assert all("/8) " in line for line in retried)
    assert api.document_bytes(doc.url(api)) == (data, "application/octet-stream")


@pytest.mark.parametrize("protocol", ["graph", "legacy"])
def test_a_range_another_uploader_sent_meanwhile_is_recovered_from_by_rereading(
    api: Api, tmp_path: Path, token: str, protocol: Literal["graph", "legacy"]
) -> None:
    doc = Doc.new()
    data = write_file(tmp_path / "doc.bin", 2 * MIB + 77, seed=4)
    url = doc.url(api)
    other: list[int] = []

    def meanwhile(progress: Progress) -> None:
        # After the client planned its segments from missingRanges, someone else sends bytes
        # 100000-499999: the client's first two 320 KiB segments now overlap them (416).
        if not other:
            start, end = 100_000, 499_999
            chunk = data[start : end + 1]
            response = httpx.post(
                url + "/$value",
                content=chunk,
                timeout=30,
                headers={
                    **api.headers(),
                    "If-Match": "*",
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"bytes {start}-{end}/{len(data)}",
                    "Content-MD5": base64.b64encode(hashlib.md5(chunk).digest()).decode(),
                },
            )
            other.append(response.status_code)

    with UploadClient(api.base_url, token) as client:
        result = client.upload(
            tmp_path / "doc.bin",
            doc.printer,
            doc.job,
            doc.document,
            segment_size=320 * KIB,
            parallel=1,
            progress=meanwhile,
            protocol=protocol,
        )
    assert other == [202]
    assert result.range_conflicts >= 1
    assert result.bytes_sent == len(data) - 400_000
    assert api.document_bytes(url) == (data, "application/octet-stream")


# -- exit codes, status, cancel, and secrecy -----------------------------------------------


@pytest.mark.parametrize(
    ("what", "extra"),
    [
        ("segment size not a multiple of 320 KiB", ["--segment-size", "1000"]),
        ("segment size over 10 MiB", ["--segment-size", "20MiB"]),
        ("no parallelism", ["--parallel", "0"]),
        ("a token pasted after a misspelt option", ["--tokn"]),
    ],
)
def test_usage_errors_exit_2_without_echoing_a_token(
    api: Api,
    tmp_path: Path,
    token: str,
    what: str,
    extra: list[str],
) -> None:
    write_file(tmp_path / "a.bin", 10, seed=5)
    args = [*extra, token] if extra == ["--tokn"] else [*extra, "--token", token]
    done = run_cli("upload", str(tmp_path / "a.bin"), *Doc.new().args(api), *args, secrets=[token])
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert "error" in done.stderr


def test_a_missing_file_or_token_is_a_usage_error(api: Api, tmp_path: Path, token: str) -> None:
    missing = run_cli(
        "upload",
        str(tmp_path / "nope.bin"),
        *Doc.new().args(api),
        "--token",
        token,
        secrets=[token],
    )
    assert missing.returncode == 2 and "no such file" in missing.stderr
    write_file(tmp_path / "a.bin", 10, seed=6)
    no_token = run_cli("upload", str(tmp_path / "a.bin"), *Doc.new().args(api), secrets=[])
    assert no_token.returncode == 2 and "UPLOADSESSION_TOKEN" in no_token.stderr


def test_a_bad_or_insufficient_token_exits_3_and_is_never_printed(
    api: Api,
    tmp_path: Path,
) -> None:
    write_file(tmp_path / "a.bin", 10, seed=7)
    forged = tokens.mint(
        tokens.generate_key(),
        tokens.KID,
        **tokens.delegated_claims(
            tokens.TENANT, tokens.USER, "PrintJob.ReadWrite Printer.Read.All", tokens.AUDIENCE
        ),
    )
    read_only = api.token(scp="PrintJob.Read Printer.Read.All")
    for bad, status in ((forged, 401), (read_only, 403)):
        done = run_cli(
            "upload",
            str(tmp_path / "a.bin"),
            *Doc.new().args(api),
            "--json",
            "--token",
            bad,
            secrets=[bad],
        )
        assert done.returncode == 3, done.stderr
        assert json.loads(done.stdout)["error"]["status"] == status
        assert str(status) in done.stderr
    via_env = run_cli(
        "status", *Doc.new().args(api), secrets=[forged], env=cli_env(UPLOADSESSION_TOKEN=forged)
    )
    assert via_env.returncode == 3 and "401" in via_env.stderr


def test_someone_elses_session_is_a_conflict_reported_clearly_with_exit_1(
    api: Api,
    tmp_path: Path,
    token: str,
) -> None:
    doc = Doc.new()
    write_file(tmp_path / "a.bin", 1000, seed=8)
    other_user = api.headers(user=str(uuid.uuid4()))
    created = httpx.put(
        doc.url(api),
        headers=other_user,
        timeout=30,
        json={"size": 1000, "contentType": "application/octet-stream", "documentName": "a.bin"},
    )
    assert created.status_code == 200
    done = run_cli(
        "upload",
        str(tmp_path / "a.bin"),
        *doc.args(api),
        "--json",
        "--token",
        token,
        secrets=[token],
    )
    assert done.returncode == 1
    assert "409" in done.stderr and "another creator" in done.stderr
    assert json.loads(done.stdout)["status"] == "failed"


def test_status_shows_progress_and_cancel_removes_the_session(
    api: Api,
    tmp_path: Path,
    token: str,
) -> None:
    doc = Doc.new()
    url = doc.url(api)
    created = httpx.put(
        url,
        headers=api.headers(),
        timeout=30,
        json={"size": 1000, "contentType": "text/plain", "documentName": "notes.txt"},
    )
    assert created.status_code == 200
    assert (
        httpx.post(
            url + "/$value",
            content=b"x" * 100,
            timeout=30,
            headers={
                **api.headers(),
                "If-Match": "*",
                "Content-Type": "application/octet-stream",
                "Content-Range": "bytes 0-99/1000",
            },
        ).status_code
        == 202
    )
    env = cli_env(UPLOADSESSION_TOKEN=token)

    human = run_cli("status", *doc.args(api), secrets=[token], env=env)
    assert human.returncode == 0, human.stderr
    assert "received  100 of 1,000 bytes (10.0%)" in human.stdout
    assert "missing   100-999" in human.stdout
    assert "expires" in human.stdout and "notes.txt" in human.stdout

    raw = run_cli("status", *doc.args(api), "--json", secrets=[token], env=env)
    assert raw.returncode == 0
    assert json.loads(raw.stdout) == get_session(api, url).json()

    cancelled = run_cli("cancel", *doc.args(api), secrets=[token], env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert get_session(api, url).status_code == 404
    gone = run_cli("status", *doc.args(api), secrets=[token], env=env)
    assert gone.returncode == 1 and "404" in gone.stderr


# -- download ------------------------------------------------------------------------------


def test_download_reads_back_the_committed_document_and_refuses_an_incomplete_one(
    api: Api, tmp_path: Path, token: str
) -> None:
    doc = Doc.new()
    data = write_file(tmp_path / "in.bin", 3 * MIB + 7, seed=11)
    target = tmp_path / "out.bin"
    early = run_cli(
        "download", *doc.args(api), "--token", token, "-o", str(target), secrets=[token]
    )
    assert early.returncode == 1 and "404" in early.stderr
    assert not target.exists() and not (tmp_path / "out.bin.partial").exists()
    upload = run_cli(
        "upload", str(tmp_path / "in.bin"), *doc.args(api), "--token", token, secrets=[token]
    )
    assert upload.returncode == 0, upload.stderr
    done = run_cli(
        "download", *doc.args(api), "--token", token, "-o", str(target), "--json", secrets=[token]
    )
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == data
    summary = json.loads(done.stdout)
    assert summary == {
        "path": str(target),
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    to_stdout = subprocess.run(
        [sys.executable, "-m", "uploadsession.cli", "download", *doc.args(api), "--token", token],
        capture_output=True,
        timeout=120,
        cwd=REPO,
        env=cli_env(),
    )
    assert to_stdout.returncode == 0 and to_stdout.stdout == data


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--printer", "not-a-guid", "printer id must be a GUID"),
        ("--document", "1234", "document id must be a GUID"),
        ("--job", "job/1", "job id must be"),
        ("--base-url", "http://127.0.0.1:9/print", "version segment"),
    ],
)
def test_bad_ids_are_usage_errors_before_any_request(
    api: Api, token: str, flag: str, value: str, said: str
) -> None:
    doc = Doc.new()
    args = doc.args(api)
    args[args.index(flag) + 1] = value
    done = run_cli("status", *args, "--token", token, secrets=[token], timeout=30)
    assert done.returncode == 2
    assert said in done.stderr


def test_the_base_url_and_ids_may_come_from_the_environment(
    api: Api, tmp_path: Path, token: str
) -> None:
    doc = Doc.new()
    data = write_file(tmp_path / "env.bin", 1000, seed=3)
    env = cli_env(
        UPLOADSESSION_BASE_URL=api.base_url,
        UPLOADSESSION_PRINTER=doc.printer,
        UPLOADSESSION_JOB=doc.job,
        UPLOADSESSION_DOCUMENT=doc.document,
        UPLOADSESSION_TOKEN=token,
    )
    done = run_cli("upload", str(tmp_path / "env.bin"), secrets=[token], env=env)
    assert done.returncode == 0, done.stderr
    assert api.document_bytes(doc.url(api))[0] == data


def test_uploading_a_complete_document_again_exits_0_only_for_the_same_bytes(
    api: Api, tmp_path: Path, token: str
) -> None:
    doc = Doc.new()
    write_file(tmp_path / "same.bin", 200_000, seed=21)
    first = run_cli(
        "upload", str(tmp_path / "same.bin"), *doc.args(api), "--token", token, secrets=[token]
    )
    assert first.returncode == 0, first.stderr
    again = run_cli(
        "upload", str(tmp_path / "same.bin"), *doc.args(api), "--token", token, secrets=[token]
    )
    assert again.returncode == 0, again.stderr
    assert "already uploaded" in again.stdout
    other = tmp_path / "other" / "same.bin"  # same name and size, other bytes
    other.parent.mkdir()
    write_file(other, 200_000, seed=22)
    different = run_cli("upload", str(other), *doc.args(api), "--token", token, secrets=[token])
    assert different.returncode == 1
    assert "already complete" in different.stderr


# -- the Graph protocol: what only it does -------------------------------------------------


def proxied_args(proxy: FaultProxy, doc: Doc) -> list[str]:
    return [
        "--base-url",
        proxy.base_url,
        "--printer",
        doc.printer,
        "--job",
        doc.job,
        "--document",
        doc.document,
    ]


def test_a_graph_upload_puts_ranges_in_parallel_without_a_bearer_token_and_never_shows_the_url(
    api: Api, tmp_path: Path, token: str
) -> None:
    doc = Doc.new()
    data = write_file(tmp_path / "g.bin", 3 * MIB + 5, seed=31)
    # The same creator with the same properties gets the same uploadUrl: create it first, so
    # the test knows the capability token the CLI will be handed.
    created = httpx.post(
        doc.url(api).removesuffix("/uploadSession") + "/createUploadSession",
        headers=api.headers(),
        timeout=30,
        json={
            "properties": {
                "size": len(data),
                "contentType": "application/octet-stream",
                "documentName": "g.bin",
                "checksum": format_checksum(crc64nvme(data)),
            }
        },
    )
    assert created.status_code == 200, created.text
    capability = created.json()["uploadUrl"].split("tempauthtoken=", 1)[1]
    with FaultProxy(api.base_url, delay=0.05) as proxy:
        done = run_cli(
            "upload",
            str(tmp_path / "g.bin"),
            *proxied_args(proxy, doc),
            "--segment-size",
            "320KiB",
            "--parallel",
            "4",
            "--json",
            "--token",
            token,
            secrets=[token, capability],
            env=cli_env(UPLOADSESSION_LOG_LEVEL="DEBUG"),
        )
    assert done.returncode == 0, done.stderr
    assert "tempauthtoken" not in done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["protocol"] == "graph" and result["segmentsSent"] == 10
    assert result["sessionUrl"] == doc.url(api).replace(api.base_url, proxy.base_url)
    upload_url_requests = [(m, auth) for m, path, auth in proxy.seen if "/uploadSessions/" in path]
    assert {m for m, _ in upload_url_requests} == {"GET", "PUT"}
    assert not any(auth for _, auth in upload_url_requests)  # no Authorization on the uploadUrl
    assert [auth for m, path, auth in proxy.seen if path.endswith("/createUploadSession")] == [True]
    assert proxy.max_in_flight >= 2  # ranges in parallel
    assert api.document_bytes(doc.url(api)) == (data, "application/octet-stream")


def test_ctrl_c_stops_an_upload_with_exit_130_and_the_same_command_resumes_it(
    api: Api, tmp_path: Path, token: str
) -> None:
    doc = Doc.new()
    path = tmp_path / "int.bin"
    data = write_file(path, 6 * MIB + 3, seed=32)
    with FaultProxy(api.base_url, delay=0.05) as proxy:
        args = [*proxied_args(proxy, doc), "--segment-size", "320KiB", "--parallel", "2"]
        running = subprocess.Popen(
            [sys.executable, "-m", "uploadsession.cli", "upload", str(path), *args, "--json"],
            cwd=REPO,
            text=True,
            env=cli_env(UPLOADSESSION_TOKEN=token),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and running.poll() is None:
            response = get_session(api, doc.url(api))
            ok = response.status_code == 200
            if ok and len(data) - missing_bytes(missing_ranges(response.json())) >= 2 * 320 * KIB:
                break
            time.sleep(0.02)
        assert running.poll() is None, "the upload finished before it could be interrupted"
        running.send_signal(signal.SIGINT)
        out, err = running.communicate(timeout=30)
    assert running.returncode == 130, err
    assert_no_secret([token], out, err)
    assert "interrupted: run the same command again" in err
    assert json.loads(out) == {"status": "interrupted"}
    present = len(data) - missing_bytes(missing_ranges(get_session(api, doc.url(api)).json()))
    assert 0 < present < len(data)
    again = run_cli(
        "upload", str(path), *doc.args(api), "--json", "--token", token, secrets=[token]
    )
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["alreadyPresent"] == present and result["bytesSent"] == len(data) - present
    assert api.document_bytes(doc.url(api))[0] == data


def test_status_and_cancel_act_on_a_session_created_with_the_graph_protocol(
    api: Api, token: str
) -> None:
    doc = Doc.new()
    created = httpx.post(
        doc.url(api).removesuffix("/uploadSession") + "/createUploadSession",
        headers=api.headers(),
        timeout=30,
        json={"properties": {"size": 1000, "contentType": "text/plain", "documentName": "g.txt"}},
    )
    assert created.status_code == 200, created.text
    upload_url = created.json()["uploadUrl"]
    put = httpx.put(
        upload_url, content=b"y" * 250, headers={"Content-Range": "bytes 0-249/1000"}, timeout=30
    )
    assert put.status_code == 202, put.text
    env = cli_env(UPLOADSESSION_TOKEN=token)
    secret = upload_url.split("tempauthtoken=", 1)[1]
    status = run_cli("status", *doc.args(api), "--json", secrets=[token, secret], env=env)
    assert status.returncode == 0, status.stderr
    session = json.loads(status.stdout)
    assert session["documentName"] == "g.txt" and session["nextExpectedRanges"] == ["250-999"]
    cancelled = run_cli("cancel", *doc.args(api), secrets=[token, secret], env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert httpx.get(upload_url, timeout=30).status_code == 404  # the uploadUrl ended with it
