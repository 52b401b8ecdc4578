"""GitHub Actions workflows and azure.yaml: valid, and doing what the delivery pipeline needs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.repo import INFRA, REPO, WORKFLOWS, load_workflow

CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def validate_workflow(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return list(workflow["jobs"][job]["steps"])


def runs(workflow: dict[str, Any], job: str) -> str:
    return "\n".join(step.get("run", "") for step in steps(workflow, job))


def uses(workflow: dict[str, Any], job: str, action: str) -> list[dict[str, Any]]:
    return [s for s in steps(workflow, job) if s.get("uses", "").split("@")[0].lower() == action]


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.y*ml")), ids=lambda p: p.name)
def test_workflow_matches_the_github_workflow_schema(path: Path) -> None:
    result = validate_workflow(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps: run make\n")
    assert validate_workflow(broken).returncode != 0


def test_ci_runs_make_test_on_push_and_pull_request() -> None:
    ci = load_workflow("ci.yml")
    assert {"push", "pull_request"} <= set(ci["on"])
    job = ci["jobs"]["test"]
    assert job["runs-on"] == "ubuntu-latest"
    (python,) = uses(ci, "test", "actions/setup-python")
    assert python["with"]["python-version-file"] == ".python-version"
    (node,) = uses(ci, "test", "actions/setup-node")
    assert str(node["with"]["node-version"]) == "20"
    assert [s["run"] for s in steps(ci, "test") if "run" in s] == ["make test"]


def test_ci_compiles_and_lints_every_bicep_file_failing_on_warnings() -> None:
    ci = load_workflow("ci.yml")
    version = ci["jobs"]["bicep"]["env"]["BICEP_VERSION"]
    found = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)", version)
    assert found and tuple(map(int, found.groups())) >= (0, 36, 1)  # Graph extension minimum
    script = runs(ci, "bicep")
    assert "releases/download/${BICEP_VERSION}/bicep-linux-x64" in script
    assert "sha256sum --check" in script
    assert "git ls-files -z -- '*.bicep'" in script
    assert "bicep build" in script and "bicep lint" in script
    assert re.search(r"grep -qE .*Warning", script)
    assert "shellcheck infra/scripts/*.sh" in script


def test_every_action_is_pinned_to_a_version() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        for ref in re.findall(r"uses:\s*(\S+)", path.read_text()):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@(v\d+(\.\d+)*|[0-9a-f]{40})", ref), ref


def test_deploy_runs_on_main_and_by_hand_with_an_oidc_token_only() -> None:
    deploy = load_workflow("deploy.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    assert "workflow_dispatch" in deploy["on"]
    assert deploy["permissions"] == {"id-token": "write", "contents": "read"}
    text = (WORKFLOWS / "deploy.yml").read_text()
    assert "secrets." not in text
    logins = uses(deploy, "deploy", "azure/login")
    assert logins and all(
        login["with"]
        == {
            "client-id": "${{ vars.AZURE_CLIENT_ID }}",
            "tenant-id": "${{ vars.AZURE_TENANT_ID }}",
            "subscription-id": "${{ vars.AZURE_SUBSCRIPTION_ID }}",
        }
        and login["uses"].endswith("@v2")
        for login in logins
    )
    assert "--federated-credential-provider github" in runs(deploy, "deploy")


def test_deploy_provisions_deploys_with_retry_and_smoke_tests_with_azd() -> None:
    deploy = load_workflow("deploy.yml")
    env = deploy["jobs"]["deploy"]["env"]
    for name in ("AZURE_ENV_NAME", "AZURE_LOCATION", "AZURE_SUBSCRIPTION_ID", "AUTH_AUDIENCES"):
        assert env[name] == f"${{{{ vars.{name} }}}}"
    assert env["AZURE_PRINCIPAL_TYPE"] == "ServicePrincipal"
    assert uses(deploy, "deploy", "azure/setup-azd")
    commands = [s.get("run", "").strip() for s in steps(deploy, "deploy")]
    provision = commands.index("azd provision --no-prompt")
    deploy_step = commands.index("bash infra/scripts/deploy-with-retry.sh --no-prompt")
    smoke = commands.index('bash infra/scripts/smoke.sh "$(azd env get-value API_BASE_URL)"')
    assert provision < deploy_step < smoke
    smoke_step = steps(deploy, "deploy")[smoke]
    assert smoke_step["env"]["SMOKE_SCOPE"] == "${{ vars.SMOKE_SCOPE }}"


def test_scripts_the_pipeline_runs_exist_and_are_executable() -> None:
    text = "".join(p.read_text() for p in WORKFLOWS.glob("*.yml"))
    scripts = set(re.findall(r"infra/scripts/[\w.-]+\.sh", text))
    assert scripts == {"infra/scripts/deploy-with-retry.sh", "infra/scripts/smoke.sh"}
    for script in scripts:
        assert os.access(REPO / script, os.X_OK), script


def test_azure_yaml_deploys_the_repository_root_as_a_python_function_app() -> None:
    config = yaml.safe_load((REPO / "azure.yaml").read_text())
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", config["name"])
    assert config["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    assert (REPO / config["infra"]["path"] / f"{config['infra']['module']}.bicep").is_file()
    assert config["services"] == {"api": {"project": ".", "language": "python", "host": "function"}}
    project = REPO / config["services"]["api"]["project"]
    assert (project / "function_app.py").is_file() and (project / "host.json").is_file()
    # main.bicep tags the function app for exactly this service name.
    function_app = (INFRA / "main.bicep").read_text()
    assert "serviceName: 'api'" in function_app


def test_azure_yaml_postprovision_hook_runs_the_scripts() -> None:
    hook = yaml.safe_load((REPO / "azure.yaml").read_text())["hooks"]["postprovision"]
    assert hook["posix"]["shell"] == "sh"
    assert hook["windows"]["shell"] == "pwsh"
    posix = REPO / hook["posix"]["run"]
    windows = REPO / hook["windows"]["run"]
    assert posix == REPO / "infra/scripts/postprovision.sh" and os.access(posix, os.X_OK)
    assert windows == REPO / "infra/scripts/postprovision.ps1" and windows.is_file()
    assert hook["posix"]["continueOnError"] is False
