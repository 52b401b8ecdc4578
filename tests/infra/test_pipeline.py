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
    assert str(node["with"]["node-version"]) == "22"  # what Azurite declares (README)
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


# The release each pinned commit is (checked against the actions' own tags when pinned).
PINNED_ACTIONS = {
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    "actions/setup-node": ("820762786026740c76f36085b0efc47a31fe5020", "v7.0.0"),
    "Azure/setup-azd": ("0b7e3a35ab00f2eee7080c845eb39c3f0ebfa553", "v2.4.0"),
    "azure/login": ("f5d393ae46f8fde4be8b75f32e3fc50e654ad0ca", "v3.0.1"),
}


def all_steps() -> list[dict[str, Any]]:
    found = []
    for path in WORKFLOWS.glob("*.yml"):
        for job in load_workflow(path.name)["jobs"].values():
            found.extend(job.get("steps", []))
    return found


def test_every_action_is_pinned_by_commit_sha_with_its_release_as_a_comment() -> None:
    seen = set()
    for path in WORKFLOWS.glob("*.yml"):
        for line in path.read_text().splitlines():
            found = re.search(r"uses:\s*(\S+)(.*)$", line)
            if not found:
                continue
            ref, rest = found.groups()
            if ref.startswith("./.github/workflows/"):  # this repository, this commit
                assert (REPO / ref).is_file(), ref
                continue
            action, _, sha = ref.partition("@")
            assert re.fullmatch(r"[0-9a-f]{40}", sha), f"{path.name}: {ref} is not pinned by SHA"
            assert action in PINNED_ACTIONS, f"{action}: add it to PINNED_ACTIONS"
            expected_sha, version = PINNED_ACTIONS[action]
            assert sha == expected_sha, ref
            assert rest.strip() == f"# {version}", f"{path.name}: {ref} needs '# {version}'"
            seen.add(action)
    assert seen == set(PINNED_ACTIONS)


def test_checkout_never_keeps_the_token_in_git_config() -> None:
    checkouts = [s for s in all_steps() if s.get("uses", "").startswith("actions/checkout@")]
    assert len(checkouts) == 3
    assert all(s["with"]["persist-credentials"] is False for s in checkouts)


def test_no_expression_is_spliced_into_a_script() -> None:
    # vars.*, inputs and event data reach shells through env:, where they are data, not code.
    for step in all_steps():
        assert "${{" not in step.get("run", ""), step.get("name", step["run"])


def test_workflows_grant_nothing_by_default_and_id_token_only_to_the_deploy_job() -> None:
    with_id_token = []
    for path in WORKFLOWS.glob("*.yml"):
        workflow = load_workflow(path.name)
        assert workflow["permissions"] == {}, path.name
        for name, job in workflow["jobs"].items():
            permissions = job["permissions"]
            assert permissions.get("contents") == "read", f"{path.name}: {name}"
            assert set(permissions) <= {"contents", "id-token"}, f"{path.name}: {name}"
            if "id-token" in permissions:
                assert permissions["id-token"] == "write"
                with_id_token.append(f"{path.name}:{name}")
    assert sorted(with_id_token) == ["ci.yml:deploy", "deploy.yml:deploy"]


def test_deploy_runs_only_after_ci_passed_for_the_same_commit_on_main() -> None:
    ci = load_workflow("ci.yml")
    assert {"push", "pull_request", "workflow_dispatch"} <= set(ci["on"])
    job = ci["jobs"]["deploy"]
    assert job["uses"] == "./.github/workflows/deploy.yml"
    assert sorted(job["needs"]) == ["bicep", "test"]
    condition = " ".join(job["if"].split())
    assert condition.startswith("github.ref == 'refs/heads/main' && (")
    assert "github.event_name == 'push'" in condition
    assert "github.event_name == 'workflow_dispatch'" in condition
    assert "pull_request" not in condition
    # deploy.yml has no trigger of its own: only ci.yml, after its tests, can start it.
    assert load_workflow("deploy.yml")["on"] == {"workflow_call": None}
    # A deployment on main is never cancelled halfway by the next push.
    assert ci["concurrency"]["cancel-in-progress"] == "${{ github.ref != 'refs/heads/main' }}"
    assert (
        load_workflow("deploy.yml")["jobs"]["deploy"]["concurrency"]["cancel-in-progress"] is False
    )


def test_deploy_runs_in_the_production_environment_with_an_oidc_token_only() -> None:
    deploy = load_workflow("deploy.yml")
    job = deploy["jobs"]["deploy"]
    assert job["environment"]["name"] == "production"
    text = "".join(p.read_text() for p in WORKFLOWS.glob("*.yml"))
    assert "secrets." not in text
    logins = uses(deploy, "deploy", "azure/login")
    assert len(logins) == 2 and all(
        login["with"]
        == {
            "client-id": "${{ vars.AZURE_CLIENT_ID }}",
            "tenant-id": "${{ vars.AZURE_TENANT_ID }}",
            "subscription-id": "${{ vars.AZURE_SUBSCRIPTION_ID }}",
        }
        for login in logins
    )
    script = runs(deploy, "deploy")
    assert "--federated-credential-provider github" in script
    assert '--client-id "$AZURE_CLIENT_ID"' in script


def test_dependabot_updates_actions_python_and_npm() -> None:
    config = yaml.safe_load((REPO / ".github" / "dependabot.yml").read_text())
    assert config["version"] == 2
    ecosystems = {u["package-ecosystem"]: u for u in config["updates"]}
    assert set(ecosystems) == {"github-actions", "pip", "npm"}
    assert all(u["directory"] == "/" for u in config["updates"])


def test_deploy_provisions_deploys_with_retry_and_smoke_tests_with_azd() -> None:
    deploy = load_workflow("deploy.yml")
    env = deploy["jobs"]["deploy"]["env"]
    for name in (
        "AZURE_ENV_NAME",
        "AZURE_LOCATION",
        "AZURE_SUBSCRIPTION_ID",
        "AUTH_AUDIENCES",
        "ACTIVATE_TENANT_ID",
    ):
        assert env[name] == f"${{{{ vars.{name} }}}}"
    assert env["AZURE_PRINCIPAL_TYPE"] == "ServicePrincipal"
    # AZURE_CLIENT_ID would steer DefaultAzureCredential to a managed identity: azd login only.
    assert "AZURE_CLIENT_ID" not in env
    (login,) = [s for s in steps(deploy, "deploy") if "azd auth login" in s.get("run", "")]
    assert login["env"] == {
        "AZURE_CLIENT_ID": "${{ vars.AZURE_CLIENT_ID }}",
        "AZURE_TENANT_ID": "${{ vars.AZURE_TENANT_ID }}",
    }
    assert uses(deploy, "deploy", "azure/setup-azd")
    commands = [s.get("run", "").strip() for s in steps(deploy, "deploy")]
    provision = commands.index("azd provision --no-prompt")
    deploy_step = commands.index("bash infra/scripts/deploy-with-retry.sh --no-prompt")
    (smoke,) = [i for i, c in enumerate(commands) if "bash infra/scripts/smoke.sh" in c]
    assert provision < deploy_step < smoke
    smoke_step = steps(deploy, "deploy")[smoke]
    assert 'base="$(azd env get-value API_BASE_URL)"' in smoke_step["run"]
    assert 'bash infra/scripts/smoke.sh "$base"' in smoke_step["run"]
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
