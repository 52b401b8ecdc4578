"""The composition root: builds the validator, store and service once per process.

Nothing is built at import time (the Functions host imports ``function_app.py`` to index
it); the first request builds everything from the settings and later requests reuse it,
so storage connections and the JWKS cache live across invocations.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uploadsession.auth import TokenValidator
    from uploadsession.config import ServiceSettings, Settings
    from uploadsession.service import UploadSessionService


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    validator: TokenValidator
    service: UploadSessionService


_lock = threading.Lock()
_runtime: Runtime | None = None


def build_service(settings: ServiceSettings) -> UploadSessionService:
    """The service over the configured storage (the function app and the operator commands)."""
    from uploadsession.service import UploadSessionService
    from uploadsession.store import AzureStorage

    return UploadSessionService(
        AzureStorage(settings.storage), ttl_seconds=settings.session_ttl_seconds
    )


def build_runtime(settings: Settings) -> Runtime:
    from uploadsession.auth import TokenValidator
    from uploadsession.jwks import JwksCache

    validator = TokenValidator(
        settings.auth_audiences,
        JwksCache(settings.jwks_uri),
        clock_skew_seconds=settings.clock_skew_seconds,
        authority_host=settings.authority_host,
        v1_issuer_host=settings.v1_issuer_host,
    )
    return Runtime(settings, validator, build_service(settings))


def get_runtime() -> Runtime:
    """The process's runtime, built on first use from the environment's settings."""
    global _runtime
    if _runtime is None:
        with _lock:
            if _runtime is None:
                from uploadsession.config import get_settings
                from uploadsession.telemetry import configure

                configure()  # OpenTelemetry, once, before the first storage client exists
                _runtime = build_runtime(get_settings())
    return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install a runtime (tests, the CLI); None forgets it so the next use rebuilds."""
    global _runtime
    with _lock:
        _runtime = runtime
