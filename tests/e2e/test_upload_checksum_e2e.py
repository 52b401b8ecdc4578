"""`Upload-Checksum` on the request that completes a document (issue 11), over HTTP on both
protocols: the whole document's CRC-64/NVME, checked against the segments' combined CRCs."""

from __future__ import annotations

import random

import httpx

from tests.e2e.conftest import Api
from tests.e2e.test_graph_protocol_e2e import create as graph_create
from tests.e2e.test_graph_protocol_e2e import document_url, put
from tests.e2e.test_upload_e2e import create, post
from uploadsession.models import crc64nvme, format_checksum


def missing(client: httpx.Client, api: Api, url: str) -> object:
    response = client.get(url, headers=api.headers())
    assert response.status_code == 200, response.text
    return response.json()["missingRanges"]


def test_a_wrong_upload_checksum_refuses_the_completing_segment_and_the_right_one_commits(
    api: Api, client: httpx.Client
) -> None:
    data, other = random.randbytes(2000), random.randbytes(2000)
    url = api.session_url()
    create(client, api, url, 2000)
    assert post(client, api, url, data[:1000], 0, 2000).status_code == 202
    wrong = post(
        client, api, url, data[1000:], 1000, 2000, Upload_Checksum=format_checksum(crc64nvme(other))
    )
    assert wrong.status_code == 409, wrong.text
    assert wrong.json()["error"]["code"] == "conflict"
    assert "cancel the upload session" in wrong.json()["error"]["message"]
    assert missing(client, api, url) == [{"start": "1000", "end": "1999"}]
    right = post(
        client, api, url, data[1000:], 1000, 2000, Upload_Checksum=format_checksum(crc64nvme(data))
    )
    assert right.status_code == 201, right.text
    assert right.json()["checksum"] == format_checksum(crc64nvme(data))
    assert api.document_bytes(url)[0] == data


def test_a_malformed_upload_checksum_is_400_and_records_nothing(
    api: Api, client: httpx.Client
) -> None:
    data = random.randbytes(100)
    url = api.session_url()
    create(client, api, url, 100)
    response = post(client, api, url, data, 0, 100, Upload_Checksum="crc32c:1234")
    assert response.status_code == 400, response.text
    assert "Upload-Checksum" in response.json()["error"]["message"]
    assert missing(client, api, url) == [{"start": "0", "end": "99"}]


def test_upload_checksum_on_the_graph_upload_url(api: Api, client: httpx.Client) -> None:
    data, other = random.randbytes(3000), random.randbytes(3000)
    doc = document_url(api)
    upload_url = str(graph_create(client, api, doc, 3000)["uploadUrl"])
    assert put(client, upload_url, data[:2000], 0, 3000).status_code == 202
    header = {"Upload-Checksum": format_checksum(crc64nvme(other[:2000] + data[2000:]))}
    wrong = put(client, upload_url, data[2000:], 2000, 3000, **header)
    assert wrong.status_code == 409, wrong.text
    header = {"Upload-Checksum": format_checksum(crc64nvme(data))}
    right = put(client, upload_url, data[2000:], 2000, 3000, **header)
    assert right.status_code == 201, right.text
