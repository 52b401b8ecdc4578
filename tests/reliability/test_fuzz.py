"""Generated fuzzing with Schemathesis: docs/openapi.yaml against `uploadsession serve` + Azurite.

Three runs, each of requests generated from the document and sent with a valid token:

- stateless, positive: every operation with data the document allows;
- stateless, negative: data that violates the document (bad ids, bodies, headers);
- stateful: sequences that follow the document's links (PUT → GET / POST $value / DELETE on
  the same document), partly steered so that segments fit the session they go to and some
  sessions are small enough to complete — which exercises 201/202/304/412/416.

Every response must pass: not a server error, status code / content type / headers / body
conforming to the document, and (our own check) every error in Graph's envelope with the
response's ``request-id``. The number of requests the server logged is asserted.
``FUZZ_SCALE`` multiplies the examples (``make fuzz`` sets it); the default runs in ``make test``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Flaky
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from tests.e2e.conftest import Api, start_api
from tests.processes import Azurite

ROOT = Path(__file__).resolve().parents[2]
SCALE = int(os.environ.get("FUZZ_SCALE", "1"))
STATELESS_EXAMPLES = 250 * SCALE  # per generation mode
STATEFUL_SCENARIOS = 100 * SCALE
STATEFUL_STEPS = 10
MIN_REQUESTS = 1000 * SCALE
# Answers the runs must have reached: past validation into the service, not only its 400s.
REACHED = {200, 201, 202, 204, 304, 400, 404, 409, 412, 416, 428}
# One line per request in the `uploadsession serve` log.
# One line per request, after the UTC time devhost starts it with.
LOGGED_REQUEST = re.compile(
    r'^(?:\S+Z )?127\.0\.0\.1 "[A-Z]+ \S+ HTTP/1\.[01]" \d{3} ', re.MULTILINE
)
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@schemathesis.check
def graph_error_envelope(
    ctx: Any, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Every response has a GUID request-id; every error is Graph's envelope carrying it."""
    request_id = response.headers.get("request-id", [""])[0]
    assert GUID.match(request_id), f"request-id {request_id!r} is not a GUID"
    assert response.headers.get("client-request-id"), "no client-request-id"
    if response.status_code < 400:
        return None
    body = json.loads(response.content)
    inner = body["error"]["innerError"]
    assert inner["request-id"] == request_id, "envelope request-id differs from the header"
    assert inner["client-request-id"] == response.headers["client-request-id"][0]
    assert b"Traceback" not in response.content
    return None


CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
    graph_error_envelope,
]
STATEFUL_CHECKS = [
    *CHECKS,
    schemathesis.checks.use_after_free,  # DELETE 204, then the session is gone
    schemathesis.checks.ensure_resource_availability,  # PUT 200, then GET finds it
]


class Sent:
    """What the fuzzer sent and got, and every check failure (thread-safe).

    Failures are collected rather than raised, so Hypothesis never replays a stateful
    scenario against a server whose state has moved on (a replay that differs is "flaky");
    the test fails at the end with every failure it found.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.failures: list[str] = []

    def validate(
        self,
        case: schemathesis.Case,
        response: schemathesis.Response,
        checks: list[Any],
        auth: dict[str, str],
        **kwargs: Any,
    ) -> None:
        with self.lock:
            self.statuses[(case.method, response.status_code)] += 1
        try:
            case.validate_response(response, checks=checks, headers=auth, **kwargs)
        except FailureGroup as group:
            with self.lock:
                self.failures.append(f"{case.method} {case.formatted_path}: {group}")

    @property
    def total(self) -> int:
        return sum(self.statuses.values())


@pytest.fixture(scope="module")
def fuzz_api(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    running = start_api(azurite, tmp_path_factory.mktemp("fuzz"))
    try:
        yield running
    finally:
        running.server.stop()


def fuzz_settings(examples: int, **extra: Any) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,  # nothing written under the repository
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        **extra,
    )


def _document_key(case: schemathesis.Case) -> tuple[str, ...]:
    params = case.path_parameters or {}
    return tuple(str(params.get(name, "")).lower() for name in ("printerId", "jobId", "documentId"))


def steer(
    case: schemathesis.Case, sizes: dict[tuple[str, ...], int], etags: dict[tuple[str, ...], str]
) -> None:
    """Make some generated cases coherent enough to get past validation.

    GET with a generated If-None-Match, of a session seen in this scenario: when the value has
    an even length, the last ETag seen for it (304, or 200 if it changed since).

    PUT: about half get a size of at most 64 bytes, so segments can complete them. POST to a
    session created in this scenario, by the generated range's start modulo 4: 0 → a body
    and Content-Range that fit the session (the start modulo the size; a correct Content-MD5
    when one was generated), which is accepted, completes, or overlaps; 1 → the same with
    the wrong total size (416); 2 → with a stale If-Match (412), or none at all (428) when the
    start modulo 8 is 6; 3 → as generated.
    """
    if case.method == "GET" and case.headers and "If-None-Match" in case.headers:
        etag = etags.get(_document_key(case))
        if etag is not None and len(str(case.headers["If-None-Match"])) % 2 == 0:
            case.headers["If-None-Match"] = etag
    if case.method == "PUT" and isinstance(case.body, dict):
        size = case.body.get("size")
        if isinstance(size, int) and not isinstance(size, bool) and size % 2 == 0:
            case.body["size"] = 1 + size % 64
    if case.method != "POST" or case.headers is None:
        return
    size = sizes.get(_document_key(case))
    match = re.match(r"bytes[ =](\d+)-", str(case.headers.get("Content-Range", "")))
    if size is None or match is None or int(match.group(1)) % 4 == 3:
        return
    generated = int(match.group(1))
    start = generated % size
    data = case.body if isinstance(case.body, bytes) and case.body else b"x"
    data = data[: size - start]
    total = size + 1 if generated % 4 == 1 else size
    if generated % 8 == 2:
        case.headers["If-Match"] = '"0123456789abcdef0123456789abcdef"'
    elif generated % 8 == 6:
        case.headers.pop("If-Match", None)
    case.body = data
    case.headers["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/{total}"
    if "Content-MD5" in case.headers:
        case.headers["Content-MD5"] = base64.b64encode(hashlib.md5(data).digest()).decode()


def test_generated_requests_get_documented_answers_and_never_a_5xx(fuzz_api: Api) -> None:
    log = fuzz_api.server.log
    logged_before = len(LOGGED_REQUEST.findall(log.read_text(errors="replace")))
    schema = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.yaml")
    schema.config.update(base_url=fuzz_api.base_url.rsplit("/", 1)[0])  # paths carry {version}
    token = fuzz_api.token(scp="PrintJob.ReadWrite.All Printer.Read.All")
    auth = {"Authorization": f"Bearer {token}"}
    sent = Sent()
    session = requests.Session()
    started = time.monotonic()

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @fuzz_settings(STATELESS_EXAMPLES)
        @given(case=schema.as_strategy(generation_mode=mode))
        def one_request(case: schemathesis.Case) -> None:
            response = case.call(session=session, headers=auth, timeout=30)
            sent.validate(case, response, CHECKS, auth)

        one_request()

    sizes: dict[tuple[str, ...], int] = {}
    etags: dict[tuple[str, ...], str] = {}

    class Scenarios(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: schemathesis.Case) -> None:
            steer(case, sizes, etags)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"session": session, "headers": auth, "timeout": 30}

        def after_call(self, response: schemathesis.Response, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            if case.method == "PUT" and response.status_code == 200:
                sizes[_document_key(case)] = int(json.loads(response.content)["size"])
            if "etag" in response.headers:
                etags[_document_key(case)] = response.headers["etag"][0]

        def validate_response(
            self,
            response: schemathesis.Response,
            case: schemathesis.Case,
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            sent.validate(case, response, STATEFUL_CHECKS, auth, recorder=self.recorder)

    def run_scenarios(count: int) -> None:
        left = count
        while left > 0:
            before = sent.total
            try:
                Scenarios.run(settings=fuzz_settings(left, stateful_step_count=STATEFUL_STEPS))
                return
            except Flaky:
                # Which rules can run depends on the server's answers (a link needs a 2xx), so
                # a new scenario sharing a prefix with an earlier one can draw differently;
                # Hypothesis then stops the run. Nothing failed (failures are collected): run
                # the rest.
                left -= max(1, (sent.total - before) // STATEFUL_STEPS)

    run_scenarios(STATEFUL_SCENARIOS)
    # Generation is random: if some answer the service must give never came up, a few more
    # scenarios (bounded), so that the check below is about the service, not about luck.
    for _ in range(5):
        if {status for _, status in sent.statuses} >= REACHED:
            break
        run_scenarios(STATEFUL_SCENARIOS // 3)

    elapsed = time.monotonic() - started
    logged = len(LOGGED_REQUEST.findall(log.read_text(errors="replace"))) - logged_before
    statuses = sorted(sent.statuses.items())
    print(f"\nfuzz: {sent.total} requests generated, {logged} served, {elapsed:.1f}s; {statuses}")
    assert not sent.failures, "\n\n".join(sent.failures[:20])
    assert logged >= sent.total >= MIN_REQUESTS
    seen = {status for _, status in sent.statuses}
    assert not {status for status in seen if status >= 500}
    # The runs reached past validation into the service, not only its 400s.
    assert seen >= REACHED, seen
    assert {m for m, _ in sent.statuses} == {"GET", "PUT", "POST", "DELETE"}
