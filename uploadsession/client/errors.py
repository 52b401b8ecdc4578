"""The upload client's exception tree, and how an HTTP answer becomes one of its errors.

::

    ClientError          status, code, message (Graph's error envelope), request_id
    ├── AuthError        401 or 403, or no token could be obtained
    ├── ConflictError    409 on create: another caller's session, different properties,
    │                    or a document that is already complete
    ├── NotFoundError    404: no session (never created, expired, cancelled, not visible)
    └── TransportError   the server could not be reached (after the retries)

``requests`` exceptions are translated into this tree in one place,
:meth:`uploadsession.client.transport.Transport.send`. No message of this tree carries a
secret: every text built from an answer or an exception passes a redactor first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import requests

_JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*")


class ClientError(Exception):
    """A failure the client reports: an HTTP error (Graph's envelope) or no connection."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "requestId": self.request_id,
        }


class AuthError(ClientError):
    """401 or 403: the token is missing, invalid, expired, or lacks a permission."""


class ConflictError(ClientError):
    """409 on create: someone else's session, different properties, or a complete document."""


class NotFoundError(ClientError):
    """404: no session for this document (or one the caller may not see)."""


class TransportError(ClientError):
    """The server could not be reached, or the connection failed, on every attempt."""


_ERROR_KINDS: dict[int, type[ClientError]] = {
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
}


def redact_jwts(text: str) -> str:
    """Replace anything shaped like a JWT (``eyJ….….…``) with ``<redacted>``."""
    return _JWT_LIKE.sub("<redacted>", text)


def error_from(response: requests.Response, redact: Callable[[str], str]) -> ClientError:
    """Graph's error envelope → the exception tree (the message passed through ``redact``)."""
    code: str | None = None
    message = ""
    try:
        error = response.json().get("error", {})
        code = error.get("code")
        message = str(error.get("message", ""))
    except (ValueError, AttributeError):
        pass
    status = response.status_code
    message = redact(message or f"HTTP {status} {response.reason or ''}".strip())
    kind = _ERROR_KINDS.get(status, ClientError)
    return kind(
        f"{status} {code or 'error'}: {message}",
        status=status,
        code=code,
        request_id=response.headers.get("request-id"),
    )
