"""Development tokens: a local RSA key under ``.local/`` and the JWKS that trusts it.

``make run`` points ``AUTH_JWKS_URI`` at ``file://…/.local/jwks.json``; tokens minted here are
shaped like Entra ID v2 access tokens (``iss``, ``tid``, ``oid``, ``azp``, ``scp``/``roles``).
Never use this key for anything but local development: ``.local/`` is git-ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEV_TENANT = "11111111-1111-4111-8111-111111111111"
DEV_USER = "22222222-2222-4222-8222-222222222222"
DEV_APP = "33333333-3333-4333-8333-333333333333"
DEV_AUDIENCE = "api://uploadsession-dev"
DEFAULT_SCOPES = "PrintJob.ReadWrite Printer.Read.All"
KEY_FILE = "dev-signing-key.pem"
JWKS_FILE = "jwks.json"


def ensure_key(key_dir: Path) -> tuple[rsa.RSAPrivateKey, str]:
    """Load the dev signing key, creating it (and the JWKS file) on first use."""
    key_dir.mkdir(parents=True, exist_ok=True)
    key_path = key_dir / KEY_FILE
    if key_path.exists():
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        key = loaded
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        write_private_key(key_path, key)
    kid = key_id(key)
    jwks_path = key_dir / JWKS_FILE
    jwks = jwks_for(key, kid)
    if not jwks_path.exists() or json.loads(jwks_path.read_text()) != jwks:
        jwks_path.write_text(json.dumps(jwks, indent=2))
    return key, kid


def write_private_key(path: Path, key: Any, *, overwrite: bool = False) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM readable by its owner only (0600 from the
    start, never briefly world-readable); ``overwrite`` replaces an existing file."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    mode = os.O_TRUNC if overwrite else os.O_EXCL
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | mode, 0o600), "wb") as out:
        out.write(pem)


def key_id(key: rsa.RSAPrivateKey) -> str:
    """A stable kid: a hash of the public key (so the JWKS and tokens always agree)."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "dev-" + hashlib.sha256(der).hexdigest()[:16]


def jwks_for(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return {"keys": [jwk]}


def dev_claims(
    *,
    audience: str,
    tenant: str = DEV_TENANT,
    user: str | None = DEV_USER,
    app: str = DEV_APP,
    scopes: str | None = DEFAULT_SCOPES,
    roles: list[str] | None = None,
    lifetime_seconds: int = 12 * 3600,
    now: float | None = None,
) -> dict[str, Any]:
    """Claims of a v2 access token; ``roles`` makes it an application token."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "aud": audience,
        "iss": f"https://login.microsoftonline.com/{tenant}/v2.0",
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime_seconds,
        "tid": tenant,
        "azp": app,
        "ver": "2.0",
        "uti": uuid.uuid4().hex,
    }
    if roles is not None:
        claims.update(
            {"idtyp": "app", "roles": roles, "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, app))}
        )
    else:
        claims.update({"scp": scopes or "", "oid": user or DEV_USER, "idtyp": "user"})
    return claims


def mint(key_dir: Path, claims: dict[str, Any]) -> str:
    key, kid = ensure_key(key_dir)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})
