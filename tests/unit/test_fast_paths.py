"""The performance shortcuts (bench/) answer exactly what the long way answers."""

from __future__ import annotations

import gc
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from azure.core.exceptions import ResourceModifiedError

from tests.unit.tokens import (
    AUDIENCE,
    KID,
    StaticKeys,
    build_jwks,
    delegated_claims,
    generate_key,
    mint,
)
from uploadsession import auth
from uploadsession.auth import TokenValidator
from uploadsession.config import StorageSettings
from uploadsession.errors import ConcurrencyConflict, InvalidToken
from uploadsession.models import DocumentKey, Segment, Session, render
from uploadsession.ranges import Range, missing_ranges
from uploadsession.store import AzureStorage, _proxy_or_netrc_applies, translate_azure_errors
from uploadsession.wire import session_json

NOW = datetime(2026, 5, 4, 3, 2, 1, 987654, tzinfo=UTC)
KEY = DocumentKey(
    "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "016b5565-3bbf-4067-b9ff-4d68167eb1a6",
    "job-1",
    "9a6d0ba5-07a3-4e5e-9f1e-0e6f8e7b4c21",
)


def session(
    size: int, received: list[Range], *, name: str = "file.pdf", user: bool = True
) -> Session:
    return Session(
        key=KEY,
        id=str(uuid.uuid4()),
        size=size,
        content_type="application/pdf",
        document_name=name,
        app_id="53328905-26eb-415a-96f6-311c68bb818e",
        user_id="853364e6-6be9-4003-ad9b-acab84b41643" if user else None,
        created=NOW,
        expires=NOW + timedelta(days=1),
        segments=tuple(Segment(s, e, bytes(16)) for s, e in received),
    )


@pytest.mark.parametrize(
    "example",
    [
        session(1024, []),
        session(1024, [(0, 1023)]),
        session(10, [(0, 1), (4, 5), (9, 9)], user=False),
        session(2000 * 10, [(i * 10, i * 10 + 9) for i in range(0, 2000, 2)]),
        session(5, [(1, 3)], name='résumé "final" \\ ✓ 文書.pdf'),
    ],
    ids=["fresh", "complete", "app-created", "1000-missing-ranges", "unicode-name"],
)
def test_the_rendered_body_is_exactly_json_dumps_of_the_representation(example: Session) -> None:
    body, etag = render(example)
    model = session_json(example).model_dump(by_alias=True, exclude_none=True)
    expected = json.dumps(model, separators=(",", ":"), ensure_ascii=False)
    assert body == expected.encode()
    assert [f"{r['start']}-{r['end']}" for r in json.loads(body)["missingRanges"]] == (
        json.loads(body)["nextExpectedRanges"]
    )
    assert etag.startswith('"') and len(etag) == 34


def _merge(ranges: list[Range]) -> list[Range]:
    """Sort and merge overlapping or adjacent ranges (the slow way, as an oracle)."""
    merged: list[Range] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _missing_by_merging(size: int, received: list[Range]) -> list[Range]:
    missing: list[Range] = []
    cursor = 0
    for start, end in _merge(received):
        if start > cursor:
            missing.append((cursor, start - 1))
        cursor = max(cursor, end + 1)
    if cursor < size:
        missing.append((cursor, size - 1))
    return missing


def test_missing_ranges_agree_with_merging_first_for_unsorted_overlapping_input() -> None:
    rng = random.Random(11)
    for _ in range(2000):
        size = rng.randint(1, 60)
        received = []
        for _ in range(rng.randint(0, 8)):
            start = rng.randint(0, size + 3)
            received.append((start, start + rng.randint(0, 12)))
        assert missing_ranges(size, received) == _missing_by_merging(size, received)


# -- the verified-token memory -------------------------------------------------------------


class RotatingKeys:
    """A key source whose key for KID can be swapped, as a JWKS refresh would."""

    def __init__(self, key: Any) -> None:
        self.key = key
        self.calls = 0

    def get_key(self, kid: str) -> Any:
        self.calls += 1
        if kid != KID:
            raise InvalidToken("unknown kid")
        return self.key


def test_a_repeated_token_is_not_parsed_or_verified_again(monkeypatch: pytest.MonkeyPatch) -> None:
    signing = generate_key()
    validator = TokenValidator([AUDIENCE], StaticKeys(build_jwks((signing, KID))))
    token = f"Bearer {mint(signing, KID, **delegated_claims())}"
    first = validator.validate(token)
    decodes = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decodes.append(1) or real_decode(*a, **k))
    assert validator.validate(token) == first
    assert decodes == []


def test_a_remembered_token_is_verified_again_when_its_key_changes() -> None:
    signing, other = generate_key(), generate_key()
    keys = RotatingKeys(jwt.PyJWK(build_jwks((signing, KID))["keys"][0], algorithm="RS256").key)
    validator = TokenValidator([AUDIENCE], keys)
    token = f"Bearer {mint(signing, KID, **delegated_claims())}"
    validator.validate(token)
    keys.key = jwt.PyJWK(build_jwks((other, KID))["keys"][0], algorithm="RS256").key
    with pytest.raises(InvalidToken, match="signature"):
        validator.validate(token)


def test_a_remembered_token_still_expires() -> None:
    signing = generate_key()
    clock = [1_700_000_000.0]
    validator = TokenValidator(
        [AUDIENCE],
        StaticKeys(build_jwks((signing, KID))),
        clock_skew_seconds=0,
        now=lambda: clock[0],
    )
    token = f"Bearer {mint(signing, KID, **delegated_claims(now=clock[0], lifetime=60))}"
    validator.validate(token)
    clock[0] += 61
    with pytest.raises(InvalidToken, match="expired"):
        validator.validate(token)


def test_the_memory_of_verified_tokens_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "VERIFIED_TOKENS_KEPT", 3)
    signing = generate_key()
    validator = TokenValidator([AUDIENCE], StaticKeys(build_jwks((signing, KID))))
    tokens = [f"Bearer {mint(signing, KID, **delegated_claims())}" for _ in range(5)]
    for token in tokens:
        validator.validate(token)
    assert list(validator._verified) == [t.removeprefix("Bearer ") for t in tokens[-3:]]


# -- storage clients skip requests' per-request environment scan only when it is moot -------

URLS = ("http://127.0.0.1:10002/devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1/")
ENV = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NETRC",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    return monkeypatch


def test_the_environment_is_moot_without_proxy_or_netrc(clean_env: pytest.MonkeyPatch) -> None:
    assert not _proxy_or_netrc_applies(URLS)


@pytest.mark.parametrize("name", ["HTTP_PROXY", "ALL_PROXY", "http_proxy"])
def test_a_proxy_variable_keeps_the_environment_in_force(
    clean_env: pytest.MonkeyPatch, name: str
) -> None:
    clean_env.setenv(name, "http://proxy.invalid:3128")
    assert _proxy_or_netrc_applies(URLS)


def test_a_proxy_bypassed_by_no_proxy_is_moot(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    clean_env.setenv("NO_PROXY", "127.0.0.1")
    assert not _proxy_or_netrc_applies(URLS)


def test_a_netrc_entry_for_the_storage_host_keeps_the_environment_in_force(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password secret\n")
    netrc.chmod(0o600)
    clean_env.setenv("NETRC", str(netrc))
    assert _proxy_or_netrc_applies(URLS)


def _transport_of(storage: AzureStorage) -> Any:
    table = storage._get_clients().sessions
    transport = table._client._client._pipeline._transport
    return getattr(transport, "_transport", transport)


CONNECTION = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)


@pytest.mark.parametrize(
    ("env", "trust_env", "verify"),
    [
        ({}, False, True),
        ({"REQUESTS_CA_BUNDLE": "/tmp/ca.pem"}, False, "/tmp/ca.pem"),
        ({"CURL_CA_BUNDLE": "/tmp/curl.pem"}, False, "/tmp/curl.pem"),
        ({"HTTPS_PROXY": "http://p.invalid:1", "HTTP_PROXY": "http://p.invalid:1"}, True, True),
    ],
)
def test_storage_clients_read_the_environment_once_when_that_is_the_same(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], trust_env: bool, verify: object
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    transport = _transport_of(AzureStorage(StorageSettings(connection_string=CONNECTION)))
    assert transport.session.trust_env is trust_env
    assert transport.connection_config.verify == verify


# -- a lost ETag race frees the request at once -----------------------------------------------


def test_a_mapped_azure_error_does_not_keep_the_request_alive() -> None:
    freed: list[str] = []

    class Segment:  # what a request holds: an uploaded segment's bytes
        def __del__(self) -> None:
            freed.append("segment")

    def sdk_call() -> None:
        error = ResourceModifiedError("The update condition specified was not satisfied")
        raise error  # as the SDKs do: the error is a local of a frame in its own traceback

    def request() -> None:
        segment = Segment()  # noqa: F841 - alive for the request, as the body is
        try:
            with translate_azure_errors("updating a session"):
                sdk_call()
        except ConcurrencyConflict:
            pass

    gc.disable()
    try:
        request()
        assert freed == ["segment"]
    finally:
        gc.enable()
