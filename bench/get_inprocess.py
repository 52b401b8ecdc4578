"""GET in-process: ``uploadsession.http.get_upload_session`` called directly.

Measured: the GET function with a hand-built ``func.HttpRequest`` — token validation, the
(cached) subscription check, one point read, the JSON and its ETag — on a real runtime from
``build_runtime`` (Settings pointing at Azurite, a ``file://`` JWKS).
Baseline: a bare ``azure-data-tables`` ``get_entity`` of the same entity on the same Azurite.
Target: at least 0.85x the baseline's throughput.
"""

from __future__ import annotations

import json

import azure.functions as func
from azure.data.tables import TableClient

from bench.harness import (
    TENANT,
    Check,
    Config,
    Result,
    interleaved,
    median,
    new_document,
    per_round,
    session_path,
    stack,
    throughput,
)
from uploadsession import http
from uploadsession.config import SESSIONS_TABLE
from uploadsession.runtime import build_runtime, set_runtime

NAME = "get_inprocess"
TITLE = "GET in-process"


def request(
    method: str, token: str, ids: tuple[str, str, str], body: bytes = b""
) -> func.HttpRequest:
    printer, job, document = ids
    headers = {"authorization": f"Bearer {token}"}
    if body:
        headers["content-type"] = "application/json"
    return func.HttpRequest(
        method,
        f"http://127.0.0.1:7071/beta/{session_path(printer, job, document)}",
        headers=headers,
        route_params={"printerId": printer, "jobId": job, "documentId": document},
        body=body,
    )


def create(token: str, ids: tuple[str, str, str], size: int = 1024) -> None:
    body = json.dumps({"size": size, "contentType": "application/pdf", "documentName": "b.pdf"})
    response = http.create_upload_session(request("PUT", token, ids, body.encode()))
    if response.status_code != 200:
        raise RuntimeError(f"PUT: {response.status_code} {response.get_body()[:300]!r}")


def run(config: Config) -> Result:
    rounds = config.pick(9, 3)
    calls = config.pick(300, 50)
    with stack() as s:
        set_runtime(build_runtime(s.settings()))
        try:
            token = s.token()
            ids = new_document()
            create(token, ids)
            get = request("GET", token, ids)
            table = TableClient.from_connection_string(s.azurite.connection_string, SESSIONS_TABLE)
            printer, job, document = ids

            def ours() -> None:
                response = http.get_upload_session(get)
                if response.status_code != 200:
                    raise RuntimeError(f"GET: {response.status_code} {response.get_body()!r}")

            def bare() -> None:
                table.get_entity("|".join((TENANT, printer, job, document)), "session")

            interleaved({"ours": ours, "bare": bare}, 1, 50)  # warm up both
            lat = interleaved({"ours": ours, "bare": bare}, rounds, calls)
        finally:
            set_runtime(None)

    ours_tp, bare_tp = throughput(lat["ours"]), throughput(lat["bare"])
    ratios = [o / b for o, b in zip(ours_tp, bare_tp, strict=True)]
    ours_us = median(per_round(lat["ours"], median)) * 1e6
    bare_us = median(per_round(lat["bare"], median)) * 1e6
    result = Result(
        NAME,
        TITLE,
        measured="get_upload_session(HttpRequest): token + point read + JSON + ETag",
        baseline="TableClient.get_entity of the same entity",
        columns=["", "calls/s", "p50 µs", "extra µs/call"],
        rows=[
            ["GET function", median(ours_tp), ours_us, ours_us - bare_us],
            ["bare get_entity", median(bare_tp), bare_us, 0.0],
        ],
        checks=[Check("throughput vs bare get_entity", median(ratios), ">=", 0.85)],
        settings={"rounds": rounds, "calls_per_round": calls},
        data={"ours_calls_per_s": median(ours_tp), "bare_calls_per_s": median(bare_tp)},
        quick=config.quick,
    )
    return result
