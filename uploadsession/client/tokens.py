"""Token providers: a callable that returns the bearer token to send, asked before every
request (so a long upload never sends an expired one). Plain strings become
:class:`StaticToken`; :class:`AzureCredentialToken` asks azure-identity."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from uploadsession.client.errors import AuthError, redact_jwts

TokenProvider = Callable[[], str]

#: A token this close to its expiry is refreshed before use.
TOKEN_REFRESH_MARGIN_SECONDS = 300.0


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
