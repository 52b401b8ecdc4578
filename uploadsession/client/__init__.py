"""A resumable, parallel upload client for the printUploadSession API.

:class:`UploadClient` creates (or reuses) the upload session of a document, reads its
``missingRanges`` and sends what is missing in segments, several at once, each with
``If-Match: <session id>`` and ``Content-MD5``. It keeps no local state: the server's
``missingRanges`` *is* the state, so running the same upload again after a crash or Ctrl-C
sends only what the server does not have yet.

Segments are cut on a grid of ``segment_size`` counted from byte 0 (a missing range that
starts off the grid gets a short first segment). Two uploaders with the same segment size
therefore send identical segments, which the server accepts as harmless repeats instead of
refusing them as overlaps.

Retries: connection errors, timeouts, 408, 429 and 5xx (but 501/505) are retried up to
``max_attempts`` times per request with exponential backoff and full jitter, or after
``Retry-After`` when the server sends one. Retrying a segment the server did receive is
harmless (an identical segment is a 2xx). A 416 means the server already has some of a
segment's bytes from someone else: the client stops starting new segments, reads the session
again and carries on with what is really missing.

The server cannot tell whether the file changed between two runs of the same upload (only
sizes, type and name must match to reuse a session), so resume only with the same file.

Tokens are never part of a message, a result or a log line: every error text this module
builds is passed through :meth:`UploadClient.redact`.

The exception tree, one place::

    ClientError          status, code, message (Graph's error envelope), request_id
    ├── AuthError        401 or 403, or no token could be obtained
    ├── ConflictError    409 on create: another caller's session, different properties,
    │                    or a document that is already complete
    ├── NotFoundError    404: no session (never created, expired, cancelled, not visible)
    └── TransportError   the server could not be reached (after the retries)

``requests`` exceptions are translated into this tree in one place, :meth:`_send`.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import logging
import mimetypes
import os
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlsplit

import anycrc
import requests
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)

#: Graph's upload sessions want segments in multiples of 320 KiB.
SEGMENT_UNIT = 320 * 1024
#: The server's MAX_SEGMENT_BYTES default.
MAX_SEGMENT_SIZE = 10 * 1024 * 1024
DEFAULT_SEGMENT_SIZE = 16 * SEGMENT_UNIT  # 5 MiB
DEFAULT_PARALLEL = 4
MAX_PARALLEL = 64
DEFAULT_MAX_ATTEMPTS = 8
#: Backoff: the first retry waits up to BASE seconds, doubling up to CAP (full jitter).
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
#: A Retry-After is honoured up to this many seconds.
MAX_RETRY_AFTER_SECONDS = 300.0
#: Rounds of "read the session, send what is missing" that make no progress before giving up.
MAX_STALLED_ROUNDS = 8
#: A token this close to its expiry is refreshed before use.
TOKEN_REFRESH_MARGIN_SECONDS = 300.0
#: Progress callbacks while bytes are on the wire come at most this often.
PROGRESS_INTERVAL_SECONDS = 0.1

Range = tuple[int, int]  # inclusive byte range (start, end)
TokenProvider = Callable[[], str]

_JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*")


# -- errors ----------------------------------------------------------------------------


class ClientError(Exception):
    """A failure the client reports: an HTTP error (Graph's envelope) or no connection."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "requestId": self.request_id,
        }


class AuthError(ClientError):
    """401 or 403: the token is missing, invalid, expired, or lacks a permission."""


class ConflictError(ClientError):
    """409 on create: someone else's session, different properties, or a complete document."""


class NotFoundError(ClientError):
    """404: no session for this document (or one the caller may not see)."""


class TransportError(ClientError):
    """The server could not be reached, or the connection failed, on every attempt."""


_ERROR_KINDS: dict[int, type[ClientError]] = {
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
}


def is_retryable(status: int) -> bool:
    """Transient HTTP statuses: 408, 429, and 5xx other than 501/505 (which will not change)."""
    return status in (408, 429) or (500 <= status < 600 and status not in (501, 505))


def redact_jwts(text: str) -> str:
    """Replace anything shaped like a JWT (``eyJ….….…``) with ``<redacted>``."""
    return _JWT_LIKE.sub("<redacted>", text)


# -- pure parts: ranges, backoff, progress ---------------------------------------------


def check_segment_size(segment_size: int) -> None:
    """Raise ValueError unless ``segment_size`` is a positive multiple of 320 KiB ≤ 10 MiB."""
    if segment_size <= 0 or segment_size % SEGMENT_UNIT or segment_size > MAX_SEGMENT_SIZE:
        raise ValueError(
            f"segment size must be a multiple of 320 KiB ({SEGMENT_UNIT} bytes) and at most "
            f"{MAX_SEGMENT_SIZE} bytes (10 MiB); got {segment_size}"
        )


def missing_ranges(session: dict[str, Any]) -> list[Range]:
    """The session's missing ranges as ints (``missingRanges``, else ``nextExpectedRanges``).

    Graph writes ``start``/``end`` as decimal strings; numbers are accepted too, and an
    open-ended ``"1024-"`` range (OneDrive's style) runs to the end of the document.
    """
    raw = session.get("missingRanges")
    if raw is None:
        raw = session.get("nextExpectedRanges", [])
    size = int(session.get("size", 0))
    ranges: list[Range] = []
    for item in raw:
        if isinstance(item, str):  # "start-end" or "start-"
            start_text, _, end_text = item.partition("-")
            start, end = int(start_text), int(end_text) if end_text else size - 1
        else:
            start = int(item["start"])
            end = int(item["end"]) if item.get("end") not in (None, "") else size - 1
        if end >= start:
            ranges.append((start, end))
    return sorted(ranges)


def missing_bytes(ranges: list[Range]) -> int:
    return sum(end - start + 1 for start, end in ranges)


def plan_segments(missing: list[Range], segment_size: int) -> list[Range]:
    """Split missing ranges into segments of at most ``segment_size`` bytes.

    Cuts fall on multiples of ``segment_size`` counted from byte 0, so a missing range that
    starts or ends off the grid gets a shorter first or last segment, and every uploader
    with the same segment size cuts the document the same way.
    """
    if segment_size <= 0:
        raise ValueError("segment size must be positive")
    segments: list[Range] = []
    for start, end in missing:
        cursor = start
        while cursor <= end:
            boundary = (cursor // segment_size + 1) * segment_size - 1
            last = min(end, boundary)
            segments.append((cursor, last))
            cursor = last + 1
    return segments


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_delay(
    attempt: int,
    retry_after: float | None = None,
    *,
    base: float = BACKOFF_BASE_SECONDS,
    cap: float = BACKOFF_CAP_SECONDS,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = the first retry).

    The server's ``Retry-After`` wins when given (up to 5 minutes); otherwise exponential
    backoff with full jitter: uniform in ``[0, min(cap, base · 2^(attempt-1))]``.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_RETRY_AFTER_SECONDS)
    return float(rand() * min(cap, base * 2 ** max(attempt - 1, 0)))


@dataclass(frozen=True)
class Progress:
    """A snapshot of an upload, handed to the ``progress`` callback."""

    size: int
    #: Bytes the server has acknowledged, including any it had before this run.
    done: int
    #: Bytes written to the network for segments not yet acknowledged.
    in_flight: int
    #: Bytes acknowledged in this run.
    sent: int
    elapsed: float
    #: Recent transfer rate in bytes per second (0.0 until measurable).
    rate: float
    finished: bool = False

    @property
    def position(self) -> int:
        """Where a progress bar should stand: acknowledged plus on-the-wire bytes."""
        return min(self.size, self.done + self.in_flight)

    @property
    def fraction(self) -> float:
        return 1.0 if self.size <= 0 else self.position / self.size

    @property
    def eta(self) -> float | None:
        """Seconds until done at the current rate, or None when the rate is unknown."""
        remaining = self.size - self.position
        if remaining <= 0:
            return 0.0
        if self.rate <= 0:
            return None
        return remaining / self.rate


class RateMeter:
    """Bytes per second over a sliding window of (time, total bytes) samples."""

    def __init__(self, window_seconds: float = 5.0) -> None:
        self.window = window_seconds
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, when: float, total: int) -> None:
        self._samples.append((when, total))
        while len(self._samples) > 2 and when - self._samples[1][0] >= self.window:
            self._samples.popleft()

    @property
    def rate(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return 0.0 if t1 <= t0 else max(0.0, (b1 - b0) / (t1 - t0))


# -- tokens ----------------------------------------------------------------------------


class StaticToken:
    """A token provider for a token given as text."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self) -> str:
        return self._token

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"


class AzureCredentialToken:
    """Tokens for ``scope`` from an azure-identity credential, refreshed before they expire.

    The credential defaults to ``DefaultAzureCredential`` (imported on first use). A cached
    token is reused until it is within 5 minutes of its expiry, so a long upload never sends
    an expired one. Thread-safe.
    """

    def __init__(
        self,
        scope: str,
        credential: Any = None,
        *,
        margin_seconds: float = TOKEN_REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.scope = scope
        self._credential = credential
        self._margin = margin_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_on = 0.0

    def __call__(self) -> str:
        with self._lock:
            if self._token is None or self._expires_on - self._clock() < self._margin:
                self._token, self._expires_on = self._acquire()
            return self._token

    def _acquire(self) -> tuple[str, float]:
        try:
            if self._credential is None:
                from azure.identity import DefaultAzureCredential

                self._credential = DefaultAzureCredential()
            access = self._credential.get_token(self.scope)
        except ImportError as exc:  # pragma: no cover - azure-identity is a dependency
            raise AuthError(f"azure-identity is not installed: {exc}") from None
        except Exception as exc:  # azure.core ClientAuthenticationError and friends
            first_line = redact_jwts(str(exc)).strip().splitlines()[:1]
            raise AuthError(
                f"could not get a token for {self.scope}: {type(exc).__name__}"
                + (f": {first_line[0]}" if first_line else "")
                + " (sign in with `az login`, or configure a managed or workload identity)"
            ) from None
        return str(access.token), float(access.expires_on)

    def __repr__(self) -> str:
        return f"AzureCredentialToken({self.scope!r})"


# -- the client ------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadResult:
    """A committed document read back: its size and SHA-256 (hex)."""

    size: int
    sha256: str


@dataclass(frozen=True)
class UploadResult:
    """What an upload did. ``as_dict`` is the CLI's ``--json`` object."""

    status: str
    session_id: str
    size: int
    content_type: str
    document_name: str
    #: Bytes the server already had when this run started.
    already_present: int
    #: Bytes of segments the server acknowledged in this run.
    bytes_sent: int
    segments_sent: int
    retries: int
    #: 416 answers: the server already had some bytes of a segment; the session was re-read.
    range_conflicts: int
    seconds: float
    session_url: str
    document_url: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "sessionId": self.session_id,
            "size": self.size,
            "contentType": self.content_type,
            "documentName": self.document_name,
            "alreadyPresent": self.already_present,
            "bytesSent": self.bytes_sent,
            "segmentsSent": self.segments_sent,
            "retries": self.retries,
            "rangeConflicts": self.range_conflicts,
            "seconds": round(self.seconds, 3),
            "bytesPerSecond": round(self.bytes_sent / self.seconds) if self.seconds else 0,
            "sessionUrl": self.session_url,
            "documentUrl": self.document_url,
        }


class _Source:
    """Random-access reads of the document: ``os.pread`` on a path, or seek+read under a lock."""

    def __init__(self, fd: int | None, fileobj: IO[bytes] | None, size: int, name: str) -> None:
        self._fd = fd
        self._fileobj = fileobj
        self._lock = threading.Lock()
        self.size = size
        self.name = name

    @classmethod
    @contextmanager
    def open(cls, source: str | os.PathLike[str] | IO[bytes]) -> Iterator[_Source]:
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            try:
                yield cls(fd, None, os.fstat(fd).st_size, path.name)
            finally:
                os.close(fd)
        else:
            size = source.seek(0, os.SEEK_END)
            name = Path(str(getattr(source, "name", "") or "document")).name
            yield cls(None, source, size, name)

    def checksum(self, chunk: int = 8 * 1024 * 1024) -> str:
        """The whole file's CRC-64/NVME in the service's form, ``crc64nvme:<16 hex>``."""
        crc = anycrc.Model("CRC64-NVME")
        value: int | None = None
        for start in range(0, self.size, chunk):
            data = self.read(start, min(chunk, self.size - start))
            value = int(crc.calc(data) if value is None else crc.calc(data, value))
        return f"crc64nvme:{value or 0:016x}"

    def read(self, start: int, length: int) -> bytes:
        if self._fd is not None:
            chunks, offset, left = [], start, length
            while left:
                chunk = os.pread(self._fd, left, offset)
                if not chunk:
                    break
                chunks.append(chunk)
                offset, left = offset + len(chunk), left - len(chunk)
            data = b"".join(chunks)
        else:
            assert self._fileobj is not None
            with self._lock:
                self._fileobj.seek(start)
                data = self._fileobj.read(length)
        if len(data) != length:
            raise ClientError(
                f"the file changed while uploading: {self.name} is shorter than "
                f"the session's {self.size} bytes"
            )
        return data


class _Body:
    """A segment as a request body that reports bytes as the connection reads them."""

    def __init__(self, data: bytes, on_read: Callable[[int], None]) -> None:
        self._view = memoryview(data)
        self._offset = 0
        self._on_read = on_read

    def __len__(self) -> int:
        return len(self._view) - self._offset

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else min(len(self._view), self._offset + size)
        chunk = bytes(self._view[self._offset : end])
        self._offset = end
        if chunk:
            self._on_read(len(chunk))
        return chunk

    @property
    def consumed(self) -> int:
        return self._offset


@dataclass
class _Run:
    """Shared state of one upload call (guarded by ``lock``)."""

    size: int
    progress: Callable[[Progress], None] | None
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    done: int = 0
    already_present: int = 0
    in_flight: int = 0
    wire_bytes: int = 0
    sent: int = 0
    segments: int = 0
    retries: int = 0
    range_conflicts: int = 0
    completed: bool = False
    failure: BaseException | None = None
    meter: RateMeter = field(default_factory=RateMeter)
    last_emit: float = 0.0

    def emit(self, *, force: bool = False, finished: bool = False) -> None:
        """Call the progress callback (serialized), at most every 0.1 s unless forced."""
        if self.progress is None:
            return
        with self.lock:
            now = time.monotonic()
            if not force and now - self.last_emit < PROGRESS_INTERVAL_SECONDS:
                return
            self.last_emit = now
            self.meter.add(now, self.wire_bytes)
            snapshot = Progress(
                self.size,
                self.done,
                self.in_flight,
                self.sent,
                now - self.started,
                self.meter.rate,
                finished,
            )
            self.progress(snapshot)

    def wrote(self, n: int) -> None:
        with self.lock:
            self.in_flight += n
            self.wire_bytes += n
        self.emit()

    def fail(self, error: BaseException) -> None:
        with self.lock:
            if self.failure is None:
                self.failure = error
        self.stop.set()


class UploadClient:
    """A client of one printUploadSession API root, e.g. ``http://localhost:7071/beta``.

    ``token`` is a static token string or a callable returning one (called before every
    request, so it can refresh; see :class:`AzureCredentialToken`). One ``requests.Session``
    with a connection pool of at least ``parallel`` connections serves every thread; an
    instance may be shared by threads. A ``session`` passed in is used as it is (give it a
    pool as large as ``parallel``, and no retries of its own: bodies are not rewound).
    Timeouts are per request: ``connect_timeout`` to connect, ``read_timeout`` between bytes
    of the answer.
    """

    def __init__(
        self,
        base_url: str,
        token: str | TokenProvider,
        *,
        session: requests.Session | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        pool_size: int = 16,
        user_agent: str = "uploadsession-client/0.1",
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.base_url = base_url.rstrip("/")
        self._token: TokenProvider = StaticToken(token) if isinstance(token, str) else token
        #: Tokens this client sent (the latest few), so that no message can repeat one.
        self._seen_tokens: deque[str] = deque(maxlen=8)
        self._seen_lock = threading.Lock()
        self._timeout = (connect_timeout, read_timeout)
        self.max_attempts = max_attempts
        self._owns_session = session is None
        self._http = session or requests.Session()
        self._pool_size = 0
        self._pool_lock = threading.Lock()
        if self._owns_session:
            self._ensure_pool(pool_size)
        self._user_agent = user_agent

    # -- public API ----------------------------------------------------------------------

    def session_url(self, printer: str, job: str, document: str) -> str:
        p, j, d = (quote(str(part), safe="") for part in (printer, job, document))
        return f"{self.base_url}/print/printers/{p}/jobs/{j}/documents/{d}/uploadSession"

    def document_url(self, printer: str, job: str, document: str) -> str:
        return self.session_url(printer, job, document).removesuffix("/uploadSession")

    def status(self, printer: str, job: str, document: str) -> dict[str, Any]:
        """GET the session (raises NotFoundError when there is none)."""
        return self._session_json(self._request("GET", self.session_url(printer, job, document)))

    def cancel(self, printer: str, job: str, document: str) -> None:
        """DELETE the session (204). A 404 after a retried attempt counts as cancelled."""
        self._request(
            "DELETE", self.session_url(printer, job, document), missing_ok_after_retry=True
        )

    def download(
        self, printer: str, job: str, document: str, destination: IO[bytes]
    ) -> DownloadResult:
        """Read the committed document: ``GET {D}/$value`` answers 302 to a short-lived,
        read-only URL, which is fetched without the bearer token. The bytes are checked
        against the length the storage announced and their SHA-256 is returned."""
        url = self.document_url(printer, job, document) + "/$value"
        answer = self._request("GET", url, redirect_ok=True)
        location = answer.headers.get("Location")
        if answer.status_code != 302 or not location:
            raise ClientError(
                self.redact(f"GET {_where(url)} answered {answer.status_code} without a Location")
            )
        digest = hashlib.sha256()
        written = 0
        try:
            # The capability is in the URL: no Authorization header, and no redirects onwards.
            with self._http.get(
                location, stream=True, timeout=self._timeout, allow_redirects=False
            ) as response:
                if response.status_code != 200:
                    raise ClientError(
                        f"the document link answered HTTP {response.status_code} "
                        "(it is valid for a few minutes: run download again)",
                        status=response.status_code,
                    )
                expected = response.headers.get("Content-Length")
                for chunk in response.iter_content(chunk_size=1024 * 1024):
                    destination.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
        except requests.RequestException as exc:
            raise TransportError(
                f"reading the document failed: {_connection_reason(exc)}"
            ) from None
        if expected is not None and int(expected) != written:
            raise ClientError(f"the document is {expected} bytes but {written} arrived")
        return DownloadResult(written, digest.hexdigest())

    def create(
        self,
        printer: str,
        job: str,
        document: str,
        *,
        size: int,
        content_type: str,
        name: str,
        checksum: str | None = None,
    ) -> dict[str, Any]:
        """PUT the session; the same caller with the same properties gets it back (200).
        ``checksum`` (``crc64nvme:<16 hex>``) declares the whole document's bytes: a resume
        for other bytes is then refused instead of mixing two files."""
        url = self.session_url(printer, job, document)
        body: dict[str, Any] = {"size": size, "contentType": content_type, "documentName": name}
        if checksum is not None:
            body["checksum"] = checksum
        try:
            response = self._request("PUT", url, json_body=body)
        except ConflictError as exc:
            raise self._explain_conflict(exc, url, body) from None
        except NotFoundError as exc:  # PUT creates: a 404 means there is no such route
            raise NotFoundError(
                f"{exc.message} (is the base URL the API root with its version segment, "
                "e.g. https://host/beta?)",
                status=exc.status,
                code=exc.code,
                request_id=exc.request_id,
            ) from None
        return self._session_json(response)

    def upload(
        self,
        source: str | os.PathLike[str] | IO[bytes],
        printer: str,
        job: str,
        document: str,
        *,
        content_type: str | None = None,
        name: str | None = None,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        parallel: int = DEFAULT_PARALLEL,
        progress: Callable[[Progress], None] | None = None,
    ) -> UploadResult:
        """Upload ``source`` (a path or a seekable binary file) as the document's bytes.

        Creates or reuses the session, sends every missing range in segments (``parallel`` at
        a time), and returns when the server has the whole document. ``progress`` is called
        with a :class:`Progress` (from worker threads, one call at a time). Raises a
        :class:`ClientError`; on KeyboardInterrupt the segments in flight finish and nothing
        else is started — running the same upload again resumes.
        """
        started = time.monotonic()
        check_segment_size(segment_size)
        if not 1 <= parallel <= MAX_PARALLEL:
            raise ValueError(f"parallel must be between 1 and {MAX_PARALLEL}")
        if self._owns_session:
            self._ensure_pool(parallel)
        url = self.session_url(printer, job, document)
        with _Source.open(source) as src:
            if src.size == 0:
                raise ValueError("an empty document cannot be uploaded (size must be ≥ 1)")
            name = name or src.name
            content_type = content_type or guess_content_type(name)
            session = self.create(
                printer,
                job,
                document,
                size=src.size,
                content_type=content_type,
                name=name,
                checksum=src.checksum(),
            )
            run = _Run(src.size, progress, started)
            missing = missing_ranges(session)
            run.already_present = run.done = src.size - missing_bytes(missing)
            stalled = 0
            while missing and not run.completed:
                run.emit(force=True)
                before = missing_bytes(missing)
                self._send_round(run, src, url, session["id"], missing, segment_size, parallel)
                if run.completed:
                    break
                session = self._session_json(self._request("GET", url))
                missing = missing_ranges(session)
                with run.lock:
                    run.done = src.size - missing_bytes(missing)
                stalled = 0 if missing_bytes(missing) < before else stalled + 1
                if stalled >= MAX_STALLED_ROUNDS:
                    raise ClientError(
                        f"no progress after {stalled} rounds; missing ranges: "
                        f"{format_ranges(missing)}"
                    )
            with run.lock:
                run.done, run.in_flight = src.size, 0
            run.emit(force=True, finished=True)
            return UploadResult(
                status="completed",
                session_id=str(session["id"]),
                size=src.size,
                content_type=content_type,
                document_name=name,
                already_present=run.already_present,
                bytes_sent=run.sent,
                segments_sent=run.segments,
                retries=run.retries,
                range_conflicts=run.range_conflicts,
                seconds=time.monotonic() - run.started,
                session_url=url,
                document_url=self.document_url(printer, job, document),
            )

    def redact(self, text: str) -> str:
        """``text`` with every token this client has used, and anything JWT-shaped, removed."""
        with self._seen_lock:
            seen = list(self._seen_tokens)
        for token in seen:
            if token:
                text = text.replace(token, "<redacted>")
        return redact_jwts(text)

    def close(self) -> None:
        if self._owns_session:
            self._http.close()

    def __enter__(self) -> UploadClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the upload rounds ---------------------------------------------------------------

    def _send_round(
        self,
        run: _Run,
        src: _Source,
        url: str,
        session_id: str,
        missing: list[Range],
        segment_size: int,
        parallel: int,
    ) -> None:
        """Send every planned segment; return early on completion or a 416 (re-read)."""
        run.stop.clear()
        segments = plan_segments(missing, segment_size)
        pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="upload")
        try:
            futures = [
                pool.submit(self._send_segment, run, src, url, session_id, seg) for seg in segments
            ]
            wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:  # a worker's own bug, should one ever escape it
                if future.done() and not future.cancelled() and future.exception():
                    run.fail(future.exception())  # type: ignore[arg-type]
        except BaseException:
            run.stop.set()  # Ctrl-C: let the segments in flight finish, start nothing new
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True, cancel_futures=True)
        if run.failure is not None:
            raise run.failure

    def _send_segment(
        self, run: _Run, src: _Source, url: str, session_id: str, segment: Range
    ) -> None:
        if run.stop.is_set():
            return
        start, end = segment
        try:
            data = src.read(start, end - start + 1)
        except Exception as exc:
            run.fail(exc)
            return
        headers = {
            "If-Match": session_id,
            "Content-Type": "application/octet-stream",
            "Content-Range": f"bytes {start}-{end}/{src.size}",
            "Content-MD5": base64.b64encode(
                hashlib.md5(data, usedforsecurity=False).digest()
            ).decode(),
        }
        attempt = 0
        while True:
            attempt += 1
            body = _Body(data, run.wrote)
            outcome: requests.Response | ClientError
            try:
                outcome = self._send("POST", url + "/$value", headers=headers, data=body)
            except TransportError as exc:
                outcome = exc
            except Exception as exc:  # e.g. the token provider failed
                run.fail(exc)
                return
            finally:
                with run.lock:
                    run.in_flight -= body.consumed
            if isinstance(outcome, requests.Response):
                status = outcome.status_code
                if status in (200, 201, 202):
                    with run.lock:
                        run.sent += len(data)
                        run.done += len(data)
                        run.segments += 1
                        if status == 201:
                            run.completed = True
                    if status == 201:
                        run.stop.set()
                    run.emit(force=True)
                    return
                if status == 416:  # some of these bytes are there already: re-read, re-plan
                    log.debug("416 for bytes %d-%d: re-reading the session", start, end)
                    with run.lock:
                        run.range_conflicts += 1
                    run.stop.set()
                    return
                if not is_retryable(status):
                    run.fail(self._error_from(outcome))
                    return
                retry_after = parse_retry_after(outcome.headers.get("Retry-After"))
                last_error: ClientError = self._error_from(outcome)
            else:
                retry_after, last_error = None, outcome
            if attempt >= self.max_attempts:
                run.fail(
                    ClientError(
                        f"segment {start}-{end} failed {attempt} times; last: {last_error.message}",
                        status=last_error.status,
                        code=last_error.code,
                        request_id=last_error.request_id,
                    )
                )
                return
            with run.lock:
                run.retries += 1
            delay = backoff_delay(attempt, retry_after)
            log.info(
                "retrying (%d/%d) bytes %d-%d in %.1f s: %s",
                attempt,
                self.max_attempts,
                start,
                end,
                delay,
                last_error.message,
            )
            if run.stop.wait(delay):
                return  # another worker finished, failed, or asked for a re-read

    # -- HTTP ----------------------------------------------------------------------------

    def _ensure_pool(self, size: int) -> None:
        with self._pool_lock:
            if size <= self._pool_size:
                return
            # requests' own retries stay off: this client retries, with fresh bodies.
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=size, max_retries=0)
            self._http.mount("http://", adapter)
            self._http.mount("https://", adapter)
            self._pool_size = size

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        token = self._token()
        if not token:
            raise AuthError("no token: the token provider returned an empty token")
        with self._seen_lock:
            if token not in self._seen_tokens:
                self._seen_tokens.append(token)
        headers = {
            "Authorization": f"Bearer {token}",
            "client-request-id": str(uuid.uuid4()),
            "User-Agent": self._user_agent,
            "Accept": "application/json",
        }
        headers.update(extra or {})
        return headers

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        data: Any = None,
        json_body: Any = None,
    ) -> requests.Response:
        """One HTTP request; ``requests`` exceptions become :class:`TransportError` here only."""
        try:
            return self._http.request(
                method,
                url,
                headers=self._headers(headers),
                data=data,
                json=json_body,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise TransportError(
                self.redact(f"{method} {_where(url)} timed out ({type(exc).__name__})")
            ) from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise TransportError(
                self.redact(f"{method} {_where(url)} failed: {_connection_reason(exc)}")
            ) from None
        except requests.RequestException as exc:
            raise ClientError(
                self.redact(f"{method} {_where(url)} failed: {type(exc).__name__}")
            ) from None

    def _request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        missing_ok_after_retry: bool = False,
        redirect_ok: bool = False,
    ) -> requests.Response:
        """A non-upload request with the same retry policy; raises on any non-2xx."""
        attempt = 0
        retried_transport = False
        while True:
            attempt += 1
            try:
                response = self._send(method, url, json_body=json_body)
            except TransportError as exc:
                if attempt >= self.max_attempts:
                    raise
                retried_transport = True
                delay = backoff_delay(attempt)
                log.info(
                    "retrying (%d/%d) %s in %.1f s: %s",
                    attempt,
                    self.max_attempts,
                    method,
                    delay,
                    exc.message,
                )
                time.sleep(delay)
                continue
            if response.status_code < 300 or (redirect_ok and response.status_code == 302):
                return response
            if response.status_code == 404 and missing_ok_after_retry and retried_transport:
                return response
            if is_retryable(response.status_code) and attempt < self.max_attempts:
                delay = backoff_delay(
                    attempt, parse_retry_after(response.headers.get("Retry-After"))
                )
                log.info(
                    "retrying (%d/%d) %s in %.1f s: HTTP %d",
                    attempt,
                    self.max_attempts,
                    method,
                    delay,
                    response.status_code,
                )
                time.sleep(delay)
                continue
            raise self._error_from(response)

    def _session_json(self, response: requests.Response) -> dict[str, Any]:
        """The session from a 2xx answer, checked enough to plan an upload from it."""
        try:
            session = response.json()
            if not isinstance(session, dict) or not isinstance(session.get("id"), str):
                raise ValueError("no session id")
            missing_ranges(session)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ClientError(
                self.redact(
                    f"{response.request.method} {_where(response.url)} answered "
                    f"{response.status_code} without a session ({type(exc).__name__}); "
                    "is the base URL right?"
                )
            ) from None
        return session

    def _error_from(self, response: requests.Response) -> ClientError:
        """Graph's error envelope → the exception tree."""
        code: str | None = None
        message = ""
        try:
            error = response.json().get("error", {})
            code = error.get("code")
            message = str(error.get("message", ""))
        except (ValueError, AttributeError):
            pass
        status = response.status_code
        message = self.redact(message or f"HTTP {status} {response.reason or ''}".strip())
        request_id = response.headers.get("request-id")
        kind = _ERROR_KINDS.get(status, ClientError)
        return kind(
            f"{status} {code or 'error'}: {message}",
            status=status,
            code=code,
            request_id=request_id,
        )

    def _explain_conflict(
        self, exc: ConflictError, url: str, wanted: dict[str, Any]
    ) -> ConflictError:
        """Say why a PUT conflicted, when the caller can see the session."""
        why = (
            "a session for this document already exists with another creator or different "
            "properties, or the document is already complete"
        )
        try:
            current = self._session_json(self._request("GET", url))
        except ClientError:
            current = None
        if current is not None:
            same = all(current.get(k) == v for k, v in wanted.items())
            if same and not missing_ranges(current):
                why = "the document is already complete"
            elif not same and all(
                current.get(k) == v for k, v in wanted.items() if k != "checksum"
            ):
                why = (
                    "the document is already complete with other bytes (its checksum is "
                    f"{current.get('checksum')}, this file's is {wanted.get('checksum')})"
                    if not missing_ranges(current)
                    else "the session for this document was created for different bytes (its "
                    f"checksum is {current.get('checksum') or 'not declared'}, this file's is "
                    f"{wanted.get('checksum')}); resuming would mix two files: "
                    "`uploadsession cancel` starts over"
                )
            elif not same:
                have = {k: current.get(k) for k in wanted}
                why = (
                    f"a session for this document exists with different properties {have}; "
                    "cancel it first (uploadsession cancel) or use another document id"
                )
        return ConflictError(
            f"409 conflict: {why}", status=409, code=exc.code, request_id=exc.request_id
        )


def guess_content_type(name: str) -> str:
    """The media type for a file name (``mimetypes``), else application/octet-stream."""
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _connection_reason(exc: BaseException) -> str:
    """A short reason from a requests/urllib3 connection error (the innermost cause)."""
    inner: BaseException = exc
    seen = 0
    while seen < 8:
        seen += 1
        nested = getattr(inner, "reason", None) or (inner.args[0] if inner.args else None)
        if isinstance(nested, BaseException) and nested is not inner:
            inner = nested
        else:
            break
    text = str(inner).split(": ", 1)[-1] if isinstance(inner, BaseException) else ""
    return f"{type(inner).__name__}" + (f" ({text})" if text and len(text) < 200 else "")


def format_ranges(ranges: list[Range]) -> str:
    """``0-99, 200-299`` (inclusive), or ``none``."""
    return ", ".join(f"{s}-{e}" for s, e in ranges) or "none"
