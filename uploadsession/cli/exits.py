"""Exit codes, and how a client command's failure is reported: one line on stderr, with
every token the command was given (and anything JWT-shaped) removed."""

from __future__ import annotations

import argparse
import os
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_AUTH, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
TOKEN_ENV = "UPLOADSESSION_TOKEN"


class UsageError(Exception):
    """A command line that cannot work (exit 2), found before any request."""


def redact(args: argparse.Namespace, text: str) -> str:
    """Remove any token the command was given (and anything JWT-shaped) from ``text``."""
    from uploadsession.client import redact_jwts

    for secret in (getattr(args, "token", None), os.environ.get(TOKEN_ENV)):
        if secret and secret.strip():
            text = text.replace(secret.strip(), "<redacted>")
    return redact_jwts(text)


def report_failure(args: argparse.Namespace, exc: BaseException) -> int:
    """Report a client command's failure on stderr; return its exit code."""
    from uploadsession.client import AuthError, ClientError

    if isinstance(exc, UsageError | ValueError):
        code, message = EXIT_USAGE, str(exc)
    elif isinstance(exc, AuthError):
        code, message = EXIT_AUTH, exc.message
    elif isinstance(exc, ClientError):
        code, message = EXIT_FAILED, exc.message
    elif isinstance(exc, OSError):
        code, message = EXIT_FAILED, f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
    else:
        raise exc
    request_id = getattr(exc, "request_id", None)
    suffix = f" (request-id {request_id})" if request_id else ""
    print(redact(args, f"error: {message}{suffix}"), file=sys.stderr)
    return code
