"""The client's one retry policy (tenacity), used by every request it sends.

What is retried: a :class:`~uploadsession.client.errors.TransportError` (no connection, a
timeout, a broken body) and the transient statuses 408, 429 and 5xx other than 501/505 —
up to ``max_attempts`` attempts per request. The wait before retry ``n`` is the server's
``Retry-After`` when it sends one (up to 5 minutes), else exponential backoff with full
jitter: uniform in ``[0, min(30 s, 0.5 s · 2^(n-1))]``. Every retry is one INFO line,
``retrying (n/8) <what> in X s: <reason>`` (the CLI prints INFO on stderr), so a user sees
why an upload pauses. When the attempts run out the last answer is returned (the caller
turns it into an error) or the last TransportError is raised; any other exception (e.g. a
token provider that failed) is raised at once.

Replaying a request is safe here: the server treats an identical segment as a harmless
repeat, a create as idempotent for the same caller and body, and a DELETE's 404 after a
retried attempt as already done (see ``UploadClient.cancel``).
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

import requests
import tenacity

from uploadsession.client.errors import TransportError

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 8
#: Backoff: the first retry waits up to BASE seconds, doubling up to CAP (full jitter).
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
#: A Retry-After is honoured up to this many seconds.
MAX_RETRY_AFTER_SECONDS = 300.0


def is_retryable(status: int) -> bool:
    """Transient HTTP statuses: 408, 429, and 5xx other than 501/505 (which will not change)."""
    return status in (408, 429) or (500 <= status < 600 and status not in (501, 505))


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


def _retryable_answer(outcome: object) -> bool:
    return isinstance(outcome, requests.Response) and is_retryable(outcome.status_code)


def _wait(state: tenacity.RetryCallState) -> float:
    retry_after = None
    if state.outcome is not None and not state.outcome.failed:
        answer = state.outcome.result()
        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
    # Looked up at call time, so that tests can make the waits zero.
    return backoff_delay(state.attempt_number, retry_after)


def _last_outcome(state: tenacity.RetryCallState) -> requests.Response:
    """Attempts exhausted: the last answer, or the last TransportError raised again."""
    assert state.outcome is not None
    answer: requests.Response = state.outcome.result()
    return answer


class RetryPolicy:
    """Send one request with retries (see the module docstring)."""

    def __init__(
        self,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        *,
        explain: Callable[[requests.Response], str] = lambda r: f"HTTP {r.status_code}",
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self._explain = explain

    def call(
        self,
        attempt: Callable[[], requests.Response],
        *,
        what: str,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[BaseException | None], None] | None = None,
    ) -> requests.Response:
        """Run ``attempt`` until it answers something final, or the attempts run out.

        ``what`` names the request in the retry line (never a URL: an uploadUrl's query is a
        credential). ``sleep`` waits between attempts; one that raises ends the retries with
        that exception (an upload worker stops this way when the upload is over).
        ``on_retry`` is told of each retry, with the TransportError that caused it if any.
        """

        def before_sleep(state: tenacity.RetryCallState) -> None:
            assert state.outcome is not None and state.next_action is not None
            error = state.outcome.exception() if state.outcome.failed else None
            if isinstance(error, TransportError):
                reason = error.message
            else:
                reason = self._explain(state.outcome.result())
            log.info(
                "retrying (%d/%d) %s in %.1f s: %s",
                state.attempt_number,
                self.max_attempts,
                what,
                state.next_action.sleep,
                reason,
            )
            if on_retry is not None:
                on_retry(error)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=_wait,
            retry=tenacity.retry_if_exception_type(TransportError)
            | tenacity.retry_if_result(_retryable_answer),
            before_sleep=before_sleep,
            sleep=sleep,
            retry_error_callback=_last_outcome,
        )
        answer: requests.Response = retrying(attempt)
        return answer
