"""The client commands' options: argument types that check ids, sizes and URLs before any
request (a usage error, exit 2), defaults from the environment, and the client they make."""

from __future__ import annotations

import argparse
import logging
import os
import re
from typing import TYPE_CHECKING, Any

from uploadsession.cli.exits import TOKEN_ENV, UsageError

if TYPE_CHECKING:
    from uploadsession.client import TokenProvider, UploadClient

_SIZE = re.compile(r"^\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib)\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024 * 1024,
    "mb": 1024 * 1024,
    "mib": 1024 * 1024,
}


def parse_byte_size(text: str) -> int:
    """``5MiB``, ``320k``, ``327680`` → bytes (K and M are binary: 1024, 1024²)."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (use bytes, or a K/KiB/M/MiB suffix)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def segment_size(text: str) -> int:
    from uploadsession.client import check_segment_size

    try:
        size = parse_byte_size(text)
        check_segment_size(size)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return size


def parallel(text: str) -> int:
    from uploadsession.client import MAX_PARALLEL

    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PARALLEL:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {MAX_PARALLEL}")
    return value


BASE_URL_ENV = "UPLOADSESSION_BASE_URL"
PRINTER_ENV = "UPLOADSESSION_PRINTER"
JOB_ENV = "UPLOADSESSION_JOB"
DOCUMENT_ENV = "UPLOADSESSION_DOCUMENT"
_GUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_JOB_TEXT = re.compile(r"[A-Za-z0-9-]{1,64}")


def _guid(what: str) -> Any:
    """An argparse type: a GUID, checked before any request is sent."""

    def parse(text: str) -> str:
        if not _GUID_TEXT.fullmatch(text.strip()):
            raise argparse.ArgumentTypeError(f"the {what} id must be a GUID, got {text!r}")
        return text.strip()

    return parse


def _job_id(text: str) -> str:
    if not _JOB_TEXT.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(
            f"the job id must be 1-64 characters of A-Z, a-z, 0-9 and '-', got {text!r}"
        )
    return text.strip()


def _base_url(text: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"the base URL must be http(s)://host/..., got {text!r}")
    if parts.path.rstrip("/").rsplit("/", 1)[-1] not in ("v1.0", "beta"):
        raise argparse.ArgumentTypeError(
            f"the base URL must end in the version segment /v1.0 or /beta, got {text!r}"
        )
    return text.strip().rstrip("/")


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    def from_env(name: str) -> dict[str, Any]:
        value = os.environ.get(name, "").strip()
        return {"default": value} if value else {"required": True}

    parser.add_argument(
        "--base-url",
        type=_base_url,
        metavar="URL",
        help="API root with the version segment, e.g. http://localhost:7071/beta "
        f"(default ${BASE_URL_ENV})",
        **from_env(BASE_URL_ENV),
    )
    parser.add_argument(
        "--printer",
        type=_guid("printer"),
        metavar="ID",
        help=f"printer id (GUID; default ${PRINTER_ENV})",
        **from_env(PRINTER_ENV),
    )
    parser.add_argument(
        "--job",
        type=_job_id,
        metavar="ID",
        help=f"print job id (default ${JOB_ENV})",
        **from_env(JOB_ENV),
    )
    parser.add_argument(
        "--document",
        type=_guid("document"),
        metavar="ID",
        help=f"document id (GUID; default ${DOCUMENT_ENV})",
        **from_env(DOCUMENT_ENV),
    )
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument(
        "--token",
        metavar="TOKEN",
        help=f"bearer token (prefer the {TOKEN_ENV} environment variable: "
        "arguments are visible to other local users)",
    )
    auth.add_argument(
        "--scope",
        metavar="SCOPE",
        help="get tokens for SCOPE (e.g. api://…/.default) with azure-identity's "
        "DefaultAzureCredential, refreshed before they expire",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="read timeout per request (default 120)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")


def token_provider(args: argparse.Namespace) -> TokenProvider:
    from uploadsession.client import AzureCredentialToken, StaticToken

    if args.token is not None:
        token = args.token
    elif args.scope is not None:
        # azure-identity logs each failed credential as a multi-line warning; the error
        # this command prints says the same in one line.
        logging.getLogger("azure.identity").setLevel(logging.ERROR)
        return AzureCredentialToken(args.scope)
    else:
        token = os.environ.get(TOKEN_ENV, "")
        if not token.strip():
            raise UsageError(
                f"no token: pass --token, set {TOKEN_ENV}, or --scope api://…/.default "
                "(azure-identity's DefaultAzureCredential)"
            )
    token = token.strip().removeprefix("Bearer ").strip()
    if not token:
        raise UsageError("the token is empty")
    return StaticToken(token)


def make_client(args: argparse.Namespace) -> UploadClient:
    from uploadsession.client import UploadClient

    if not re.match(r"^https?://[^/]+", args.base_url):
        raise UsageError(f"--base-url must be an http(s) URL, got {args.base_url!r}")
    return UploadClient(args.base_url, token_provider(args), read_timeout=args.timeout)
