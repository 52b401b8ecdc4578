"""Throughput: the official Python SDK's sequential LargeFileUploadTask (Graph protocol,
default 5 MiB chunks) vs ``uploadsession upload --parallel 4`` (UploadClient, its default
Graph protocol, and ``--protocol legacy``) on the same file, through ``uploadsession serve``
on Azurite. A benchmark, not a test; not part of
``make bench``: ``.venv/bin/python -m bench.graph_sdk_vs_cli [MiB]``.
"""

from __future__ import annotations

import asyncio
import io
import random
import sys
import time
import uuid
import warnings

from bench.harness import MiB, stack
from uploadsession.client import UploadClient, UploadProtocol


async def _sdk_upload(base: str, token: str, data: bytes) -> float:
    from kiota_abstractions.authentication import (
        AccessTokenProvider,
        AllowedHostsValidator,
        BaseBearerTokenAuthenticationProvider,
    )
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph.generated.models.print_document_upload_properties import (
        PrintDocumentUploadProperties,
    )
    from msgraph.generated.print.printers.item.jobs.item.documents.item.create_upload_session.create_upload_session_post_request_body import (  # noqa: E501
        CreateUploadSessionPostRequestBody,
    )
    from msgraph_core.tasks.large_file_upload import LargeFileUploadTask

    class Dev(AccessTokenProvider):  # type: ignore[misc]
        async def get_authorization_token(self, uri: str, context: object = None) -> str:
            return token

        def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
            return AllowedHostsValidator(["127.0.0.1"])

    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(Dev()))
    adapter.base_url = f"{base}/v1.0"
    doc = (
        GraphServiceClient(request_adapter=adapter)
        .print.printers.by_printer_id(str(uuid.uuid4()))
        .jobs.by_print_job_id("bench")
        .documents.by_print_document_id(str(uuid.uuid4()))
    )
    properties = PrintDocumentUploadProperties(
        document_name="bench.bin", content_type="application/octet-stream", size=len(data)
    )
    started = time.perf_counter()
    session = await doc.create_upload_session.post(
        CreateUploadSessionPostRequestBody(properties=properties)
    )
    await LargeFileUploadTask(session, adapter, io.BytesIO(data)).upload()
    elapsed = time.perf_counter() - started
    await adapter._http_client.aclose()
    return elapsed


def main(size_mib: int = 64, rounds: int = 3) -> None:
    warnings.simplefilter("ignore")
    data = random.randbytes(size_mib * MiB)
    with stack() as running:
        host = running.host()
        base = host.base_url.rsplit("/", 1)[0]
        token = running.token()
        sdk: list[float] = []
        cli: dict[UploadProtocol, list[float]] = {"graph": [], "legacy": []}
        for _ in range(rounds):
            sdk.append(asyncio.run(_sdk_upload(base, token, data)))
            for protocol, times in cli.items():
                with UploadClient(f"{base}/v1.0", token) as client:
                    started = time.perf_counter()
                    client.upload(
                        io.BytesIO(data),
                        str(uuid.uuid4()),
                        "bench",
                        str(uuid.uuid4()),
                        parallel=4,
                        protocol=protocol,
                    )
                    times.append(time.perf_counter() - started)
    best_sdk, best_graph, best_legacy = min(sdk), min(cli["graph"]), min(cli["legacy"])
    print(f"{size_mib} MiB, best of {rounds}:")
    print(f"  msgraph-sdk LargeFileUploadTask (sequential):  {size_mib / best_sdk:7.1f} MiB/s")
    print(f"  uploadsession upload --parallel 4:             {size_mib / best_graph:7.1f} MiB/s")
    print(
        f"  uploadsession upload --parallel 4 --protocol legacy: {size_mib / best_legacy:.1f} MiB/s"
    )
    print(f"  ratio (CLI Graph / SDK): {best_sdk / best_graph:.2f}x")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
