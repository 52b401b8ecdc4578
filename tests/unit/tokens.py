"""Mint Entra-ID-shaped test tokens with a local RSA key.

A test makes a key with :func:`generate_key`, hands its public part to the validator
(:class:`StaticKeys` over :func:`build_jwks`, or the JWKS written to a file for a ``file://``
URI), and signs claims from :func:`delegated_claims` or :func:`app_claims` with :func:`mint`.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from uploadsession.errors import InvalidToken

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
USER = "853364e6-6be9-4003-ad9b-acab84b41643"
APP = "53328905-26eb-415a-96f6-311c68bb818e"
AUDIENCE = "api://uploadsession-tests"
KID = "test-key-1"
LIFETIME_SECONDS = 3600


def generate_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A fresh RSA private key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def public_jwk(key: rsa.RSAPrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    """The public JWK of ``key`` as Entra publishes it (``use`` "sig"); ``extra`` overrides."""
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.pop("key_ops", None)
    jwk.update({"kid": kid, "use": "sig"})
    jwk.update(extra)
    return jwk


def build_jwks(*keys: tuple[rsa.RSAPrivateKey, str]) -> dict[str, Any]:
    """A JWKS document with the public part of each ``(key, kid)``."""
    return {"keys": [public_jwk(key, kid) for key, kid in keys]}


def mint(
    key: Any,
    kid: str | None,
    *,
    alg: str = "RS256",
    extra_headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A signed JWT with ``claims`` (any JSON); ``kid`` None leaves the header without one."""
    headers: dict[str, Any] = {"typ": "JWT"}
    if kid is not None:
        headers["kid"] = kid
    headers.update(extra_headers or {})
    # Through PyJWS, not jwt.encode, so that tests can sign claims of any type (jwt.encode
    # refuses, e.g., a non-string iss).
    payload = json.dumps(claims, separators=(",", ":")).encode()
    return jwt.api_jws.PyJWS().encode(payload, key, algorithm=alg, headers=headers)


def _common_claims(
    tenant: str, aud: str, app_id: str, now: float | None, lifetime: int
) -> dict[str, Any]:
    issued = int(time.time() if now is None else now)
    return {
        "aud": aud,
        "iss": f"https://login.microsoftonline.com/{tenant}/v2.0",
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
        "tid": tenant,
        "azp": app_id,
        "ver": "2.0",
        "uti": uuid.uuid4().hex,
    }


def delegated_claims(
    tenant: str = TENANT,
    user: str = USER,
    scp: str = "PrintJob.ReadWrite.All Printer.Read.All",
    aud: str = AUDIENCE,
    *,
    app_id: str = APP,
    now: float | None = None,
    lifetime: int = LIFETIME_SECONDS,
) -> dict[str, Any]:
    """Claims of a v2 delegated (user) token: ``scp`` space-separated, ``oid`` the user."""
    claims = _common_claims(tenant, aud, app_id, now, lifetime)
    claims.update({"oid": user, "sub": uuid.uuid5(uuid.NAMESPACE_URL, user).hex, "scp": scp})
    return claims


def app_claims(
    tenant: str = TENANT,
    roles: list[str] | tuple[str, ...] = ("PrintJob.ReadWrite.All", "Printer.Read.All"),
    aud: str = AUDIENCE,
    *,
    app_id: str = APP,
    now: float | None = None,
    lifetime: int = LIFETIME_SECONDS,
) -> dict[str, Any]:
    """Claims of a v2 application (client credentials) token: ``roles``, no ``scp``."""
    claims = _common_claims(tenant, aud, app_id, now, lifetime)
    service_principal = str(uuid.uuid5(uuid.NAMESPACE_URL, app_id))
    claims.update({"oid": service_principal, "sub": service_principal, "roles": list(roles)})
    return claims


class StaticKeys:
    """A fixed key source for TokenValidator (no fetching): ``kid`` → public key."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self._keys = {jwk["kid"]: jwt.PyJWK(jwk, algorithm="RS256").key for jwk in jwks["keys"]}

    def get_key(self, kid: str) -> Any:
        try:
            return self._keys[kid]
        except KeyError:
            raise InvalidToken("The token's signing key (kid) is not in the JWKS.") from None
