"""Signing keys from a JWKS document, fetched lazily and cached.

Rules (DESIGN §3):

- The first ``get_key`` fetches. Keys are kept for ``max_age_seconds``; the next call after that
  refreshes on the request path.
- A failed refresh keeps the last-known-good keys and is not retried before
  ``unknown_kid_cooldown_seconds`` have passed (with no keys at all, after a few seconds), so an
  unreachable JWKS costs one fetch per back-off period, not one per request.
- An unknown ``kid`` triggers a refresh at most once per ``unknown_kid_cooldown_seconds``: a flood
  of tokens with random ``kid`` values cannot turn into a flood of fetches. A ``kid`` still
  unknown afterwards (or with the refresh rate-limited) is the token's problem:
  :class:`~uploadsession.errors.InvalidToken`.
- No usable key at all and the JWKS unreachable or unparseable is the service's problem:
  :class:`~uploadsession.errors.ServiceUnavailable` (503 + ``Retry-After``), not a 401.
- Only RSA keys meant for signatures (``use`` "sig" or absent; ``alg`` "RS256" or absent) of at
  least 2048 bits are taken; other and unparseable entries are skipped. A document without any
  usable key counts as a failed fetch, so a broken JWKS never wipes the last-known-good keys.
- Thread-safe: one fetch at a time. While a refresh of stale keys is under way, other threads
  keep using the cached keys instead of waiting for it.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from uploadsession.errors import InvalidToken, ServiceUnavailable

logger = logging.getLogger(__name__)

MAX_JWKS_BYTES = 1024 * 1024
MIN_RSA_KEY_BITS = 2048
# With no keys at all every request fails, so retry sooner than with last-known-good keys.
EMPTY_CACHE_RETRY_SECONDS = 5.0
_SCHEMES = ("https", "http", "file")


class JwksUnavailable(Exception):
    """The JWKS could not be fetched or held no usable key (internal to this module)."""


class JwksCache:
    """Keys from a JWKS URI (https://, http://, file://), cached; thread-safe."""

    def __init__(
        self,
        uri: str,
        *,
        max_age_seconds: float = 3600,
        unknown_kid_cooldown_seconds: float = 300,
        timeout_seconds: float = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if urlparse(uri).scheme not in _SCHEMES:
            raise ValueError(f"JWKS URI must be https://, http:// or file://, got {uri!r}")
        self._uri = uri
        self._max_age = max_age_seconds
        self._cooldown = unknown_kid_cooldown_seconds
        self._timeout = timeout_seconds
        self._clock = clock
        # Replaced as a whole, never mutated: readers need no lock.
        self._keys: dict[str, Any] | None = None
        self._stale_at = -math.inf
        self._retry_at = -math.inf  # no fetch attempt before this (back-off after a failure)
        self._unknown_kid_refresh_at = -math.inf
        self._completed_fetches = 0  # counted after the outcome is stored; see _refresh
        self._fetch_lock = threading.Lock()
        self._gate_lock = threading.Lock()

    def get_key(self, kid: str) -> Any:
        """The public key for ``kid``; InvalidToken if unknown, ServiceUnavailable if no keys."""
        now = self._clock()
        seen = self._completed_fetches  # read before the keys: see _refresh
        keys = self._keys
        refreshed = False
        if keys is None or now >= self._stale_at:
            keys, refreshed = self._refresh(seen, wait=keys is None)
        key = keys.get(kid)
        if key is not None:
            return key
        if not refreshed and self._may_refresh_for_unknown_kid(now):
            keys, refreshed = self._refresh(seen, wait=True)
            key = keys.get(kid)
            if key is not None:
                return key
        raise InvalidToken("The token's signing key (kid) is not in the JWKS.")

    def _may_refresh_for_unknown_kid(self, now: float) -> bool:
        with self._gate_lock:
            if now < self._unknown_kid_refresh_at:
                return False
            self._unknown_kid_refresh_at = now + self._cooldown
            return True

    def _refresh(self, seen: int, *, wait: bool) -> tuple[dict[str, Any], bool]:
        """Fetch unless backing off; return (keys, whether this call fetched them).

        ``seen`` is the fetch count the caller read before it looked at the keys: if a fetch
        has completed since, its outcome (new keys, or a failure and its back-off) is what
        the caller needed, so nothing is fetched again. The count is raised only after the
        outcome is stored, so a caller who saw the new count also sees the new keys.

        ``wait`` False: if another thread is fetching, return the cached keys at once.
        """
        if not self._fetch_lock.acquire(blocking=wait, timeout=self._timeout + 5 if wait else -1):
            return self._cached_or_unavailable(), False
        try:
            now = self._clock()
            if self._completed_fetches != seen or now < self._retry_at:
                # Another thread fetched while we waited, or a recent failure says back off.
                return self._cached_or_unavailable(), False
            try:
                keys = self._fetch()
            except JwksUnavailable as error:
                backoff = (
                    self._cooldown if self._keys else min(self._cooldown, EMPTY_CACHE_RETRY_SECONDS)
                )
                self._retry_at = now + backoff
                self._completed_fetches += 1
                logger.warning(
                    "JWKS refresh from %s failed (%s); %s; next attempt in %.0f s",
                    self._uri,
                    error,
                    "keeping last-known-good keys" if self._keys else "no keys cached",
                    backoff,
                )
                return self._cached_or_unavailable(), False
            self._keys = keys
            self._stale_at = now + self._max_age
            self._retry_at = -math.inf
            self._completed_fetches += 1
            logger.info("JWKS loaded from %s: %d key(s)", self._uri, len(keys))
            return keys, True
        finally:
            self._fetch_lock.release()

    def _cached_or_unavailable(self) -> dict[str, Any]:
        keys = self._keys
        if keys is not None:
            return keys
        retry_after = max(1, math.ceil(self._retry_at - self._clock()))
        raise ServiceUnavailable(
            "The token signing keys are unavailable; try again later.",
            retry_after=retry_after,
        )

    def _fetch(self) -> dict[str, Any]:
        # A fresh opener per fetch picks up the current proxy settings; fetches are rare.
        opener = urllib.request.build_opener()
        request = urllib.request.Request(self._uri, headers={"Accept": "application/json"})
        try:
            with opener.open(request, timeout=self._timeout) as response:
                body = response.read(MAX_JWKS_BYTES + 1)
        except urllib.error.HTTPError as error:
            error.close()
            raise JwksUnavailable(f"HTTP {error.code}") from None
        except (
            OSError,
            ValueError,
            http.client.HTTPException,
        ) as error:  # URLError, timeouts, resets
            raise JwksUnavailable(type(error).__name__ + ": " + str(error)) from None
        if len(body) > MAX_JWKS_BYTES:
            raise JwksUnavailable(f"document larger than {MAX_JWKS_BYTES} bytes")
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise JwksUnavailable("document is not JSON") from None
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise JwksUnavailable("document has no 'keys' list")
        keys = parse_signing_keys(document["keys"])
        if not keys:
            raise JwksUnavailable("document has no usable RSA signing key")
        return keys


def parse_signing_keys(entries: list[Any]) -> dict[str, Any]:
    """``kid`` → public key for each usable RSA signing key; the first of duplicate kids wins."""
    keys: dict[str, Any] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid or kid in keys:
            continue
        if entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        if entry.get("alg", "RS256") != "RS256":
            continue
        try:
            key = jwt.PyJWK(entry, algorithm="RS256").key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
        if isinstance(key, RSAPrivateKey):  # a JWKS should not hold private parts; use the public
            key = key.public_key()
        if not isinstance(key, RSAPublicKey) or key.key_size < MIN_RSA_KEY_BITS:
            continue
        keys[kid] = key
    return keys
