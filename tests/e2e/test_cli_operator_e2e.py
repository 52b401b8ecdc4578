"""The operator's commands against Azurite: `uploadsession subscription activate|suspend|show`
and `purge`, their JSON on stdout, and a bad tenant id as a usage error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from tests.processes import REPO, Azurite


def operator(azurite: Azurite, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UPLOADSESSION_STORAGE": azurite.connection_string}
    return subprocess.run(
        [sys.executable, "-m", "uploadsession.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
    )


def test_a_subscription_is_shown_activated_and_suspended(azurite: Azurite) -> None:
    tenant = str(uuid.uuid4())
    none = operator(azurite, "subscription", "show", tenant)
    assert none.returncode == 0, none.stderr
    assert json.loads(none.stdout) == {"tenantId": tenant, "state": "none"}
    active = operator(azurite, "subscription", "activate", tenant.upper())
    assert active.returncode == 0, active.stderr
    assert json.loads(active.stdout) == {"tenantId": tenant, "state": "active"}
    shown = json.loads(operator(azurite, "subscription", "show", tenant).stdout)
    assert shown["state"] == "active" and "updated" in shown
    suspended = operator(azurite, "subscription", "suspend", tenant)
    assert json.loads(suspended.stdout) == {"tenantId": tenant, "state": "suspended"}
    assert "60 s" in suspended.stderr
    assert json.loads(operator(azurite, "subscription", "show", tenant).stdout)["state"] == (
        "suspended"
    )


def test_a_tenant_that_is_not_a_guid_is_a_usage_error(azurite: Azurite) -> None:
    done = operator(azurite, "subscription", "show", "contoso")
    assert done.returncode == 2 and "GUID" in done.stderr


def test_purge_reports_what_it_removed_as_json(azurite: Azurite) -> None:
    done = operator(azurite, "purge")
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == {"sessions", "stagedDiscarded"}
