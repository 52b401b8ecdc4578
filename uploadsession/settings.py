"""The settings as pydantic models (DESIGN §5), each message naming the setting.

Imported through ``config`` on first use (``get_settings``, ``parse_settings``, the names
``Settings`` and ``StorageSettings``), so indexing ``function_app.py`` — which reads only the
purge schedule — loads no pydantic. Plain pydantic models read the mapping (no
pydantic-settings: the names are fixed by DESIGN §5 and the Functions ``__`` convention, one
mapping is all there is to read, and it is one dependency less).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlparse

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from uploadsession.config import (
    DEFAULT_AUTHORITY_HOST,
    DEFAULT_JWKS_URI,
    DEFAULT_V1_ISSUER_HOST,
    JWKS_PATH,
    STORAGE,
)
from uploadsession.errors import ConfigError

_TABLE_URI = f"{STORAGE}__tableServiceUri"
_BLOB_URI = f"{STORAGE}__blobServiceUri"
_CLIENT_ID = f"{STORAGE}__clientId"
_MAX_SEGMENT_LIMIT = 100 * 1024 * 1024


class _FromEnvironment(BaseModel):
    """Settings validated from app settings (fields aliased to their names) or built in code
    (by field name); immutable, compared by value."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")


def _setting(info: ValidationInfo, model: type[BaseModel]) -> str:
    """The app setting a field is read from."""
    assert info.field_name is not None
    alias = model.model_fields[info.field_name].validation_alias
    return alias if isinstance(alias, str) else info.field_name


def _checked_uri(name: str, value: object, schemes: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    raw = str(value).strip()
    if not raw:
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in schemes or not (parsed.netloc or parsed.scheme == "file"):
        raise ValueError(f"{name} must be a {'/'.join(schemes)} URI, got {raw!r}")
    return raw


class StorageSettings(_FromEnvironment):
    """Either a connection string, or service URIs for a managed identity (the Functions
    ``{connection}__tableServiceUri`` naming convention)."""

    connection_string: str | None = Field(default=None, validation_alias=STORAGE)
    table_service_uri: str | None = Field(default=None, validation_alias=_TABLE_URI)
    blob_service_uri: str | None = Field(default=None, validation_alias=_BLOB_URI)
    client_id: str | None = Field(default=None, validation_alias=_CLIENT_ID)

    @field_validator("table_service_uri", "blob_service_uri", mode="before")
    @classmethod
    def _service_uri(cls, value: object, info: ValidationInfo) -> str | None:
        return _checked_uri(_setting(info, cls), value, ("https", "http"))

    @model_validator(mode="after")
    def _one_way_to_connect(self) -> StorageSettings:
        if self.connection_string:
            # A connection string wins; the identity-based settings are then unused.
            if self.table_service_uri or self.blob_service_uri or self.client_id:
                return StorageSettings.model_construct(connection_string=self.connection_string)
            return self
        if self.table_service_uri and self.blob_service_uri:
            return self
        if self.table_service_uri or self.blob_service_uri:
            missing = _BLOB_URI if self.table_service_uri else _TABLE_URI
            raise ValueError(f"{missing} is required with identity-based storage")
        raise ValueError(
            f"{STORAGE} is required (a connection string, e.g. UseDevelopmentStorage=true), "
            f"or {_TABLE_URI} and {_BLOB_URI} for a managed identity"
        )


def _as_integer(value: object, info: ValidationInfo, model: type[BaseModel]) -> object:
    if not isinstance(value, str):
        return value
    try:
        return int(value)  # decimal digits only: "1.5", "10s", "0x10" are refused
    except ValueError:
        raise ValueError(f"{_setting(info, model)} must be an integer, got {value!r}") from None


class ServiceSettings(_FromEnvironment):
    """What the service itself needs (the function app and the operator commands alike):
    where its state lives and how long a session lives."""

    storage: StorageSettings
    session_ttl_seconds: int = Field(86400, validation_alias="UPLOAD_SESSION_TTL_SECONDS", ge=1)

    @field_validator("session_ttl_seconds", mode="before")
    @classmethod
    def _integer(cls, value: object, info: ValidationInfo) -> object:
        return _as_integer(value, info, cls)


class Settings(ServiceSettings):
    """Every setting of DESIGN §5 (and the sovereign-cloud hosts), validated."""

    auth_audiences: tuple[str, ...] = Field(validation_alias="AUTH_AUDIENCES")
    #: The cloud's login endpoint (v2 issuer ``{authority}/{tid}/v2.0``) and v1 token issuer.
    authority_host: str = Field(DEFAULT_AUTHORITY_HOST, validation_alias="AUTH_AUTHORITY_HOST")
    v1_issuer_host: str = Field(DEFAULT_V1_ISSUER_HOST, validation_alias="AUTH_V1_ISSUER_HOST")
    #: Default: ``{authority_host}/common/discovery/v2.0/keys``.
    jwks_uri: str = Field(DEFAULT_JWKS_URI, validation_alias="AUTH_JWKS_URI")
    clock_skew_seconds: int = Field(300, validation_alias="AUTH_CLOCK_SKEW_SECONDS", ge=0)
    max_document_bytes: int = Field(1073741824, validation_alias="MAX_DOCUMENT_BYTES", ge=1)
    #: Blob Storage refuses blocks over 4000 MiB; segments are held in memory, so far less.
    max_segment_bytes: int = Field(
        10485760, validation_alias="MAX_SEGMENT_BYTES", ge=1, le=_MAX_SEGMENT_LIMIT
    )

    @model_validator(mode="before")
    @classmethod
    def _jwks_follows_the_authority(cls, data: Any) -> Any:
        if isinstance(data, dict) and not ({"AUTH_JWKS_URI", "jwks_uri"} & data.keys()):
            authority = data.get("AUTH_AUTHORITY_HOST", data.get("authority_host"))
            if isinstance(authority, str) and authority.strip():
                return {**data, "jwks_uri": authority.strip().rstrip("/") + JWKS_PATH}
        return data

    @field_validator("auth_audiences", mode="before")
    @classmethod
    def _audiences(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(a.strip() for a in value.split(",") if a.strip())
        if not value:
            raise ValueError("AUTH_AUDIENCES is required: comma-separated accepted 'aud' values")
        return value

    @field_validator("authority_host", "v1_issuer_host", mode="before")
    @classmethod
    def _https_origin(cls, value: object, info: ValidationInfo) -> object:
        """An ``https://host`` origin (no path), without a trailing slash."""
        name = _setting(info, cls)
        raw = _checked_uri(name, value, ("https",))
        if raw is None:
            return value
        parsed = urlparse(raw)
        if parsed.path.strip("/") or parsed.query or parsed.fragment:
            raise ValueError(f"{name} must be an https:// origin without a path, got {raw!r}")
        return f"https://{parsed.netloc}"

    @field_validator("jwks_uri", mode="before")
    @classmethod
    def _jwks_uri(cls, value: object) -> object:
        return _checked_uri("AUTH_JWKS_URI", value, ("https", "http", "file")) or value

    @field_validator(
        "clock_skew_seconds",
        "session_ttl_seconds",
        "max_document_bytes",
        "max_segment_bytes",
        mode="before",
    )
    @classmethod
    def _integer(cls, value: object, info: ValidationInfo) -> object:
        return _as_integer(value, info, cls)


def _config_error(error: ValidationError, model: type[BaseModel]) -> ConfigError:
    """The first problem, as a message naming the setting."""
    first = error.errors()[0]
    name = next((str(p) for p in reversed(first["loc"]) if str(p).isupper() or "__" in str(p)), "")
    if first["type"] in ("value_error", "assertion_error"):
        return ConfigError(str(first["ctx"]["error"]))
    if first["type"] == "missing":
        return ConfigError(f"{name} is required")
    if first["type"] in ("greater_than_equal", "less_than_equal"):
        bound = first["ctx"].get("ge", first["ctx"].get("le"))
        word = "least" if first["type"] == "greater_than_equal" else "most"
        return ConfigError(f"{name} must be at {word} {bound}, got {first['input']}")
    return ConfigError(f"{name or model.__name__} is invalid: {first['msg']}")


_Parsed = TypeVar("_Parsed", bound=ServiceSettings)
_STORAGE_NAMES = (STORAGE, _TABLE_URI, _BLOB_URI, _CLIENT_ID)


def _present(env: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """The settings that are set (an empty or blank app setting counts as absent)."""
    return {n: env[n].strip() for n in names if env.get(n, "").strip()}


def storage_settings(env: Mapping[str, str] | None = None) -> StorageSettings:
    """The storage part alone (the CLI's subscription commands need no auth settings)."""
    env = os.environ if env is None else env
    try:
        return StorageSettings.model_validate(_present(env, _STORAGE_NAMES))
    except ValidationError as exc:
        raise _config_error(exc, StorageSettings) from None


def _parse(model: type[_Parsed], env: Mapping[str, str], defaults: Mapping[str, str]) -> _Parsed:
    storage = storage_settings(env)
    names = [
        f.validation_alias
        for f in model.model_fields.values()
        if isinstance(f.validation_alias, str)
    ]
    values: dict[str, Any] = {**defaults, "storage": storage, **_present(env, names)}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise _config_error(exc, model) from None


def service_settings(env: Mapping[str, str] | None = None) -> ServiceSettings:
    """The service's part alone (the operator commands need no auth settings)."""
    return _parse(ServiceSettings, os.environ if env is None else env, {})


def parse_settings(env: Mapping[str, str]) -> Settings:
    """Validate ``env`` into :class:`Settings`; raise :class:`ConfigError` naming the setting."""
    return _parse(Settings, env, {"AUTH_AUDIENCES": ""})
