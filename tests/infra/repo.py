"""Where the deployment files are, and loaders for them (offline: no Azure, no Bicep CLI)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.infra.bicep_tree import BicepFile

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
WORKFLOWS = REPO / ".github" / "workflows"


@cache
def bicep(relative: str) -> BicepFile:
    """A Bicep file under infra/, parsed once per test session."""
    return BicepFile.load(INFRA / relative)


def all_bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def load_workflow(name: str) -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    # YAML 1.1 reads the bare key `on` as the boolean true.
    if True in data:
        data["on"] = data.pop(True)
    return data


def relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()
