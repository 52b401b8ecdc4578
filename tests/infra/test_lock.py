"""requirements.lock (hashed, what the deployment installs) agrees with requirements.txt.

Compared by pins, offline: each name requirements.txt pins is in the lock at the same version and
is one of the lock's direct requirements, and the lock has no direct requirement requirements.txt
dropped; every locked package carries sha256 hashes. Regenerate with scripts/lock-requirements.sh.
"""

from __future__ import annotations

import os
import re

from tests.infra.repo import REPO, load_workflow

REQUIREMENTS = REPO / "requirements.txt"
LOCK = REPO / "requirements.lock"
REGENERATE = "run scripts/lock-requirements.sh and commit requirements.lock"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;\\]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_pins() -> dict[str, str]:
    pins = {}
    for raw in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        found = _PIN.match(line)
        assert found, f"requirements.txt: {raw!r} is not an exact pin (name==version)"
        pins[canonical(found.group(1))] = found.group(3)
    return pins


def lock_entries() -> dict[str, tuple[str, int, set[str]]]:
    """name → (version, number of hashes, what it is required via)."""
    entries: dict[str, tuple[str, int, set[str]]] = {}
    current: str | None = None
    for raw in LOCK.read_text(encoding="utf-8").splitlines():
        found = _PIN.match(raw)
        if found:
            current = canonical(found.group(1))
            entries[current] = (found.group(3), 0, set())
            continue
        stripped = raw.strip()
        if current is None:
            continue
        version, hashes, via = entries[current]
        if stripped.startswith("--hash=sha256:"):
            assert re.fullmatch(r"--hash=sha256:[0-9a-f]{64}( \\)?", stripped), raw
            entries[current] = (version, hashes + 1, via)
        elif stripped.startswith("# via"):
            rest = stripped.removeprefix("# via").strip()
            if rest:
                via.add(rest)
        elif stripped.startswith("#   "):
            via.add(stripped.removeprefix("#").strip())
    return entries


def test_every_pin_of_requirements_txt_is_locked_at_the_same_version() -> None:
    pins, locked = requirement_pins(), lock_entries()
    assert pins, "requirements.txt pins nothing"
    for name, version in pins.items():
        assert name in locked, f"{name} is not in requirements.lock: {REGENERATE}"
        assert locked[name][0] == version, (
            f"{name}: requirements.txt pins {version}, requirements.lock has "
            f"{locked[name][0]}: {REGENERATE}"
        )


def test_the_lock_has_no_direct_requirement_requirements_txt_dropped() -> None:
    pins = requirement_pins()
    direct = {name for name, (_, _, via) in lock_entries().items() if "-r requirements.txt" in via}
    assert direct == set(pins), f"{sorted(direct ^ set(pins))}: {REGENERATE}"


def test_every_locked_package_has_hashes() -> None:
    locked = lock_entries()
    assert len(locked) > len(requirement_pins())  # transitive dependencies are locked too
    missing = [name for name, (_, hashes, _) in locked.items() if hashes == 0]
    assert not missing, f"no --hash for {missing}: {REGENERATE}"
    assert "scripts/lock-requirements.sh" in LOCK.read_text(encoding="utf-8").splitlines()[1]


def test_the_lock_script_is_executable() -> None:
    assert os.access(REPO / "scripts" / "lock-requirements.sh", os.X_OK)


def test_the_deployment_installs_from_the_lock() -> None:
    commands = [
        step.get("run", "") for step in load_workflow("deploy.yml")["jobs"]["deploy"]["steps"]
    ]
    # The CLI for the postprovision hook, with hashes checked...
    assert any("--require-hashes" in c and "-r requirements.lock" in c for c in commands)
    # ...and the function app: the package azd zips carries the lock as its requirements.txt,
    # so the Flex Consumption remote build installs exactly the locked, hashed files.
    swap = [i for i, c in enumerate(commands) if "cp requirements.lock requirements.txt" in c]
    deploy = [i for i, c in enumerate(commands) if "deploy-with-retry.sh" in c]
    assert swap and deploy and swap[0] < deploy[0]
