"""Policy of the Azure templates, read from their syntax trees: what a deployment of them does."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep_tree import Expr, Loop, walk_values
from tests.infra.repo import INFRA, REPO, all_bicep_files, bicep, load_json

# Built-in Azure role definition ids (the same in every tenant).
BUILT_IN_ROLES = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}

# The settings are read in config.py and declared as pydantic fields in settings.py.
CONFIG_FILES = (REPO / "uploadsession" / "config.py", REPO / "uploadsession" / "settings.py")
ENV_VAR_NAME = re.compile(r"^[A-Z][A-Z0-9_]*(__[A-Za-z]+)?$")
PUBLIC_CLOUD_LOGIN_ENDPOINT = "https://login.microsoftonline.com/"


# ---- uploadsession/config.py and settings.py, read without importing them ----


def _config_tree() -> ast.Module:
    body: list[ast.stmt] = []
    for path in CONFIG_FILES:
        body += ast.parse(path.read_text(encoding="utf-8")).body
    return ast.Module(body=body, type_ignores=[])


def _config_constants() -> dict[str, Any]:
    constants: dict[str, Any] = {}
    for node in _config_tree().body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            value = _evaluate(node.value, constants)  # constants and f-strings of them
            if value is not None:
                constants[node.targets[0].id] = value
    return constants


def _evaluate(node: ast.expr, constants: dict[str, Any]) -> Any:
    """A string or number the expression stands for, or None when it is not a constant."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            inner = value.value if isinstance(value, ast.FormattedValue) else value
            evaluated = _evaluate(inner, constants)
            if not isinstance(evaluated, str):
                return None
            parts.append(evaluated)
        return "".join(parts)
    return None


def settings_config_reads() -> set[str]:
    """Every environment variable name the settings pass to a call (env.get, a pydantic
    ``Field(validation_alias=...)``...)."""
    constants = _config_constants()
    names = set()
    for node in ast.walk(_config_tree()):
        if isinstance(node, ast.Call):
            for argument in [*node.args, *(k.value for k in node.keywords)]:
                value = _evaluate(argument, constants)
                if isinstance(value, str) and ENV_VAR_NAME.match(value):
                    names.add(value)
    return names


def integer_defaults_in_config() -> dict[str, int]:
    """Integer fields ``Field(DEFAULT, validation_alias=NAME, ...)``: NAME → DEFAULT."""
    constants = _config_constants()
    defaults = {}
    for node in ast.walk(_config_tree()):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Field" and node.args:
            default = _evaluate(node.args[0], constants)
            alias = next((k.value for k in node.keywords if k.arg == "validation_alias"), None)
            name = None if alias is None else _evaluate(alias, constants)
            if isinstance(default, int) and not isinstance(default, bool) and name:
                defaults[name] = default
    return defaults


# ---- the templates ----


def main_app_settings() -> dict[str, Any]:
    function_app = bicep("main.bicep").get("module", "functionApp")
    settings = function_app.body["params"]["appSettings"]
    assert isinstance(settings, dict)
    return settings


def platform_settings() -> dict[str, Any]:
    settings = bicep("modules/function-app.bicep").get("var", "platformSettings").value
    assert isinstance(settings, dict)
    return settings


def the_one(kind: str, relative: str) -> Any:
    resources = bicep(relative).resources(kind)
    assert len(resources) == 1, f"{relative}: expected one {kind}, found {len(resources)}"
    return resources[0].body


def test_config_reader_finds_the_settings_the_design_lists() -> None:
    # Guards the AST reading above: a refactor of config.py it cannot follow fails here first.
    assert {
        "UPLOADSESSION_STORAGE",
        "UPLOADSESSION_STORAGE__tableServiceUri",
        "UPLOADSESSION_STORAGE__blobServiceUri",
        "UPLOADSESSION_STORAGE__clientId",
        "AUTH_AUDIENCES",
        "AUTH_JWKS_URI",
        "AUTH_CLOCK_SKEW_SECONDS",
        "UPLOAD_SESSION_TTL_SECONDS",
        "MAX_DOCUMENT_BYTES",
        "MAX_SEGMENT_BYTES",
        "PURGE_SCHEDULE",
    } <= settings_config_reads()


def test_every_setting_config_reads_is_set_by_the_template() -> None:
    # The connection string UPLOADSESSION_STORAGE is the local (Azurite) alternative to the
    # identity-based UPLOADSESSION_STORAGE__* URIs; in Azure there are no keys to put in one.
    storage = _config_constants()["STORAGE"]
    expected = settings_config_reads() - {storage}
    assert expected <= set(main_app_settings()) | set(platform_settings())
    assert storage not in main_app_settings()
    assert storage not in platform_settings()


def test_storage_is_reached_through_the_user_assigned_identity() -> None:
    app = main_app_settings()
    assert app["UPLOADSESSION_STORAGE__tableServiceUri"] == Expr("storage.outputs.tableEndpoint")
    assert app["UPLOADSESSION_STORAGE__blobServiceUri"] == Expr("storage.outputs.blobEndpoint")
    assert app["UPLOADSESSION_STORAGE__clientId"] == Expr("identity.outputs.clientId")
    assert app["AZURE_CLIENT_ID"] == Expr("identity.outputs.clientId")

    host = platform_settings()
    assert host["AzureWebJobsStorage__credential"] == "managedidentity"
    assert host["AzureWebJobsStorage__clientId"] == Expr("identityClientId")
    assert host["AzureWebJobsStorage__blobServiceUri"] == Expr(
        "storage.properties.primaryEndpoints.blob"
    )
    assert "AzureWebJobsStorage" not in host
    assert host["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == Expr(
        "'ClientId=${identityClientId};Authorization=AAD'"
    )


def test_app_setting_defaults_equal_the_defaults_of_config_py() -> None:
    main = bicep("main.bicep")
    settings = main_app_settings()
    defaults = integer_defaults_in_config()
    assert set(defaults) == {
        "AUTH_CLOCK_SKEW_SECONDS",
        "UPLOAD_SESSION_TTL_SECONDS",
        "MAX_DOCUMENT_BYTES",
        "MAX_SEGMENT_BYTES",
    }
    for name, default in defaults.items():
        expression = settings[name]
        assert isinstance(expression, Expr), name
        parameter = re.fullmatch(r"string\((\w+)\)", expression.text)
        assert parameter, f"{name} = {expression.text}"
        assert main.get("param", parameter.group(1)).value == default, name

    constants = _config_constants()
    assert settings["PURGE_SCHEDULE"] == Expr("purgeSchedule")
    assert main.get("param", "purgeSchedule").value == constants["DEFAULT_PURGE_SCHEDULE"]
    # An empty authJwksUri stands for the common keys of the cloud deployed to.
    assert settings["AUTH_JWKS_URI"] == Expr("empty(authJwksUri) ? defaultJwksUri : authJwksUri")
    assert main.get("param", "authJwksUri").value == ""
    # Issuers follow the cloud too: the authority is its login endpoint without the slash.
    assert settings["AUTH_AUTHORITY_HOST"] == Expr("authorityHost")
    assert settings["AUTH_V1_ISSUER_HOST"] == Expr("authV1IssuerHost")
    assert main.get("param", "authV1IssuerHost").value == constants["DEFAULT_V1_ISSUER_HOST"]
    authority = main.get("var", "authorityHost").value.text
    assert "environment().authentication.loginEndpoint" in authority
    jwks = main.get("var", "defaultJwksUri").value.text.strip("'")
    public_cloud = jwks.replace(
        "${environment().authentication.loginEndpoint}", PUBLIC_CLOUD_LOGIN_ENDPOINT
    )
    assert public_cloud == constants["DEFAULT_JWKS_URI"]


def test_parameters_file_maps_environment_values_to_template_parameters() -> None:
    main = bicep("main.bicep")
    params = {p.name: p for p in main.declarations("param")}
    mapped = load_json(INFRA / "main.parameters.json")["parameters"]
    assert set(mapped) <= set(params)
    assert {name for name, p in params.items() if p.value is None} <= set(mapped)

    settings = main_app_settings()
    for name, entry in mapped.items():
        reference = re.fullmatch(r"\$\{(\w+)(?:=(.*))?\}", entry["value"])
        assert reference, f"{name}: {entry['value']}"
        variable, default = reference.groups()
        if default is not None:  # the file's default must be the template's
            assert json.dumps(params[name].value).strip('"') == default, name
        if variable in settings:  # an app setting and its azd variable share one name
            assert re.search(rf"\b{name}\b", settings[variable].text), variable


def test_storage_account_accepts_only_entra_id_over_tls_1_2_and_nothing_public() -> None:
    accounts = [
        resource.body
        for path in all_bicep_files()
        for resource in bicep(path.relative_to(INFRA).as_posix()).resources(
            "Microsoft.Storage/storageAccounts"
        )
    ]
    assert len(accounts) == 1
    properties = accounts[0]["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["defaultToOAuthAuthentication"] is True
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["allowBlobPublicAccess"] is False
    assert properties["supportsHttpsTrafficOnly"] is True


def test_template_declares_the_tables_and_container_the_app_uses() -> None:
    constants = _config_constants()
    storage = bicep("modules/storage.bicep")
    (tables,) = storage.resources("Microsoft.Storage/storageAccounts/tableServices/tables")
    assert isinstance(tables.value, Loop)
    loop = re.search(r"in (\w+):", tables.value.text)
    assert loop
    table_names = storage.resolve(Expr(loop.group(1)))
    assert sorted(table_names) == sorted(
        [constants["SESSIONS_TABLE"], constants["SUBSCRIPTIONS_TABLE"]]
    )

    containers = storage.resources("Microsoft.Storage/storageAccounts/blobServices/containers")
    names = {storage.resolve(c.body["name"]) for c in containers}
    assert names == {constants["DOCUMENTS_CONTAINER"], Expr("deploymentContainerName")}
    assert all(c.body["properties"]["publicAccess"] == "None" for c in containers)


def test_flex_consumption_plan_runs_python_from_python_version() -> None:
    plan = the_one("Microsoft.Web/serverfarms", "modules/function-app.bicep")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True

    site = the_one("Microsoft.Web/sites", "modules/function-app.bicep")
    assert "linux" in site["kind"].split(",")
    assert site["properties"]["httpsOnly"] is True
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": Expr("pythonVersion")}

    main = bicep("main.bicep")
    assert main.get("module", "functionApp").body["params"]["pythonVersion"] == Expr(
        "pythonVersion"
    )
    loader = re.fullmatch(
        r"trim\(loadTextContent\('([^']+)'\)\)", main.get("var", "pythonVersion").value.text
    )
    assert loader and (INFRA / loader.group(1)).resolve() == REPO / ".python-version"
    pinned = (REPO / ".python-version").read_text().strip()
    assert pinned == "3.11"
    allowed = (
        bicep("modules/function-app.bicep").get("param", "pythonVersion").decorators["allowed"][0]
    )
    assert pinned in allowed


def test_scale_settings_are_parameters_with_flex_consumption_values() -> None:
    site = the_one("Microsoft.Web/sites", "modules/function-app.bicep")
    scale = site["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    assert scale == {
        "maximumInstanceCount": Expr("maximumInstanceCount"),
        "instanceMemoryMB": Expr("instanceMemoryMB"),
        "triggers": {"http": {"perInstanceConcurrency": Expr("httpPerInstanceConcurrency")}},
    }
    main = bicep("main.bicep")
    passed = main.get("module", "functionApp").body["params"]
    for name in ("maximumInstanceCount", "instanceMemoryMB", "httpPerInstanceConcurrency"):
        assert passed[name] == Expr(name)
    memory = main.get("param", "instanceMemoryMB")
    assert memory.value in memory.decorators["allowed"][0] == [512, 2048, 4096]
    assert 1 <= main.get("param", "maximumInstanceCount").value <= 1000
    assert 1 <= main.get("param", "httpPerInstanceConcurrency").value <= 1000


def test_the_identity_serves_host_app_and_deployment_storage() -> None:
    site = the_one("Microsoft.Web/sites", "modules/function-app.bicep")
    assert site["identity"] == {
        "type": "UserAssigned",
        "userAssignedIdentities": {"'${identityId}'": {}},
    }
    deployment = site["properties"]["functionAppConfig"]["deployment"]["storage"]
    assert deployment["type"] == "blobContainer"
    assert deployment["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": Expr("identityId"),
    }
    params = bicep("main.bicep").get("module", "functionApp").body["params"]
    assert params["identityId"] == Expr("identity.outputs.id")
    assert params["identityClientId"] == Expr("identity.outputs.clientId")
    assert params["deploymentContainerName"] == Expr("storage.outputs.deploymentContainerName")


def test_publishing_passwords_are_off() -> None:
    policies = bicep("modules/function-app.bicep").resources(
        "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    )
    assert {p.body["name"]: p.body["properties"]["allow"] for p in policies} == {
        "ftp": False,
        "scm": False,
    }


def test_telemetry_needs_entra_id() -> None:
    insights = the_one("Microsoft.Insights/components", "modules/monitoring.bicep")
    properties = {key.lower(): value for key, value in insights["properties"].items()}
    assert properties["disablelocalauth"] is True
    assert properties["workspaceresourceid"] == Expr("workspace.id")
    workspace = the_one("Microsoft.OperationalInsights/workspaces", "modules/monitoring.bicep")
    assert workspace["properties"]["features"]["disableLocalAuth"] is True


def _role_constants() -> dict[str, str]:
    """var name → role definition id, checked against the role each one's comment names."""
    roles = {}
    for var in bicep("modules/role-assignments.bicep").declarations("var"):
        if isinstance(var.value, str) and re.fullmatch(r"[0-9a-f-]{36}", var.value):
            assert var.comment in BUILT_IN_ROLES, f"{var.name} needs a comment naming its role"
            assert BUILT_IN_ROLES[var.comment] == var.value, f"{var.name}: not {var.comment}"
            roles[var.name] = var.value
    return roles


def _assignments() -> list[tuple[str, Any, dict[str, Any]]]:
    """(resource name, role ids, properties) for every role assignment."""
    module = bicep("modules/role-assignments.bicep")
    found = []
    for resource in module.resources("Microsoft.Authorization/roleAssignments"):
        properties = resource.body["properties"]
        definition = properties["roleDefinitionId"].text
        role = re.fullmatch(
            r"subscriptionResourceId\('Microsoft\.Authorization/roleDefinitions', (\w+)\)",
            definition,
        )
        assert role, definition
        if isinstance(resource.value, Loop):
            loop = re.search(r"for (\w+) in (\w+):", resource.value.text)
            assert loop and loop.group(1) == role.group(1)
            role_ids = set(module.resolve(Expr(loop.group(2))))
        else:
            role_ids = {module.resolve(Expr(role.group(1)))}
        assert role_ids <= set(_role_constants().values()), resource.name
        found.append((resource.name, role_ids, resource.body))
    return found


def test_each_role_constant_is_the_role_its_comment_names() -> None:
    assert set(_role_constants().values()) >= {
        BUILT_IN_ROLES["Storage Blob Data Owner"],
        BUILT_IN_ROLES["Storage Table Data Contributor"],
        BUILT_IN_ROLES["Monitoring Metrics Publisher"],
    }


def test_the_identity_gets_the_roles_host_and_app_need() -> None:
    granted: dict[str, set[str]] = {}
    for _, roles, body in _assignments():
        if body["properties"]["principalId"] == Expr("identityPrincipalId"):
            assert body["properties"]["principalType"] == "ServicePrincipal"
            granted.setdefault(body["scope"].text, set()).update(roles)
    assert granted == {
        "storage": {
            BUILT_IN_ROLES["Storage Blob Data Owner"],  # host storage, deployment, documents
            BUILT_IN_ROLES["Storage Table Data Contributor"],  # sessions, subscriptions
        },
        "applicationInsights": {BUILT_IN_ROLES["Monitoring Metrics Publisher"]},
    }
    roles = bicep("main.bicep").get("module", "roles").body["params"]
    assert roles["identityPrincipalId"] == Expr("identity.outputs.principalId")


def test_the_deploying_principal_optionally_gets_data_roles_for_the_cli() -> None:
    developer = [
        (roles, body)
        for _, roles, body in _assignments()
        if body["properties"]["principalId"] == Expr("principalId")
    ]
    assert developer
    granted = set().union(*(roles for roles, _ in developer))
    assert granted == {
        BUILT_IN_ROLES["Storage Table Data Contributor"],  # uploadsession subscription activate
        BUILT_IN_ROLES["Storage Blob Data Contributor"],
    }
    for _, body in developer:
        assert body["properties"]["principalType"] == Expr("principalType")
    loops = [
        r.value.text
        for r in bicep("modules/role-assignments.bicep").resources(
            "Microsoft.Authorization/roleAssignments"
        )
        if isinstance(r.value, Loop) and "principalStorageRoles" in r.value.text
    ]
    assert loops and all("if (!empty(principalId))" in text for text in loops)

    main = bicep("main.bicep")
    assert main.get("param", "principalId").value == ""
    assert "ServicePrincipal" in main.get("param", "principalType").decorators["allowed"][0]
    passed = main.get("module", "roles").body["params"]
    assert passed["principalId"] == Expr("principalId")
    assert passed["principalType"] == Expr("principalType")


def test_role_assignment_names_are_stable_per_scope_principal_and_role() -> None:
    for name, _, body in _assignments():
        guid = body["name"].text
        assert guid.startswith("guid("), name
        assert "rincipalId" in guid and (
            "roleId" in guid or "monitoringMetricsPublisher" in guid
        ), name


def test_base_url_carries_the_route_prefix_of_host_json() -> None:
    host = load_json(REPO / "host.json")
    # "" (the routes carry /v1.0 and /beta themselves, DESIGN.md §2) or one version segment.
    assert host["extensions"]["http"]["routePrefix"] in ("", "beta")
    main = bicep("main.bicep")
    loader = re.fullmatch(
        r"loadJsonContent\('([^']+)'\)\.extensions\.http\.routePrefix",
        main.get("var", "routePrefix").value.text,
    )
    assert loader and (INFRA / loader.group(1)).resolve() == REPO / "host.json"
    host_url = main.get("output", "API_HOST_URL").value
    base_url = main.get("output", "API_BASE_URL").value
    assert host_url == Expr("'https://${functionApp.outputs.defaultHostName}'")
    assert base_url == Expr("'https://${functionApp.outputs.defaultHostName}/${apiVersionSegment}'")
    segment = main.get("var", "apiVersionSegment").value
    assert segment == Expr("empty(routePrefix) ? 'beta' : routePrefix")


def test_outputs_give_azd_and_the_scripts_what_they_read() -> None:
    outputs = {o.name for o in bicep("main.bicep").declarations("output")}
    assert {
        "AZURE_LOCATION",
        "AZURE_TENANT_ID",
        "AZURE_RESOURCE_GROUP",
        "AZURE_FUNCTION_APP_NAME",
        "API_HOST_URL",
        "API_BASE_URL",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "AZURE_FUNCTION_IDENTITY_CLIENT_ID",
    } <= outputs
    scripts = " ".join(p.read_text() for p in (INFRA / "scripts").iterdir())
    workflows = (REPO / ".github" / "workflows" / "deploy.yml").read_text()
    used = set(re.findall(r"\b(AZURE_STORAGE_\w+_ENDPOINT|API_BASE_URL)\b", scripts + workflows))
    assert used and used <= outputs


@pytest.mark.parametrize("path", all_bicep_files(), ids=lambda p: p.name)
def test_resource_types_and_modules_are_pinned(path: Path) -> None:
    for declaration in bicep(path.relative_to(INFRA).as_posix()).declarations():
        kind, declared = declaration.kind, declaration.type or ""
        if kind == "resource":
            provider, _, version = declared.partition("@")
            if provider.startswith("Microsoft.Graph/"):
                assert version == "v1.0"  # the extension version is pinned in bicepconfig.json
            else:
                assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", version), declared
        elif kind == "module":
            # Local files only; a registry module would need an exact :version.
            assert declared
            assert not re.match(r"^(br|ts)[:/]", declared) or re.search(
                r":\d+\.\d+\.\d+$", declared
            )


def test_abbreviations_cover_every_name_prefix_main_uses() -> None:
    used = set(re.findall(r"abbrs\.(\w+)", (INFRA / "main.bicep").read_text()))
    assert used and used <= set(load_json(INFRA / "abbreviations.json"))


def test_no_secret_or_key_reaches_app_settings_or_outputs() -> None:
    text = json.dumps(
        [str(v) for v in walk_values(main_app_settings())]
        + [str(v) for v in walk_values(platform_settings())]
    )
    for forbidden in ("listKeys", "AccountKey", "SharedAccessSignature", "InstrumentationKey="):
        assert forbidden not in text
    for path in all_bicep_files():
        assert "listKeys(" not in path.read_text()
