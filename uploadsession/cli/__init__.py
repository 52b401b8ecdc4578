"""The ``uploadsession`` command line (also ``python -m uploadsession.cli``).

Exit codes: 0 success, 1 failure, 2 usage or configuration error, 3 authentication or
permission refused (401/403; the client commands ``upload``, ``status``, ``cancel``,
``download``), 130 interrupted (Ctrl-C). The modules, each named for what it holds:

- ``parser``   — the argument parser and :func:`main`
- ``commands`` — the client commands: upload (Graph protocol by default, ``--protocol
  legacy``), status, cancel, download — over :class:`uploadsession.client.UploadClient`
- ``options``  — their options: ids, sizes and URLs checked before any request, defaults
  from ``UPLOADSESSION_*`` environment variables, the token and the client they make
- ``operator`` — the operator's commands: subscription, dev-token, purge
- ``serve``    — the local host for the function app
- ``terminal`` — the progress bar
- ``exits``    — exit codes and the one-line failure report (no token, ever)
"""

from __future__ import annotations

from uploadsession.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]
