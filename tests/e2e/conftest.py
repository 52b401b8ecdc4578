"""E2E fixtures: `uploadsession serve` in a subprocess on Azurite, and tokens it trusts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.processes import Azurite, Server
from tests.unit import tokens
from uploadsession.config import StorageSettings
from uploadsession.store import AzureStorage

TENANT = tokens.TENANT
OTHER_TENANT = "5b0e6a7c-1f2d-4e3a-9b8c-7d6e5f4a3b2c"
UNSUBSCRIBED_TENANT = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
READ_WRITE = "PrintJob.ReadWrite Printer.Read.All"


@dataclass
class Api:
    """A running service and the means to call it as different principals."""

    server: Server
    key: rsa.RSAPrivateKey
    storage: AzureStorage

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def token(
        self,
        *,
        tenant: str = TENANT,
        user: str = tokens.USER,
        scp: str = READ_WRITE,
        roles: list[str] | None = None,
    ) -> str:
        if roles is not None:
            claims = tokens.app_claims(tenant, roles, tokens.AUDIENCE)
        else:
            claims = tokens.delegated_claims(tenant, user, scp, tokens.AUDIENCE)
        return tokens.mint(self.key, tokens.KID, **claims)

    def headers(self, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**kwargs)}"}

    def session_url(
        self, printer: str | None = None, job: str = "job-1", document: str | None = None
    ) -> str:
        printer = printer or str(uuid.uuid4())
        document = document or str(uuid.uuid4())
        return (
            f"{self.base_url}/print/printers/{printer}/jobs/{job}/documents/{document}"
            "/uploadSession"
        )

    def document_blob(self, url: str, tenant: str = TENANT) -> Any:
        """The blob client of the document of the session at ``url``."""
        parts = url.split("/")
        printer, job, document = parts[-6], parts[-4], parts[-2]
        return self.storage._get_clients().documents.get_blob_client(
            f"{tenant}/{printer.lower()}/{job}/{document.lower()}"
        )

    def document_bytes(self, url: str, tenant: str = TENANT) -> tuple[bytes, str]:
        download = self.document_blob(url, tenant).download_blob()
        return download.readall(), download.properties.content_settings.content_type


def start_api(azurite: Azurite, tmp: Path, **env: str) -> Api:
    key = tokens.generate_key()
    jwks = tmp / "jwks.json"
    jwks.write_text(json.dumps(tokens.build_jwks((key, tokens.KID))))
    storage = AzureStorage(StorageSettings(connection_string=azurite.connection_string))
    storage.put_subscription(TENANT, active=True)
    storage.put_subscription(OTHER_TENANT, active=True)
    server = Server(
        {
            "UPLOADSESSION_STORAGE": azurite.connection_string,
            "AUTH_AUDIENCES": tokens.AUDIENCE,
            "AUTH_JWKS_URI": jwks.as_uri(),
            **env,
        },
        tmp / "server.log",
    )
    server.start()
    return Api(server, key, storage)


@pytest.fixture(scope="session")
def api(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    running = start_api(azurite, tmp_path_factory.mktemp("api"))
    try:
        yield running
    finally:
        running.server.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as c:
        yield c
