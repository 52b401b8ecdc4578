"""Issue 11, in-process on the in-memory store: the whole-document CRC-64/NVME (declared at
create, combined from the segments at commit, compared; a mismatch refuses the completing
segment), the checksum readers see, and the segment cap that never strands a session."""

from __future__ import annotations

import pytest

from tests.fakes import InMemoryStorage
from tests.unit.test_models import session_json
from tests.unit.test_service import ALICE_RW, KEY, payload, upload
from uploadsession import service as service_module
from uploadsession.errors import Conflict, InvalidRequest
from uploadsession.models import (
    COMMITTED,
    CreateRequest,
    crc64nvme,
    format_checksum,
    render,
)
from uploadsession.service import UploadSessionService


def create(service: UploadSessionService, size: int, checksum: int | None) -> None:
    service.create(
        ALICE_RW,
        KEY,
        CreateRequest(
            size=size, content_type="application/pdf", document_name="a.pdf", checksum=checksum
        ),
    )


def test_the_declared_checksum_is_checked_and_exposed(
    service: UploadSessionService, store: InMemoryStorage
) -> None:
    data = payload(30)
    create(service, 30, crc64nvme(data))
    upload(service, data, 10, 19)
    upload(service, data, 20, 29)
    result = upload(service, data, 0, 9)  # completed out of order: combined in offset order
    assert result.complete and result.session.status == COMMITTED
    document = store.document(KEY)
    assert document is not None and document.data == data
    assert document.metadata["crc64nvme"] == f"{crc64nvme(data):016x}"
    body = session_json(result.session)
    assert list(body)[-1] == "checksum" and body["checksum"] == format_checksum(crc64nvme(data))
    assert render(result.session)[0].endswith(f'"checksum":"{body["checksum"]}"}}'.encode())


def test_a_mismatch_refuses_the_completing_segment_and_commits_nothing(
    service: UploadSessionService, store: InMemoryStorage
) -> None:
    a, b = payload(30, seed=1), payload(30, seed=2)
    create(service, 30, crc64nvme(a))
    upload(service, a, 0, 19)
    with pytest.raises(Conflict, match="cancel the upload session"):
        upload(service, b, 20, 29)  # B's tail after A's head: a mixed document
    assert store.document(KEY) is None
    session = service.get(ALICE_RW, KEY)
    assert session.missing == [(20, 29)] and session.status != COMMITTED
    assert upload(service, a, 20, 29).complete  # the right bytes still complete it
    assert store.document(KEY).data == a  # type: ignore[union-attr]


def test_without_a_declaration_the_committed_checksum_is_still_exposed(
    service: UploadSessionService, store: InMemoryStorage
) -> None:
    data = payload(20)
    create(service, 20, None)
    upload(service, data, 0, 9)
    assert "checksum" not in session_json(service.get(ALICE_RW, KEY))
    result = upload(service, data, 10, 19)
    assert session_json(result.session)["checksum"] == format_checksum(crc64nvme(data))


@pytest.mark.parametrize(
    "value", ["crc64nvme:123", "crc32c:0000000000000000", 5, "crc64nvme:zzzzzzzzzzzzzzzz"]
)
def test_a_malformed_checksum_is_refused_naming_the_property(value: object) -> None:
    import json

    body = {"size": 3, "contentType": "a/b", "documentName": "x", "checksum": value}
    with pytest.raises(InvalidRequest, match="'checksum'"):
        CreateRequest.parse(json.dumps(body).encode(), max_document_bytes=100)


def test_a_full_segment_table_still_accepts_every_gap_filling_segment(
    service: UploadSessionService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "MAX_SEGMENTS", 6)
    data = payload(10)
    create(service, 10, None)
    for start in (0, 4, 8):  # records 3, gaps 3: the cap is reached
        upload(service, data, start, start)
    with pytest.raises(InvalidRequest, match="missingRanges"):
        upload(service, data, 1, 1)  # would split a gap: refused
    for start, end in service.get(ALICE_RW, KEY).missing:  # sending them whole completes
        result = upload(service, data, start, end)
    assert result.complete
