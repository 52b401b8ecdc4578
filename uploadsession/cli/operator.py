"""The operator's commands: ``subscription``, ``dev-token`` and ``purge``. They drive the
service over the storage named by the settings of DESIGN §5 in the environment (no HTTP)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from uploadsession.cli.exits import EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from uploadsession.service import UploadSessionService


def _service() -> UploadSessionService:
    """The service as the function app builds it, from the service's settings in the
    environment (storage and session TTL; no auth settings needed)."""
    from uploadsession.config import service_settings
    from uploadsession.runtime import build_service

    return build_service(service_settings())


def cmd_subscription(args: argparse.Namespace) -> int:
    from uploadsession.models import is_guid

    if not is_guid(args.tenant):
        print(f"error: tenant id must be a GUID, got {args.tenant!r}", file=sys.stderr)
        return EXIT_USAGE
    tenant = args.tenant.lower()
    service = _service()
    if args.action == "show":
        sub = service.subscription(tenant)
        state = "none" if sub is None else ("active" if sub.active else "suspended")
        record = {"tenantId": tenant, "state": state}
        if sub is not None:
            record["updated"] = sub.updated.isoformat()
    else:
        sub = service.set_subscription(tenant, active=args.action == "activate")
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
    report = _service().purge()
    print(json.dumps({"sessions": report.sessions, "stagedDiscarded": report.staged_discarded}))
    return EXIT_OK


def add_commands(sub: Any) -> None:
    from uploadsession.dev.tokens import DEV_APP, DEV_TENANT, DEV_USER

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
