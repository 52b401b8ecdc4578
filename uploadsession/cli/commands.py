"""The client commands: ``upload``, ``status``, ``cancel`` and ``download``, a thin layer over
:class:`uploadsession.client.UploadClient` that never prints a token or an uploadUrl.

``upload`` speaks the Graph protocol by default (createUploadSession, then ranges PUT to the
uploadUrl) and the legacy one with ``--protocol legacy``; ``status`` and ``cancel`` read and
delete ``{S}``, which act on a session whichever protocol created it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from uploadsession.cli.exits import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    UsageError,
    redact,
    report_failure,
)
from uploadsession.cli.options import add_client_arguments, make_client, parallel, segment_size
from uploadsession.cli.terminal import TerminalProgress, human_bytes


def cmd_upload(args: argparse.Namespace) -> int:
    from uploadsession.client import ClientError

    path = Path(args.file)
    bar: TerminalProgress | None = None
    try:
        if not path.is_file():
            raise UsageError(f"no such file: {args.file}")
        if path.stat().st_size == 0:
            raise UsageError(f"{args.file} is empty; a document has at least 1 byte")
        if args.name is not None and not 1 <= len(args.name) <= 255:
            raise UsageError("--name must be 1-255 characters")
        if not args.quiet and sys.stderr.isatty():
            bar = TerminalProgress(sys.stderr)
        with make_client(args) as client:
            result = client.upload(
                path,
                args.printer,
                args.job,
                args.document,
                content_type=args.content_type,
                name=args.name,
                segment_size=args.segment_size,
                parallel=args.parallel,
                progress=bar,
                protocol=args.protocol,
            )
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print(
            "interrupted: run the same command again to upload only what is missing",
            file=sys.stderr,
        )
        if args.json:
            print(json.dumps({"status": "interrupted"}))
        return EXIT_INTERRUPTED
    except (UsageError, ValueError, ClientError, OSError) as exc:
        if bar is not None:
            bar.close()
        if _already_uploaded(args, path, exc):
            if args.json:
                print(json.dumps({"status": "alreadyUploaded", "size": path.stat().st_size}))
            else:
                print(f"already uploaded: the committed document is byte-identical to {path}")
            return EXIT_OK
        code = report_failure(args, exc)
        if args.json:
            error = exc.as_dict() if isinstance(exc, ClientError) else {"message": str(exc)}
            error["message"] = redact(args, str(error.get("message", "")))
            print(json.dumps({"status": "failed", "exitCode": code, "error": error}))
        return code
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        rate = result.bytes_sent / result.seconds if result.seconds else 0.0
        resumed = (
            f", {human_bytes(result.already_present)} were already there"
            if result.already_present
            else ""
        )
        print(
            f"uploaded {result.document_name} ({result.content_type}, "
            f"{result.size:,} bytes){resumed}: sent {human_bytes(result.bytes_sent)} in "
            f"{result.seconds:.1f} s ({human_bytes(rate)}/s), {result.segments_sent} "
            f"segments, {result.retries} retries\n"
            f"document {result.document_url}"
        )
    return EXIT_OK


class _SameBytes:
    """A write-only sink that compares what it is given with a local file."""

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self.same = True

    def write(self, chunk: bytes) -> int:
        if self.same and self._source.read(len(chunk)) != chunk:
            self.same = False
        return len(chunk)


def _already_uploaded(args: argparse.Namespace, path: Path, exc: BaseException) -> bool:
    """True when the create conflicted because the document is complete and the committed
    bytes are exactly this file's (read back through ``$value`` and compared as they stream)."""
    from uploadsession.client import ClientError, ConflictError

    if not isinstance(exc, ConflictError):
        return False  # (a 409 for any other reason finds no committed document below)
    try:
        with make_client(args) as client, path.open("rb") as source:
            sink = _SameBytes(source)
            result = client.download(args.printer, args.job, args.document, sink)  # type: ignore[arg-type]
            return sink.same and result.size == path.stat().st_size
    except (ClientError, OSError):
        return False


def _expiry_text(expiry: str | None, now: datetime | None = None) -> str:
    if not expiry:
        return "unknown"
    try:
        when = datetime.fromisoformat(expiry.replace("Z", "+00:00"))
    except ValueError:
        return expiry
    left = (when - (now or datetime.now(UTC))).total_seconds()
    if left <= 0:
        return f"{expiry} (expired)"
    hours, rest = divmod(int(left), 3600)
    return f"{expiry} (in {hours} h {rest // 60:02d} min)"


def describe_session(session: dict[str, Any], now: datetime | None = None) -> str:
    """The human-readable summary ``uploadsession status`` prints."""
    from uploadsession.client import format_ranges, missing_bytes, missing_ranges

    size = int(session.get("size", 0))
    missing = missing_ranges(session)
    received = size - missing_bytes(missing)
    percent = 100.0 * received / size if size else 100.0
    created = session.get("createdBy") or {}
    who = ", ".join(f"{k} {v.get('id')}" for k, v in created.items() if isinstance(v, dict))
    lines = [
        f"session   {session.get('id')}",
        f"document  {session.get('documentName')} ({session.get('contentType')}), {size:,} bytes",
        f"received  {received:,} of {size:,} bytes ({percent:.1f}%)",
        f"missing   {format_ranges(missing) if missing else 'none: the document is complete'}",
        f"expires   {_expiry_text(session.get('expiryDateTime'), now)}",
    ]
    if who:
        lines.append(f"created   by {who}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    try:
        with make_client(args) as client:
            session = client.status(args.printer, args.job, args.document)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        return report_failure(args, exc)
    print(json.dumps(session) if args.json else describe_session(session))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    try:
        with make_client(args) as client:
            client.cancel(args.printer, args.job, args.document)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        return report_failure(args, exc)
    print(f"cancelled the upload session of document {args.document}")
    return EXIT_OK


def cmd_download(args: argparse.Namespace) -> int:
    target = Path(args.output) if args.output else None
    partial = target.with_name(target.name + ".partial") if target else None
    try:
        with make_client(args) as client:
            if partial is not None and target is not None:
                with partial.open("wb") as out:
                    result = client.download(args.printer, args.job, args.document, out)
                partial.replace(target)  # only a whole, checked document takes the name
            else:
                result = client.download(args.printer, args.job, args.document, sys.stdout.buffer)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        if partial is not None:
            partial.unlink(missing_ok=True)
        return report_failure(args, exc)
    if target is not None:
        summary = {"path": str(target), "size": result.size, "sha256": result.sha256}
        print(
            json.dumps(summary)
            if args.json
            else f"wrote {result.size} bytes to {target} (sha256 {result.sha256})"
        )
    return EXIT_OK


def add_commands(sub: Any) -> None:
    from uploadsession.client import DEFAULT_PARALLEL, DEFAULT_SEGMENT_SIZE, PROTOCOLS

    upload = sub.add_parser(
        "upload",
        help="upload a file: resumable, parallel, with retries and a progress bar",
        description="Create (or reuse) the document's upload session and send every missing "
        "range. Graph protocol by default: POST createUploadSession, then ranges PUT to the "
        "pre-authenticated uploadUrl (no bearer token on it); --protocol legacy: PUT the "
        "session and POST $value segments. Keeps no local state: run the same command again "
        "to resume (the same caller with the same file gets the same session back).",
    )
    upload.add_argument("file", metavar="FILE")
    add_client_arguments(upload)
    upload.add_argument(
        "--segment-size",
        type=segment_size,
        default=DEFAULT_SEGMENT_SIZE,
        metavar="BYTES",
        help="a multiple of 320 KiB, at most 10 MiB; K/M suffixes allowed (default 5MiB)",
    )
    upload.add_argument(
        "--parallel",
        type=parallel,
        default=DEFAULT_PARALLEL,
        metavar="N",
        help=f"segments in flight at once (default {DEFAULT_PARALLEL})",
    )
    upload.add_argument(
        "--content-type",
        metavar="TYPE",
        help="default: guessed from the file name, else application/octet-stream",
    )
    upload.add_argument("--name", metavar="NAME", help="document name (default: the file's)")
    upload.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="graph",
        help="graph: createUploadSession + PUT uploadUrl (default, what the Graph SDKs speak); "
        "legacy: PUT uploadSession + POST $value",
    )
    upload.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    upload.set_defaults(func=cmd_upload)

    status = sub.add_parser(
        "status",
        help="show an upload session: received, missing, expiry",
        description="GET the document's uploadSession: works for a session created with "
        "either protocol.",
    )
    add_client_arguments(status)
    status.set_defaults(func=cmd_status)

    cancel = sub.add_parser(
        "cancel",
        help="cancel (delete) an upload session",
        description="DELETE the document's uploadSession (the same cancel as DELETE "
        "uploadUrl): works for a session created with either protocol; its uploadUrl stops "
        "working, and the next upload starts over.",
    )
    add_client_arguments(cancel)
    cancel.set_defaults(func=cmd_cancel)

    download = sub.add_parser(
        "download", help="read the committed document (to stdout, or -o FILE)"
    )
    add_client_arguments(download)
    download.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (whole and checked, or not at all)"
    )
    download.set_defaults(func=cmd_download)
