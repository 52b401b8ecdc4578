"""The ``uploadsession`` command line (also ``python -m uploadsession.cli``).

Exit codes: 0 success, 1 failure, 2 usage or configuration error, 3 authentication or
permission refused (401/403; the client commands ``upload``, ``status``, ``cancel``), 130
interrupted. The service commands read the settings of DESIGN §5 from the environment; the
client commands are a thin layer over :class:`uploadsession.client.UploadClient` and never
print a token.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

from uploadsession.errors import ApiError, ConfigError

if TYPE_CHECKING:
    from uploadsession.client import Progress, TokenProvider, UploadClient
    from uploadsession.store import AzureStorage

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_AUTH, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
TOKEN_ENV = "UPLOADSESSION_TOKEN"


def _storage() -> AzureStorage:
    from uploadsession.config import storage_settings
    from uploadsession.store import AzureStorage

    return AzureStorage(storage_settings())


def cmd_serve(args: argparse.Namespace) -> int:
    from uploadsession.config import get_settings
    from uploadsession.dev.host import DevHost, load_app, load_route_prefix

    get_settings()  # fail fast, naming the setting, before listening
    app_dir = Path(args.app_dir).resolve()
    app = load_app("function_app", app_dir)
    ssl_context = None
    if args.https:
        from uploadsession.dev.cert import ensure_devcert, server_context

        cert_path, key_path = ensure_devcert(Path(args.cert_dir))
        ssl_context = server_context(cert_path, key_path)
        print(
            f"TLS: self-signed development certificate {cert_path}; trust it with\n"
            f"  Node:   NODE_EXTRA_CA_CERTS={cert_path}\n"
            f"  Python: REQUESTS_CA_BUNDLE={cert_path} (requests) or SSL_CERT_FILE={cert_path}",
            file=sys.stderr,
            flush=True,
        )
    host = DevHost(
        app,
        host=args.host,
        port=args.port,
        route_prefix=load_route_prefix(app_dir / "host.json"),
        run_timers=not args.no_timers,
        ssl_context=ssl_context,
    )
    host.serve_forever()
    return EXIT_OK


def cmd_subscription(args: argparse.Namespace) -> int:
    from uploadsession.models import is_guid

    if not is_guid(args.tenant):
        print(f"error: tenant id must be a GUID, got {args.tenant!r}", file=sys.stderr)
        return EXIT_USAGE
    tenant = args.tenant.lower()
    store = _storage()
    if args.action == "show":
        sub = store.get_subscription(tenant)
        state = "none" if sub is None else ("active" if sub.active else "suspended")
        record = {"tenantId": tenant, "state": state}
        if sub is not None:
            record["updated"] = sub.updated.isoformat()
    else:
        sub = store.put_subscription(tenant, active=args.action == "activate")
        record = {"tenantId": tenant, "state": "active" if sub.active else "suspended"}
    print(json.dumps(record))
    if args.action == "suspend":
        print("note: running hosts trust a cached active state for up to 60 s", file=sys.stderr)
    return EXIT_OK


def cmd_dev_token(args: argparse.Namespace) -> int:
    from uploadsession.dev.tokens import DEV_AUDIENCE, dev_claims, mint

    audience = args.audience
    if audience is None:
        configured = [a.strip() for a in os.environ.get("AUTH_AUDIENCES", "").split(",")]
        audience = next((a for a in configured if a), DEV_AUDIENCE)
    claims = dev_claims(
        audience=audience,
        tenant=args.tenant,
        user=args.user,
        app=args.app,
        scopes=None if args.roles else " ".join(args.scp),
        roles=args.roles,
        lifetime_seconds=args.lifetime,
    )
    print(mint(Path(args.key_dir), claims))
    return EXIT_OK


def cmd_purge(args: argparse.Namespace) -> int:
    from uploadsession.service import UploadSessionService

    service = UploadSessionService(_storage(), ttl_seconds=1, max_document_bytes=1)
    report = service.purge()
    print(json.dumps({"sessions": report.sessions, "stagedDiscarded": report.staged_discarded}))
    return EXIT_OK


# -- the client commands: upload, status, cancel ---------------------------------------

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


def _segment_size(text: str) -> int:
    from uploadsession.client import check_segment_size

    try:
        size = parse_byte_size(text)
        check_segment_size(size)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return size


def _parallel(text: str) -> int:
    from uploadsession.client import MAX_PARALLEL

    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PARALLEL:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {MAX_PARALLEL}")
    return value


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def render_progress(progress: Progress, width: int = 80) -> str:
    """One line: ``45% [#####-----] 9.0 MiB/20.0 MiB 6.2 MiB/s ETA 0:02``, at most ``width``."""
    percent = f"{progress.fraction * 100:3.0f}%"
    amounts = f"{human_bytes(progress.position)}/{human_bytes(progress.size)}"
    rate = f"{human_bytes(progress.rate)}/s" if progress.rate > 0 else "--/s"
    if progress.finished:
        tail = f"in {_clock(progress.elapsed)}"
    else:
        eta = progress.eta
        tail = "ETA --:--" if eta is None else f"ETA {_clock(eta)}"
    text = f" {amounts}  {rate}  {tail}"
    bar_width = max(0, min(40, width - len(percent) - len(text) - 4))
    if bar_width >= 5:
        filled = int(bar_width * progress.fraction)
        return f"{percent} [{'#' * filled}{'-' * (bar_width - filled)}]{text}"[:width]
    return f"{percent}{text}"[:width]


class TerminalProgress:
    """A progress bar redrawn in place (``\\r``) on a terminal stream."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._drawn = 0

    def __call__(self, progress: Progress) -> None:
        width = shutil.get_terminal_size((80, 24)).columns - 1
        line = render_progress(progress, width)
        self.stream.write("\r" + line + " " * max(0, self._drawn - len(line)))
        self._drawn = len(line)
        if progress.finished:
            self.close()
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line (if one was drawn) so later messages start on their own."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0


def _token_provider(args: argparse.Namespace) -> TokenProvider:
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
            raise _UsageError(
                f"no token: pass --token, set {TOKEN_ENV}, or --scope api://…/.default "
                "(azure-identity's DefaultAzureCredential)"
            )
    token = token.strip().removeprefix("Bearer ").strip()
    if not token:
        raise _UsageError("the token is empty")
    return StaticToken(token)


class _UsageError(Exception):
    pass


def _client(args: argparse.Namespace) -> UploadClient:
    from uploadsession.client import UploadClient

    if not re.match(r"^https?://[^/]+", args.base_url):
        raise _UsageError(f"--base-url must be an http(s) URL, got {args.base_url!r}")
    return UploadClient(args.base_url, _token_provider(args), read_timeout=args.timeout)


def _redact(args: argparse.Namespace, text: str) -> str:
    """Remove any token the command was given (and anything JWT-shaped) from ``text``."""
    from uploadsession.client import redact_jwts

    for secret in (getattr(args, "token", None), os.environ.get(TOKEN_ENV)):
        if secret and secret.strip():
            text = text.replace(secret.strip(), "<redacted>")
    return redact_jwts(text)


def _client_errors(args: argparse.Namespace, exc: BaseException) -> int:
    """Report a client command's failure on stderr; return its exit code."""
    from uploadsession.client import AuthError, ClientError

    if isinstance(exc, _UsageError | ValueError):
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
    print(_redact(args, f"error: {message}{suffix}"), file=sys.stderr)
    return code


def cmd_upload(args: argparse.Namespace) -> int:
    from uploadsession.client import ClientError

    path = Path(args.file)
    bar: TerminalProgress | None = None
    try:
        if not path.is_file():
            raise _UsageError(f"no such file: {args.file}")
        if path.stat().st_size == 0:
            raise _UsageError(f"{args.file} is empty; a document has at least 1 byte")
        if args.name is not None and not 1 <= len(args.name) <= 255:
            raise _UsageError("--name must be 1-255 characters")
        if not args.quiet and sys.stderr.isatty():
            bar = TerminalProgress(sys.stderr)
        with _client(args) as client:
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
                protocol="legacy",
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
    except (_UsageError, ValueError, ClientError, OSError) as exc:
        if bar is not None:
            bar.close()
        if _already_uploaded(args, path, exc):
            if args.json:
                print(json.dumps({"status": "alreadyUploaded", "size": path.stat().st_size}))
            else:
                print(f"already uploaded: the committed document is byte-identical to {path}")
            return EXIT_OK
        code = _client_errors(args, exc)
        if args.json:
            error = exc.as_dict() if isinstance(exc, ClientError) else {"message": str(exc)}
            error["message"] = _redact(args, str(error.get("message", "")))
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
        with _client(args) as client, path.open("rb") as source:
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
        with _client(args) as client:
            session = client.status(args.printer, args.job, args.document)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        return _client_errors(args, exc)
    print(json.dumps(session) if args.json else describe_session(session))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    try:
        with _client(args) as client:
            client.cancel(args.printer, args.job, args.document)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        return _client_errors(args, exc)
    print(f"cancelled the upload session of document {args.document}")
    return EXIT_OK


def cmd_download(args: argparse.Namespace) -> int:
    target = Path(args.output) if args.output else None
    partial = target.with_name(target.name + ".partial") if target else None
    try:
        with _client(args) as client:
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
        return _client_errors(args, exc)
    if target is not None:
        summary = {"path": str(target), "size": result.size, "sha256": result.sha256}
        print(
            json.dumps(summary)
            if args.json
            else f"wrote {result.size} bytes to {target} (sha256 {result.sha256})"
        )
    return EXIT_OK


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


def _add_client_arguments(parser: argparse.ArgumentParser) -> None:
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


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error never echoes a token someone pasted in the wrong place."""

    def error(self, message: str) -> NoReturn:
        from uploadsession.client import redact_jwts

        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {redact_jwts(message)}\n")


def _add_client_commands(sub: Any) -> None:
    from uploadsession.client import DEFAULT_PARALLEL, DEFAULT_SEGMENT_SIZE

    upload = sub.add_parser(
        "upload",
        help="upload a file: resumable, parallel, with retries and a progress bar",
        description="Create (or reuse) the document's upload session and send every missing "
        "range. Keeps no local state: run the same command again to resume.",
    )
    upload.add_argument("file", metavar="FILE")
    _add_client_arguments(upload)
    upload.add_argument(
        "--segment-size",
        type=_segment_size,
        default=DEFAULT_SEGMENT_SIZE,
        metavar="BYTES",
        help="a multiple of 320 KiB, at most 10 MiB; K/M suffixes allowed (default 5MiB)",
    )
    upload.add_argument(
        "--parallel",
        type=_parallel,
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
    upload.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    upload.set_defaults(func=cmd_upload)

    status = sub.add_parser("status", help="show an upload session: received, missing, expiry")
    _add_client_arguments(status)
    status.set_defaults(func=cmd_status)

    cancel = sub.add_parser("cancel", help="cancel (delete) an upload session")
    _add_client_arguments(cancel)
    cancel.set_defaults(func=cmd_cancel)

    download = sub.add_parser(
        "download", help="read the committed document (to stdout, or -o FILE)"
    )
    _add_client_arguments(download)
    download.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (whole and checked, or not at all)"
    )
    download.set_defaults(func=cmd_download)


def build_parser() -> argparse.ArgumentParser:
    from uploadsession.dev.tokens import DEV_APP, DEV_TENANT, DEV_USER

    parser = _Parser(prog="uploadsession", description="printUploadSession service and tools")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the function app's HTTP functions locally")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=7071)
    serve.add_argument("--app-dir", default=".", help="folder with function_app.py, host.json")
    serve.add_argument("--no-timers", action="store_true", help="do not run the purge timer")
    serve.add_argument(
        "--https",
        action="store_true",
        help="serve TLS with a self-signed development certificate (made under --cert-dir)",
    )
    serve.add_argument("--cert-dir", default=".local", help="where devcert.pem and its key live")
    serve.set_defaults(func=cmd_serve)

    subscription = sub.add_parser("subscription", help="manage a tenant's subscription")
    subscription.add_argument("action", choices=["activate", "suspend", "show"])
    subscription.add_argument("tenant", help="tenant id (GUID)")
    subscription.set_defaults(func=cmd_subscription)

    token = sub.add_parser("dev-token", help="mint a local development token")
    kind = token.add_mutually_exclusive_group()
    kind.add_argument(
        "--scp",
        nargs="+",
        default=["PrintJob.ReadWrite", "Printer.Read.All"],
        help="delegated scopes (default: PrintJob.ReadWrite Printer.Read.All)",
    )
    kind.add_argument("--roles", nargs="+", help="application roles (makes an app token)")
    token.add_argument("--tenant", default=DEV_TENANT)
    token.add_argument("--user", default=DEV_USER, help="the user's object id (oid)")
    token.add_argument("--app", default=DEV_APP, help="the client application id (azp)")
    token.add_argument("--audience", help="default: the first AUTH_AUDIENCES value")
    token.add_argument("--lifetime", type=int, default=12 * 3600, help="seconds")
    token.add_argument("--key-dir", default=".local", help="where the dev key and JWKS live")
    token.set_defaults(func=cmd_dev_token)

    purge = sub.add_parser("purge", help="purge expired sessions once")
    purge.set_defaults(func=cmd_purge)

    _add_client_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("UPLOADSESSION_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The Azure SDK logs every HTTP call at INFO; keep the console readable.
    logging.getLogger("azure").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
