"""The deployment options of main.bicep, read from the syntax trees: network isolation
(vnetEnabled), zone redundancy, document retention, CORS and the cloud's token issuers.

Each option is a parameter with a safe default, passed down to the module that uses it; the
expressions it drives are evaluated here for both values, so "on" and "off" are each checked for
what they deploy.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.infra.bicep_tree import Declaration, Expr, Loop
from tests.infra.repo import INFRA, bicep, load_json

PUBLIC_CLOUD_LOGIN = "https://login.microsoftonline.com/"
US_GOVERNMENT_LOGIN = "https://login.microsoftonline.us/"
CHINA_LOGIN = "https://login.chinacloudapi.cn/"


def evaluate(value: Any, params: dict[str, Any]) -> Any:
    """The value of a literal, or of the simple expressions these templates use for options:
    a parameter name, ``cond ? a : b``, ``!x``, ``empty(x)``, with literal or parameter operands."""
    if not isinstance(value, Expr):
        return value
    text = value.text.strip()
    ternary = re.fullmatch(r"(.+?) \? (.+?) : (.+)", text)
    if ternary:
        condition, yes, no = (Expr(part) for part in ternary.groups())
        return evaluate(yes if evaluate(condition, params) else no, params)
    if text.startswith("!"):
        return not evaluate(Expr(text[1:]), params)
    call = re.fullmatch(r"empty\((\w+)\)", text)
    if call:
        return not evaluate(Expr(call.group(1)), params)
    if re.fullmatch(r"'[^'$]*'", text):
        return text[1:-1]
    if text in ("null", "true", "false"):
        return {"null": None, "true": True, "false": False}[text]
    if text in params:
        return params[text]
    raise AssertionError(f"cannot evaluate {text!r} with {sorted(params)}")


def condition(declaration: Declaration) -> str | None:
    """The ``if (...)`` of a conditional resource or module, or None."""
    node = declaration.node
    if node is None or node.type != "if_statement":
        return None
    text = node.text.decode() if node.text else ""
    found = re.match(r"if\s*\((.+?)\)\s*\{", text, re.S)
    assert found, text[:80]
    return found.group(1).strip()


def module_params(name: str) -> dict[str, Any]:
    params = bicep("main.bicep").get("module", name).body["params"]
    assert isinstance(params, dict)
    return params


def param_default(relative: str, name: str) -> Any:
    return bicep(relative).get("param", name).value


# ---- vnetEnabled ----


def test_vnet_is_off_by_default_and_the_network_module_exists_only_when_on() -> None:
    main = bicep("main.bicep")
    assert main.get("param", "vnetEnabled").value is False
    deployed = {
        enabled: {
            m.name
            for m in main.declarations("module")
            if condition(m) is None or evaluate(Expr(condition(m) or ""), {"vnetEnabled": enabled})
        }
        for enabled in (False, True)
    }
    assert deployed[True] - deployed[False] == {"network"}
    assert {"identity", "storage", "monitoring", "roles", "functionApp"} <= deployed[False]
    assert condition(main.get("module", "network")) == "vnetEnabled"
    mapped = load_json(INFRA / "main.parameters.json")["parameters"]
    assert mapped["vnetEnabled"]["value"] == "${VNET_ENABLED=false}"


@pytest.mark.parametrize("enabled", [False, True], ids=["off", "on"])
def test_storage_refuses_public_traffic_exactly_when_vnet_is_on(enabled: bool) -> None:
    assert module_params("storage")["vnetEnabled"] == Expr("vnetEnabled")
    properties = (
        bicep("modules/storage.bicep")
        .resources("Microsoft.Storage/storageAccounts")[0]
        .body["properties"]
    )
    env = {"vnetEnabled": enabled}
    assert evaluate(properties["publicNetworkAccess"], env) == (
        "Disabled" if enabled else "Enabled"
    )
    assert evaluate(properties["networkAcls"]["defaultAction"], env) == (
        "Deny" if enabled else "Allow"
    )
    assert properties["networkAcls"]["bypass"] == "AzureServices"
    assert param_default("modules/storage.bicep", "vnetEnabled") is False


@pytest.mark.parametrize("enabled", [False, True], ids=["off", "on"])
def test_the_app_integrates_with_the_delegated_subnet_exactly_when_vnet_is_on(
    enabled: bool,
) -> None:
    passed = module_params("functionApp")["subnetId"]
    assert passed == Expr("vnetEnabled ? network!.outputs.appSubnetId : ''")
    subnet = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/vnet/subnets/app"
    subnet_id = evaluate(passed, {"vnetEnabled": enabled, "network!.outputs.appSubnetId": subnet})
    site = bicep("modules/function-app.bicep").resources("Microsoft.Web/sites")[0].body
    integrated = evaluate(site["properties"]["virtualNetworkSubnetId"], {"subnetId": subnet_id})
    assert integrated == (subnet if enabled else None)
    assert param_default("modules/function-app.bicep", "subnetId") == ""
    # The grants come before the app starts using storage; the network (private endpoints and
    # DNS) too, through the subnetId reference (an explicit dependsOn would be a linter warning).
    depends = bicep("main.bicep").get("module", "functionApp").body["dependsOn"]
    assert {d.text for d in depends} == {"roles"}


def test_the_network_has_a_delegated_app_subnet_and_a_private_endpoint_subnet() -> None:
    network = bicep("modules/network.bicep")
    subnets = network.resolve(Expr("subnets"))
    by_name = {s["name"]: s for s in subnets}
    assert set(by_name) == {"app", "private-endpoints"}
    (delegation,) = by_name["app"]["delegations"]
    assert delegation["properties"]["serviceName"] == "Microsoft.App/environments"
    assert by_name["private-endpoints"]["delegations"] == []
    (vnet,) = network.resources("Microsoft.Network/virtualNetworks")
    subnet_loop = vnet.body["properties"]["subnets"]
    assert isinstance(subnet_loop, Loop) and "in subnets" in subnet_loop.text
    assert subnet_loop.body["properties"]["networkSecurityGroup"] == {
        "id": Expr("networkSecurityGroups[i].id")
    }
    assert network.get("output", "appSubnetId").value == Expr("'${vnet.id}/subnets/app'")


def test_blob_and_table_get_private_endpoints_and_private_dns_of_this_cloud() -> None:
    network = bicep("modules/network.bicep")
    assert network.resolve(Expr("storageServices")) == ["blob", "table"]

    (endpoints,) = network.resources("Microsoft.Network/privateEndpoints")
    assert isinstance(endpoints.value, Loop) and "in storageServices" in endpoints.value.text
    properties = endpoints.body["properties"]
    assert properties["subnet"] == {"id": Expr("'${vnet.id}/subnets/private-endpoints'")}
    (connection,) = properties["privateLinkServiceConnections"]
    assert connection["properties"]["privateLinkServiceId"] == Expr("storageAccountId")
    assert connection["properties"]["groupIds"] == [Expr("service")]
    assert module_params("network")["storageAccountId"] == Expr("storage.outputs.id")

    (zones,) = network.resources("Microsoft.Network/privateDnsZones")
    zone_name = zones.body["name"]
    assert zone_name == Expr("'privatelink.${service}.${environment().suffixes.storage}'")
    public = zone_name.text.strip("'").replace(
        "${environment().suffixes.storage}", "core.windows.net"
    )
    assert {public.replace("${service}", s) for s in ("blob", "table")} == {
        "privatelink.blob.core.windows.net",
        "privatelink.table.core.windows.net",
    }
    (links,) = network.resources("Microsoft.Network/privateDnsZones/virtualNetworkLinks")
    assert links.body["properties"]["virtualNetwork"] == {"id": Expr("vnet.id")}
    assert links.body["properties"]["registrationEnabled"] is False
    (groups,) = network.resources("Microsoft.Network/privateEndpoints/privateDnsZoneGroups")
    (config,) = groups.body["properties"]["privateDnsZoneConfigs"]
    assert config["properties"]["privateDnsZoneId"] == Expr("dnsZones[i].id")
    assert groups.body["parent"] == Expr("privateEndpoints[i]")


# ---- zone redundancy ----


@pytest.mark.parametrize("enabled", [False, True], ids=["off", "on"])
def test_zone_redundancy_switches_storage_to_zrs_and_the_plan_to_zones(enabled: bool) -> None:
    assert param_default("main.bicep", "zoneRedundant") is False
    assert module_params("storage")["zoneRedundant"] == Expr("zoneRedundant")
    assert module_params("functionApp")["zoneRedundant"] == Expr("zoneRedundant")
    env = {"zoneRedundant": enabled}
    account = bicep("modules/storage.bicep").resources("Microsoft.Storage/storageAccounts")[0]
    assert evaluate(account.body["sku"]["name"], env) == (
        "Standard_ZRS" if enabled else "Standard_LRS"
    )
    plan = bicep("modules/function-app.bicep").resources("Microsoft.Web/serverfarms")[0]
    assert evaluate(plan.body["properties"]["zoneRedundant"], env) is enabled


# ---- retention ----


def test_a_lifecycle_rule_deletes_committed_documents_after_the_retention_days() -> None:
    main = bicep("main.bicep")
    retention = main.get("param", "documentRetentionDays")
    assert retention.value == 7 and retention.decorators["minValue"] == [1]
    assert module_params("storage")["documentRetentionDays"] == Expr("documentRetentionDays")
    mapped = load_json(INFRA / "main.parameters.json")["parameters"]
    assert mapped["documentRetentionDays"]["value"] == "${DOCUMENT_RETENTION_DAYS=7}"

    storage = bicep("modules/storage.bicep")
    (policy,) = storage.resources("Microsoft.Storage/storageAccounts/managementPolicies")
    assert policy.body["name"] == "default" and policy.body["parent"] == Expr("storage")
    (rule,) = policy.body["properties"]["policy"]["rules"]
    assert rule["enabled"] is True and rule["type"] == "Lifecycle"
    filters = rule["definition"]["filters"]
    assert filters["blobTypes"] == ["blockBlob"]
    # Only the documents container: never the deployment package.
    assert filters["prefixMatch"] == [Expr("'${documentsContainerName}/'")]
    assert storage.resolve(Expr("documentsContainerName")) == "documents"
    assert rule["definition"]["actions"] == {
        "baseBlob": {"delete": {"daysAfterModificationGreaterThan": Expr("documentRetentionDays")}}
    }


# ---- CORS ----


def test_cors_allows_no_origin_by_default_and_the_listed_ones_otherwise() -> None:
    main = bicep("main.bicep")
    assert main.get("param", "corsAllowedOrigins").value == ""
    assert main.get("var", "corsOrigins").value == Expr(
        "empty(trim(corsAllowedOrigins)) ? [] : split(replace(corsAllowedOrigins, ' ', ''), ',')"
    )
    assert module_params("functionApp")["corsAllowedOrigins"] == Expr("corsOrigins")
    assert param_default("modules/function-app.bicep", "corsAllowedOrigins") == []
    site = bicep("modules/function-app.bicep").resources("Microsoft.Web/sites")[0].body
    assert site["properties"]["siteConfig"]["cors"] == {
        "allowedOrigins": Expr("corsAllowedOrigins"),
        "supportCredentials": False,
    }
    mapped = load_json(INFRA / "main.parameters.json")["parameters"]
    assert mapped["corsAllowedOrigins"]["value"] == "${CORS_ALLOWED_ORIGINS}"


# ---- issuers follow the cloud ----


def _authority_for(login_endpoint: str) -> str:
    """main.bicep's authorityHost for a cloud whose loginEndpoint is ``login_endpoint``."""
    text = bicep("main.bicep").get("var", "authorityHost").value.text
    endpoint = "environment().authentication.loginEndpoint"
    assert text == f"take({endpoint}, length({endpoint}) - 1)", text
    return login_endpoint[: len(login_endpoint) - 1]


@pytest.mark.parametrize(
    ("login_endpoint", "issuer"),
    [
        (PUBLIC_CLOUD_LOGIN, "https://login.microsoftonline.com/{tid}/v2.0"),
        (US_GOVERNMENT_LOGIN, "https://login.microsoftonline.us/{tid}/v2.0"),
        (CHINA_LOGIN, "https://login.chinacloudapi.cn/{tid}/v2.0"),
    ],
    ids=["public", "us-government", "china"],
)
def test_the_authority_setting_gives_the_issuer_of_the_cloud_deployed_to(
    login_endpoint: str, issuer: str
) -> None:
    settings = module_params("functionApp")["appSettings"]
    assert settings["AUTH_AUTHORITY_HOST"] == Expr("authorityHost")
    authority = _authority_for(login_endpoint)
    assert f"{authority}/{{tid}}/v2.0" == issuer
    assert not authority.endswith("/")
