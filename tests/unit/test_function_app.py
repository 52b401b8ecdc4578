"""What the Functions host indexes: the functions, their routes and a light import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import function_app

ROOT = Path(__file__).resolve().parents[2]
SESSION_ROUTE = (
    "{version}/print/printers/{printerId}/jobs/{jobId}/documents/{documentId}/uploadSession"
)


def _functions() -> dict[str, list[dict[str, Any]]]:
    """``app.get_functions()`` as the host's indexer sees it, by function name.

    ``get_functions`` refuses, on a second call, the names it returned before (its
    duplicate-name check), so each call here runs against a fresh record and restores the
    app's own afterwards: other tests may index the same app.
    """
    app = function_app.app
    recorded = app.functions_bindings
    app.functions_bindings = {}
    try:
        functions = app.get_functions()
    finally:
        app.functions_bindings = recorded
    return {
        str(f.get_function_name()): [json.loads(b) for b in f.get_raw_bindings()] for f in functions
    }


def _trigger(name: str) -> dict[str, Any]:
    (trigger,) = [b for b in _functions()[name] if b["direction"] == "IN"]
    return trigger


def test_exactly_the_designed_functions_are_registered() -> None:
    assert sorted(_functions()) == [
        "create_upload_session",
        "delete_upload_session",
        "get_document_content",
        "get_upload_session",
        "graph_cancel_upload",
        "graph_create_upload_session",
        "graph_get_upload_status",
        "graph_upload_range",
        "health",
        "purge_expired_sessions",
        "upload_segment",
    ]


@pytest.mark.parametrize(
    ("name", "method", "route"),
    [
        ("get_upload_session", "GET", SESSION_ROUTE),
        ("create_upload_session", "PUT", SESSION_ROUTE),
        ("delete_upload_session", "DELETE", SESSION_ROUTE),
        ("upload_segment", "POST", SESSION_ROUTE + "/$value"),
    ],
)
def test_each_http_function_has_its_route_method_and_anonymous_auth(
    name: str, method: str, route: str
) -> None:
    trigger = _trigger(name)
    assert trigger["type"] == "httpTrigger"
    assert trigger["route"] == route
    assert trigger["methods"] == [method]
    assert trigger["authLevel"].upper() == "ANONYMOUS"
    outputs = [b for b in _functions()[name] if b["direction"] == "OUT"]
    assert [o["type"] for o in outputs] == ["http"]


def test_the_purge_runs_on_a_timer() -> None:
    trigger = _trigger("purge_expired_sessions")
    assert trigger["type"] == "timerTrigger"
    assert len(trigger["schedule"].split()) == 6  # NCRONTAB with seconds
    assert trigger.get("runOnStartup") in (None, False)


def test_the_route_prefix_is_empty_and_routes_carry_the_version() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensions"]["http"]["routePrefix"] == ""
    assert host["version"] == "2.0"


def test_indexing_needs_no_settings_no_storage_sdk_and_no_pydantic() -> None:
    probe = (
        "import json, sys\n"
        "import function_app\n"
        "function_app.app.get_functions()\n"
        "heavy = ['azure.storage.blob', 'azure.data.tables', 'azure.identity', 'requests',\n"
        "         'opentelemetry', 'azure.monitor', 'pydantic']\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}  # no app settings
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
