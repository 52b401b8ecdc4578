"""HTTP for the client: one ``requests.Session`` shared by every thread, the bearer token on
the requests that need it, the retry policy, and the one place where ``requests``
exceptions become the client's error tree.

Secrets: every token the provider returned, and every credential the client was handed in
a URL (an uploadUrl's query), are remembered (the latest few) and removed from every
message this client builds, together with anything JWT-shaped. Messages name a request by
method and ``scheme://host/path`` only, never its query.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from uploadsession.client.errors import (
    AuthError,
    ClientError,
    TransportError,
    error_from,
    redact_jwts,
)
from uploadsession.client.retry import DEFAULT_MAX_ATTEMPTS, RetryPolicy
from uploadsession.client.tokens import StaticToken, TokenProvider


class Transport:
    """Requests to one API (see the module docstring). Thread-safe."""

    def __init__(
        self,
        token: str | TokenProvider,
        *,
        session: requests.Session | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        pool_size: int = 16,
        user_agent: str = "uploadsession-client/0.1",
    ) -> None:
        self._token: TokenProvider = StaticToken(token) if isinstance(token, str) else token
        #: Secrets this client sent or was given (the latest few), never repeated in a message.
        self._secrets: deque[str] = deque(maxlen=16)
        self._secrets_lock = threading.Lock()
        self.timeout = (connect_timeout, read_timeout)
        self.policy = RetryPolicy(max_attempts, explain=lambda r: self.error_from(r).message)
        self.owns_session = session is None
        self.http = session or requests.Session()
        self._pool_size = 0
        self._pool_lock = threading.Lock()
        self._user_agent = user_agent
        if self.owns_session:
            self.ensure_pool(pool_size)

    @property
    def max_attempts(self) -> int:
        return self.policy.max_attempts

    # -- secrets -------------------------------------------------------------------------

    def remember_secret(self, secret: str) -> None:
        if secret:
            with self._secrets_lock:
                if secret not in self._secrets:
                    self._secrets.append(secret)

    def remember_url_secret(self, url: str) -> None:
        """An uploadUrl's query is its capability: remember the query and each value in it."""
        query = urlsplit(url).query
        self.remember_secret(query)
        for pair in query.split("&"):
            self.remember_secret(pair.partition("=")[2])

    def redact(self, text: str) -> str:
        """``text`` with every remembered secret, and anything JWT-shaped, removed."""
        with self._secrets_lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, "<redacted>")
        return redact_jwts(text)

    # -- requests ------------------------------------------------------------------------

    def ensure_pool(self, size: int) -> None:
        with self._pool_lock:
            if size <= self._pool_size:
                return
            # requests' own retries stay off: the policy retries, with fresh bodies.
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=size, max_retries=0)
            self.http.mount("http://", adapter)
            self.http.mount("https://", adapter)
            self._pool_size = size

    def _headers(self, extra: dict[str, str] | None, authorize: bool) -> dict[str, str]:
        headers = {
            "client-request-id": str(uuid.uuid4()),
            "User-Agent": self._user_agent,
            "Accept": "application/json",
        }
        if authorize:
            token = self._token()
            if not token:
                raise AuthError("no token: the token provider returned an empty token")
            self.remember_secret(token)
            headers["Authorization"] = f"Bearer {token}"
        headers.update(extra or {})
        return headers

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        data: Any = None,
        json_body: Any = None,
        authorize: bool = True,
    ) -> requests.Response:
        """One HTTP request; ``requests`` exceptions become :class:`TransportError` here only.
        ``authorize=False`` sends no Authorization header (a pre-authenticated URL)."""
        try:
            return self.http.request(
                method,
                url,
                headers=self._headers(headers, authorize),
                data=data,
                json=json_body,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise TransportError(
                self.redact(f"{method} {where(url)} timed out ({type(exc).__name__})")
            ) from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise TransportError(
                self.redact(f"{method} {where(url)} failed: {connection_reason(exc)}")
            ) from None
        except requests.RequestException as exc:
            raise ClientError(
                self.redact(f"{method} {where(url)} failed: {type(exc).__name__}")
            ) from None

    def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        authorize: bool = True,
        missing_ok_after_retry: bool = False,
        redirect_ok: bool = False,
    ) -> requests.Response:
        """A non-upload request under the retry policy; raises on any non-2xx answer.

        ``missing_ok_after_retry``: a 404 after an attempt whose connection failed is
        returned, not raised (that attempt may have done it: a DELETE). ``redirect_ok``:
        a 302 is an answer, not an error."""
        connection_failed = False

        def noted(error: BaseException | None) -> None:
            nonlocal connection_failed
            connection_failed = connection_failed or error is not None

        response = self.policy.call(
            lambda: self.send(method, url, json_body=json_body, authorize=authorize),
            what=method,
            on_retry=noted,
        )
        if response.status_code < 300 or (redirect_ok and response.status_code == 302):
            return response
        if response.status_code == 404 and missing_ok_after_retry and connection_failed:
            return response
        raise self.error_from(response)

    def error_from(self, response: requests.Response) -> ClientError:
        """Graph's error envelope → the exception tree, without any secret."""
        return error_from(response, self.redact)

    def close(self) -> None:
        if self.owns_session:
            self.http.close()


def where(url: str) -> str:
    """A URL for a message: scheme, host and path — never the query (it may be a credential)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def connection_reason(exc: BaseException) -> str:
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
