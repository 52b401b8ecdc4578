"""Profile the hot paths with pyinstrument: ``python -m bench.profiling TARGET [--calls N]``.

Targets (each in-process, on a real runtime from ``build_runtime`` over its own Azurite):

- ``get``: the GET function for a fresh session (what ``get_inprocess`` measures);
- ``get-fragmented``: the GET function for a session with 1,000 missing ranges (``scale``);
- ``get-cpu``: the GET function with the storage read replaced by the entity it returned,
  so only the app's own CPU time is left;
- ``upload``: the POST ``$value`` function with 8 MiB segments (``upload``, minus HTTP);
- ``token``: ``TokenValidator.validate`` for first-sight tokens (``token``).

Prints the call tree (``--html FILE`` also writes pyinstrument's HTML view). The profiles are
for reading, not for the README: pyinstrument's own overhead inflates short calls.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import azure.functions as func
import jwt
from pyinstrument import Profiler

from bench.get_inprocess import create, request
from bench.harness import AUDIENCE, READ_WRITE, TENANT, MiB, new_document, stack
from bench.scale import fragmented_session
from uploadsession import http
from uploadsession.auth import TokenValidator
from uploadsession.dev import tokens as devtoken
from uploadsession.jwks import JwksCache
from uploadsession.models import DocumentKey
from uploadsession.ports import SESSION_ROW, document_partition
from uploadsession.runtime import build_runtime, set_runtime


@contextmanager
def _runtime() -> Iterator[tuple[object, str]]:
    with stack() as s:
        runtime = build_runtime(s.settings())
        set_runtime(runtime)
        try:
            yield s, s.token()
        finally:
            set_runtime(None)


@contextmanager
def target_get(
    fragmented: bool = False, stub_storage: bool = False
) -> Iterator[Callable[[], object]]:
    with _runtime() as (s, token):
        ids = new_document()
        if fragmented:
            s.storage.insert_session(fragmented_session(ids))  # type: ignore[attr-defined]
        else:
            create(token, ids)
        get = request("GET", token, ids)
        if stub_storage:
            from uploadsession.runtime import get_runtime

            table = get_runtime().service.store._get_clients().sessions  # type: ignore[attr-defined]
            partition = document_partition(DocumentKey(TENANT, *ids))
            entity = table.get_entity(partition, SESSION_ROW)
            table.get_entity = lambda *args, **kwargs: entity
        yield lambda: http.get_upload_session(get)


@contextmanager
def target_upload(calls: int) -> Iterator[Callable[[], object]]:
    with _runtime() as (_, token):
        printer, job, document = ids = new_document()
        size = calls * 8 * MiB + 1
        create(token, ids, size=size)
        data = bytes(8 * MiB)
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
        offsets = iter(range(0, size, 8 * MiB))

        def post() -> object:
            start = next(offsets)
            req = func.HttpRequest(
                "POST",
                f"http://127.0.0.1:7071/beta/print/printers/{printer}/jobs/{job}/documents/"
                f"{document}/uploadSession/$value",
                headers={
                    "authorization": f"Bearer {token}",
                    "content-type": "application/octet-stream",
                    "if-match": "*",
                    "content-range": f"bytes {start}-{start + len(data) - 1}/{size}",
                    "content-md5": md5,
                },
                route_params={"printerId": printer, "jobId": job, "documentId": document},
                body=data,
            )
            response = http.upload_segment(req)
            if response.status_code != 202:
                raise RuntimeError(f"POST: {response.status_code} {response.get_body()[:200]!r}")
            return response

        yield post


@contextmanager
def target_token(calls: int) -> Iterator[Callable[[], object]]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        key, kid = devtoken.ensure_key(Path(tmp))
        validator = TokenValidator((AUDIENCE,), JwksCache((Path(tmp) / "jwks.json").as_uri()))
        tokens = iter(
            [
                "Bearer "
                + jwt.encode(
                    devtoken.dev_claims(audience=AUDIENCE, scopes=READ_WRITE),
                    key,
                    algorithm="RS256",
                    headers={"kid": kid},
                )
                for _ in range(calls + 1)
            ]
        )
        validator.validate(next(tokens))
        yield lambda: validator.validate(next(tokens))


def main(argv: Sequence[str] | None = None) -> int:
    targets = ["get", "get-fragmented", "get-cpu", "upload", "token"]
    parser = argparse.ArgumentParser(prog="python -m bench.profiling", description=__doc__)
    parser.add_argument("target", choices=targets)
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument("--html", type=Path, metavar="FILE", help="also write the HTML view")
    args = parser.parse_args(argv)
    calls = args.calls or {"upload": 12, "token": 3000, "get-cpu": 5000}.get(args.target, 1000)
    target = {
        "get": lambda: target_get(),
        "get-fragmented": lambda: target_get(fragmented=True),
        "get-cpu": lambda: target_get(stub_storage=True),
        "upload": lambda: target_upload(calls),
        "token": lambda: target_token(calls),
    }[args.target]()
    with target as call:
        warm = 0 if args.target in ("upload", "token") else 50
        for _ in range(warm):
            call()
        profiler = Profiler(interval=0.0002)
        profiler.start()
        for _ in range(calls):
            call()
        profiler.stop()
    if args.html:
        args.html.write_text(profiler.output_html())
    print(profiler.output_text(unicode=True, color=False))
    duration = profiler.last_session.duration if profiler.last_session else float("nan")
    print(json.dumps({"target": args.target, "calls": calls, "seconds_per_call": duration / calls}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
