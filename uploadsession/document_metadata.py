"""How a committed document records itself in its blob's metadata (the store's encoding).

Blob metadata is ASCII names and values, so the document name is percent-encoded. Readers of
the container see ``documentname``, ``sessionid``, ``createdbyapp``, ``createdbyuser`` and
``crc64nvme`` (16 hex digits); a live session's 0-byte placeholder carries only
``pendingsession``. No storage SDK here: the in-memory test store shares it.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, unquote

from uploadsession.ports import CommittedDocument

#: The metadata of a session's placeholder (a 0-byte blob committed at create, never a
#: document): the id of the session that reserved the location.
PENDING_SESSION = "pendingsession"


def document_metadata(document: CommittedDocument) -> dict[str, str]:
    """A committed document's blob metadata: ASCII names and values (Blob Storage's rule), so
    the name is percent-encoded; an application id that is not ASCII is left out (ids from
    tokens always are)."""
    metadata = {"documentname": quote(document.document_name), "sessionid": document.session_id}
    if document.app_id.isascii():
        metadata["createdbyapp"] = document.app_id
    if document.user_id is not None:
        metadata["createdbyuser"] = document.user_id
    if document.checksum is not None:
        metadata["crc64nvme"] = f"{document.checksum:016x}"
    return metadata


def parse_document_metadata(
    metadata: Mapping[str, str], content_type: str
) -> CommittedDocument | None:
    """The inverse of :func:`document_metadata`; None for a blob without a ``sessionid``."""
    session_id = metadata.get("sessionid")
    if session_id is None:
        return None
    try:
        checksum = int(metadata["crc64nvme"], 16) if "crc64nvme" in metadata else None
    except ValueError:
        checksum = None  # not written by this service: no checksum to tell
    return CommittedDocument(
        session_id=session_id,
        content_type=content_type,
        document_name=unquote(metadata.get("documentname", "")),
        app_id=metadata.get("createdbyapp", ""),
        user_id=metadata.get("createdbyuser"),
        checksum=checksum,
    )
