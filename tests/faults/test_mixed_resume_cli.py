"""Issue 11: `uploadsession upload B` resuming a session started for file A (same size and
name, other bytes) is refused — exit 1, a message saying what differs and that `cancel` starts
over — and never commits a mixed document; the right file still completes with its checksum.
In both protocols: A's interrupted upload and the CLI's runs speak the same one."""

from __future__ import annotations

import base64
import hashlib
import random
from pathlib import Path

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError

from tests.e2e.conftest import TENANT, Api
from tests.e2e.test_client_e2e import Doc, run_cli
from uploadsession.models import DocumentKey, crc64nvme, format_checksum

SIZE = 3 * 1024 * 1024 + 17


def interrupted_upload(
    api: Api, url: str, body: dict[str, object], head: bytes, protocol: str
) -> None:
    """A's first bytes acknowledged, as an upload in ``protocol`` that then stopped."""
    size = int(str(body["size"]))
    with httpx.Client(timeout=60) as client:
        if protocol == "legacy":
            assert client.put(url, json=body, headers=api.headers()).status_code == 200
            sent = client.post(
                url + "/$value",
                content=head,
                headers={
                    **api.headers(),
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"bytes 0-{len(head) - 1}/{size}",
                    "If-Match": "*",
                    "Content-MD5": base64.b64encode(hashlib.md5(head).digest()).decode(),
                },
            )
        else:
            created = client.post(
                url.removesuffix("/uploadSession") + "/createUploadSession",
                json={"properties": body},
                headers=api.headers(),
            )
            assert created.status_code == 200, created.text
            sent = client.put(
                created.json()["uploadUrl"],
                content=head,
                headers={"Content-Range": f"bytes 0-{len(head) - 1}/{size}"},
            )
        assert sent.status_code == 202, sent.text


@pytest.mark.parametrize("protocol", ["graph", "legacy"])
def test_a_resume_with_other_bytes_is_refused_and_the_right_file_completes(
    api: Api, tmp_path: Path, protocol: str
) -> None:
    rng = random.Random(11)
    a, b = rng.randbytes(SIZE), rng.randbytes(SIZE)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "doc.bin").write_bytes(a)
    (tmp_path / "b" / "doc.bin").write_bytes(b)
    doc = Doc.new()
    url = doc.url(api)
    token = api.token()
    body = {
        "size": SIZE,
        "contentType": "application/octet-stream",
        "documentName": "doc.bin",
        "checksum": format_checksum(crc64nvme(a)),
    }
    head = a[: 2 * 1024 * 1024]  # an interrupted upload of A: its first 2 MiB acknowledged
    interrupted_upload(api, url, body, head, protocol)
    mixed = run_cli(
        "upload",
        str(tmp_path / "b" / "doc.bin"),
        *doc.args(api),
        "--protocol",
        protocol,
        "--token",
        token,
        secrets=[token],
    )
    assert mixed.returncode == 1, (mixed.stdout, mixed.stderr)
    assert "different bytes" in mixed.stderr and "uploadsession cancel" in mixed.stderr
    try:
        committed = api.document_bytes(url)[0]
    except ResourceNotFoundError:
        committed = None
    assert not committed  # never a mixed document: nothing, or the session's 0-byte placeholder
    if committed is not None:
        assert "sessionid" not in api.document_blob(url).get_blob_properties().metadata
    right = run_cli(
        "upload",
        str(tmp_path / "a" / "doc.bin"),
        *doc.args(api),
        "--protocol",
        protocol,
        "--token",
        token,
        secrets=[token],
    )
    assert right.returncode == 0, right.stderr
    assert api.document_bytes(url)[0] == a
    with httpx.Client(timeout=60) as client:
        session = client.get(url, headers=api.headers()).json()
    assert session["checksum"] == format_checksum(crc64nvme(a))
    key = DocumentKey.parse(TENANT, doc.printer, doc.job, doc.document)
    blob = api.storage._get_clients().documents.get_blob_client(key.blob_name)
    assert blob.get_blob_properties().metadata["crc64nvme"] == f"{crc64nvme(a):016x}"
    document = api.storage.committed_document(key)
    assert document is not None and document.checksum == crc64nvme(a)
