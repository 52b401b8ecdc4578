"""The ``uploadsession`` argument parser and ``main``: every command registers its own
sub-parser (``serve``, ``operator``, ``commands``); ``main`` sets up logging, runs the
command and turns what escapes it into an exit code."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from uploadsession.cli import commands, operator, serve
from uploadsession.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from uploadsession.errors import ApiError, ConfigError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error never echoes a token someone pasted in the wrong place."""

    def error(self, message: str) -> NoReturn:
        from uploadsession.client import redact_jwts

        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {redact_jwts(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="uploadsession", description="printUploadSession service and tools")
    sub = parser.add_subparsers(dest="command", required=True)
    serve.add_command(sub)
    operator.add_commands(sub)
    commands.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code (130 when interrupted with Ctrl-C)."""
    logging.basicConfig(
        level=os.environ.get("UPLOADSESSION_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The Azure SDK logs every HTTP call at INFO; keep the console readable.
    logging.getLogger("azure").setLevel(logging.WARNING)
    # urllib3 logs each request's URL at DEBUG; an uploadUrl's query is a credential.
    logging.getLogger("urllib3").setLevel(logging.INFO)
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
        return EXIT_INTERRUPTED
    return code
