"""JwksCache: fetching, caching, back-off and rate limits (DESIGN §3), against local sources."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.unit.tokens import build_jwks, generate_key, public_jwk
from uploadsession.errors import InvalidToken, ServiceUnavailable
from uploadsession.jwks import EMPTY_CACHE_RETRY_SECONDS, JwksCache

MAX_AGE = 3600.0
COOLDOWN = 300.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class JwksServer:
    """What the local JWKS endpoint serves, and how often it was asked."""

    url: str = ""
    body: bytes = b""
    status: int = 200
    hits: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    entered: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, document: Any, status: int = 200) -> None:
        self.body = json.dumps(document).encode() if not isinstance(document, bytes) else document
        self.status = status


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return generate_key()


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return generate_key()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fetches go to 127.0.0.1 only, whatever proxy the environment names."""
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("no_proxy", "*")


@pytest.fixture
def server() -> Iterator[JwksServer]:
    state = JwksServer()
    state.release.set()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.hits += 1
            state.entered.set()
            state.release.wait(10)
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/keys"
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def cache(url: str, clock: FakeClock, **options: Any) -> JwksCache:
    options.setdefault("max_age_seconds", MAX_AGE)
    options.setdefault("unknown_kid_cooldown_seconds", COOLDOWN)
    options.setdefault("timeout_seconds", 2)
    return JwksCache(url, clock=clock, **options)


def same_key(found: Any, private: rsa.RSAPrivateKey) -> bool:
    return bool(found.public_numbers() == private.public_key().public_numbers())


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/keys"


# --- sources ----------------------------------------------------------------------------


def test_keys_load_from_a_file_uri_and_verify_tokens(
    tmp_path: Path, key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(build_jwks((key, "k1"))))
    found = cache(path.as_uri(), FakeClock()).get_key("k1")
    token = jwt.encode({"a": 1}, key, algorithm="RS256")
    assert jwt.decode(token, found, algorithms=["RS256"]) == {"a": 1}


def test_keys_load_over_http(server: JwksServer, key: rsa.RSAPrivateKey) -> None:
    server.serve(build_jwks((key, "k1")))
    assert same_key(cache(server.url, FakeClock()).get_key("k1"), key)
    assert server.hits == 1


def test_a_uri_of_another_scheme_is_refused() -> None:
    with pytest.raises(ValueError):
        JwksCache("ftp://example.invalid/keys")


# --- caching ----------------------------------------------------------------------------


def test_a_cache_hit_makes_no_fetch(server: JwksServer, key: rsa.RSAPrivateKey) -> None:
    server.serve(build_jwks((key, "k1")))
    clock = FakeClock()
    keys = cache(server.url, clock)
    for _ in range(20):
        keys.get_key("k1")
        clock.advance(MAX_AGE / 40)
    assert server.hits == 1


def test_keys_are_refreshed_after_max_age(
    server: JwksServer, key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    server.serve(build_jwks((key, "k1")))
    clock = FakeClock()
    keys = cache(server.url, clock)
    keys.get_key("k1")
    server.serve(build_jwks((other_key, "k1")))
    clock.advance(MAX_AGE)
    assert same_key(keys.get_key("k1"), other_key)
    assert server.hits == 2


def test_many_unknown_kids_cause_one_fetch_per_cooldown(
    server: JwksServer, key: rsa.RSAPrivateKey
) -> None:
    server.serve(build_jwks((key, "k1")))
    clock = FakeClock()
    keys = cache(server.url, clock)
    keys.get_key("k1")
    for n in range(200):
        with pytest.raises(InvalidToken) as caught:
            keys.get_key(f"random-{n}")
        assert (caught.value.status, caught.value.code) == (401, "InvalidAuthenticationToken")
        clock.advance(1)
    assert server.hits == 2  # the first load + one refresh for the first unknown kid
    clock.advance(COOLDOWN)
    with pytest.raises(InvalidToken):
        keys.get_key("random-again")
    assert server.hits == 3


def test_an_unknown_kid_on_first_use_costs_a_single_fetch(
    server: JwksServer, key: rsa.RSAPrivateKey
) -> None:
    server.serve(build_jwks((key, "k1")))
    with pytest.raises(InvalidToken):
        cache(server.url, FakeClock()).get_key("nope")
    assert server.hits == 1


def test_a_rotated_key_is_picked_up_after_the_cooldown(
    server: JwksServer, key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    server.serve(build_jwks((key, "k1")))
    clock = FakeClock()
    keys = cache(server.url, clock)
    keys.get_key("k1")
    with pytest.raises(InvalidToken):
        keys.get_key("k2")  # refreshes, but the JWKS does not have it yet
    server.serve(build_jwks((key, "k1"), (other_key, "k2")))
    clock.advance(COOLDOWN - 1)
    with pytest.raises(InvalidToken):
        keys.get_key("k2")  # rate-limited: no fetch
    assert server.hits == 2
    clock.advance(1)
    assert same_key(keys.get_key("k2"), other_key)
    assert same_key(keys.get_key("k1"), key)
    assert server.hits == 3


# --- failures ---------------------------------------------------------------------------


def test_last_known_good_keys_are_kept_when_the_jwks_fails_after_max_age(
    server: JwksServer, key: rsa.RSAPrivateKey
) -> None:
    server.serve(build_jwks((key, "k1")))
    clock = FakeClock()
    keys = cache(server.url, clock)
    keys.get_key("k1")
    server.serve({"error": "boom"}, status=500)
    clock.advance(MAX_AGE + 1)
    for _ in range(50):
        assert same_key(keys.get_key("k1"), key)
        clock.advance(1)
    assert server.hits == 2  # one failed refresh, then back-off instead of a fetch per request
    server.serve(build_jwks((key, "k1")))
    clock.advance(COOLDOWN)
    keys.get_key("k1")
    assert server.hits == 3
    clock.advance(MAX_AGE - 1)
    keys.get_key("k1")
    assert server.hits == 3  # fresh again after the successful retry


@pytest.mark.parametrize(
    "document",
    [
        b"<html>not json</html>",
        {"keys": "nope"},
        [],
        {"keys": []},
        {"keys": [{"kty": "EC", "kid": "k1", "crv": "P-256", "x": "x", "y": "y"}]},
    ],
    ids=["not JSON", "keys not a list", "not an object", "no keys", "no RSA key"],
)
def test_a_broken_jwks_does_not_replace_last_known_good_keys(
    document: Any, server: JwksServer, key: rsa.RSAPrivateKey
) -> None:
    server.serve(build_jwks((key, "k1")))
    clock = FakeClock()
    keys = cache(server.url, clock)
    keys.get_key("k1")
    server.serve(document)
    clock.advance(MAX_AGE)
    assert same_key(keys.get_key("k1"), key)
    assert server.hits == 2


def test_no_keys_and_an_unreachable_jwks_is_a_503_with_retry_after() -> None:
    keys = cache(closed_port_url(), FakeClock())
    with pytest.raises(ServiceUnavailable) as caught:
        keys.get_key("k1")
    error = caught.value
    assert (error.status, error.code) == (503, "serviceUnavailable")
    assert error.headers() == {"Retry-After": str(int(EMPTY_CACHE_RETRY_SECONDS))}


def test_no_keys_and_an_unparseable_jwks_is_a_503_then_retried_after_a_short_backoff(
    server: JwksServer, key: rsa.RSAPrivateKey
) -> None:
    server.serve(b"{not json")
    clock = FakeClock()
    keys = cache(server.url, clock)
    for _ in range(10):
        with pytest.raises(ServiceUnavailable) as caught:
            keys.get_key("k1")
        assert int(caught.value.headers()["Retry-After"]) >= 1
    assert server.hits == 1
    server.serve(build_jwks((key, "k1")))
    clock.advance(EMPTY_CACHE_RETRY_SECONDS)
    assert same_key(keys.get_key("k1"), key)
    assert server.hits == 2


def test_a_jwks_that_does_not_answer_in_time_is_a_503(server: JwksServer) -> None:
    server.release.clear()
    keys = cache(server.url, FakeClock(), timeout_seconds=0.2)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        keys.get_key("k1")
    assert time.monotonic() - started < 5


def test_an_oversized_jwks_is_refused(server: JwksServer) -> None:
    server.serve(b" " * (1024 * 1024 + 1))
    with pytest.raises(ServiceUnavailable):
        cache(server.url, FakeClock()).get_key("k1")


def test_a_valid_jwks_padded_past_the_size_limit_is_refused(
    server: JwksServer, key: rsa.RSAPrivateKey
) -> None:
    document = json.dumps(build_jwks((key, "k1"))).encode()
    server.serve(document + b" " * (1024 * 1024 + 1 - len(document)))  # still valid JSON
    with pytest.raises(ServiceUnavailable):
        cache(server.url, FakeClock()).get_key("k1")
    server.serve(document + b" " * (1024 * 1024 - len(document)))  # exactly at the limit
    assert same_key(cache(server.url, FakeClock()).get_key("k1"), key)


# --- which keys -------------------------------------------------------------------------


def test_only_usable_rsa_signing_keys_are_taken(
    tmp_path: Path, key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    small = generate_key(1024)
    private = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(other_key))
    no_use = public_jwk(key, "plain")
    del no_use["use"]
    document = {
        "keys": [
            "not an object",
            public_jwk(key, "enc", use="enc"),
            public_jwk(key, "rs512", alg="RS512"),
            public_jwk(small, "small"),
            public_jwk(key, "broken", n="!!!"),
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "no-modulus", "e": "AQAB"},
            public_jwk(key, ""),
            no_use,
            public_jwk(key, "rs256", alg="RS256"),
            {**private, "kid": "private", "use": "sig"},
            public_jwk(other_key, "dup"),
            public_jwk(key, "dup"),
        ]
    }
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(document))
    keys = cache(path.as_uri(), FakeClock(), unknown_kid_cooldown_seconds=0)
    for kid in ("enc", "rs512", "small", "broken", "hmac", "no-modulus", ""):
        with pytest.raises(InvalidToken):
            keys.get_key(kid)
    assert same_key(keys.get_key("plain"), key)
    assert same_key(keys.get_key("rs256"), key)
    assert same_key(keys.get_key("dup"), other_key)  # the first of duplicates wins
    private_found = keys.get_key("private")
    assert isinstance(private_found, rsa.RSAPublicKey)
    assert same_key(private_found, other_key)


# --- concurrency ------------------------------------------------------------------------


def test_concurrent_first_uses_share_one_fetch(server: JwksServer, key: rsa.RSAPrivateKey) -> None:
    server.serve(build_jwks((key, "k1")))
    server.release.clear()
    keys = cache(server.url, FakeClock())
    results: list[Any] = []

    def use() -> None:
        results.append(keys.get_key("k1"))

    threads = [threading.Thread(target=use) for _ in range(16)]
    for thread in threads:
        thread.start()
    assert server.entered.wait(5)
    time.sleep(0.1)  # let the other threads queue up behind the fetch
    server.release.set()
    for thread in threads:
        thread.join(10)
    assert len(results) == 16
    assert all(same_key(found, key) for found in results)
    assert server.hits == 1


def test_a_slow_refresh_does_not_hold_up_requests_with_cached_keys(
    server: JwksServer, key: rsa.RSAPrivateKey
) -> None:
    server.serve(build_jwks((key, "k1")))
    clock = FakeClock()
    keys = cache(server.url, clock)
    keys.get_key("k1")
    clock.advance(MAX_AGE)
    server.entered.clear()
    server.release.clear()
    refresher = threading.Thread(target=keys.get_key, args=("k1",))
    refresher.start()
    assert server.entered.wait(5)  # the refresh is now stuck in the server
    started = time.monotonic()
    assert same_key(keys.get_key("k1"), key)
    assert time.monotonic() - started < 1
    server.release.set()
    refresher.join(10)
    assert server.hits == 2
