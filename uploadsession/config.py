"""Settings from the environment (Functions app settings), validated once and cached.

Loaded lazily on the first request, not at import: the Functions host imports
``function_app.py`` to index it, and indexing must not need any setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlparse

from uploadsession.errors import ConfigError

STORAGE = "UPLOADSESSION_STORAGE"
DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_V1_ISSUER_HOST = "https://sts.windows.net"
JWKS_PATH = "/common/discovery/v2.0/keys"
DEFAULT_JWKS_URI = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
DEFAULT_PURGE_SCHEDULE = "0 */5 * * * *"

SESSIONS_TABLE = "uploadsessions"
SUBSCRIPTIONS_TABLE = "subscriptions"
DOCUMENTS_CONTAINER = "documents"


@dataclass(frozen=True)
class StorageSettings:
    """Either a connection string, or service URIs for a managed identity."""

    connection_string: str | None = None
    table_service_uri: str | None = None
    blob_service_uri: str | None = None
    client_id: str | None = None


@dataclass(frozen=True)
class Settings:
    storage: StorageSettings
    auth_audiences: tuple[str, ...]
    jwks_uri: str = DEFAULT_JWKS_URI
    #: The cloud's login endpoint (v2 issuer ``{authority}/{tid}/v2.0``) and v1 token issuer.
    authority_host: str = DEFAULT_AUTHORITY_HOST
    v1_issuer_host: str = DEFAULT_V1_ISSUER_HOST
    clock_skew_seconds: int = 300
    session_ttl_seconds: int = 86400
    max_document_bytes: int = 1073741824
    max_segment_bytes: int = 10485760


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _uri(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in schemes or not (parsed.netloc or parsed.scheme == "file"):
        raise ConfigError(f"{name} must be a {'/'.join(schemes)} URI, got {raw!r}")
    return raw


def _origin(env: Mapping[str, str], name: str) -> str | None:
    """An ``https://host`` origin (no path), without a trailing slash."""
    raw = _uri(env, name, ("https",))
    if raw is None:
        return None
    parsed = urlparse(raw)
    if parsed.path.strip("/") or parsed.query or parsed.fragment:
        raise ConfigError(f"{name} must be an https:// origin without a path, got {raw!r}")
    return f"https://{parsed.netloc}"


def storage_settings(env: Mapping[str, str] | None = None) -> StorageSettings:
    """The storage part alone (the CLI's subscription commands need no auth settings)."""
    env = os.environ if env is None else env
    conn = env.get(STORAGE, "").strip() or None
    table_uri = _uri(env, f"{STORAGE}__tableServiceUri", ("https", "http"))
    blob_uri = _uri(env, f"{STORAGE}__blobServiceUri", ("https", "http"))
    client_id = env.get(f"{STORAGE}__clientId", "").strip() or None
    if conn:
        return StorageSettings(connection_string=conn)
    if table_uri and blob_uri:
        return StorageSettings(
            table_service_uri=table_uri, blob_service_uri=blob_uri, client_id=client_id
        )
    if table_uri or blob_uri:
        missing = f"{STORAGE}__blobServiceUri" if table_uri else f"{STORAGE}__tableServiceUri"
        raise ConfigError(f"{missing} is required with identity-based storage")
    raise ConfigError(
        f"{STORAGE} is required (a connection string, e.g. UseDevelopmentStorage=true), "
        f"or {STORAGE}__tableServiceUri and {STORAGE}__blobServiceUri for a managed identity"
    )


def parse_settings(env: Mapping[str, str]) -> Settings:
    """Validate ``env`` into :class:`Settings`; raise :class:`ConfigError` naming the setting."""
    storage = storage_settings(env)
    audiences = tuple(a.strip() for a in env.get("AUTH_AUDIENCES", "").split(",") if a.strip())
    if not audiences:
        raise ConfigError("AUTH_AUDIENCES is required: comma-separated accepted 'aud' values")
    authority = _origin(env, "AUTH_AUTHORITY_HOST") or DEFAULT_AUTHORITY_HOST
    v1_issuer = _origin(env, "AUTH_V1_ISSUER_HOST") or DEFAULT_V1_ISSUER_HOST
    jwks_uri = _uri(env, "AUTH_JWKS_URI", ("https", "http", "file")) or authority + JWKS_PATH
    max_document = _int(env, "MAX_DOCUMENT_BYTES", 1073741824, minimum=1)
    max_segment = _int(env, "MAX_SEGMENT_BYTES", 10485760, minimum=1)
    if max_segment > 100 * 1024 * 1024:
        # Blob Storage refuses blocks over 4000 MiB; we keep segments in memory, so far less.
        raise ConfigError(f"MAX_SEGMENT_BYTES must be at most {100 * 1024 * 1024}")
    return Settings(
        storage=storage,
        auth_audiences=audiences,
        jwks_uri=jwks_uri,
        authority_host=authority,
        v1_issuer_host=v1_issuer,
        clock_skew_seconds=_int(env, "AUTH_CLOCK_SKEW_SECONDS", 300, minimum=0),
        session_ttl_seconds=_int(env, "UPLOAD_SESSION_TTL_SECONDS", 86400, minimum=1),
        max_document_bytes=max_document,
        max_segment_bytes=max_segment,
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from ``os.environ`` on first use."""
    return parse_settings(os.environ)


def purge_schedule() -> str:
    """NCRONTAB schedule of the purge timer (read at indexing time, so no validation here)."""
    return os.environ.get("PURGE_SCHEDULE", "").strip() or DEFAULT_PURGE_SCHEDULE
