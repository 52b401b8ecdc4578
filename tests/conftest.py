"""Session fixtures: one Azurite for the whole run, started with a deadline, and a storage
adapter on unique tables and a unique container per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import Azurite
from uploadsession.config import StorageSettings
from uploadsession.store import AzureStorage


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = Azurite(tmp_path_factory.mktemp("azurite"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def unique_storage(azurite: Azurite) -> AzureStorage:
    suffix = uuid.uuid4().hex[:12]
    return AzureStorage(
        StorageSettings(connection_string=azurite.connection_string),
        sessions_table=f"sessions{suffix}",
        subscriptions_table=f"subs{suffix}",
        container=f"documents-{suffix}",
    )


@pytest.fixture
def storage(azurite: Azurite) -> AzureStorage:
    """The real Table/Blob adapter on its own tables and container."""
    return unique_storage(azurite)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
