"""The purge in a process of its own, so a fault test can SIGKILL it at a chosen storage
request: ``python -m tests.faults.purge_child <connection string>`` runs one purge with its
clock 48 hours past now (every session of the tables is due), through whatever endpoint the
connection string names (the fault proxy)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from uploadsession.config import StorageSettings
from uploadsession.service import UploadSessionService
from uploadsession.store import AzureStorage


def purger(connection_string: str, hours: int = 48) -> UploadSessionService:
    storage = AzureStorage(StorageSettings(connection_string=connection_string))
    later = datetime.now(UTC) + timedelta(hours=hours)
    return UploadSessionService(storage, ttl_seconds=3600, clock=lambda: later)


def main(argv: list[str]) -> int:
    print(purger(argv[0]).purge(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
