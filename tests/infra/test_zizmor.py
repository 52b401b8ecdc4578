"""zizmor, the GitHub Actions static analyser, finds nothing in .github/ (offline audits).

zizmor is installed by requirements-dev.txt, so this runs in `make test` and in CI; it is skipped
only where the package is missing altogether. Every audit runs, the pedantic persona's too; an
intended exception is an inline ``# zizmor: ignore[audit]`` next to its reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.repo import REPO

# The PyPI package ships only the binary, installed beside the interpreter.
ZIZMOR = Path(sys.executable).parent / "zizmor"

pytestmark = pytest.mark.skipif(not ZIZMOR.is_file(), reason="zizmor is not installed")


def zizmor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ZIZMOR), "--offline", "--no-progress", "--format", "json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )


def findings(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    assert result.stdout.strip(), result.stderr
    found: list[dict[str, object]] = json.loads(result.stdout)
    return found


def summary(found: list[dict[str, object]]) -> str:
    lines = []
    for finding in found:
        locations = finding.get("locations") or [{}]
        where = locations[0].get("symbolic", {}).get("key", {})  # type: ignore[union-attr]
        lines.append(f"{finding['ident']}: {finding['desc']} ({where})")
    return "\n".join(lines)


def test_workflows_and_dependabot_have_no_zizmor_findings() -> None:
    result = zizmor("--persona", "pedantic", ".github")
    found = findings(result)
    assert found == [], summary(found)
    assert result.returncode == 0, result.stderr
    # It really audited the three files (an empty collection would also find nothing).
    for name in ("dependabot.yml", "workflows/ci.yml", "workflows/deploy.yml"):
        assert f"completed .github/{name}" in result.stderr, result.stderr


def test_zizmor_would_catch_the_old_mistakes(tmp_path: Path) -> None:
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "bad.yml").write_text(
        "on: push\n"
        "permissions:\n  id-token: write\n"
        "jobs:\n  deploy:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n"
        '      - run: echo "${{ vars.AZURE_CLIENT_ID }}"\n'
    )
    result = zizmor(str(tmp_path / ".github"))
    idents = {str(f["ident"]) for f in findings(result)}
    assert {"unpinned-uses", "artipacked", "template-injection"} <= idents
    assert result.returncode != 0
