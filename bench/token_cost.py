"""Token cost: ``TokenValidator.validate`` with a warm JWKS cache vs one bare RS256 verify.

Measured: ``validate("Bearer …")`` on a validator whose ``file://`` JWKS is already loaded —
for a token it has not seen (``first sight``: a pool of distinct tokens, larger than any cache)
and for the same token again (``repeat``: what a client does for the token's lifetime).
Baseline: one ``RSAPublicKey.verify`` (cryptography, PKCS#1 v1.5 + SHA-256) of the same token's
signature with the same key — the irreducible part of validating it.
Also shown, to explain the difference: PyJWT's ``decode`` alone and its header parse.
Target: at most 1.5x the bare verify's time.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from bench.harness import AUDIENCE, READ_WRITE, Check, Config, Result, median
from uploadsession.auth import TokenValidator
from uploadsession.dev import tokens as devtoken
from uploadsession.jwks import JwksCache

NAME = "token"
TITLE = "Token cost"


def _time_per_call(function: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - started) / calls


def run(config: Config) -> Result:
    rounds = config.pick(9, 3)
    calls = config.pick(3000, 300)
    with tempfile.TemporaryDirectory(prefix="uploadsession-bench-") as tmp:
        key_dir = Path(tmp)
        key, kid = devtoken.ensure_key(key_dir)
        jwks = JwksCache((key_dir / devtoken.JWKS_FILE).as_uri())
        validator = TokenValidator((AUDIENCE,), jwks)

        def mint() -> str:
            claims = devtoken.dev_claims(audience=AUDIENCE, scopes=READ_WRITE)  # unique "uti"
            return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

        token = mint()
        # More distinct tokens than any validator-side cache holds, cycled: every call is a
        # token the validator has not seen recently.
        pool = [f"Bearer {mint()}" for _ in range(config.pick(4096, 1500))]
        validator.validate(f"Bearer {token}")  # loads the JWKS
        public_key = jwks.get_key(kid)
        signing_input, _, signature_b64 = token.rpartition(".")
        signing_bytes = signing_input.encode()
        signature = jwt.utils.base64url_decode(signature_b64)
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
        header = f"Bearer {token}"
        options: Any = {
            "require": ["aud"],
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "verify_iss": False,
        }
        cursor = iter(range(1 << 62))

        def first_sight() -> None:
            validator.validate(pool[next(cursor) % len(pool)])

        functions: dict[str, Callable[[], object]] = {
            "bare verify": lambda: public_key.verify(signature, signing_bytes, pkcs1, sha256),
            "validate, repeat": lambda: validator.validate(header),
            "validate, first sight": first_sight,
            "PyJWT decode alone": lambda: jwt.decode(
                token, public_key, algorithms=["RS256"], audience=[AUDIENCE], options=options
            ),
            "PyJWT get_unverified_header": lambda: jwt.get_unverified_header(token),
        }
        for function in functions.values():
            _time_per_call(function, 200)  # warm up
        times: dict[str, list[float]] = {name: [] for name in functions}
        names = list(functions)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                times[name].append(_time_per_call(functions[name], calls))

    bare = times["bare verify"]
    rows = []
    for name in names:
        per_call = median(times[name])
        ratio = median([t / b for t, b in zip(times[name], bare, strict=True)])
        rows.append([name, per_call * 1e6, 1 / per_call, f"{ratio:.2f}x"])
    repeat = median([t / b for t, b in zip(times["validate, repeat"], bare, strict=True)])
    first = median([t / b for t, b in zip(times["validate, first sight"], bare, strict=True)])
    return Result(
        NAME,
        TITLE,
        measured="TokenValidator.validate, JWKS cache warm (repeat token / first sight)",
        baseline="RSAPublicKey.verify of the same token (cryptography, RS256)",
        columns=["", "µs/call", "calls/s", "x bare verify"],
        rows=rows,
        checks=[
            Check("validate (repeat token) vs bare verify", repeat, "<=", 1.5),
            Check("validate (first sight) vs bare verify", first, "<=", 1.5),
        ],
        settings={"rounds": rounds, "calls_per_round": calls, "token_chars": len(token)},
        data={"us_per_call": {name: median(times[name]) * 1e6 for name in names}},
        quick=config.quick,
    )
