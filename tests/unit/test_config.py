"""Settings (DESIGN §5): defaults, validation, and messages that name the setting."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from uploadsession import config
from uploadsession.config import (
    DEFAULT_JWKS_URI,
    Settings,
    StorageSettings,
    get_settings,
    parse_settings,
    purge_schedule,
)
from uploadsession.errors import ConfigError

STORAGE = "UPLOADSESSION_STORAGE"
TABLE_URI = "https://account.table.core.windows.net"
BLOB_URI = "https://account.blob.core.windows.net"
BASE = {STORAGE: "UseDevelopmentStorage=true", "AUTH_AUDIENCES": "api://uploadsession"}


def _refused(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_settings(env)
    return str(caught.value)


def test_defaults_match_the_design() -> None:
    settings = parse_settings(BASE)
    assert settings == Settings(
        storage=StorageSettings(connection_string="UseDevelopmentStorage=true"),
        auth_audiences=("api://uploadsession",),
        jwks_uri="https://login.microsoftonline.com/common/discovery/v2.0/keys",
        clock_skew_seconds=300,
        session_ttl_seconds=86400,
        max_document_bytes=1073741824,
        max_segment_bytes=10485760,
    )
    assert settings.jwks_uri == DEFAULT_JWKS_URI


def test_a_sovereign_cloud_authority_sets_the_issuers_and_the_default_jwks() -> None:
    settings = parse_settings(
        {
            **BASE,
            "AUTH_AUTHORITY_HOST": "https://login.microsoftonline.us/",
            "AUTH_V1_ISSUER_HOST": "https://sts.windows.net",
        }
    )
    assert settings.authority_host == "https://login.microsoftonline.us"
    assert settings.v1_issuer_host == "https://sts.windows.net"
    assert settings.jwks_uri == "https://login.microsoftonline.us/common/discovery/v2.0/keys"


@pytest.mark.parametrize("value", ["http://login.example", "https://login.example/tenant", "x"])
def test_an_authority_that_is_not_an_https_origin_is_refused_by_name(value: str) -> None:
    assert "AUTH_AUTHORITY_HOST" in _refused({**BASE, "AUTH_AUTHORITY_HOST": value})


def test_storage_names_match_the_design() -> None:
    assert (config.SESSIONS_TABLE, config.SUBSCRIPTIONS_TABLE, config.DOCUMENTS_CONTAINER) == (
        "uploadsessions",
        "subscriptions",
        "documents",
    )


def test_every_setting_is_read() -> None:
    settings = parse_settings(
        {
            **BASE,
            "AUTH_AUDIENCES": " api://a , b,,c ",
            "AUTH_JWKS_URI": "file:///srv/keys.json",
            "AUTH_CLOCK_SKEW_SECONDS": "0",
            "UPLOAD_SESSION_TTL_SECONDS": "60",
            "MAX_DOCUMENT_BYTES": "2048",
            "MAX_SEGMENT_BYTES": "1024",
        }
    )
    assert settings.auth_audiences == ("api://a", "b", "c")
    assert settings.jwks_uri == "file:///srv/keys.json"
    assert (settings.clock_skew_seconds, settings.session_ttl_seconds) == (0, 60)
    assert (settings.max_document_bytes, settings.max_segment_bytes) == (2048, 1024)


@pytest.mark.parametrize("value", [None, "", "  ", " , ,"])
def test_missing_audiences_are_refused_by_name(value: str | None) -> None:
    env = dict(BASE)
    if value is None:
        del env["AUTH_AUDIENCES"]
    else:
        env["AUTH_AUDIENCES"] = value
    assert "AUTH_AUDIENCES" in _refused(env)


def test_missing_storage_is_refused_by_name() -> None:
    message = _refused({"AUTH_AUDIENCES": "x"})
    assert STORAGE in message


def test_identity_based_storage_is_accepted() -> None:
    env = {
        "AUTH_AUDIENCES": "x",
        f"{STORAGE}__tableServiceUri": TABLE_URI,
        f"{STORAGE}__blobServiceUri": BLOB_URI,
        f"{STORAGE}__clientId": "5e8a7b6c-1d2e-4f3a-9b8c-7d6e5f4a3b2c",
    }
    assert parse_settings(env).storage == StorageSettings(
        table_service_uri=TABLE_URI,
        blob_service_uri=BLOB_URI,
        client_id="5e8a7b6c-1d2e-4f3a-9b8c-7d6e5f4a3b2c",
    )
    del env[f"{STORAGE}__clientId"]  # system-assigned identity
    assert parse_settings(env).storage.client_id is None


@pytest.mark.parametrize(
    ("present", "named"),
    [
        (f"{STORAGE}__tableServiceUri", f"{STORAGE}__blobServiceUri"),
        (f"{STORAGE}__blobServiceUri", f"{STORAGE}__tableServiceUri"),
    ],
)
def test_half_an_identity_configuration_names_the_missing_half(present: str, named: str) -> None:
    assert named in _refused({"AUTH_AUDIENCES": "x", present: TABLE_URI})


@pytest.mark.parametrize("uri", ["ftp://account", "account.table.core.windows.net", "https://"])
def test_a_bad_identity_uri_is_refused_by_name(uri: str) -> None:
    env = {
        "AUTH_AUDIENCES": "x",
        f"{STORAGE}__tableServiceUri": uri,
        f"{STORAGE}__blobServiceUri": BLOB_URI,
    }
    assert f"{STORAGE}__tableServiceUri" in _refused(env)


@pytest.mark.parametrize(
    "name",
    [
        "AUTH_CLOCK_SKEW_SECONDS",
        "UPLOAD_SESSION_TTL_SECONDS",
        "MAX_DOCUMENT_BYTES",
        "MAX_SEGMENT_BYTES",
    ],
)
@pytest.mark.parametrize("value", ["abc", "1.5", "10s", "-1", "0x10"])
def test_a_bad_integer_is_refused_by_name(name: str, value: str) -> None:
    assert name in _refused({**BASE, name: value})


@pytest.mark.parametrize(
    "name", ["UPLOAD_SESSION_TTL_SECONDS", "MAX_DOCUMENT_BYTES", "MAX_SEGMENT_BYTES"]
)
def test_zero_is_refused_where_a_positive_number_is_needed(name: str) -> None:
    assert name in _refused({**BASE, name: "0"})


def test_an_oversized_segment_limit_is_refused_by_name() -> None:
    assert "MAX_SEGMENT_BYTES" in _refused({**BASE, "MAX_SEGMENT_BYTES": str(101 * 1024 * 1024)})


@pytest.mark.parametrize(
    "uri",
    ["ftp://keys.example", "javascript:alert(1)", "login.microsoftonline.com/keys", "https://"],
)
def test_a_jwks_uri_with_a_bad_scheme_is_refused_by_name(uri: str) -> None:
    assert "AUTH_JWKS_URI" in _refused({**BASE, "AUTH_JWKS_URI": uri})


@pytest.mark.parametrize(
    "uri", ["https://keys.example/keys", "http://localhost:8080/keys", "file:///tmp/jwks.json"]
)
def test_a_jwks_uri_may_be_https_http_or_file(uri: str) -> None:
    assert parse_settings({**BASE, "AUTH_JWKS_URI": uri}).jwks_uri == uri


@pytest.fixture
def fresh_settings_cache() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("fresh_settings_cache")
def test_settings_are_read_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in BASE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("UPLOAD_SESSION_TTL_SECONDS", "120")
    first = get_settings()
    monkeypatch.setenv("UPLOAD_SESSION_TTL_SECONDS", "240")
    assert get_settings() is first
    assert first.session_ttl_seconds == 120


def test_the_purge_schedule_defaults_to_every_five_minutes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PURGE_SCHEDULE", raising=False)
    assert purge_schedule() == "0 */5 * * * *"
    monkeypatch.setenv("PURGE_SCHEDULE", "0 0 * * * *")
    assert purge_schedule() == "0 0 * * * *"


def test_the_service_settings_need_no_auth_setting_and_read_the_ttl() -> None:
    """The operator commands build the service as the app does: the configured TTL, no
    AUTH_AUDIENCES needed."""
    env = {STORAGE: "UseDevelopmentStorage=true", "UPLOAD_SESSION_TTL_SECONDS": "600"}
    settings = config.service_settings(env)
    assert settings.session_ttl_seconds == 600
    assert settings.storage.connection_string == "UseDevelopmentStorage=true"
    assert config.service_settings({STORAGE: "UseDevelopmentStorage=true"}).session_ttl_seconds == (
        parse_settings(BASE).session_ttl_seconds
    )


@pytest.mark.parametrize("value", ["abc", "0"])
def test_the_service_settings_refuse_a_bad_ttl_by_name(value: str) -> None:
    with pytest.raises(ConfigError, match="UPLOAD_SESSION_TTL_SECONDS"):
        config.service_settings(
            {STORAGE: "UseDevelopmentStorage=true", "UPLOAD_SESSION_TTL_SECONDS": value}
        )
