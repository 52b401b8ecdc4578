"""The layers stay apart: the use cases load no Azure SDK and the service no tool.

Each check imports in a fresh interpreter, so what another test imported cannot hide a leak.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

TOOLS = ("uploadsession.dev", "uploadsession.client", "uploadsession.cli")


def loaded_after(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(json.loads(out))


def test_the_use_cases_load_no_azure_sdk_and_no_tool() -> None:
    loaded = loaded_after("import uploadsession.service")
    azure = sorted(m for m in loaded if m.startswith("azure"))
    tools = sorted(m for m in loaded if m.startswith(TOOLS))
    assert azure == [] and tools == []


@pytest.mark.parametrize(
    "module",
    [
        "function_app",
        "uploadsession.runtime",
        "uploadsession.store",
        "uploadsession.http",
        "uploadsession.graph_http",
        "uploadsession.health",
        "uploadsession.timers",
    ],
)
def test_no_service_module_loads_a_tool(module: str) -> None:
    loaded = loaded_after(f"import {module}")
    assert sorted(m for m in loaded if m.startswith(TOOLS)) == []


def test_the_tools_do_load_the_service_they_drive() -> None:
    # The check above would pass vacuously if the tools' names were wrong.
    loaded = loaded_after("import uploadsession.cli, uploadsession.dev.host")
    assert "uploadsession.cli" in loaded and "uploadsession.dev.host" in loaded
