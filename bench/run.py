"""Run the benchmarks: ``python -m bench.run [--only NAME[,NAME]] [--quick] [--list]``.

Each benchmark starts its own Azurite (and ``uploadsession serve`` where it needs one), prints
its table and merges its entry into ``bench/results/latest.json`` (``--quick`` smoke runs into
the git-ignored ``bench/results/quick/latest.json`` instead); ``python -m bench.report``
renders ``latest.md`` and the chart from that file. A missed target is reported, not an error:
the exit status is non-zero only when a benchmark could not run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Sequence

from bench.harness import LATEST_JSON, QUICK_JSON, Check, Config, print_result, render_table, save

#: name → module, in the order ``make bench`` runs them (cheap and independent first).
BENCHMARKS = {
    "token": "bench.token_cost",
    "cold_start": "bench.cold_start",
    "get_inprocess": "bench.get_inprocess",
    "get_http": "bench.get_http",
    "upload": "bench.upload",
    "memory": "bench.memory",
    "scale": "bench.scale",
    "purge": "bench.purge",
    "tenants": "bench.tenants",
    "contention": "bench.contention",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME[,NAME]",
        help=f"run only these benchmarks ({', '.join(BENCHMARKS)})",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer rounds, less data")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--no-save", action="store_true", help="do not write latest.json")
    args = parser.parse_args(argv)
    if args.list:
        for name, module in BENCHMARKS.items():
            doc = (importlib.import_module(module).__doc__ or "").strip().splitlines()[0]
            print(f"{name:14} {doc}")
        return 0
    selected = [n.strip() for value in args.only for n in value.split(",") if n.strip()]
    unknown = [n for n in selected if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    names = [n for n in BENCHMARKS if not selected or n in selected]
    config = Config(quick=args.quick)
    output = QUICK_JSON if args.quick else LATEST_JSON
    checks: list[tuple[str, Check]] = []
    failed: list[str] = []
    started = time.perf_counter()
    for name in names:
        print(f"\n>> {name} ...", flush=True)
        began = time.perf_counter()
        try:
            result = importlib.import_module(BENCHMARKS[name]).run(config)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        result.seconds = time.perf_counter() - began
        print_result(result)
        if not args.no_save:
            save(result, output)
        checks.extend((name, check) for check in result.checks)
    print(f"\n== summary ({time.perf_counter() - started:.0f} s)")
    if not args.no_save:
        print(f"results merged into {output}")
    print(
        render_table(
            ["benchmark", "check", "ratio", "target", "met"],
            [
                [name, c.name, f"{c.ratio:.2f}x", c.target_text, "yes" if c.met else "NO"]
                for name, c in checks
            ],
        )
    )
    if failed:
        print(f"\nfailed to run: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
