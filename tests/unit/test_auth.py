"""Token validation and the permission table (DESIGN §3)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.unit.tokens import (
    APP,
    AUDIENCE,
    KID,
    TENANT,
    USER,
    StaticKeys,
    app_claims,
    build_jwks,
    delegated_claims,
    generate_key,
    mint,
)
from uploadsession.auth import (
    PERSONAL_ACCOUNT_TENANT,
    Operation,
    Principal,
    TokenValidator,
    authorize,
    sees_all,
    writes_all,
)
from uploadsession.errors import AccessDenied, ApiError, InsufficientScope, InvalidToken

NOW = 1_700_000_000
SKEW = 300
OTHER_TENANT = "0b5a3d2e-1c4f-4e6a-9b8d-7f6e5d4c3b2a"
INVALID_TOKEN_CHALLENGE = 'Bearer realm="uploadsession", error="invalid_token"'


@dataclass(frozen=True)
class Keys:
    signing: rsa.RSAPrivateKey
    foreign: rsa.RSAPrivateKey


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(signing=generate_key(), foreign=generate_key())


@pytest.fixture(scope="module")
def validator(keys: Keys) -> TokenValidator:
    source = StaticKeys(build_jwks((keys.signing, KID)))
    return TokenValidator(
        [AUDIENCE, "other-audience"], source, clock_skew_seconds=SKEW, now=lambda: NOW
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_token(secret: bytes, header: dict[str, Any], claims: Any) -> str:
    """Hand-signed, since PyJWT (rightly) refuses to HMAC with a PEM-looking secret."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def user(**changes: Any) -> dict[str, Any]:
    claims = delegated_claims(
        TENANT, USER, "PrintJob.ReadWrite Printer.Read.All", AUDIENCE, now=NOW
    )
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def app(**changes: Any) -> dict[str, Any]:
    claims = app_claims(TENANT, ["PrintJob.ReadWrite.All", "Printer.Read.All"], AUDIENCE, now=NOW)
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def tampered(key: rsa.RSAPrivateKey) -> str:
    """A genuine token whose payload is swapped for one with more permissions."""
    header, _, signature = mint(key, KID, **user()).split(".")
    richer = mint(key, KID, **user(scp="PrintJob.ReadWrite.All Printer.Read.All")).split(".")[1]
    return f"{header}.{richer}.{signature}"


def bearer(token: str) -> str:
    return f"Bearer {token}"


def principal(delegated: bool, *permissions: str) -> Principal:
    return Principal(
        tenant_id=TENANT,
        app_id=APP,
        user_id=USER if delegated else None,
        delegated=delegated,
        permissions=frozenset(permissions),
    )


# --- valid tokens -----------------------------------------------------------------------


def test_a_delegated_token_yields_the_user_principal(keys: Keys, validator: TokenValidator) -> None:
    found = validator.validate(bearer(mint(keys.signing, KID, **user())))
    assert found == Principal(
        tenant_id=TENANT,
        app_id=APP,
        user_id=USER,
        delegated=True,
        permissions=frozenset({"PrintJob.ReadWrite", "Printer.Read.All"}),
    )


def test_an_application_token_yields_an_app_principal_without_user(
    keys: Keys, validator: TokenValidator
) -> None:
    found = validator.validate(bearer(mint(keys.signing, KID, **app())))
    assert found.delegated is False
    assert found.user_id is None
    assert found.app_id == APP
    assert found.permissions == {"PrintJob.ReadWrite.All", "Printer.Read.All"}


def test_idtyp_app_marks_an_application_token_even_without_roles(
    keys: Keys, validator: TokenValidator
) -> None:
    found = validator.validate(bearer(mint(keys.signing, KID, **app(roles=None, idtyp="app"))))
    assert found.delegated is False
    assert found.permissions == frozenset()


def test_a_user_token_with_roles_but_no_scp_stays_delegated_and_holds_no_permission(
    keys: Keys, validator: TokenValidator
) -> None:
    claims = user(scp=None, idtyp="user", roles=["PrintJob.ReadWrite.All", "Printer.Read.All"])
    found = validator.validate(bearer(mint(keys.signing, KID, **claims)))
    assert (found.delegated, found.user_id, found.permissions) == (True, USER, frozenset())
    with pytest.raises(InsufficientScope):
        authorize(found, Operation.READ)


def test_a_v1_token_with_sts_issuer_and_appid_is_accepted(
    keys: Keys, validator: TokenValidator
) -> None:
    claims = user(iss=f"https://sts.windows.net/{TENANT}/", azp=None, appid=APP, ver="1.0")
    found = validator.validate(bearer(mint(keys.signing, KID, **claims)))
    assert found.app_id == APP
    assert found.tenant_id == TENANT


def test_a_sovereign_cloud_validator_accepts_its_own_issuers_and_refuses_the_public_one(
    keys: Keys,
) -> None:
    source = StaticKeys(build_jwks((keys.signing, KID)))
    china = TokenValidator(
        [AUDIENCE],
        source,
        clock_skew_seconds=SKEW,
        authority_host="https://login.chinacloudapi.cn/",
        v1_issuer_host="https://sts.chinacloudapi.cn",
        now=lambda: NOW,
    )
    v2 = user(iss=f"https://login.chinacloudapi.cn/{TENANT}/v2.0")
    v1 = user(iss=f"https://sts.chinacloudapi.cn/{TENANT}/", azp=None, appid=APP, ver="1.0")
    assert china.validate(bearer(mint(keys.signing, KID, **v2))).tenant_id == TENANT
    assert china.validate(bearer(mint(keys.signing, KID, **v1))).app_id == APP
    public = user(iss=f"https://login.microsoftonline.com/{TENANT}/v2.0")
    with pytest.raises(InvalidToken, match="issuer"):
        china.validate(bearer(mint(keys.signing, KID, **public)))


def test_the_scheme_is_case_insensitive_and_whitespace_tolerated(
    keys: Keys, validator: TokenValidator
) -> None:
    token = mint(keys.signing, KID, **user())
    assert validator.validate(f"  bEaReR\t{token} ").user_id == USER


def test_upper_case_guids_are_accepted_and_lower_cased(
    keys: Keys, validator: TokenValidator
) -> None:
    tid = TENANT.upper()
    claims = user(tid=tid, iss=f"https://login.microsoftonline.com/{tid}/v2.0", oid=USER.upper())
    found = validator.validate(bearer(mint(keys.signing, KID, **claims)))
    assert (found.tenant_id, found.user_id) == (TENANT, USER)


def test_an_expired_token_within_the_clock_skew_is_accepted(
    keys: Keys, validator: TokenValidator
) -> None:
    token = mint(keys.signing, KID, **user(exp=NOW - SKEW + 1))
    assert validator.validate(bearer(token)).user_id == USER


def test_a_not_yet_valid_token_within_the_clock_skew_is_accepted(
    keys: Keys, validator: TokenValidator
) -> None:
    token = mint(keys.signing, KID, **user(nbf=NOW + SKEW, iat=NOW + SKEW))
    assert validator.validate(bearer(token)).user_id == USER


def test_a_token_for_any_configured_audience_and_a_list_aud_are_accepted(
    keys: Keys, validator: TokenValidator
) -> None:
    assert validator.validate(bearer(mint(keys.signing, KID, **user(aud="other-audience"))))
    assert validator.validate(bearer(mint(keys.signing, KID, **user(aud=["x", AUDIENCE]))))


def test_a_token_of_exactly_16384_characters_is_parsed(
    keys: Keys, validator: TokenValidator
) -> None:
    pad = (16384 - len(mint(keys.signing, KID, **user(pad="")))) * 3 // 4
    while len(token := mint(keys.signing, KID, **user(pad="x" * pad))) > 16384:
        pad -= 1
    assert len(token) >= 16382  # base64 groups of 4 may leave it a character or two short
    assert validator.validate(bearer(token)).user_id == USER


# --- bad tokens: 401 --------------------------------------------------------------------

BadToken = Callable[[Keys], str]

BAD_TOKENS = [
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(exp=NOW - SKEW))),
        "expired",
        id="expired beyond the skew",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(nbf=NOW + SKEW + 1))),
        "not valid yet",
        id="nbf beyond the skew",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(iat=NOW + SKEW + 1))),
        "issued in the future",
        id="iat beyond the skew",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(exp=None))), "no exp", id="missing exp"
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(nbf=None))), "no nbf", id="missing nbf"
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(exp=str(NOW + 60)))),
        "exp claim is not a number",
        id="exp not a number",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(exp=True))),
        "exp claim is not a number",
        id="exp a boolean",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(exp=math.nan))),
        "exp claim is not a number",
        id="exp NaN",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(aud="api://someone-else"))),
        "audience",
        id="wrong aud",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(aud=None))), "no aud", id="missing aud"
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(aud=42))), "audience", id="aud not a string"
    ),
    pytest.param(
        lambda k: bearer(
            mint(
                k.signing, KID, **user(iss=f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0")
            )
        ),
        "issuer",
        id="iss of another tenant",
    ),
    pytest.param(
        lambda k: bearer(
            mint(k.signing, KID, **user(iss=f"https://login.microsoftonline.com/{TENANT}/"))
        ),
        "issuer",
        id="iss of neither form",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(iss=f"http://sts.windows.net/{TENANT}/"))),
        "issuer",
        id="iss over http",
    ),
    pytest.param(
        lambda k: bearer(
            mint(k.signing, KID, **user(iss=f"https://sts.windows.net/{TENANT.upper()}/"))
        ),
        "issuer",
        id="iss with the tid in another case",
    ),
    pytest.param(
        lambda k: bearer(
            mint(k.signing, KID, **user(iss="https://login.microsoftonline.com/common/v2.0"))
        ),
        "issuer",
        id="iss of the common endpoint",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(iss=None))), "no iss", id="missing iss"
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(iss=["x"]))), "issuer", id="iss not a string"
    ),
    pytest.param(
        lambda k: bearer(
            mint(k.signing, KID, **user(tid="contoso", iss="https://sts.windows.net/contoso/"))
        ),
        "tid claim is not a GUID",
        id="non-GUID tid",
    ),
    pytest.param(
        lambda k: bearer(
            mint(
                k.signing,
                KID,
                **user(
                    tid=TENANT.replace("-", ""),
                    iss=f"https://sts.windows.net/{TENANT.replace('-', '')}/",
                ),
            )
        ),
        "tid claim is not a GUID",
        id="tid a GUID without dashes",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(tid=7))),
        "tid claim is not a GUID",
        id="tid not a string",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(tid=None))), "no tid", id="missing tid"
    ),
    pytest.param(
        lambda k: bearer(mint(k.foreign, KID, **user())),
        "signature",
        id="signed by a foreign key with the same kid",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, "another-kid", **user())),
        "signing key (kid)",
        id="unknown kid",
    ),
    pytest.param(lambda k: bearer(mint(k.signing, None, **user())), "no key id", id="no kid"),
    pytest.param(
        lambda k: bearer(hs256_token(b"s", {"alg": "RS256", "kid": 5}, user())),
        "well-formed",
        id="kid not a string",
    ),
    pytest.param(lambda k: bearer(mint(None, KID, alg="none", **user())), "RS256", id="alg none"),
    pytest.param(
        lambda k: bearer(
            hs256_token(
                k.signing.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
                {"alg": "HS256", "typ": "JWT", "kid": KID},
                user(),
            )
        ),
        "RS256",
        id="HS256 with the public key PEM as secret",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, alg="RS512", **user())), "RS256", id="RS512"
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, alg="PS256", **user())), "RS256", id="PS256"
    ),
    pytest.param(lambda k: bearer(tampered(k.signing)), "signature", id="tampered payload"),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user())[:-10]), "signature", id="truncated token"
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user()).rsplit(".", 1)[0] + "."),
        "signature",
        id="signature removed",
    ),
    pytest.param(lambda k: bearer("not a token at all"), "well-formed", id="garbage"),
    pytest.param(lambda k: bearer("abc.def.ghi"), "well-formed", id="garbage in three segments"),
    pytest.param(lambda k: bearer(".."), "well-formed", id="two dots only"),
    pytest.param(lambda k: bearer("a.b.c.d.e"), "well-formed", id="a JWE-shaped token"),
    pytest.param(
        lambda k: bearer(f"{b64(b'{nope')}.{b64(b'{}')}.{b64(b'sig')}"),
        "well-formed",
        id="header not JSON",
    ),
    pytest.param(
        lambda k: bearer(f"{b64(b'[' * 5000)}.{b64(b'{}')}.{b64(b'sig')}"),
        "well-formed",
        id="header deeply nested",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(pad="x" * 16384))),
        "longer than 16384",
        id="oversize (> 16 KB)",
    ),
    pytest.param(lambda k: bearer("a" * 100_000), "longer than 16384", id="oversize garbage"),
    pytest.param(
        lambda k: "Basic dXNlcjpwYXNzd29yZA==", "Bearer scheme", id="wrong scheme (Basic)"
    ),
    pytest.param(lambda k: "Bearer", "no bearer token", id="bearer without token"),
    pytest.param(
        lambda k: bearer(
            mint(k.signing, KID, **user(scp=["PrintJob.ReadWrite", "Printer.Read.All"]))
        ),
        "scp claim is not a string",
        id="scp not a string",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **app(roles="PrintJob.ReadWrite.All"))),
        "roles claim",
        id="roles not a list",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **app(roles=[1]))),
        "roles claim",
        id="roles with a non-string",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(oid=None))),
        "no oid",
        id="delegated without oid",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(oid="alice"))),
        "oid claim is not a GUID",
        id="delegated with a non-GUID oid",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(azp=None))),
        "no azp or appid",
        id="missing azp and appid",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(azp=12))),
        "azp claim is not a string",
        id="azp not a string",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **user(scp=None))),
        "neither scp nor roles",
        id="neither scp nor roles",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **app(idtyp="app", scp="PrintJob.ReadWrite"))),
        "carries scp",
        id="application token carrying scp",
    ),
    pytest.param(
        lambda k: bearer(mint(k.signing, KID, **app(idtyp=["app"]))),
        "idtyp claim",
        id="idtyp not a string",
    ),
    pytest.param(
        lambda k: bearer(jwt.api_jws.PyJWS().encode(b"[]", k.signing, "RS256", {"kid": KID})),
        "well-formed",
        id="payload a JSON list",
    ),
]


@pytest.mark.parametrize(("make", "says"), BAD_TOKENS)
def test_a_bad_token_is_a_401_saying_what_is_wrong(
    make: BadToken, says: str, keys: Keys, validator: TokenValidator
) -> None:
    header = make(keys)
    with pytest.raises(InvalidToken) as caught:
        validator.validate(header)
    error = caught.value
    assert (error.status, error.code) == (401, "InvalidAuthenticationToken")
    assert error.headers() == {"WWW-Authenticate": INVALID_TOKEN_CHALLENGE}
    assert says in error.message
    for part in [header, *header.split()[-1].split(".")]:
        if len(part) > 8:  # never echo the token, nor a piece of it
            assert part not in error.message


@pytest.mark.parametrize("header", [None, "", "   "], ids=["missing", "empty", "blank"])
def test_no_token_is_a_401_whose_challenge_has_no_error(
    header: str | None, validator: TokenValidator
) -> None:
    with pytest.raises(InvalidToken) as caught:
        validator.validate(header)
    assert (caught.value.status, caught.value.code) == (401, "InvalidAuthenticationToken")
    assert caught.value.headers() == {"WWW-Authenticate": 'Bearer realm="uploadsession"'}


def test_a_personal_account_is_a_403_saying_not_supported(
    keys: Keys, validator: TokenValidator
) -> None:
    claims = user(
        tid=PERSONAL_ACCOUNT_TENANT,
        iss=f"https://login.microsoftonline.com/{PERSONAL_ACCOUNT_TENANT}/v2.0",
    )
    with pytest.raises(AccessDenied) as caught:
        validator.validate(bearer(mint(keys.signing, KID, **claims)))
    assert not isinstance(caught.value, InsufficientScope)
    assert (caught.value.status, caught.value.code) == (403, "accessDenied")
    assert "not supported" in caught.value.message


def test_a_personal_account_token_with_a_bad_signature_is_still_a_401(
    keys: Keys, validator: TokenValidator
) -> None:
    claims = user(
        tid=PERSONAL_ACCOUNT_TENANT,
        iss=f"https://login.microsoftonline.com/{PERSONAL_ACCOUNT_TENANT}/v2.0",
    )
    with pytest.raises(InvalidToken):
        validator.validate(bearer(mint(keys.foreign, KID, **claims)))


CLAIM_NAMES = [
    "aud",
    "iss",
    "tid",
    "exp",
    "nbf",
    "iat",
    "oid",
    "azp",
    "appid",
    "scp",
    "roles",
    "idtyp",
]
ODD_VALUES: list[Any] = [None, 0, -1, 10**30, 1.5, True, "", "x", [], ["x"], {}, {"a": 1}, math.inf]


@pytest.mark.parametrize("claim", CLAIM_NAMES)
def test_any_claim_of_any_type_is_answered_with_an_api_error_never_a_crash(
    claim: str, keys: Keys, validator: TokenValidator
) -> None:
    for make in (user, app):
        for value in ODD_VALUES:
            claims = make()
            claims[claim] = value
            try:
                validator.validate(bearer(mint(keys.signing, KID, **claims)))
            except ApiError as error:
                assert error.status in (401, 403)


def test_validator_refuses_an_empty_audience_list(keys: Keys) -> None:
    with pytest.raises(ValueError):
        TokenValidator([], StaticKeys(build_jwks((keys.signing, KID))))


# --- permissions ------------------------------------------------------------------------

READ_DELEGATED = [
    "PrintJob.Read",
    "PrintJob.ReadWrite",
    "PrintJob.Read.All",
    "PrintJob.ReadWrite.All",
]
READ_APP = ["PrintJob.Read.All", "PrintJob.ReadWrite.All"]
WRITE_DELEGATED = ["PrintJob.ReadWrite", "PrintJob.ReadWrite.All"]
WRITE_APP = ["PrintJob.ReadWrite.All"]
PRINTER_DELEGATED = ["Printer.Read.All", "Printer.ReadWrite.All", "Printer.FullControl.All"]
PRINTER_APP = ["Printer.Read.All", "Printer.ReadWrite.All"]

ALLOWED = (
    [
        (Operation.READ, True, job, printer)
        for job in READ_DELEGATED
        for printer in PRINTER_DELEGATED
    ]
    + [(Operation.READ, False, job, printer) for job in READ_APP for printer in PRINTER_APP]
    + [
        (Operation.WRITE, True, job, printer)
        for job in WRITE_DELEGATED
        for printer in PRINTER_DELEGATED
    ]
    + [(Operation.WRITE, False, job, printer) for job in WRITE_APP for printer in PRINTER_APP]
)


@pytest.mark.parametrize(("operation", "delegated", "job", "printer"), ALLOWED)
def test_each_allowed_permission_pair_is_authorized(
    operation: Operation, delegated: bool, job: str, printer: str
) -> None:
    authorize(principal(delegated, job, printer), operation)


DENIED = [
    (Operation.WRITE, True, ("PrintJob.Read", "Printer.Read.All")),
    (Operation.WRITE, True, ("PrintJob.Read.All", "Printer.Read.All")),
    (Operation.WRITE, False, ("PrintJob.Read.All", "Printer.Read.All")),
    (Operation.READ, False, ("PrintJob.Read", "Printer.Read.All")),
    (Operation.READ, False, ("PrintJob.ReadWrite", "Printer.Read.All")),
    (Operation.WRITE, False, ("PrintJob.ReadWrite", "Printer.Read.All")),
    (Operation.READ, False, ("PrintJob.ReadWrite.All", "Printer.FullControl.All")),
    (Operation.WRITE, True, ("printjob.readwrite", "Printer.Read.All")),
    (Operation.READ, True, ("PRINTJOB.READ", "Printer.Read.All")),
    (Operation.READ, True, ("PrintJob.Read", "printer.read.all")),
    (Operation.READ, True, ("PrintJob.ReadWrite.All",)),
    (Operation.WRITE, False, ("PrintJob.ReadWrite.All",)),
    (Operation.READ, True, ("Printer.Read.All",)),
    (Operation.WRITE, False, ("Printer.ReadWrite.All",)),
    (Operation.READ, True, ()),
    (Operation.WRITE, True, ("PrintJob.ReadWriteBasic", "Printer.Read")),
    (Operation.WRITE, True, ("PrintJob.ReadWrite.All Printer.Read.All",)),
]


@pytest.mark.parametrize(("operation", "delegated", "permissions"), DENIED)
def test_a_missing_permission_is_a_403_insufficient_scope(
    operation: Operation, delegated: bool, permissions: tuple[str, ...]
) -> None:
    with pytest.raises(InsufficientScope) as caught:
        authorize(principal(delegated, *permissions), operation)
    error = caught.value
    assert (error.status, error.code) == (403, "accessDenied")
    assert error.headers() == {
        "WWW-Authenticate": 'Bearer realm="uploadsession", error="insufficient_scope"'
    }


def test_the_403_names_the_acceptable_permissions() -> None:
    with pytest.raises(InsufficientScope) as caught:
        authorize(principal(True, "PrintJob.Read", "Printer.Read.All"), Operation.WRITE)
    assert "PrintJob.ReadWrite, PrintJob.ReadWrite.All" in caught.value.message
    assert "Printer" not in caught.value.message
    with pytest.raises(InsufficientScope) as caught:
        authorize(principal(False, "PrintJob.ReadWrite.All"), Operation.READ)
    assert "roles" in caught.value.message
    assert "Printer.Read.All, Printer.ReadWrite.All" in caught.value.message
    assert "FullControl" not in caught.value.message


def test_an_app_token_with_a_delegated_only_role_is_a_403_end_to_end(
    keys: Keys, validator: TokenValidator
) -> None:
    claims = app(roles=["PrintJob.ReadWrite", "Printer.Read.All"])
    found = validator.validate(bearer(mint(keys.signing, KID, **claims)))
    with pytest.raises(InsufficientScope) as caught:
        authorize(found, Operation.WRITE)
    assert caught.value.status == 403


def test_a_case_changed_scope_is_a_403_end_to_end(keys: Keys, validator: TokenValidator) -> None:
    claims = user(scp="printjob.readwrite Printer.Read.All")
    found = validator.validate(bearer(mint(keys.signing, KID, **claims)))
    with pytest.raises(InsufficientScope) as caught:
        authorize(found, Operation.READ)
    assert (caught.value.status, caught.value.code) == (403, "accessDenied")


@pytest.mark.parametrize("operation", list(Operation))
def test_sees_all_for_applications_and_dot_all_delegates_only(operation: Operation) -> None:
    assert sees_all(principal(False, "PrintJob.Read.All", "Printer.Read.All"), operation)
    assert sees_all(principal(True, "PrintJob.Read.All", "Printer.Read.All"), operation)
    assert sees_all(principal(True, "PrintJob.ReadWrite.All", "Printer.Read.All"), operation)
    assert not sees_all(principal(True, "PrintJob.ReadWrite", "Printer.Read.All"), operation)
    assert not sees_all(principal(True, "PrintJob.Read", "Printer.FullControl.All"), operation)


def test_writes_all_for_applications_and_readwrite_all_delegates_only() -> None:
    assert writes_all(principal(False, "PrintJob.ReadWrite.All", "Printer.Read.All"))
    assert writes_all(principal(True, "PrintJob.ReadWrite.All", "Printer.Read.All"))
    assert not writes_all(principal(True, "PrintJob.ReadWrite", "PrintJob.Read.All"))
    assert not writes_all(principal(True, "PrintJob.ReadWrite", "Printer.Read.All"))
