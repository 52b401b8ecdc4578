"""Settings from the environment (Functions app settings), validated once and cached.

The models are pydantic (``uploadsession/settings.py``), every message naming the setting (a
:class:`~uploadsession.errors.ConfigError`, never pydantic's ``ValidationError``). Loaded
lazily on the first request, not at import: the Functions host imports ``function_app.py`` to
index it, and indexing must not need any setting nor load pydantic (this module's names
``Settings``, ``StorageSettings``, ``parse_settings`` and ``storage_settings`` import it on
first use).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from uploadsession.settings import ServiceSettings as ServiceSettings
    from uploadsession.settings import Settings as Settings
    from uploadsession.settings import StorageSettings as StorageSettings
    from uploadsession.settings import parse_settings as parse_settings
    from uploadsession.settings import service_settings as service_settings
    from uploadsession.settings import storage_settings as storage_settings

__all__ = [
    "ServiceSettings",
    "Settings",
    "StorageSettings",
    "get_settings",
    "parse_settings",
    "service_settings",
    "storage_settings",
]

STORAGE = "UPLOADSESSION_STORAGE"
DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_V1_ISSUER_HOST = "https://sts.windows.net"
JWKS_PATH = "/common/discovery/v2.0/keys"
DEFAULT_JWKS_URI = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
DEFAULT_PURGE_SCHEDULE = "0 */5 * * * *"

SESSIONS_TABLE = "uploadsessions"
SUBSCRIPTIONS_TABLE = "subscriptions"
DOCUMENTS_CONTAINER = "documents"


_LAZY = (
    "ServiceSettings",
    "Settings",
    "StorageSettings",
    "parse_settings",
    "service_settings",
    "storage_settings",
)


def __getattr__(name: str) -> Any:
    """The settings models and their parsers live in ``uploadsession.settings`` (pydantic),
    imported on first use."""
    if name in _LAZY:
        from uploadsession import settings

        return getattr(settings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from ``os.environ`` on first use."""
    from uploadsession.settings import parse_settings

    return parse_settings(os.environ)


def purge_schedule() -> str:
    """NCRONTAB schedule of the purge timer (read at indexing time, so no validation here)."""
    return os.environ.get("PURGE_SCHEDULE", "").strip() or DEFAULT_PURGE_SCHEDULE
