"""The deployment package holds the function app and nothing of the tools beside it.

The package is what azd (and `func azure functionapp publish`) zips: the repository's files
minus `.funcignore`'s entries. git applies those gitignore-style patterns here, so the list is
built the way the tools build it, not by a parser of our own. The app's own modules are found
with the standard library's ``modulefinder``, which reads every import in the code — the lazy
ones inside functions included.
"""

from __future__ import annotations

import subprocess
from modulefinder import ModuleFinder
from pathlib import Path

from tests.infra.repo import REPO

TOOL_PACKAGES = ("uploadsession/dev/", "uploadsession/client/", "uploadsession/cli/")


def deployment_package() -> set[str]:
    """Tracked files that survive `.funcignore` (paths relative to the repository)."""

    def git_files(*extra: str) -> set[str]:
        out = subprocess.run(
            ["git", "ls-files", "--cached", *extra],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return {line for line in out.splitlines() if line}

    ignored = git_files("--ignored", "--exclude-from=.funcignore")
    return git_files() - ignored


def modules_the_app_imports() -> set[str]:
    """Files of ``uploadsession`` that ``function_app.py`` imports, directly or lazily."""
    finder = ModuleFinder(path=[str(REPO)])  # only our code: third-party imports stay unread
    finder.run_script(str(REPO / "function_app.py"))
    found = set()
    for name, module in finder.modules.items():
        if name.split(".")[0] == "uploadsession" and module.__file__:
            found.add(Path(module.__file__).resolve().relative_to(REPO).as_posix())
    return found


def test_the_package_has_the_app_and_its_settings() -> None:
    package = deployment_package()
    for needed in ("function_app.py", "host.json", "requirements.txt"):
        assert needed in package


def test_no_tool_test_or_benchmark_file_is_deployed() -> None:
    package = deployment_package()
    leaked = sorted(
        path
        for path in package
        if path.startswith((*TOOL_PACKAGES, "tests/", "bench/", "scripts/", "infra/", ".github/"))
    )
    assert leaked == []


def test_every_deployed_module_is_one_the_app_imports_and_none_is_missing() -> None:
    package = {path for path in deployment_package() if path.endswith(".py")}
    imported = modules_the_app_imports()
    assert "uploadsession/service.py" in imported  # the finder did follow the lazy imports
    assert sorted(package - imported - {"function_app.py"}) == []
    assert sorted(imported - package) == []


def test_the_app_imports_no_tool_module() -> None:
    assert sorted(m for m in modules_the_app_imports() if m.startswith(TOOL_PACKAGES)) == []
