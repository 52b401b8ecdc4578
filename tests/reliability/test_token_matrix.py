"""Bad tokens over HTTP (DESIGN §3): every one is refused on every operation with the right
status, Graph's envelope and the right ``WWW-Authenticate`` challenge; no token is logged."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.conftest import UNSUBSCRIBED_TENANT, Api, start_api
from tests.processes import Azurite
from tests.reliability.conftest import assert_envelope, segment_headers
from tests.unit import tokens

INVALID = 'Bearer realm="uploadsession", error="invalid_token"'
NO_TOKEN = 'Bearer realm="uploadsession"'
SCOPE = 'Bearer realm="uploadsession", error="insufficient_scope"'
PERSONAL_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
OTHER_TENANT = "5b0e6a7c-1f2d-4e3a-9b8c-7d6e5f4a3b2c"
FULL = "PrintJob.ReadWrite.All Printer.Read.All"
METHODS = ("GET", "PUT", "POST", "DELETE")

# Made once: RSA key generation is the slow part.
ATTACKER_KEY = tokens.generate_key()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A JWS built by hand, for what PyJWT refuses to produce."""
    head = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    return head + "." + b64url(signature)


def delegated(**changes: Any) -> dict[str, Any]:
    claims = tokens.delegated_claims(tokens.TENANT, tokens.USER, FULL, tokens.AUDIENCE)
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def application(roles: Any, **changes: Any) -> dict[str, Any]:
    claims = tokens.app_claims(tokens.TENANT, ["Printer.Read.All"], tokens.AUDIENCE)
    claims["roles"] = roles
    claims.update(changes)
    return claims


def signed(claims: dict[str, Any], **kwargs: Any) -> Callable[[rsa.RSAPrivateKey], str]:
    return lambda key: "Bearer " + tokens.mint(key, tokens.KID, **kwargs, **claims)


def with_tenant(tenant: str, **changes: Any) -> dict[str, Any]:
    return delegated(tid=tenant, iss=f"https://login.microsoftonline.com/{tenant}/v2.0", **changes)


def hs256_with_public_key(key: rsa.RSAPrivateKey) -> str:
    """The classic confusion: HMAC-SHA256 keyed with the server's own public key (PEM)."""
    secret = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = compact({"alg": "HS256", "typ": "JWT", "kid": tokens.KID}, delegated())
    unsigned = head.rsplit(".", 1)[0]
    mac = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
    return "Bearer " + unsigned + "." + b64url(mac)


def tampered(key: rsa.RSAPrivateKey) -> str:
    """A real token whose payload was swapped after signing (read-only user made .All)."""
    token = tokens.mint(key, tokens.KID, **delegated(scp="PrintJob.Read Printer.Read.All"))
    head, _, signature = token.split(".")
    return "Bearer " + ".".join([head, b64url(json.dumps(delegated()).encode()), signature])


def stripped(key: rsa.RSAPrivateKey) -> str:
    return "Bearer " + tokens.mint(key, tokens.KID, **delegated()).rsplit(".", 1)[0] + "."


def now() -> int:
    return int(time.time())


@dataclass(frozen=True)
class Case:
    name: str
    authorization: Callable[[rsa.RSAPrivateKey], str | bytes | None]
    status: int
    code: str
    challenge: str | None  # the WWW-Authenticate value; None: no such header

    def expected(self, method: str) -> tuple[int, str, str | None]:
        return self.status, self.code, self.challenge


@dataclass(frozen=True)
class WriteOnly(Case):
    """Refused for PUT/POST/DELETE only (a read permission): GET gets past auth."""

    def expected(self, method: str) -> tuple[int, str, str | None]:
        if method == "GET":
            return 404, "itemNotFound", None
        return self.status, self.code, self.challenge


def bad(name: str, authorization: Callable[[rsa.RSAPrivateKey], str | bytes | None]) -> Case:
    return Case(name, authorization, 401, "InvalidAuthenticationToken", INVALID)


def denied(name: str, claims: dict[str, Any]) -> Case:
    return Case(name, signed(claims), 403, "accessDenied", SCOPE)


CASES: list[Case] = [
    Case("no Authorization header", lambda key: None, 401, "InvalidAuthenticationToken", NO_TOKEN),
    Case("empty Authorization header", lambda key: "", 401, "InvalidAuthenticationToken", NO_TOKEN),
    bad("Basic scheme", lambda key: "Basic dXNlcjpwYXNzd29yZA=="),
    bad("Bearer without a token", lambda key: "Bearer"),
    bad("not a JWT", lambda key: "Bearer not-a-jwt"),
    bad("JWE-shaped, five parts", lambda key: "Bearer a.b.c.d.e"),
    bad("non-ASCII token", lambda key: "Bearer é.é.é".encode()),
    bad(
        "expired an hour ago",
        signed(delegated(exp=now() - 3600, nbf=now() - 7200, iat=now() - 7200)),
    ),
    bad(
        "expired just beyond the clock skew",
        signed(delegated(exp=now() - 330, nbf=now() - 3600, iat=now() - 3600)),
    ),
    bad("nbf an hour in the future", signed(delegated(nbf=now() + 3600))),
    bad("iat an hour in the future", signed(delegated(iat=now() + 3600))),
    bad("no exp", signed(delegated(exp=None))),
    bad("no nbf", signed(delegated(nbf=None))),
    bad("exp is a string", signed(delegated(exp=str(now() + 3600)))),
    bad("exp is Infinity", signed(delegated(exp=float("inf")))),
    bad("wrong aud", signed(delegated(aud="api://someone-else"))),
    bad("no aud", signed(delegated(aud=None))),
    bad("aud list without ours", signed(delegated(aud=["api://a", "api://b"]))),
    bad(
        "iss of another tenant",
        signed(delegated(iss=f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0")),
    ),
    bad(
        "v1 iss of another tenant",
        signed(delegated(iss=f"https://sts.windows.net/{OTHER_TENANT}/")),
    ),
    bad(
        "iss on a foreign host",
        signed(delegated(iss=f"https://login.example.com/{tokens.TENANT}/v2.0")),
    ),
    bad("no iss", signed(delegated(iss=None))),
    bad(
        "signed by a foreign key under our kid",
        lambda key: "Bearer " + tokens.mint(ATTACKER_KEY, tokens.KID, **delegated()),
    ),
    bad(
        "unknown kid",
        lambda key: "Bearer " + tokens.mint(ATTACKER_KEY, "attacker-kid", **delegated()),
    ),
    bad("no kid", lambda key: "Bearer " + tokens.mint(key, None, **delegated())),
    bad(
        "kid path traversal",
        lambda key: "Bearer " + tokens.mint(key, "../../jwks.json", **delegated()),
    ),
    bad(
        "alg none",
        lambda key: (
            "Bearer " + compact({"alg": "none", "typ": "JWT", "kid": tokens.KID}, delegated())
        ),
    ),
    bad("HS256 keyed with our public key", hs256_with_public_key),
    bad("RS512 with our key", signed(delegated(), alg="RS512")),
    bad("PS256 with our key", signed(delegated(), alg="PS256")),
    bad(
        "embedded jwk of the attacker",
        lambda key: (
            "Bearer "
            + tokens.mint(
                ATTACKER_KEY,
                "attacker-kid",
                extra_headers={"jwk": tokens.public_jwk(ATTACKER_KEY, "x")},
                **delegated(),
            )
        ),
    ),
    bad(
        "jku pointing at the attacker",
        lambda key: (
            "Bearer "
            + tokens.mint(
                ATTACKER_KEY,
                "attacker-kid",
                extra_headers={"jku": "http://127.0.0.1:9/keys"},
                **delegated(),
            )
        ),
    ),
    bad("payload tampered after signing", tampered),
    bad("signature stripped", stripped),
    bad("over 16 KB", signed(delegated(padding="x" * 17000))),
    bad("tid not a GUID", signed(with_tenant("contoso.onmicrosoft.com"))),
    bad("no tid", signed(delegated(tid=None))),
    bad("oid not a GUID", signed(delegated(oid="admin"))),
    bad("no oid on a user token", signed(delegated(oid=None))),
    bad("neither azp nor appid", signed(delegated(azp=None))),
    bad("scp is a number", signed(delegated(scp=42))),
    bad("roles not a list", signed(application("PrintJob.ReadWrite.All Printer.Read.All"))),
    bad(
        "app token that also carries scp",
        signed(application(["PrintJob.ReadWrite.All", "Printer.Read.All"], idtyp="app", scp=FULL)),
    ),
    Case(
        "personal Microsoft account",
        signed(with_tenant(PERSONAL_TENANT)),
        403,
        "accessDenied",
        None,
    ),
    Case(
        "tenant without a subscription",
        signed(with_tenant(UNSUBSCRIBED_TENANT)),
        403,
        "accessDenied",
        None,
    ),
    denied(
        "app token with delegated-only roles",
        application(["PrintJob.ReadWrite", "Printer.Read.All"]),
    ),
    denied("scope names in another case", delegated(scp="printjob.readwrite.all printer.read.all")),
    denied("no Printer permission", delegated(scp="PrintJob.ReadWrite.All")),
    denied("empty scp", delegated(scp="")),
    denied(
        "user token with roles only",
        delegated(scp=None, idtyp="user", roles=["PrintJob.ReadWrite.All", "Printer.Read.All"]),
    ),
    denied(
        "app role Printer.FullControl.All (delegated-only)",
        application(["PrintJob.ReadWrite.All", "Printer.FullControl.All"]),
    ),
    WriteOnly(
        "PrintJob.Read writing",
        signed(delegated(scp="PrintJob.Read Printer.Read.All")),
        403,
        "accessDenied",
        SCOPE,
    ),
    WriteOnly(
        "app PrintJob.Read.All writing",
        signed(application(["PrintJob.Read.All", "Printer.Read.All"])),
        403,
        "accessDenied",
        SCOPE,
    ),
]


@pytest.fixture(scope="module")
def token_api(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    running = start_api(azurite, tmp_path_factory.mktemp("tokens"))
    try:
        yield running
    finally:
        running.server.stop()


def send(
    client: httpx.Client, api: Api, method: str, url: str, authorization: str | bytes | None
) -> httpx.Response:
    auth: dict[str, str | bytes] = {} if authorization is None else {"Authorization": authorization}
    if method == "PUT":
        return client.put(
            url,
            json={"size": 3, "contentType": "text/plain", "documentName": "a.txt"},
            headers=auth,
        )
    if method == "POST":
        headers: dict[str, str | bytes] = {
            **segment_headers(api, b"abc", 0, 3, if_match="*"),
            **auth,
        }
        if authorization is None:
            headers.pop("Authorization")
        return client.post(url + "/$value", content=b"abc", headers=headers)
    return client.request(method, url, headers=auth)


def test_the_matrix_has_at_least_30_bad_tokens() -> None:
    assert len(CASES) >= 30
    assert len({case.name for case in CASES}) == len(CASES)


def test_a_valid_token_gets_past_authentication_on_every_operation(
    token_api: Api,
    client: httpx.Client,
) -> None:
    """The control: the same requests with good tokens are not refused."""
    app_token = token_api.token(roles=["PrintJob.ReadWrite.All", "Printer.Read.All"])
    for authorization in (f"Bearer {token_api.token(scp=FULL)}", f"bearer {app_token}"):
        url = token_api.session_url()
        statuses = [send(client, token_api, m, url, authorization).status_code for m in METHODS]
        assert statuses == [404, 200, 201, 204], statuses


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_bad_token_is_refused_on_every_operation(
    token_api: Api,
    client: httpx.Client,
    case: Case,
) -> None:
    authorization = case.authorization(token_api.key)
    url = token_api.session_url()
    for method in METHODS:
        response = send(client, token_api, method, url, authorization)
        status, code, challenge = case.expected(method)
        assert_envelope(response, status, code)
        assert response.headers.get("WWW-Authenticate") == challenge, method
        if isinstance(authorization, str) and len(authorization) > 20:
            assert authorization.split()[-1] not in response.text
    # Nothing was created by any of them.
    good = {"Authorization": f"Bearer {token_api.token(scp=FULL)}"}
    assert client.get(url, headers=good).status_code == 404


def test_no_token_reaches_the_log(token_api: Api, client: httpx.Client) -> None:
    """Run after the matrix (same module): the server log holds no token or signature."""
    sent = [token_api.token(scp=FULL), token_api.token(user=str(uuid.uuid4()))]
    for token in sent:
        client.get(token_api.session_url(), headers={"Authorization": f"Bearer {token}"})
        client.get(token_api.session_url() + f"?access_token={token}")
    for case in CASES:
        value = case.authorization(token_api.key)
        if isinstance(value, str) and value.count(".") >= 2:
            sent.append(value.split()[-1])
    log = Path(token_api.server.log).read_text(errors="replace")
    assert log.count('"GET ') >= 4  # the requests above were logged ...
    for token in sent:
        signature = token.rsplit(".", 1)[-1]
        assert token not in log
        assert len(signature) < 16 or signature not in log  # ... without their tokens
