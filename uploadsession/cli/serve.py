"""``uploadsession serve``: the local HTTP host for the function app (``uploadsession.dev``).

The command's body belongs to the dev host's work; this module only gives it a name.
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path
from typing import Any

from uploadsession.cli.exits import EXIT_FAILED, EXIT_OK

#: Room above the largest segment for a request's own framing (chunk sizes) and small bodies.
BODY_SLACK_BYTES = 1024 * 1024


def cmd_serve(args: argparse.Namespace) -> int:
    from uploadsession.config import get_settings
    from uploadsession.dev.host import DevHost, load_app, load_route_prefix

    settings = get_settings()  # fail fast, naming the setting, before listening
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
    try:
        host = DevHost(
            app,
            host=args.host,
            port=args.port,
            route_prefix=load_route_prefix(app_dir / "host.json"),
            # The largest legitimate request is one segment; anything larger is refused
            # (413) from its Content-Length, before its body is read.
            max_body_bytes=settings.max_segment_bytes + BODY_SLACK_BYTES,
            run_timers=not args.no_timers,
            ssl_context=ssl_context,
        )
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        print(
            f"error: port {args.port} on {args.host} is already in use (another "
            "`uploadsession serve` or `make run`?); choose another with --port N "
            "(make run: PORT=N make run)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    host.serve_forever()
    return EXIT_OK


def add_command(sub: Any) -> None:
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
