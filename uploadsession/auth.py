"""Bearer-token validation and the permission table (DESIGN §3).

:class:`TokenValidator` turns the raw ``Authorization`` header into a :class:`Principal` or
raises :class:`~uploadsession.errors.InvalidToken` (401) with a short message saying what is
wrong; the message never contains the token. PyJWT does the signature and audience checks; the
time, issuer and Entra-specific claims are checked here, against an injectable clock, so that
every malformed claim is a 401 and never a 500.

A token that verified once is remembered (bounded, per validator) with the key that verified
it: a client sends the same token for its whole lifetime, and a repeat then costs a dictionary
lookup instead of PyJWT's parsing and an RSA verify (~150 µs). The JWKS is still asked for the
``kid``'s key on every call, and a different key object (a refresh or rotation) means a full
validation; the times, issuer and claims are checked on every call. See bench/ (token cost).

:func:`authorize` applies the permission table and raises
:class:`~uploadsession.errors.InsufficientScope` (403) naming the acceptable permissions;
:func:`sees_all` says whether the caller may see sessions other users created, and
:func:`writes_all` whether it may upload to them.
"""

from __future__ import annotations

import enum
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from uploadsession.errors import AccessDenied, InsufficientScope, InvalidToken

PERSONAL_ACCOUNT_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
MAX_TOKEN_CHARS = 16384
ALGORITHM = "RS256"
#: How many verified tokens a validator remembers (oldest forgotten first).
VERIFIED_TOKENS_KEPT = 1024
#: The public cloud's issuers; sovereign clouds set AUTH_AUTHORITY_HOST / AUTH_V1_ISSUER_HOST.
PUBLIC_AUTHORITY_HOST = "https://login.microsoftonline.com"
PUBLIC_V1_ISSUER_HOST = "https://sts.windows.net"

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# JWS compact serialization: three base64url segments (an empty signature is left to the alg check).
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class Operation(enum.Enum):
    """What a request does: GET is READ; PUT, POST and DELETE are WRITE."""

    READ = "read"
    WRITE = "write"


@dataclass(frozen=True)
class Principal:
    """The validated caller."""

    tenant_id: str  # lower-case GUID (tid)
    app_id: str  # azp (v2) or appid (v1)
    user_id: str | None  # lower-case oid for delegated tokens; None for application tokens
    delegated: bool
    permissions: frozenset[str]  # scp (delegated) or roles (application)


class KeySource(Protocol):
    """Resolves a ``kid`` to a public key, like :class:`~uploadsession.jwks.JwksCache`."""

    def get_key(self, kid: str) -> Any: ...


# Operation → (delegated permissions, application permissions); one of the row is needed.
_JOB_PERMISSIONS: Mapping[Operation, tuple[tuple[str, ...], tuple[str, ...]]] = {
    Operation.READ: (
        ("PrintJob.Read", "PrintJob.ReadWrite", "PrintJob.Read.All", "PrintJob.ReadWrite.All"),
        ("PrintJob.Read.All", "PrintJob.ReadWrite.All"),
    ),
    Operation.WRITE: (
        ("PrintJob.ReadWrite", "PrintJob.ReadWrite.All"),
        ("PrintJob.ReadWrite.All",),
    ),
}
# ...and always one of these ("Get printer").
_PRINTER_PERMISSIONS: tuple[tuple[str, ...], tuple[str, ...]] = (
    ("Printer.Read.All", "Printer.ReadWrite.All", "Printer.FullControl.All"),
    ("Printer.Read.All", "Printer.ReadWrite.All"),
)
_SEE_ALL_DELEGATED = frozenset({"PrintJob.Read.All", "PrintJob.ReadWrite.All"})
_WRITE_ALL_DELEGATED = frozenset({"PrintJob.ReadWrite.All"})


def authorize(principal: Principal, operation: Operation) -> None:
    """Raise InsufficientScope unless ``principal`` holds the permissions ``operation`` needs."""
    kind = 0 if principal.delegated else 1
    missing = [
        row[kind]
        for row in (_JOB_PERMISSIONS[operation], _PRINTER_PERMISSIONS)
        if principal.permissions.isdisjoint(row[kind])
    ]
    if not missing:
        return
    claim = (
        "delegated permissions (scp)" if principal.delegated else "application permissions (roles)"
    )
    needed = " and ".join("one of " + ", ".join(names) for names in missing)
    raise InsufficientScope(f"Insufficient privileges: this request needs {claim}: {needed}.")


def sees_all(principal: Principal, operation: Operation) -> bool:
    """True if the caller may see every session of its tenant, not only those it created."""
    del operation  # the same rule for reads and writes; kept for a uniform call site
    if not principal.delegated:
        return True
    return not principal.permissions.isdisjoint(_SEE_ALL_DELEGATED)


def writes_all(principal: Principal) -> bool:
    """True if the caller may upload to every session of its tenant, not only those it
    created: an application, or a user with ``PrintJob.ReadWrite.All`` (``Read.All`` lets a
    user see others' sessions, not write to them)."""
    if not principal.delegated:
        return True
    return not principal.permissions.isdisjoint(_WRITE_ALL_DELEGATED)


class TokenValidator:
    """Validates Microsoft Entra ID access tokens (v1 or v2) for the accepted audiences."""

    def __init__(
        self,
        audiences: Sequence[str],
        jwks: KeySource,
        *,
        clock_skew_seconds: int = 300,
        authority_host: str = PUBLIC_AUTHORITY_HOST,
        v1_issuer_host: str = PUBLIC_V1_ISSUER_HOST,
        now: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(audiences, str) or not audiences:
            raise ValueError("audiences must be a non-empty sequence of strings")
        self._audiences = list(audiences)
        self._jwks = jwks
        self._leeway = clock_skew_seconds
        self._issuer_hosts = (authority_host.rstrip("/"), v1_issuer_host.rstrip("/"))
        self._now = now
        # token → (kid, the key object that verified it, its verified claims); insertion order.
        self._verified: dict[str, tuple[str, Any, dict[str, Any]]] = {}
        self._verified_lock = threading.Lock()

    def validate(self, authorization: str | None) -> Principal:
        """The caller of a request with this ``Authorization`` header value."""
        token = _bearer_token(authorization)
        known = self._verified.get(token)
        if known is not None and self._jwks.get_key(known[0]) is known[1]:
            claims = known[2]  # verified before with the key the JWKS still holds for its kid
        else:
            header = _unverified_header(token)
            if header.get("alg") != ALGORITHM:
                raise InvalidToken("The token must be signed with RS256.")
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise InvalidToken("The token header has no key id (kid).")
            key = self._jwks.get_key(kid)
            claims = self._verified_claims(token, key)
            self._remember(token, kid, key, claims)
        self._check_times(claims)
        tenant_id = _tenant(claims, *self._issuer_hosts)
        if tenant_id == PERSONAL_ACCOUNT_TENANT:
            raise AccessDenied(
                "Personal Microsoft accounts are not supported; use a work or school account."
            )
        return _principal(claims, tenant_id)

    def _remember(self, token: str, kid: str, key: Any, claims: dict[str, Any]) -> None:
        with self._verified_lock:
            while len(self._verified) >= VERIFIED_TOKENS_KEPT:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = (kid, key, claims)

    def _verified_claims(self, token: str, key: Any) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audiences,
                options={
                    "require": ["aud"],
                    # Checked in _check_times against the injectable clock.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    # Needs the token's own tid: checked in _tenant.
                    "verify_iss": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise InvalidToken("The token's signature is invalid.") from None
        except jwt.InvalidAlgorithmError:
            raise InvalidToken("The token must be signed with RS256.") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("The token's audience (aud) is not accepted.") from None
        except jwt.MissingRequiredClaimError as error:
            raise InvalidToken(f"The token has no {error.claim} claim.") from None
        except jwt.DecodeError:
            raise InvalidToken("The token is not a well-formed JWT.") from None
        except jwt.PyJWTError as error:
            raise InvalidToken(f"The token is invalid ({type(error).__name__}).") from None
        except (ValueError, TypeError, KeyError, RecursionError):
            raise InvalidToken("The token is not a well-formed JWT.") from None

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._now()
        exp = _time_claim(claims, "exp", required=True)
        nbf = _time_claim(claims, "nbf", required=True)
        iat = _time_claim(claims, "iat", required=False)
        if exp is not None and exp <= now - self._leeway:
            raise InvalidToken("The token has expired.")
        if nbf is not None and nbf > now + self._leeway:
            raise InvalidToken("The token is not valid yet (nbf).")
        if iat is not None and iat > now + self._leeway:
            raise InvalidToken("The token was issued in the future (iat).")


def _bearer_token(authorization: str | None) -> str:
    if authorization is None or not authorization.strip():
        raise InvalidToken("The request has no Authorization header.", challenge_error=False)
    scheme, *rest = authorization.split(None, 1)
    if scheme.lower() != "bearer":
        raise InvalidToken("The Authorization header must use the Bearer scheme.")
    token = rest[0].strip() if rest else ""
    if not token:
        raise InvalidToken("The Authorization header has no bearer token.")
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken(f"The token is longer than {MAX_TOKEN_CHARS} characters.")
    if not _COMPACT_JWS.fullmatch(token):
        raise InvalidToken("The token is not a well-formed JWT.")
    return token


def _unverified_header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError, RecursionError):
        raise InvalidToken("The token is not a well-formed JWT.") from None


def _time_claim(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise InvalidToken(f"The token has no {name} claim.")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidToken(f"The token's {name} claim is not a number.")
    return float(value)


def _guid_claim(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if value is None:
        raise InvalidToken(f"The token has no {name} claim.")
    if not isinstance(value, str) or not _GUID.fullmatch(value):
        raise InvalidToken(f"The token's {name} claim is not a GUID.")
    return value


def _tenant(claims: Mapping[str, Any], authority_host: str, v1_issuer_host: str) -> str:
    """The lower-case tenant id, after checking ``iss`` against the token's own ``tid``: the
    v2 issuer ``{authority}/{tid}/v2.0`` or the v1 issuer ``{v1 host}/{tid}/`` of the cloud."""
    tid = _guid_claim(claims, "tid")
    iss = claims.get("iss")
    if iss is None:
        raise InvalidToken("The token has no iss claim.")
    accepted = (f"{authority_host}/{tid}/v2.0", f"{v1_issuer_host}/{tid}/")
    if not isinstance(iss, str) or iss not in accepted:
        raise InvalidToken("The token's issuer (iss) does not match its tenant (tid).")
    return tid.lower()


def _optional_str(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidToken(f"The token's {name} claim is not a string.")
    return value


def _principal(claims: Mapping[str, Any], tenant_id: str) -> Principal:
    app_id = _optional_str(claims, "azp") or _optional_str(claims, "appid")
    if not app_id:
        raise InvalidToken("The token has no azp or appid claim.")
    idtyp = _optional_str(claims, "idtyp")
    scp = _optional_str(claims, "scp")
    roles = claims.get("roles")
    if roles is not None and (
        not isinstance(roles, list) or not all(isinstance(r, str) for r in roles)
    ):
        raise InvalidToken("The token's roles claim is not a list of strings.")

    # Application: idtyp "app", or no scp and a roles list. An explicit idtyp "user" stays
    # delegated even without scp (it then holds no permission), so that app roles assigned
    # to a user can never pass for an application's.
    if idtyp == "app" or (idtyp != "user" and scp is None and roles is not None):
        if scp is not None:
            raise InvalidToken("The token is an application token but carries scp.")
        return Principal(
            tenant_id=tenant_id,
            app_id=app_id,
            user_id=None,
            delegated=False,
            permissions=frozenset(roles or ()),
        )
    if scp is None and idtyp != "user":
        raise InvalidToken("The token has neither scp nor roles.")
    return Principal(
        tenant_id=tenant_id,
        app_id=app_id,
        user_id=_guid_claim(claims, "oid").lower(),
        delegated=True,
        permissions=frozenset((scp or "").split()),
    )
