"""The official Microsoft Graph JavaScript SDK (@microsoft/microsoft-graph-client 3.0.7,
pinned in package.json), unchanged, against `uploadsession serve --https` + Azurite.

The SDK attaches the token only to https hosts it knows (Graph's, or ``customHosts``), so the
server runs with TLS and Node trusts its dev certificate through ``NODE_EXTRA_CA_CERTS``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Api
from tests.e2e.test_graph_protocol_e2e import blob
from tests.processes import REPO, Azurite, Server
from tests.unit import tokens
from uploadsession.config import StorageSettings
from uploadsession.store import AzureStorage

KIB = 1024
NODE = shutil.which("node")
SCRIPT = REPO / "tests" / "e2e" / "js" / "upload.js"

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


@pytest.fixture(scope="module")
def https_api(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    if not (REPO / "node_modules" / "@microsoft" / "microsoft-graph-client").is_dir():
        pytest.fail("@microsoft/microsoft-graph-client is missing: run `npm ci`")
    tmp = tmp_path_factory.mktemp("https-api")
    key = tokens.generate_key()
    jwks = tmp / "jwks.json"
    jwks.write_text(json.dumps(tokens.build_jwks((key, tokens.KID))))
    storage = AzureStorage(StorageSettings(connection_string=azurite.connection_string))
    storage.put_subscription(tokens.TENANT, active=True)
    env = {
        "UPLOADSESSION_STORAGE": azurite.connection_string,
        "AUTH_AUDIENCES": tokens.AUDIENCE,
        "AUTH_JWKS_URI": jwks.as_uri(),
    }
    running = Api(Server(env, tmp / "server.log", https=True).start(), key, storage)
    try:
        yield running
    finally:
        running.server.stop()


def run_upload(api: Api, tmp_path: Path, size: int, range_size: int, *extra: str) -> dict[str, Any]:
    data = random.randbytes(size)
    file = tmp_path / "report.bin"
    file.write_bytes(data)
    printer, document = str(uuid.uuid4()), str(uuid.uuid4())
    origin = api.base_url.removesuffix("/beta")
    assert NODE is not None
    completed = subprocess.run(
        [
            NODE,
            str(SCRIPT),
            origin,
            api.token(),
            printer,
            "job-1",
            document,
            str(file),
            str(range_size),
            *extra,
        ],
        cwd=REPO,
        env={**os.environ, "NODE_EXTRA_CA_CERTS": str(api.server.cert_file)},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")
    report: dict[str, Any] = json.loads(completed.stdout.decode().strip().splitlines()[-1])
    assert report["ok"] is True
    document_url = f"{api.base_url}/print/printers/{printer}/jobs/job-1/documents/{document}"
    assert blob(api, document_url) == data  # the committed blob, byte for byte
    return report


def test_large_file_upload_task_in_several_ranges(https_api: Api, tmp_path: Path) -> None:
    size = 3 * 1024 * KIB + 123
    report = run_upload(https_api, tmp_path, size, 320 * KIB * 3)
    assert len(report["ranges"]) == 4  # three full ranges of 960 KiB and the rest
    assert report["ranges"][-1][1] == size - 1
    assert report["resumed"] is False


def test_resume_after_an_interrupted_upload(https_api: Api, tmp_path: Path) -> None:
    size = 3 * 1024 * KIB + 5
    range_size = 320 * KIB * 2
    report = run_upload(https_api, tmp_path, size, range_size, "interrupt")
    assert report["resumed"] is True
    assert report["ranges"][0] == ["status", [f"{range_size}-{size - 1}"]]
    assert report["ranges"][1][0] == range_size  # only what was missing is sent
    assert report["ranges"][-1][1] == size - 1
