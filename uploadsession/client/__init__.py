"""A resumable, parallel upload client for the printUploadSession API.

:class:`UploadClient` uploads a document in either protocol — Graph's (createUploadSession,
then ranges PUT to the pre-authenticated uploadUrl; the default) or the legacy one (PUT the
session, POST ``$value`` segments) — resumes from what the server reports missing, and reads
the committed document back. The modules, each named for what it holds:

- ``uploader``  — :class:`UploadClient`, its results, the upload rounds of both protocols
- ``transport`` — HTTP: one pooled session, tokens, secrets redacted, requests' errors mapped
- ``retry``     — the one retry policy (tenacity): what is retried, how long it waits
- ``plan``      — missing ranges and the segments that send them (pure)
- ``progress``  — the :class:`Progress` snapshots an upload reports (pure)
- ``tokens``    — token providers (a static token, azure-identity)
- ``source``    — the file: random-access reads, checksum, a counting request body
- ``errors``    — the exception tree (its docstring) and Graph's envelope → an error

Tokens (and an uploadUrl's capability) are never part of a message, a result or a log line.
"""

from __future__ import annotations

from uploadsession.client.errors import (
    AuthError,
    ClientError,
    ConflictError,
    NotFoundError,
    TransportError,
    redact_jwts,
)
from uploadsession.client.plan import (
    DEFAULT_SEGMENT_SIZE,
    MAX_SEGMENT_SIZE,
    SEGMENT_UNIT,
    Range,
    check_segment_size,
    format_ranges,
    missing_bytes,
    missing_ranges,
    plan_segments,
)
from uploadsession.client.progress import PROGRESS_INTERVAL_SECONDS, Progress, RateMeter
from uploadsession.client.retry import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_CAP_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    MAX_RETRY_AFTER_SECONDS,
    RetryPolicy,
    backoff_delay,
    is_retryable,
    parse_retry_after,
)
from uploadsession.client.tokens import (
    TOKEN_REFRESH_MARGIN_SECONDS,
    AzureCredentialToken,
    StaticToken,
    TokenProvider,
)
from uploadsession.client.uploader import (
    DEFAULT_PARALLEL,
    MAX_PARALLEL,
    MAX_STALLED_ROUNDS,
    PROTOCOLS,
    DownloadResult,
    UploadClient,
    UploadProtocol,
    UploadResult,
    guess_content_type,
)

__all__ = [
    "BACKOFF_BASE_SECONDS",
    "BACKOFF_CAP_SECONDS",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_PARALLEL",
    "DEFAULT_SEGMENT_SIZE",
    "MAX_PARALLEL",
    "MAX_RETRY_AFTER_SECONDS",
    "MAX_SEGMENT_SIZE",
    "MAX_STALLED_ROUNDS",
    "PROGRESS_INTERVAL_SECONDS",
    "PROTOCOLS",
    "SEGMENT_UNIT",
    "TOKEN_REFRESH_MARGIN_SECONDS",
    "AuthError",
    "AzureCredentialToken",
    "ClientError",
    "ConflictError",
    "DownloadResult",
    "NotFoundError",
    "Progress",
    "Range",
    "RateMeter",
    "RetryPolicy",
    "StaticToken",
    "TokenProvider",
    "TransportError",
    "UploadClient",
    "UploadProtocol",
    "UploadResult",
    "backoff_delay",
    "check_segment_size",
    "format_ranges",
    "guess_content_type",
    "is_retryable",
    "missing_bytes",
    "missing_ranges",
    "parse_retry_after",
    "plan_segments",
    "redact_jwts",
]
