"""The upload client's pure parts (segment planning, backoff, progress math), its token
provider, its error mapping and both protocols over a fake transport. The CLI's own pure
parts (the progress bar, sizes, the status summary) are in test_cli.py."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from uploadsession.client import (
    MAX_SEGMENT_SIZE,
    SEGMENT_UNIT,
    AuthError,
    AzureCredentialToken,
    ClientError,
    ConflictError,
    NotFoundError,
    Progress,
    RateMeter,
    TransportError,
    UploadClient,
    backoff_delay,
    check_segment_size,
    guess_content_type,
    is_retryable,
    missing_bytes,
    missing_ranges,
    parse_retry_after,
    plan_segments,
    redact_jwts,
)
from uploadsession.client import retry as retry_module

U = SEGMENT_UNIT
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWNyZXQtdXNlciJ9.c2lnbmF0dXJlLXRoYXQtaXMtc2VjcmV0"


# -- segment planning --------------------------------------------------------------------


def test_a_whole_document_is_cut_into_full_segments_and_a_short_tail() -> None:
    size = 2 * U + U // 2
    assert plan_segments([(0, size - 1)], U) == [(0, U - 1), (U, 2 * U - 1), (2 * U, size - 1)]


def test_a_missing_range_off_the_grid_gets_a_short_first_segment_then_follows_the_grid() -> None:
    assert plan_segments([(100, 3 * U + 5)], U) == [
        (100, U - 1),
        (U, 2 * U - 1),
        (2 * U, 3 * U - 1),
        (3 * U, 3 * U + 5),
    ]


def test_small_and_separate_missing_ranges_stay_separate_segments() -> None:
    assert plan_segments([(0, 9), (20, 29), (U - 5, U + 5)], U) == [
        (0, 9),
        (20, 29),
        (U - 5, U - 1),
        (U, U + 5),
    ]


def test_planned_segments_cover_exactly_the_missing_bytes_and_none_is_too_big() -> None:
    rng = random.Random(11)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, 50 * U), 6))
        missing = [(cuts[0], cuts[1]), (cuts[2] + 1, cuts[3]), (cuts[4] + 1, cuts[5])]
        segment_size = U * rng.randint(1, 4)
        segments = plan_segments(missing, segment_size)
        assert all(end - start + 1 <= segment_size for start, end in segments)
        # inside the missing ranges, disjoint, and as many bytes: exactly the missing bytes
        assert all(any(ms <= s and e <= me for ms, me in missing) for s, e in segments)
        assert missing_bytes(segments) == missing_bytes(missing)
        assert all(a[1] < b[0] for a, b in itertools.pairwise(segments))
        # every cut except a range's own edges is on the grid
        assert all(
            (end + 1) % segment_size == 0
            for (_, end), (nxt, _) in itertools.pairwise(segments)
            if end + 1 == nxt
        )


def test_nothing_missing_plans_nothing_and_a_zero_segment_size_is_refused() -> None:
    assert plan_segments([], U) == []
    with pytest.raises(ValueError):
        plan_segments([(0, 10)], 0)


@pytest.mark.parametrize("size", [U, 16 * U, MAX_SEGMENT_SIZE])
def test_segment_sizes_that_are_multiples_of_320_kib_up_to_10_mib_are_accepted(
    size: int,
) -> None:
    check_segment_size(size)


@pytest.mark.parametrize("size", [0, -U, 1000, U + 1, MAX_SEGMENT_SIZE + U])
def test_other_segment_sizes_are_refused(size: int) -> None:
    with pytest.raises(ValueError, match="320 KiB"):
        check_segment_size(size)


def test_missing_ranges_are_read_from_strings_numbers_or_next_expected_ranges() -> None:
    assert missing_ranges(
        {"size": 100, "missingRanges": [{"start": "50", "end": "99"}, {"start": 0, "end": 9}]}
    ) == [(0, 9), (50, 99)]
    assert missing_ranges({"size": 100, "nextExpectedRanges": ["10-19", "90-"]}) == [
        (10, 19),
        (90, 99),
    ]
    assert missing_ranges({"size": 100, "missingRanges": []}) == []


# -- retries -----------------------------------------------------------------------------


def test_backoff_is_exponential_full_jitter_and_capped() -> None:
    top = [backoff_delay(n, rand=lambda: 1.0) for n in range(1, 10)]
    assert top == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff_delay(5, rand=lambda: 0.0) == 0.0
    assert backoff_delay(3, rand=lambda: 0.25) == 0.5
    delays = [backoff_delay(4) for _ in range(500)]
    assert 0.0 <= min(delays) < 0.5 and 3.5 < max(delays) <= 4.0


def test_a_retry_after_from_the_server_wins_over_the_backoff_but_is_bounded() -> None:
    assert backoff_delay(7, 0.0, rand=lambda: 1.0) == 0.0
    assert backoff_delay(1, 12.0, rand=lambda: 1.0) == 12.0
    assert backoff_delay(1, 86400.0) == 300.0


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(" 17 ") == 17.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (408, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (501, False),
        (400, False),
        (401, False),
        (404, False),
        (409, False),
        (416, False),
    ],
)
def test_only_transient_statuses_are_retried(status: int, retry: bool) -> None:
    assert is_retryable(status) is retry


# -- progress ----------------------------------------------------------------------------


def test_progress_position_fraction_and_eta() -> None:
    p = Progress(size=1000, done=400, in_flight=100, sent=300, elapsed=2.0, rate=50.0)
    assert p.position == 500 and p.fraction == 0.5
    assert p.eta == 10.0
    assert Progress(1000, 400, 0, 0, 1.0, 0.0).eta is None  # no rate yet
    assert Progress(1000, 990, 50, 0, 1.0, 10.0).position == 1000  # clamped
    assert Progress(1000, 1000, 0, 1000, 3.0, 0.0).eta == 0.0


def test_the_rate_is_measured_over_a_sliding_window() -> None:
    meter = RateMeter(window_seconds=5.0)
    assert meter.rate == 0.0
    meter.add(0.0, 0)
    meter.add(1.0, 10_000_000)  # a fast first second...
    for second in range(2, 20):  # ...then a steady 1 MB/s
        meter.add(float(second), 10_000_000 + (second - 1) * 1_000_000)
    assert meter.rate == pytest.approx(1_000_000, rel=0.01)


def test_content_types_are_guessed_from_the_name() -> None:
    assert guess_content_type("report.pdf") == "application/pdf"
    assert guess_content_type("notes.txt") == "text/plain"
    assert guess_content_type("blob") == "application/octet-stream"


# -- tokens --------------------------------------------------------------------------------


class FakeCredential:
    def __init__(self, lifetime: float, clock: list[float]) -> None:
        self.calls = 0
        self.lifetime = lifetime
        self.clock = clock

    def get_token(self, scope: str) -> Any:
        self.calls += 1
        return SimpleNamespace(
            token=f"token-{self.calls}", expires_on=int(self.clock[0] + self.lifetime)
        )


def test_a_credential_token_is_reused_then_refreshed_within_5_minutes_of_expiry() -> None:
    clock = [1_000_000.0]
    credential = FakeCredential(3600, clock)
    provider = AzureCredentialToken("api://x/.default", credential, clock=lambda: clock[0])
    assert provider() == provider() == "token-1"
    clock[0] += 3600 - 301
    assert provider() == "token-1"
    clock[0] += 2  # now 299 s before expiry
    assert provider() == "token-2"
    assert credential.calls == 2


def test_a_failing_credential_is_an_auth_error_without_the_token() -> None:
    class Broken:
        def get_token(self, scope: str) -> Any:
            raise RuntimeError(f"refused; cached {TOKEN}\nmore detail")

    with pytest.raises(AuthError) as caught:
        AzureCredentialToken("api://x/.default", Broken())()
    assert TOKEN not in caught.value.message and "more detail" not in caught.value.message
    assert "api://x/.default" in caught.value.message


def test_jwt_shaped_text_is_redacted() -> None:
    assert redact_jwts(f"token {TOKEN} end") == "token <redacted> end"


# -- the client over a fake transport -----------------------------------------------------


class FakeTransport(HTTPAdapter):
    """Answers requests from a script: (status, headers, json body) or an exception."""

    def __init__(self, script: list[Any]) -> None:
        super().__init__()
        self.script = script
        self.sent: list[requests.PreparedRequest] = []

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        self.sent.append(request)
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        status, headers, body = item
        response = requests.Response()
        response.status_code = status
        response.headers.update(headers)
        response._content = b"" if body is None else json.dumps(body).encode()
        response.request, response.url, response.reason = request, request.url or "", "Reason"
        return response


def fake_client(
    script: list[Any], monkeypatch: pytest.MonkeyPatch, **kwargs: Any
) -> tuple[UploadClient, FakeTransport]:
    monkeypatch.setattr(retry_module, "backoff_delay", lambda *a, **k: 0.0)
    transport = FakeTransport(script)
    http = requests.Session()
    http.mount("http://", transport)
    return UploadClient("http://svc/beta/", TOKEN, session=http, **kwargs), transport


def envelope(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


SESSION = {"id": "s", "size": 10, "missingRanges": [{"start": "0", "end": "9"}]}
IDS = ("0b4a6c1e-5d2f-4e3a-9b8c-7d6e5f4a3b2c", "job-1", "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b")


def test_transient_failures_are_retried_honouring_retry_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float | None] = []
    client, transport = fake_client(
        [
            requests.ConnectionError("reset"),
            (503, {"Retry-After": "0"}, None),
            (429, {}, None),
            (200, {}, SESSION),
        ],
        monkeypatch,
    )
    monkeypatch.setattr(
        retry_module,
        "backoff_delay",
        lambda attempt, retry_after=None: waits.append(retry_after) or 0.0,
    )
    assert client.status(*IDS) == SESSION
    assert waits == [None, 0.0, None]
    sent = transport.sent[-1]
    assert sent.url == (
        "http://svc/beta/print/printers/"
        + IDS[0]
        + "/jobs/job-1/documents/"
        + IDS[2]
        + "/uploadSession"
    )
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert len({r.headers["client-request-id"] for r in transport.sent}) == 4


def test_retries_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    client, transport = fake_client(
        [(503, {}, envelope("serviceUnavailable", "busy"))] * 3, monkeypatch, max_attempts=3
    )
    with pytest.raises(ClientError) as caught:
        client.status(*IDS)
    assert caught.value.status == 503 and len(transport.sent) == 3


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, AuthError),
        (403, AuthError),
        (404, NotFoundError),
        (409, ConflictError),
        (400, ClientError),
    ],
)
def test_error_statuses_map_to_the_exception_tree_and_never_carry_the_token(
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    kind: type[ClientError],
) -> None:
    echoed = envelope("someCode", f"you sent Bearer {TOKEN}")
    client, _ = fake_client([(status, {"request-id": "r-1"}, echoed)] * 2, monkeypatch)
    with pytest.raises(kind) as caught:
        client.status(*IDS)
    error = caught.value
    assert (error.status, error.code, error.request_id) == (status, "someCode", "r-1")
    assert TOKEN not in str(error) and TOKEN not in json.dumps(error.as_dict())


@pytest.mark.parametrize(
    "failure",
    [
        requests.ConnectionError(f"refused http://svc/?t={TOKEN}"),
        requests.Timeout("read timed out"),
        requests.exceptions.ChunkedEncodingError("broken"),
        requests.exceptions.ContentDecodingError("bad gzip"),
        requests.exceptions.InvalidHeader(f"bad header {TOKEN}"),
        requests.exceptions.TooManyRedirects("loop"),
    ],
)
def test_every_requests_exception_becomes_a_client_error_without_the_token(
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
) -> None:
    client, _ = fake_client([failure] * 8, monkeypatch)
    with pytest.raises(ClientError) as caught:
        client.status(*IDS)
    assert TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    if isinstance(failure, requests.ConnectionError | requests.Timeout):
        assert isinstance(caught.value, TransportError)


def test_a_retried_cancel_whose_first_attempt_landed_counts_as_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, _ = fake_client(
        [requests.ConnectionError("reset"), (404, {}, envelope("itemNotFound", "gone"))],
        monkeypatch,
    )
    client.cancel(*IDS)
    client, _ = fake_client([(404, {}, envelope("itemNotFound", "gone"))], monkeypatch)
    with pytest.raises(NotFoundError):
        client.cancel(*IDS)


def test_a_token_provider_is_asked_before_every_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issued = iter(["first", "second"])
    transport = FakeTransport([(503, {}, None), (200, {}, SESSION)])
    http = requests.Session()
    http.mount("http://", transport)
    monkeypatch.setattr(retry_module, "backoff_delay", lambda *a, **k: 0.0)
    UploadClient("http://svc/beta", lambda: next(issued), session=http).status(*IDS)
    assert [r.headers["Authorization"] for r in transport.sent] == ["Bearer first", "Bearer second"]


def test_upload_arguments_are_checked_before_any_request(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    client, transport = fake_client([], monkeypatch)
    (tmp_path / "f").write_bytes(b"x")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError):
        client.upload(tmp_path / "f", *IDS, segment_size=1000)
    with pytest.raises(ValueError):
        client.upload(tmp_path / "f", *IDS, parallel=0)
    with pytest.raises(ValueError):
        client.upload(tmp_path / "empty", *IDS)
    assert transport.sent == []


def test_a_200_that_is_not_a_session_is_a_client_error_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, _ = fake_client([(200, {}, ["not", "a", "session"])], monkeypatch)
    with pytest.raises(ClientError, match="without a session"):
        client.status(*IDS)


def test_a_404_on_create_hints_at_the_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = fake_client([(404, {}, envelope("itemNotFound", "no route"))], monkeypatch)
    with pytest.raises(NotFoundError, match="version segment"):
        client.create(*IDS, size=1, content_type="text/plain", name="a.txt")


# -- the Graph protocol over a fake transport ---------------------------------------------

CAPABILITY = "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6"
UPLOAD_URL = f"http://svc/beta/uploadSessions/ref?tempauthtoken={CAPABILITY}"


def test_a_graph_upload_sends_the_token_only_to_the_api_and_completes_on_201(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    (tmp_path / "doc.txt").write_bytes(b"0123456789")
    client, transport = fake_client(
        [
            (200, {}, {"uploadUrl": UPLOAD_URL, "nextExpectedRanges": ["0-9"]}),
            (200, {}, {"uploadUrl": UPLOAD_URL, "nextExpectedRanges": ["4-9"]}),
            (201, {}, {"id": IDS[2], "size": 10}),
        ],
        monkeypatch,
    )
    result = client.upload(tmp_path / "doc.txt", *IDS)
    create, status, put = transport.sent
    assert create.method == "POST" and (create.url or "").endswith(
        f"/documents/{IDS[2]}/createUploadSession"
    )
    body = json.loads(create.body or b"")
    assert set(body) == {"properties"} and body["properties"]["size"] == 10
    assert body["properties"]["checksum"].startswith("crc64nvme:")
    assert create.headers["Authorization"] == f"Bearer {TOKEN}"
    assert (status.method, status.url, put.method, put.url) == (
        "GET",
        UPLOAD_URL,
        "PUT",
        UPLOAD_URL,
    )
    assert "Authorization" not in status.headers and "Authorization" not in put.headers
    assert put.headers["Content-Range"] == "bytes 4-9/10" and "If-Match" not in put.headers
    assert (result.already_present, result.bytes_sent, result.session_id) == (4, 6, None)
    assert CAPABILITY not in json.dumps(result.as_dict())


def test_an_upload_url_error_never_repeats_the_capability_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    (tmp_path / "doc.txt").write_bytes(b"0123456789")
    client, _ = fake_client(
        [
            (200, {}, {"uploadUrl": UPLOAD_URL, "nextExpectedRanges": ["0-9"]}),
            (400, {}, envelope("invalidRequest", f"bad request to {UPLOAD_URL}")),
        ],
        monkeypatch,
    )
    with pytest.raises(ClientError) as caught:
        client.upload(tmp_path / "doc.txt", *IDS)
    assert CAPABILITY not in str(caught.value) and "400" in str(caught.value)


def test_a_create_answer_without_an_upload_url_is_a_client_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, _ = fake_client([(200, {}, {"nextExpectedRanges": ["0-9"]})], monkeypatch)
    with pytest.raises(ClientError, match="uploadUrl"):
        client.create_upload_session(*IDS, size=10, content_type="text/plain", name="a.txt")


def test_a_retried_segment_is_one_visible_line_per_retry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "doc.txt").write_bytes(b"0123456789")
    client, transport = fake_client(
        [
            (200, {}, {"uploadUrl": UPLOAD_URL, "nextExpectedRanges": ["0-9"]}),
            (200, {}, {"uploadUrl": UPLOAD_URL, "nextExpectedRanges": ["0-9"]}),
            (503, {"Retry-After": "0"}, envelope("serviceUnavailable", "busy")),
            requests.ConnectionError("reset"),
            (201, {}, {"id": IDS[2]}),
        ],
        monkeypatch,
    )
    caplog.set_level("INFO", logger="uploadsession.client")
    result = client.upload(tmp_path / "doc.txt", *IDS)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retrying")]
    assert result.retries == 2 and len(lines) == 2
    assert lines[0].startswith("retrying (1/8) bytes 0-9 in 0.0 s: 503 serviceUnavailable")
    assert lines[1].startswith("retrying (2/8) bytes 0-9 in 0.0 s:")
    assert all(CAPABILITY not in line for line in lines)
    assert len(transport.sent) == 5
