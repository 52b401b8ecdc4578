"""UploadClient: a resumable, parallel upload of one document, in either protocol.

**Graph protocol** (the default, what the official Graph SDKs speak): ``POST
{D}/createUploadSession`` with ``{"properties": {documentName, contentType, size,
checksum}}`` answers a pre-authenticated ``uploadUrl``; ``GET uploadUrl`` says what is
missing (``nextExpectedRanges``); segments are ``PUT`` to the uploadUrl with
``Content-Range`` (and ``Content-MD5``), **without** an Authorization header — the URL's
capability token is the credential, so it is treated as a secret: never logged, printed or
put in a result. The completing PUT answers 201 with the printDocument.

**Legacy protocol**: ``PUT {S}`` creates the session, ``GET {S}`` reads its
``missingRanges``, segments are ``POST {S}/$value`` with ``If-Match: <session id>`` and
``Content-MD5``; the completing POST answers 201.

Either way the client keeps no local state: the server's missing ranges *are* the state, so
running the same upload again after a crash or Ctrl-C sends only what the server does not
have yet (the same creator with the same properties gets the same session back — and, in
the Graph protocol, the same uploadUrl). Segments are cut on a grid (``plan.py``), several
in flight at once, each under the retry policy (``retry.py``). A 416 means the server
already has some of a segment's bytes from someone else: the client stops starting new
segments, reads what is missing again and carries on.

The create declares the whole file's CRC-64/NVME (``checksum``), so resuming a session
that was started for other bytes is refused (409) instead of mixing two files.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import mimetypes
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import IO, Any, Literal
from urllib.parse import quote, urlsplit

import requests

from uploadsession.client.errors import ClientError, ConflictError, NotFoundError, TransportError
from uploadsession.client.plan import (
    DEFAULT_SEGMENT_SIZE,
    Range,
    check_segment_size,
    format_ranges,
    missing_bytes,
    missing_ranges,
    plan_segments,
)
from uploadsession.client.progress import PROGRESS_INTERVAL_SECONDS, Progress, RateMeter
from uploadsession.client.retry import DEFAULT_MAX_ATTEMPTS, is_retryable
from uploadsession.client.source import CountingBody, Source
from uploadsession.client.tokens import TokenProvider
from uploadsession.client.transport import Transport, connection_reason, where

log = logging.getLogger(__name__)

DEFAULT_PARALLEL = 4
MAX_PARALLEL = 64
#: Rounds of "read what is missing, send it" that make no progress before giving up.
MAX_STALLED_ROUNDS = 8

UploadProtocol = Literal["graph", "legacy"]
PROTOCOLS: tuple[UploadProtocol, ...] = ("graph", "legacy")


@dataclass(frozen=True)
class DownloadResult:
    """A committed document read back: its size and SHA-256 (hex)."""

    size: int
    sha256: str


@dataclass(frozen=True)
class UploadResult:
    """What an upload did. ``as_dict`` is the CLI's ``--json`` object."""

    status: str
    #: The session's id (legacy protocol); None with the Graph protocol, whose uploadSession
    #: has none.
    session_id: str | None
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
    #: ``{S}`` (readable with a bearer token whichever protocol created it) — never the
    #: uploadUrl, which is a credential.
    session_url: str
    document_url: str
    protocol: UploadProtocol = "graph"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "protocol": self.protocol,
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


@dataclass(frozen=True)
class _SegmentRequest:
    method: str
    url: str
    headers: dict[str, str]
    authorize: bool


class _LegacyTarget:
    """Where a legacy upload's segments go: ``POST {S}/$value`` with ``If-Match``."""

    protocol: UploadProtocol = "legacy"

    def __init__(self, transport: Transport, url: str, session: dict[str, Any]) -> None:
        self._transport = transport
        self._url = url
        self.session_id: str | None = str(session["id"])
        self.missing = missing_ranges(session)

    def reread(self) -> list[Range]:
        self.missing = missing_ranges(
            session_json(self._transport, self._transport.request("GET", self._url))
        )
        return self.missing

    def segment(self, start: int, end: int, size: int, md5: str) -> _SegmentRequest:
        assert self.session_id is not None
        headers = {
            "If-Match": self.session_id,
            "Content-Type": "application/octet-stream",
            "Content-Range": f"bytes {start}-{end}/{size}",
            "Content-MD5": md5,
        }
        return _SegmentRequest("POST", self._url + "/$value", headers, True)


class _GraphTarget:
    """Where a Graph upload's segments go: ``PUT uploadUrl``, no bearer token."""

    protocol: UploadProtocol = "graph"

    def __init__(self, transport: Transport, upload_url: str, size: int) -> None:
        self._transport = transport
        self._upload_url = upload_url
        self._size = size
        self.session_id: str | None = None
        self.missing: list[Range] = []

    def reread(self) -> list[Range]:
        response = self._transport.request("GET", self._upload_url, authorize=False)
        self.missing = missing_ranges(
            upload_session_json(self._transport, response), size=self._size
        )
        return self.missing

    def segment(self, start: int, end: int, size: int, md5: str) -> _SegmentRequest:
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"bytes {start}-{end}/{size}",
            "Content-MD5": md5,
        }
        return _SegmentRequest("PUT", self._upload_url, headers, False)


class _Stopped(Exception):
    """A worker's wait ended because the round is over (done, failed, or a re-read)."""


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

    def pause(self, seconds: float) -> None:
        """Wait before a retry; end the retries when the round is over meanwhile."""
        if self.stop.wait(seconds):
            raise _Stopped

    def retried(self, _error: BaseException | None) -> None:
        with self.lock:
            self.retries += 1


class UploadClient:
    """A client of one printUploadSession API root, e.g. ``http://localhost:7071/v1.0``.

    ``token`` is a static token string or a callable returning one (called before every
    request that carries it, so it can refresh; see :class:`AzureCredentialToken`). One
    ``requests.Session`` with a connection pool of at least ``parallel`` connections serves
    every thread; an instance may be shared by threads. A ``session`` passed in is used as it
    is (give it a pool as large as ``parallel``, and no retries of its own: bodies are not
    rewound). Timeouts are per request: ``connect_timeout`` to connect, ``read_timeout``
    between bytes of the answer.
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
        self.base_url = base_url.rstrip("/")
        self._transport = Transport(
            token,
            session=session,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_attempts=max_attempts,
            pool_size=pool_size,
            user_agent=user_agent,
        )

    @property
    def max_attempts(self) -> int:
        return self._transport.max_attempts

    # -- addresses -----------------------------------------------------------------------

    def document_url(self, printer: str, job: str, document: str) -> str:
        p, j, d = (quote(str(part), safe="") for part in (printer, job, document))
        return f"{self.base_url}/print/printers/{p}/jobs/{j}/documents/{d}"

    def session_url(self, printer: str, job: str, document: str) -> str:
        return self.document_url(printer, job, document) + "/uploadSession"

    # -- status, cancel, download --------------------------------------------------------

    def status(self, printer: str, job: str, document: str) -> dict[str, Any]:
        """GET the session — whichever protocol created it (raises NotFoundError when there
        is none)."""
        url = self.session_url(printer, job, document)
        return session_json(self._transport, self._transport.request("GET", url))

    def cancel(self, printer: str, job: str, document: str) -> None:
        """DELETE the session (204), whichever protocol created it — the same cancel as
        DELETE uploadUrl. A 404 after a retried attempt counts as cancelled."""
        self._transport.request(
            "DELETE", self.session_url(printer, job, document), missing_ok_after_retry=True
        )

    def cancel_upload_url(self, upload_url: str) -> None:
        """DELETE an uploadUrl (204), without a bearer token; a 404 after a retried attempt
        counts as cancelled."""
        self._transport.remember_url_secret(upload_url)
        self._transport.request("DELETE", upload_url, authorize=False, missing_ok_after_retry=True)

    def download(
        self, printer: str, job: str, document: str, destination: IO[bytes]
    ) -> DownloadResult:
        """Read the committed document: ``GET {D}/$value`` answers 302 to a short-lived,
        read-only URL, which is fetched without the bearer token. The bytes are checked
        against the length the storage announced and their SHA-256 is returned."""
        url = self.document_url(printer, job, document) + "/$value"
        answer = self._transport.request("GET", url, redirect_ok=True)
        location = answer.headers.get("Location")
        if answer.status_code != 302 or not location:
            raise ClientError(
                self.redact(f"GET {where(url)} answered {answer.status_code} without a Location")
            )
        self._transport.remember_url_secret(location)  # a SAS: a credential too
        digest = hashlib.sha256()
        written = 0
        try:
            # The capability is in the URL: no Authorization header, and no redirects onwards.
            with self._transport.http.get(
                location, stream=True, timeout=self._transport.timeout, allow_redirects=False
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
            raise TransportError(f"reading the document failed: {connection_reason(exc)}") from None
        if expected is not None and int(expected) != written:
            raise ClientError(f"the document is {expected} bytes but {written} arrived")
        return DownloadResult(written, digest.hexdigest())

    # -- create ----------------------------------------------------------------------------

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
        """Legacy: PUT the session; the same caller with the same properties gets it back
        (200). ``checksum`` (``crc64nvme:<16 hex>``) declares the whole document's bytes: a
        resume for other bytes is then refused instead of mixing two files."""
        url = self.session_url(printer, job, document)
        body = _properties(size, content_type, name, checksum)
        response = self._create_request("PUT", url, body, printer, job, document)
        return session_json(self._transport, response)

    def create_upload_session(
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
        """Graph: ``POST {D}/createUploadSession``; Graph's uploadSession JSON
        (``uploadUrl``, ``expirationDateTime``, ``nextExpectedRanges``). The same caller with
        the same properties gets the same session and the same uploadUrl. The uploadUrl is a
        credential: keep it out of logs and output."""
        url = self.document_url(printer, job, document) + "/createUploadSession"
        properties = _properties(size, content_type, name, checksum)
        response = self._create_request(
            "POST", url, {"properties": properties}, printer, job, document, wanted=properties
        )
        answer = upload_session_json(self._transport, response)
        upload_url = answer.get("uploadUrl")
        if not isinstance(upload_url, str) or urlsplit(upload_url).scheme not in (
            "http",
            "https",
        ):
            raise ClientError(
                self.redact(
                    f"POST {where(url)} answered {response.status_code} without an absolute "
                    "uploadUrl; is the base URL right?"
                )
            )
        return answer

    def _create_request(
        self,
        method: str,
        url: str,
        body: dict[str, Any],
        printer: str,
        job: str,
        document: str,
        *,
        wanted: dict[str, Any] | None = None,
    ) -> requests.Response:
        try:
            response = self._transport.request(method, url, json_body=body)
        except ConflictError as exc:
            session_url = self.session_url(printer, job, document)
            raise self._explain_conflict(exc, session_url, wanted or body) from None
        except NotFoundError as exc:  # a create's 404 means there is no such route
            raise NotFoundError(
                f"{exc.message} (is the base URL the API root with its version segment, "
                "e.g. https://host/v1.0?)",
                status=exc.status,
                code=exc.code,
                request_id=exc.request_id,
            ) from None
        if method == "POST":
            upload_url = _json_field(response, "uploadUrl")
            if upload_url:
                self._transport.remember_url_secret(upload_url)
        return response

    # -- upload ----------------------------------------------------------------------------

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
        protocol: UploadProtocol = "graph",
    ) -> UploadResult:
        """Upload ``source`` (a path or a seekable binary file) as the document's bytes.

        Creates or reuses the session (``protocol`` "graph": createUploadSession and the
        uploadUrl; "legacy": PUT {S} and POST $value), sends every missing range in segments
        (``parallel`` at a time), and returns when the server has the whole document.
        ``progress`` is called with a :class:`Progress` (from worker threads, one call at a
        time). Raises a :class:`ClientError`; on KeyboardInterrupt the segments in flight
        finish and nothing else is started — running the same upload again resumes.
        """
        started = time.monotonic()
        check_segment_size(segment_size)
        if not 1 <= parallel <= MAX_PARALLEL:
            raise ValueError(f"parallel must be between 1 and {MAX_PARALLEL}")
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}")
        if self._transport.owns_session:
            self._transport.ensure_pool(parallel)
        with Source.open(source) as src:
            if src.size == 0:
                raise ValueError("an empty document cannot be uploaded (size must be ≥ 1)")
            name = name or src.name
            content_type = content_type or guess_content_type(name)
            checksum = src.checksum()
            target: _LegacyTarget | _GraphTarget
            if protocol == "legacy":
                session = self.create(
                    printer,
                    job,
                    document,
                    size=src.size,
                    content_type=content_type,
                    name=name,
                    checksum=checksum,
                )
                target = _LegacyTarget(
                    self._transport, self.session_url(printer, job, document), session
                )
            else:
                answer = self.create_upload_session(
                    printer,
                    job,
                    document,
                    size=src.size,
                    content_type=content_type,
                    name=name,
                    checksum=checksum,
                )
                target = _GraphTarget(self._transport, str(answer["uploadUrl"]), src.size)
                target.reread()  # what the session really misses (a resume)
            run = _Run(src.size, progress, started)
            missing = target.missing
            run.already_present = run.done = src.size - missing_bytes(missing)
            stalled = 0
            while missing and not run.completed:
                run.emit(force=True)
                before = missing_bytes(missing)
                self._send_round(run, src, target, missing, segment_size, parallel)
                if run.completed:
                    break
                missing = target.reread()
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
                session_id=target.session_id,
                size=src.size,
                content_type=content_type,
                document_name=name,
                already_present=run.already_present,
                bytes_sent=run.sent,
                segments_sent=run.segments,
                retries=run.retries,
                range_conflicts=run.range_conflicts,
                seconds=time.monotonic() - run.started,
                session_url=self.session_url(printer, job, document),
                document_url=self.document_url(printer, job, document),
                protocol=protocol,
            )

    def redact(self, text: str) -> str:
        """``text`` with every secret this client has used or been given, and anything
        JWT-shaped, removed."""
        return self._transport.redact(text)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> UploadClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the upload rounds ---------------------------------------------------------------

    def _send_round(
        self,
        run: _Run,
        src: Source,
        target: _LegacyTarget | _GraphTarget,
        missing: list[Range],
        segment_size: int,
        parallel: int,
    ) -> None:
        """Send every planned segment; return early on completion or a 416 (re-read)."""
        run.stop.clear()
        segments = plan_segments(missing, segment_size)
        pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="upload")
        try:
            futures = [pool.submit(self._send_segment, run, src, target, seg) for seg in segments]
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
        self, run: _Run, src: Source, target: _LegacyTarget | _GraphTarget, segment: Range
    ) -> None:
        if run.stop.is_set():
            return
        start, end = segment
        try:
            data = src.read(start, end - start + 1)
        except Exception as exc:
            run.fail(exc)
            return
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        request = target.segment(start, end, src.size, md5)

        def attempt() -> requests.Response:
            body = CountingBody(data, run.wrote)
            try:
                return self._transport.send(
                    request.method,
                    request.url,
                    headers=request.headers,
                    data=body,
                    authorize=request.authorize,
                )
            finally:
                with run.lock:
                    run.in_flight -= body.consumed

        try:
            response = self._transport.policy.call(
                attempt, what=f"bytes {start}-{end}", sleep=run.pause, on_retry=run.retried
            )
        except _Stopped:
            return  # another worker finished, failed, or asked for a re-read
        except TransportError as exc:
            run.fail(self._gave_up(start, end, exc))
            return
        except Exception as exc:  # e.g. the token provider failed
            run.fail(exc)
            return
        status = response.status_code
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
            log.debug("416 for bytes %d-%d: re-reading what is missing", start, end)
            with run.lock:
                run.range_conflicts += 1
            run.stop.set()
            return
        error = self._transport.error_from(response)
        run.fail(self._gave_up(start, end, error) if is_retryable(status) else error)

    def _gave_up(self, start: int, end: int, last: ClientError) -> ClientError:
        return ClientError(
            f"segment {start}-{end} failed {self.max_attempts} times; last: {last.message}",
            status=last.status,
            code=last.code,
            request_id=last.request_id,
        )

    def _explain_conflict(
        self, exc: ConflictError, url: str, wanted: dict[str, Any]
    ) -> ConflictError:
        """Say why a create conflicted, when the caller can see the session."""
        why = (
            "a session for this document already exists with another creator or different "
            "properties, or the document is already complete"
        )
        try:
            current = session_json(self._transport, self._transport.request("GET", url))
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


def _properties(size: int, content_type: str, name: str, checksum: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"size": size, "contentType": content_type, "documentName": name}
    if checksum is not None:
        body["checksum"] = checksum
    return body


def _json_field(response: requests.Response, name: str) -> str | None:
    try:
        value = response.json().get(name)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def session_json(transport: Transport, response: requests.Response) -> dict[str, Any]:
    """The session from a 2xx answer, checked enough to plan an upload from it."""
    try:
        session = response.json()
        if not isinstance(session, dict) or not isinstance(session.get("id"), str):
            raise ValueError("no session id")
        missing_ranges(session)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ClientError(
            transport.redact(
                f"{response.request.method} {where(response.url)} answered "
                f"{response.status_code} without a session ({type(exc).__name__}); "
                "is the base URL right?"
            )
        ) from None
    return session


def upload_session_json(transport: Transport, response: requests.Response) -> dict[str, Any]:
    """Graph's uploadSession from a 2xx answer, with ``nextExpectedRanges`` readable."""
    try:
        answer = response.json()
        if not isinstance(answer, dict) or not isinstance(answer.get("nextExpectedRanges"), list):
            raise ValueError("no nextExpectedRanges")
        missing_ranges(answer, size=1)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ClientError(
            transport.redact(
                f"{response.request.method} {where(response.url)} answered "
                f"{response.status_code} without an uploadSession ({type(exc).__name__}); "
                "is the base URL right?"
            )
        ) from None
    return answer


def guess_content_type(name: str) -> str:
    """The media type for a file name (``mimetypes``), else application/octet-stream."""
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"
