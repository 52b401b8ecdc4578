"""The ``uploadsession`` command line (also ``python -m uploadsession``).

Exit codes: 0 success, 1 failure, 2 usage or configuration error.
Every command reads the settings of DESIGN §5 from the environment.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from uploadsession.errors import ApiError, ConfigError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _storage():  # type: ignore[no-untyped-def]
    from uploadsession.config import storage_settings
    from uploadsession.store import AzureStorage

    return AzureStorage(storage_settings())


def cmd_serve(args: argparse.Namespace) -> int:
    from uploadsession.config import get_settings
    from uploadsession.devhost import DevHost, load_app, load_route_prefix

    get_settings()  # fail fast, naming the setting, before listening
    app_dir = Path(args.app_dir).resolve()
    app = load_app("function_app", app_dir)
    host = DevHost(
        app,
        host=args.host,
        port=args.port,
        route_prefix=load_route_prefix(app_dir / "host.json"),
        run_timers=not args.no_timers,
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
    from uploadsession.devtoken import DEV_AUDIENCE, dev_claims, mint

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


def build_parser() -> argparse.ArgumentParser:
    from uploadsession.devtoken import DEV_APP, DEV_TENANT, DEV_USER

    parser = argparse.ArgumentParser(
        prog="uploadsession", description="printUploadSession service and tools"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the function app's HTTP functions locally")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=7071)
    serve.add_argument("--app-dir", default=".", help="folder with function_app.py, host.json")
    serve.add_argument("--no-timers", action="store_true", help="do not run the purge timer")
    serve.set_defaults(func=cmd_serve)

    subscription = sub.add_parser("subscription", help="manage a tenant's subscription")
    subscription.add_argument("action", choices=["activate", "suspend", "show"])
    subscription.add_argument("tenant", help="tenant id (GUID)")
    subscription.set_defaults(func=cmd_subscription)

    token = sub.add_parser("dev-token", help="mint a local development token")
    kind = token.add_mutually_exclusive_group()
    kind.add_argument(
        "--scp", nargs="+", default=["PrintJob.ReadWrite", "Printer.Read.All"],
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
