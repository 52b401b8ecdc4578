"""What every benchmark shares: the stack it runs on, statistics, results and the machine.

- :class:`Stack`: Azurite, a signing key with its ``file://`` JWKS, a tenant with an active
  subscription, the app's settings and environment, tokens, and ``uploadsession serve``.
- :class:`Result`: one benchmark's table and its ratio checks, merged into
  ``bench/results/latest.json`` (other benchmarks' entries are kept, so each runs alone).
- Statistics are medians over rounds; each check is a ratio against a baseline measured in the
  same run, on the same Azurite, so the machine's speed cancels out.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.processes import REPO, Azurite, Host
from uploadsession.config import Settings, StorageSettings
from uploadsession.dev import tokens as devtoken
from uploadsession.store import AzureStorage

RESULTS = REPO / "bench" / "results"
LATEST_JSON = RESULTS / "latest.json"
#: Where ``--quick`` smoke runs go (git-ignored), so they never overwrite the committed results.
QUICK_JSON = RESULTS / "quick" / "latest.json"
AUDIENCE = "api://uploadsession-bench"
TENANT = devtoken.DEV_TENANT
USER = devtoken.DEV_USER
READ_WRITE = "PrintJob.ReadWrite Printer.Read.All"
MiB = 1024 * 1024


# -- configuration -----------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """How hard to measure. ``quick`` is a smoke run (fewer rounds, smaller data): its numbers
    are marked as such and are not the ones the README shows."""

    quick: bool = False

    def pick(self, full: Any, quick: Any) -> Any:
        return quick if self.quick else full


# -- statistics ----------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100), linear between the two nearest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}x"


# -- the stack -----------------------------------------------------------------------------


class Stack:
    """Azurite + a signing key and JWKS + a subscribed tenant; builds settings, tokens, hosts."""

    def __init__(self, workdir: Path, azurite: Azurite) -> None:
        self.workdir = workdir
        self.azurite = azurite
        self.key_dir = workdir / "keys"
        self.key, self.kid = devtoken.ensure_key(self.key_dir)
        self.jwks_uri = (self.key_dir / devtoken.JWKS_FILE).as_uri()
        self.storage = AzureStorage(StorageSettings(connection_string=azurite.connection_string))
        ensure_resources(self.storage)
        self.storage.put_subscription(TENANT, active=True)
        self._hosts: list[Host] = []

    @property
    def env(self) -> dict[str, str]:
        """The app settings ``uploadsession serve`` runs with."""
        return {
            "UPLOADSESSION_STORAGE": self.azurite.connection_string,
            "AUTH_AUDIENCES": AUDIENCE,
            "AUTH_JWKS_URI": self.jwks_uri,
        }

    def settings(self) -> Settings:
        return Settings(
            storage=StorageSettings(connection_string=self.azurite.connection_string),
            auth_audiences=(AUDIENCE,),
            jwks_uri=self.jwks_uri,
        )

    def token(self, scopes: str = READ_WRITE) -> str:
        claims = devtoken.dev_claims(audience=AUDIENCE, scopes=scopes)
        return devtoken.mint(self.key_dir, claims)

    def host(self, name: str = "host", extra_env: dict[str, str] | None = None) -> Host:
        """A started ``uploadsession serve``; stopped with the stack."""
        env = {**self.env, **(extra_env or {})}
        host = Host(env, self.workdir / f"{name}-{len(self._hosts)}.log").start()
        self._hosts.append(host)
        return host

    def stop_host(self, host: Host) -> None:
        host.stop()
        self._hosts.remove(host)

    def close(self) -> None:
        for host in self._hosts:
            host.stop()
        self._hosts.clear()


def ensure_resources(storage: AzureStorage) -> None:
    """Create the storage's tables and container before a benchmark measures (the service
    itself creates them on the first "not found")."""
    from azure.core.exceptions import ResourceExistsError

    clients = storage._get_clients()
    for create in (
        clients.sessions.create_table,
        clients.subscriptions.create_table,
        clients.expiries.create_table,
        clients.documents.create_container,
    ):
        with suppress(ResourceExistsError):
            create()


@contextmanager
def stack(*, in_memory: bool = False) -> Iterator[Stack]:
    """A fresh Azurite (data in a temporary directory, or in memory) and everything on it."""
    workdir = Path(tempfile.mkdtemp(prefix="uploadsession-bench-"))
    azurite = Azurite(workdir / "azurite", in_memory=in_memory).start()
    running: Stack | None = None
    try:
        running = Stack(workdir, azurite)
        yield running
    finally:
        if running is not None:
            running.close()
        azurite.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def new_document() -> tuple[str, str, str]:
    """A fresh (printerId, jobId, documentId)."""
    return str(uuid.uuid4()), "bench-" + uuid.uuid4().hex[:8], str(uuid.uuid4())


def session_path(printer: str, job: str, document: str) -> str:
    return f"print/printers/{printer}/jobs/{job}/documents/{document}/uploadSession"


class Connection:
    """One keep-alive HTTP/1.1 connection (TCP_NODELAY) to a base URL, as a client holds it."""

    def __init__(self, base_url: str, timeout: float = 120) -> None:
        parts = urlsplit(base_url)
        self.prefix = parts.path.rstrip("/")
        self._conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
        self._conn.connect()
        assert self._conn.sock is not None
        self._conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | memoryview | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        self._conn.request(method, f"{self.prefix}/{path}", body=body, headers=headers or {})
        response = self._conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self._conn.close()


def create_session(conn: Connection, token: str, path: str, size: int) -> dict[str, Any]:
    body = json.dumps({"size": size, "contentType": "application/pdf", "documentName": "b.pdf"})
    status, payload = conn.request(
        "PUT",
        path,
        body.encode(),
        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    if status != 200:
        raise RuntimeError(f"PUT {path}: {status} {payload[:300]!r}")
    result: dict[str, Any] = json.loads(payload)
    return result


# -- results -------------------------------------------------------------------------------


@dataclass
class Check:
    """``ratio`` against a target: ``>= x``, ``<= x``, or ``within x`` (|ratio - 1| <= x)."""

    name: str
    ratio: float
    op: str
    target: float
    detail: str = ""

    @property
    def met(self) -> bool:
        if self.op == ">=":
            return self.ratio >= self.target
        if self.op == "<=":
            return self.ratio <= self.target
        if self.op == "within":
            return abs(self.ratio - 1) <= self.target
        raise ValueError(self.op)

    @property
    def target_text(self) -> str:
        if self.op == "within":
            return f"1.00x ± {self.target:.0%}"
        return f"{self.op} {self.target:.2f}x"


@dataclass
class Result:
    name: str
    title: str
    measured: str
    baseline: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # for the chart
    settings: dict[str, Any] = field(default_factory=dict)
    quick: bool = False
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["checks"] = [
            {**asdict(c), "met": c.met, "target_text": c.target_text} for c in self.checks
        ]
        out["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        return out


def render_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in columns], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def print_result(result: Result) -> None:
    print(f"\n== {result.title} ({result.seconds:.0f} s){' [quick]' if result.quick else ''}")
    print(f"   measured: {result.measured}\n   baseline: {result.baseline}\n")
    print(render_table(result.columns, result.rows))
    if result.checks:
        print()
        print(
            render_table(
                ["check", "ratio", "target", "met"],
                [
                    [c.name, fmt_ratio(c.ratio), c.target_text, "yes" if c.met else "NO"]
                    for c in result.checks
                ],
            )
        )
    for note in result.notes:
        print(f"   note: {note}")
    sys.stdout.flush()


def save(result: Result, path: Path = LATEST_JSON) -> None:
    """Merge ``result`` into ``latest.json`` (other benchmarks' entries stay)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {}
    if path.exists():
        try:
            document = json.loads(path.read_text())
        except ValueError:
            document = {}
    document["machine"] = machine()
    document.setdefault("benchmarks", {})[result.name] = result.to_json()
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)


# -- the machine ---------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python, Azurite and Node versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        azurite = json.loads((REPO / "node_modules/azurite/package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        azurite = None
    try:
        node = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        node = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": memory,
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "azurite": azurite,
        "node": node,
    }


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def interleaved(functions: dict[str, Any], rounds: int, calls: int) -> dict[str, list[list[float]]]:
    """Per-call latencies (seconds) of each function: ``rounds`` lists of ``calls`` values.

    Every round runs each function ``calls`` times, rotating which goes first, so drift in
    the machine (Azurite's heap, page cache, other processes) hits all of them alike.
    """
    names = list(functions)
    out: dict[str, list[list[float]]] = {name: [] for name in names}
    clock = time.perf_counter
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            function = functions[name]
            latencies = []
            for _ in range(calls):
                started = clock()
                function()
                latencies.append(clock() - started)
            out[name].append(latencies)
    return out


def per_round(latencies: list[list[float]], statistic: Any) -> list[float]:
    return [float(statistic(round_)) for round_ in latencies]


def throughput(latencies: list[list[float]]) -> list[float]:
    """Calls per second in each round (one caller, back to back)."""
    return [len(round_) / sum(round_) for round_ in latencies]
