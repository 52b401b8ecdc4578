"""The API's Entra ID app registration (infra/app-registration.bicep) against DESIGN.md §3."""

from __future__ import annotations

import re
import uuid
from typing import Any

from tests.infra.bicep_tree import Expr, objects_within
from tests.infra.repo import INFRA, bicep, load_json

# DESIGN.md §3, the permission table: every scope a delegated token may carry, every role an
# application token may carry.
DELEGATED = {
    "PrintJob.Read",
    "PrintJob.ReadWrite",
    "PrintJob.Read.All",
    "PrintJob.ReadWrite.All",
    "Printer.Read.All",
    "Printer.ReadWrite.All",
    "Printer.FullControl.All",
}
APPLICATION = {
    "PrintJob.Read.All",
    "PrintJob.ReadWrite.All",
    "Printer.Read.All",
    "Printer.ReadWrite.All",
}

REGISTRATION = "app-registration.bicep"


def permissions() -> list[dict[str, Any]]:
    value = bicep(REGISTRATION).get("var", "permissions").value
    assert isinstance(value, list)
    return value


def lambda_body(var: str) -> dict[str, Any]:
    """The object a var's map(...) lambda builds for each permission."""
    declaration = bicep(REGISTRATION).get("var", var)
    assert declaration.node is not None
    (body,) = objects_within(declaration.node)
    return body


def application() -> dict[str, Any]:
    (resource,) = bicep(REGISTRATION).resources("Microsoft.Graph/applications")
    body: dict[str, Any] = resource.body
    return body


def test_scopes_and_roles_are_the_permissions_of_the_design() -> None:
    assert {p["value"] for p in permissions()} == DELEGATED
    assert {p["value"] for p in permissions() if p["application"]} == APPLICATION
    scopes = bicep(REGISTRATION).get("var", "delegatedScopes").value.text
    roles = bicep(REGISTRATION).get("var", "applicationRoles").value.text
    assert scopes.startswith("map(permissions, p =>")
    assert roles.startswith("map(filter(permissions, p => p.application), p =>")
    assert application()["api"]["oauth2PermissionScopes"] == Expr("delegatedScopes")
    assert application()["appRoles"] == Expr("applicationRoles")


def test_permission_ids_are_distinct_literal_guids() -> None:
    ids = [p["id"] for p in permissions()]
    assert all(isinstance(i, str) and str(uuid.UUID(i)) == i for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_permission_that_is_scope_and_role_shares_id_and_text() -> None:
    # Entra ID accepts a scope and a role with the same value only as one permission: same id,
    # and the role's displayName/description equal to the scope's admin consent texts.
    scope, role = lambda_body("delegatedScopes"), lambda_body("applicationRoles")
    assert scope["id"] == role["id"] == Expr("p.id")
    assert scope["value"] == role["value"] == Expr("p.value")
    assert scope["adminConsentDisplayName"] == role["displayName"]
    assert scope["adminConsentDescription"] == role["description"]
    assert scope["isEnabled"] is True and role["isEnabled"] is True
    assert role["allowedMemberTypes"] == ["Application"]


def test_tenant_wide_permissions_need_admin_consent() -> None:
    assert lambda_body("delegatedScopes")["type"] == Expr("p.adminOnly ? 'Admin' : 'User'")
    for permission in permissions():
        if permission["value"].endswith(".All"):
            assert permission["adminOnly"] is True, permission["value"]
        assert permission["title"] and permission["text"], permission["value"]


def test_application_issues_v2_tokens_for_a_tenant_scoped_identifier_uri() -> None:
    app = application()
    assert app["api"]["requestedAccessTokenVersion"] == 2
    assert app["identifierUris"] == [Expr("identifierUri")]
    uri = bicep(REGISTRATION).get("var", "identifierUri").value
    assert uri == Expr("'api://${tenant().tenantId}/${uniqueName}'")
    assert app["uniqueName"] == Expr("uniqueName")
    (principal,) = bicep(REGISTRATION).resources("Microsoft.Graph/servicePrincipals")
    assert principal.body["appId"] == Expr("application.appId")


def test_audience_output_feeds_auth_audiences() -> None:
    # v2.0 access tokens carry the client id as aud; v1.0 ones the identifier URI.
    registration = bicep(REGISTRATION)
    assert registration.get("output", "authAudiences").value == Expr(
        "'${application.appId},${identifierUri}'"
    )
    main = bicep("main.bicep")
    assert main.get("module", "functionApp").body["params"]["appSettings"][
        "AUTH_AUDIENCES"
    ] == Expr("authAudiences")
    assert main.get("param", "authAudiences").value is None  # required: no silent default


def test_client_grants_use_declared_roles() -> None:
    registration = bicep(REGISTRATION)
    defaults = registration.get("param", "clientAppRoles").value
    assert defaults and set(defaults) <= APPLICATION
    assert "permissionIds[role]" in registration.get("var", "clientGrants").value.text
    (grants,) = registration.resources("Microsoft.Graph/appRoleAssignedTo")
    assert grants.body == {
        "principalId": Expr("grant.principalId"),
        "resourceId": Expr("servicePrincipal.id"),
        "appRoleId": Expr("grant.appRoleId"),
    }


def test_graph_extension_is_enabled_at_a_pinned_version() -> None:
    config = load_json(INFRA / "bicepconfig.json")
    aliases = config["extensions"]
    for statement in bicep(REGISTRATION).extensions:
        alias = statement.split()[1]
        assert alias in aliases, statement
        assert re.fullmatch(
            r"br:mcr\.microsoft\.com/bicep/extensions/microsoftgraph/v1\.0:\d+\.\d+\.\d+",
            aliases[alias],
        ), aliases[alias]
    assert bicep(REGISTRATION).extensions == ["extension microsoftGraphV1"]
