"""The official Microsoft Graph Python SDKs (msgraph-sdk for /v1.0, msgraph-beta-sdk for /beta,
msgraph-core's LargeFileUploadTask), unchanged, against `uploadsession serve` + Azurite."""

from __future__ import annotations

import asyncio
import gc
import io
import random
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from msgraph_core.models import LargeFileUploadSession
from msgraph_core.tasks.large_file_upload import LargeFileUploadTask

from tests.e2e.conftest import Api
from tests.e2e.test_graph_protocol_e2e import blob

# The SDKs' own deprecation warnings (kiota's GetQueryParameters and friends) are theirs, and
# so are the sockets kiota-http's pooled AsyncClient leaves to the collector.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@pytest.fixture(autouse=True)
def _collect_the_sdks_garbage() -> Iterator[None]:
    """Collect what the SDK left behind while this module's warning filters apply."""
    yield
    gc.collect()


KIB = 1024
MIB = 1024 * KIB


class DevTokenProvider(AccessTokenProvider):  # type: ignore[misc]
    """A kiota token provider that hands out the test's dev token for the test server."""

    def __init__(self, token: str, host: str) -> None:
        self.token = token
        self.validator = AllowedHostsValidator([host])

    async def get_authorization_token(
        self, uri: str, additional_authentication_context: dict[str, Any] | None = None
    ) -> str:
        return self.token if self.validator.is_url_host_valid(uri) else ""

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self.validator


def sdk(api: Api, version: str) -> tuple[Any, Any, Any]:
    """(GraphServiceClient, its request adapter, its model classes) for ``version``."""
    if version == "v1.0":
        from msgraph import GraphServiceClient
        from msgraph.generated.models.print_document_upload_properties import (
            PrintDocumentUploadProperties,
        )
        from msgraph.generated.print.printers.item.jobs.item.documents.item.create_upload_session.create_upload_session_post_request_body import (  # noqa: E501
            CreateUploadSessionPostRequestBody,
        )
        from msgraph.graph_request_adapter import GraphRequestAdapter
    else:
        from msgraph_beta import GraphServiceClient  # type: ignore[no-redef]
        from msgraph_beta.generated.models.print_document_upload_properties import (  # type: ignore[no-redef]
            PrintDocumentUploadProperties,
        )
        from msgraph_beta.generated.print.printers.item.jobs.item.documents.item.create_upload_session.create_upload_session_post_request_body import (  # type: ignore[no-redef] # noqa: E501
            CreateUploadSessionPostRequestBody,
        )
        from msgraph_beta.graph_request_adapter import (  # type: ignore[no-redef]
            GraphRequestAdapter,
        )
    host = str(urlsplit(api.base_url).hostname)
    auth = BaseBearerTokenAuthenticationProvider(DevTokenProvider(api.token(), host))
    adapter = GraphRequestAdapter(auth)
    adapter.base_url = f"{api.base_url.rsplit('/', 1)[0]}/{version}"
    return (
        GraphServiceClient(request_adapter=adapter),
        adapter,
        (
            PrintDocumentUploadProperties,
            CreateUploadSessionPostRequestBody,
        ),
    )


async def create_session(api: Api, version: str, size: int) -> tuple[Any, Any, Any, str]:
    client, adapter, (Properties, Body) = sdk(api, version)
    printer, document = str(uuid.uuid4()), str(uuid.uuid4())
    item = (
        client.print.printers.by_printer_id(printer)
        .jobs.by_print_job_id("job-1")
        .documents.by_print_document_id(document)
    )
    body = Body(
        properties=Properties(document_name="report.pdf", content_type="application/pdf", size=size)
    )
    session = await item.create_upload_session.post(body)
    doc_url = f"{adapter.base_url}/print/printers/{printer}/jobs/job-1/documents/{document}"
    return item, adapter, session, doc_url


async def upload_and_read_back(api: Api, version: str, size: int) -> None:
    data = random.randbytes(size)
    item, adapter, session, doc_url = await create_session(api, version, size)
    try:
        await _upload_and_read_back(api, item, adapter, session, doc_url, data)
    finally:
        await adapter._http_client.aclose()  # before the event loop ends


async def _upload_and_read_back(
    api: Api, item: Any, adapter: Any, session: Any, doc_url: str, data: bytes
) -> None:
    size = len(data)
    assert session.next_expected_ranges == [f"0-{size - 1}"]
    task = LargeFileUploadTask(session, adapter, io.BytesIO(data))
    await task.upload()
    assert blob(api, doc_url) == data
    assert await item.content.get() == data


@pytest.mark.parametrize("version", ["v1.0", "beta"])
def test_a_100_kib_document_in_one_chunk(api: Api, version: str) -> None:
    asyncio.run(upload_and_read_back(api, version, 100 * KIB))


@pytest.mark.parametrize("version", ["v1.0", "beta"])
def test_a_13_mib_document_in_default_chunks(api: Api, version: str) -> None:
    asyncio.run(upload_and_read_back(api, version, 13 * MIB))


async def interrupted_then_resumed(api: Api, version: str) -> None:
    size = 3 * MIB + 77
    data = random.randbytes(size)
    item, adapter, session, doc_url = await create_session(api, version, size)
    try:
        await _resume(api, item, adapter, session, doc_url, data)
    finally:
        await adapter._http_client.aclose()


async def _resume(
    api: Api, item: Any, adapter: Any, session: Any, doc_url: str, data: bytes
) -> None:
    size = len(data)
    first = LargeFileUploadTask(session, adapter, io.BytesIO(data), max_chunk_size=MIB)
    await first.next_chunk(first.stream, 0, MIB - 1)  # one chunk, then the process "dies"
    # A new run: the app GETs the uploadUrl (the SDK has no status call) and resumes.
    status = httpx.get(session.upload_url).json()
    assert status["nextExpectedRanges"] == [f"{MIB}-{size - 1}"]
    resumed = LargeFileUploadSession(
        upload_url=status["uploadUrl"],
        expiration_date_time=session.expiration_date_time,
        next_expected_ranges=status["nextExpectedRanges"],
    )
    task = LargeFileUploadTask(resumed, adapter, io.BytesIO(data), max_chunk_size=MIB)
    await task.resume()
    assert blob(api, doc_url) == data
    assert await item.content.get() == data


@pytest.mark.parametrize("version", ["v1.0", "beta"])
def test_an_interrupted_upload_is_resumed_by_a_new_task(api: Api, version: str) -> None:
    asyncio.run(interrupted_then_resumed(api, version))
