"""The one exception tree of uploadsession.

Every failure a caller can observe is an :class:`ApiError`; the HTTP layer turns it into
Graph's error envelope with ``status`` and ``code``. Nothing else reaches the wire: any other
exception is a bug and is answered with a generic 500 envelope (logged, never echoed).

    ApiError                          status  code
    ├── InvalidRequest                400     invalidRequest
    │   ├── PayloadTooLarge           413     invalidRequest
    │   └── UnsupportedMediaType      415     invalidRequest
    ├── InvalidToken                  401     InvalidAuthenticationToken   (+ WWW-Authenticate)
    ├── AccessDenied                  403     accessDenied
    │   └── InsufficientScope         403     accessDenied                 (+ WWW-Authenticate)
    ├── ItemNotFound                  404     itemNotFound
    ├── Conflict                      409     conflict
    ├── PreconditionFailed            412     preconditionFailed
    │   └── PreconditionRequired      428     preconditionFailed
    ├── InvalidRange                  416     invalidRange                 (+ Content-Range)
    └── ServiceUnavailable            503     serviceUnavailable           (+ Retry-After)

Storage-internal signals (raised by ``store.py`` only, handled by ``service.py``, never sent):

    StoreError
    ├── EntityExists        insert of a key that is already there
    ├── ConcurrencyConflict ETag-conditional write lost a race
    ├── MissingBlocks       commit refused: recorded blocks are not staged
    └── ForeignDocument     commit refused: another session's document is there

Configuration (raised by ``config.py``; at request time answered 500 naming the setting,
and ``uploadsession serve`` refuses to start):

    ConfigError

Azure SDK exceptions are translated into this tree in exactly one place,
``uploadsession.store.translate_azure_errors``; a storage outage or throttling becomes
:class:`ServiceUnavailable`.
"""

from __future__ import annotations


class ApiError(Exception):
    """A failure with a Graph error code and an HTTP status."""

    status: int = 500
    code: str = "generalException"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        """Extra response headers this error requires."""
        return {}


class InvalidRequest(ApiError):
    status = 400
    code = "invalidRequest"


class PayloadTooLarge(InvalidRequest):
    status = 413


class UnsupportedMediaType(InvalidRequest):
    status = 415


class InvalidToken(ApiError):
    """Any problem with the bearer token. ``challenge_error`` False means no token at all."""

    status = 401
    code = "InvalidAuthenticationToken"

    def __init__(self, message: str, *, challenge_error: bool = True) -> None:
        super().__init__(message)
        self.challenge_error = challenge_error

    def headers(self) -> dict[str, str]:
        if not self.challenge_error:
            return {"WWW-Authenticate": 'Bearer realm="uploadsession"'}
        return {"WWW-Authenticate": 'Bearer realm="uploadsession", error="invalid_token"'}


class AccessDenied(ApiError):
    status = 403
    code = "accessDenied"


class InsufficientScope(AccessDenied):
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="uploadsession", error="insufficient_scope"'}


class ItemNotFound(ApiError):
    status = 404
    code = "itemNotFound"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class PreconditionFailed(ApiError):
    status = 412
    code = "preconditionFailed"


class PreconditionRequired(PreconditionFailed):
    status = 428


class InvalidRange(ApiError):
    """416; ``size`` (when known) yields ``Content-Range: bytes */{size}``."""

    status = 416
    code = "invalidRange"

    def __init__(self, message: str, *, size: int | None = None) -> None:
        super().__init__(message)
        self.size = size

    def headers(self) -> dict[str, str]:
        return {} if self.size is None else {"Content-Range": f"bytes */{self.size}"}


class ServiceUnavailable(ApiError):
    status = 503
    code = "serviceUnavailable"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class StoreError(Exception):
    """Storage-internal signal; never reaches the wire."""


class EntityExists(StoreError):
    pass


class ConcurrencyConflict(StoreError):
    pass


class MissingBlocks(StoreError):
    """Commit refused: some recorded blocks are not staged (discarded or expired)."""


class ForeignDocument(StoreError):
    """Commit refused: another session's document is already committed at the location."""


class ConfigError(Exception):
    """A missing or invalid setting; the message names it."""
