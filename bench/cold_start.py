"""Cold start: a fresh Python process importing ``function_app`` (what the Functions host does).

Measured: wall time of ``python -c "import function_app"`` in the repository.
Baseline: ``python -c "import azure.functions, azure.data.tables, jwt, pydantic"`` — the app's
own third-party imports, the least an app like this could load (pydantic included: the app
imports it, and its wire and settings models, on the first request rather than at indexing).
Also shown: ``python -c pass`` (the interpreter alone).
Target: at most 1.2x the baseline. Runs alternate, bytecode caches warm (as on a deployed app).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.harness import Check, Config, Result, median
from bench.processes import REPO

NAME = "cold_start"
TITLE = "Cold start"

BASELINE = "import azure.functions, azure.data.tables, jwt, pydantic"
COMMANDS = {
    "import function_app": "import function_app",
    BASELINE: BASELINE,
    "python -c pass": "pass",
}


def _run(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True)
    return time.perf_counter() - started


def run(config: Config) -> Result:
    rounds = config.pick(25, 5)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    names = list(COMMANDS)
    for name in names:
        _run(COMMANDS[name], env)  # compile and cache bytecode, warm the page cache
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(_run(COMMANDS[name], env))
    app, base = times[names[0]], times[names[1]]
    ratio = median([a / b for a, b in zip(app, base, strict=True)])
    app_ms, base_ms, bare_ms = (median(times[n]) * 1000 for n in names)
    return Result(
        NAME,
        TITLE,
        measured="fresh process: import function_app",
        baseline=f"fresh process: {BASELINE}",
        columns=["", "ms (median)", "ms over bare interpreter"],
        rows=[
            [names[0], app_ms, app_ms - bare_ms],
            [names[1], base_ms, base_ms - bare_ms],
            [names[2], bare_ms, 0.0],
        ],
        checks=[Check("import function_app vs baseline imports", ratio, "<=", 1.2)],
        settings={"rounds": rounds},
        data={"ms": {n: median(times[n]) * 1000 for n in names}},
        quick=config.quick,
    )
