"""`uploadsession serve` whose storage traffic passes a counting, holding proxy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import pytest

from tests.e2e.conftest import Api, start_api
from tests.faults.proxy import FaultProxy
from tests.processes import AZURITE_KEY, Azurite


@dataclass
class _Endpoint:
    connection_string: str


@pytest.fixture(scope="module")
def proxy(azurite: Azurite) -> Iterator[FaultProxy]:
    running = FaultProxy({"blob": azurite.blob_port, "table": azurite.table_port}).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def proxied_api(proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    endpoint = cast(Azurite, _Endpoint(proxy.connection_string(AZURITE_KEY)))
    running = start_api(endpoint, tmp_path_factory.mktemp("proxied-api"))
    try:
        yield running
    finally:
        running.server.stop()


@pytest.fixture
def clean_proxy(proxy: FaultProxy) -> Iterator[FaultProxy]:
    proxy.clear()
    yield proxy
    proxy.clear()
