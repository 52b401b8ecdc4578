"""Telemetry through in-memory OpenTelemetry exporters, on the real store (Azurite).

One request → one server span carrying the request-id, child spans for its storage calls,
log records with the same ids; no token, capability or query string in anything exported.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import azure.functions as func
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.conftest import unique_storage
from tests.processes import Azurite
from tests.unit.tokens import (
    AUDIENCE,
    KID,
    TENANT,
    StaticKeys,
    build_jwks,
    delegated_claims,
    generate_key,
    mint,
)
from uploadsession import graph_http, http, telemetry
from uploadsession.auth import TokenValidator
from uploadsession.config import parse_settings
from uploadsession.runtime import Runtime, set_runtime
from uploadsession.service import UploadSessionService

PRINTER = str(uuid.uuid4())
JOB = "job-7"
SIZE = 6000
DATA = bytes(range(256)) * 24
SECRET_QUERY = "sig=s3cr3t-query-value"


@dataclass
class Exported:
    spans: InMemorySpanExporter
    logs: InMemoryLogRecordExporter
    metrics: InMemoryMetricReader

    def clear(self) -> None:
        self.spans.clear()
        self.logs.clear()


@pytest.fixture(scope="module")
def exported() -> Iterator[Exported]:
    spans, logs, reader = (
        InMemorySpanExporter(),
        InMemoryLogRecordExporter(),
        InMemoryMetricReader(),
    )
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    root.setLevel(logging.INFO)
    telemetry.use_providers(
        tracer_provider=tracer_provider,
        logger_provider=logger_provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
    )
    telemetry.configure({})
    telemetry._bind_instruments()  # in case an earlier test configured before the providers
    yield Exported(spans, logs, reader)
    for handler in list(root.handlers):
        if handler not in before:
            root.removeHandler(handler)
    root.setLevel(level)


@dataclass
class Api:
    key: rsa.RSAPrivateKey

    def token(self) -> str:
        return mint(self.key, KID, **delegated_claims())


@pytest.fixture
def api(azurite: Azurite) -> Iterator[Api]:
    key = generate_key()
    settings = parse_settings(
        {"UPLOADSESSION_STORAGE": azurite.connection_string, "AUTH_AUDIENCES": AUDIENCE}
    )
    store = unique_storage(azurite)
    store.put_subscription(TENANT, True)
    service = UploadSessionService(store, ttl_seconds=3600, sleep=lambda _: None)
    validator = TokenValidator(settings.auth_audiences, StaticKeys(build_jwks((key, KID))))
    set_runtime(Runtime(settings, validator, service))
    yield Api(key)
    set_runtime(None)


def call(
    handler: Any,
    method: str,
    document: str,
    *,
    headers: dict[str, str],
    body: bytes = b"",
    value: bool = False,
) -> func.HttpResponse:
    path = f"print/printers/{PRINTER}/jobs/{JOB}/documents/{document}/uploadSession"
    req = func.HttpRequest(
        method,
        f"http://localhost/beta/{path}" + ("/$value" if value else "") + f"?{SECRET_QUERY}",
        headers=headers,
        params={"sig": "s3cr3t-query-value"},
        route_params={"printerId": PRINTER, "jobId": JOB, "documentId": document},
        body=body,
    )
    response: func.HttpResponse = handler(req)
    return response


def create(api: Api, document: str, token: str, client_request_id: str) -> func.HttpResponse:
    body = {"size": SIZE, "contentType": "application/pdf", "documentName": "a.pdf"}
    return call(
        http.create_upload_session,
        "PUT",
        document,
        headers={"Authorization": f"Bearer {token}", "client-request-id": client_request_id},
        body=json.dumps(body).encode(),
    )


def descendants(spans: tuple[ReadableSpan, ...], root: ReadableSpan) -> list[ReadableSpan]:
    ids = {root.context.span_id}
    found: list[ReadableSpan] = []
    for _ in range(len(spans)):  # parents are exported after their children: iterate to a fix
        for span in spans:
            if span.parent is not None and span.parent.span_id in ids and span not in found:
                ids.add(span.context.span_id)
                found.append(span)
    return found


def everything_exported(exported: Exported) -> str:
    """Every exported name, attribute, event and log body and attribute, as one text."""
    parts: list[str] = []
    for span in exported.spans.get_finished_spans():
        parts.append(span.name)
        parts.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
        for event in span.events:
            parts.append(event.name)
            parts.extend(f"{k}={v}" for k, v in (event.attributes or {}).items())
        parts.extend(f"{k}={v}" for k, v in span.resource.attributes.items())
    for data in exported.logs.get_finished_logs():
        record = data.log_record
        parts.append(str(record.body))
        parts.extend(f"{k}={v}" for k, v in (record.attributes or {}).items())
    return "\n".join(parts)


def test_one_request_is_one_server_span_with_storage_children_and_correlated_logs(
    exported: Exported, api: Api
) -> None:
    exported.clear()
    token = api.token()
    response = create(api, str(uuid.uuid4()), token, "my-client-id-1")
    assert response.status_code == 200, response.get_body()
    request_id = response.headers["request-id"]

    spans = exported.spans.get_finished_spans()
    servers = [s for s in spans if s.kind == SpanKind.SERVER]
    assert len(servers) == 1
    server = servers[0]
    assert server.name == "create_upload_session"
    attributes = dict(server.attributes or {})
    assert attributes["request_id"] == request_id
    assert attributes["client_request_id"] == "my-client-id-1"
    assert attributes["http.response.status_code"] == 200
    assert attributes["tenant_id"] == TENANT
    children = descendants(spans, server)
    assert children, [s.name for s in spans]
    assert {s.context.trace_id for s in children} == {server.context.trace_id}
    names = {s.name for s in children}
    # the subscription read, the session read, the document probe and the insert
    assert any("get_entity" in n for n in names), names
    assert any("create_entity" in n for n in names), names
    assert any(s.kind == SpanKind.CLIENT for s in children), names

    records = [d.log_record for d in exported.logs.get_finished_logs()]
    request_records = [r for r in records if r.trace_id == server.context.trace_id]
    assert request_records
    for record in request_records:
        assert (record.attributes or {}).get("request_id") == request_id
        assert (record.attributes or {}).get("client_request_id") == "my-client-id-1"
    (summary,) = [r for r in request_records if (r.attributes or {}).get("function")]
    assert summary.attributes is not None
    assert summary.attributes["status"] == 200
    assert summary.attributes["outcome"] == "ok"
    assert summary.attributes["tenant_id"] == TENANT
    assert str(summary.attributes["document_key"]).startswith(f"{TENANT}/{PRINTER}/{JOB}/")
    assert float(summary.attributes["duration_ms"]) >= 0  # type: ignore[arg-type]

    text = everything_exported(exported)
    assert request_id in text
    for secret in (token, token.split(".")[2], "Bearer", "s3cr3t", SECRET_QUERY):
        assert secret not in text


def test_refusals_are_logged_at_info_with_their_reason_and_ids(
    exported: Exported, api: Api
) -> None:
    exported.clear()
    token = api.token()
    forged = token[:-8] + ("A" * 8 if not token.endswith("A" * 8) else "B" * 8)
    response = create(api, str(uuid.uuid4()), forged, "refused-1")
    assert response.status_code == 401
    request_id = response.headers["request-id"]
    records = [d.log_record for d in exported.logs.get_finished_logs()]
    refusals = [r for r in records if "request refused" in str(r.body)]
    assert len(refusals) == 1
    assert refusals[0].severity_text == "INFO"
    assert "signature" in str(refusals[0].body)
    assert (refusals[0].attributes or {}).get("request_id") == request_id
    text = everything_exported(exported)
    assert forged not in text and forged.split(".")[2] not in text


def metric_totals(exported: Exported) -> dict[str, int]:
    data = exported.metrics.get_metrics_data()
    out: dict[str, int] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                out[metric.name] = sum(int(p.value) for p in metric.data.data_points)  # type: ignore[union-attr]
    return out


def test_metrics_count_sessions_segments_bytes_and_cancellations(
    exported: Exported, api: Api
) -> None:
    def totals() -> dict[str, int]:
        return metric_totals(exported)

    before = totals()
    token = api.token()
    document = str(uuid.uuid4())
    assert create(api, document, token, "m-1").status_code == 200
    assert create(api, document, token, "m-2").status_code == 200  # idempotent: not counted
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/octet-stream",
        "If-Match": "*",
        "Content-Range": f"bytes 0-999/{SIZE}",
    }
    posted = call(
        http.upload_segment, "POST", document, headers=headers, body=DATA[:1000], value=True
    )
    assert posted.status_code == 202
    cancelled = call(
        http.delete_upload_session,
        "DELETE",
        document,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert cancelled.status_code == 204
    after = totals()

    def delta(name: str) -> int:
        return after.get(name, 0) - before.get(name, 0)

    assert delta(telemetry.SESSIONS_CREATED) == 1
    assert delta(telemetry.SEGMENTS_ACCEPTED) == 1
    assert delta(telemetry.BYTES_ACCEPTED) == 1000
    assert delta(telemetry.SESSIONS_CANCELLED) == 1


def test_the_graph_protocol_counts_what_the_legacy_protocol_counts(
    exported: Exported, api: Api
) -> None:
    """createUploadSession and PUT uploadUrl: sessions, segments, bytes, completion; the
    Python SDK's re-sent last range after completion is not counted again."""
    before = metric_totals(exported)
    document = str(uuid.uuid4())
    props = {"size": SIZE, "contentType": "application/pdf", "documentName": "a.pdf"}
    created = call(
        graph_http.graph_create_upload_session,
        "POST",
        document,
        headers={"Authorization": f"Bearer {api.token()}"},
        body=json.dumps({"properties": props}).encode(),
    )
    assert created.status_code == 200
    url = json.loads(created.get_body())["uploadUrl"]
    path, _, query = url.partition("?")
    name, _, token = query.partition("=")

    def put(start: int, end: int) -> int:
        req = func.HttpRequest(
            "PUT",
            url,
            headers={"Content-Range": f"bytes {start}-{end}/{SIZE}"},
            params={name: token},
            route_params={"version": "beta", "sessionRef": path.rsplit("/", 1)[1]},
            body=DATA[start : end + 1],
        )
        return int(graph_http.graph_upload_range(req).status_code)

    assert put(0, 999) == 202
    assert put(1000, SIZE - 1) == 201
    assert put(1000, SIZE - 1) == 201  # re-sent after completion: nothing accepted
    after = metric_totals(exported)

    def delta(name: str) -> int:
        return after.get(name, 0) - before.get(name, 0)

    assert delta(telemetry.SESSIONS_CREATED) == 1
    assert delta(telemetry.SEGMENTS_ACCEPTED) == 2
    assert delta(telemetry.BYTES_ACCEPTED) == SIZE
    assert delta(telemetry.SESSIONS_COMPLETED) == 1


def test_request_ids_reach_every_record_of_the_request_and_no_other() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("tests.telemetry.ids")
    logger.propagate = False
    handler = Keep()
    handler.addFilter(telemetry.RequestIdFilter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    telemetry.configure({})
    try:
        with telemetry.request_scope("f", "rid-1", "crid-1"):
            logger.info("inside")
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = records
    assert (inside.request_id, inside.client_request_id) == ("rid-1", "crid-1")  # type: ignore[attr-defined]
    assert (outside.request_id, outside.client_request_id) == ("-", "-")  # type: ignore[attr-defined]


def test_unavailable_causes_are_labels() -> None:
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
    )

    from uploadsession.errors import ServiceUnavailable

    def caused(by: BaseException | None) -> ServiceUnavailable:
        error = ServiceUnavailable("x")
        error.__cause__ = by
        return error

    assert telemetry.unavailable_cause(caused(None)) == "busy"
    assert telemetry.unavailable_cause(caused(ServiceRequestError("down"))) == "storage_unreachable"
    assert (
        telemetry.unavailable_cause(caused(ClientAuthenticationError("no")))
        == "storage_credentials"
    )
    throttled = HttpResponseError("slow")
    throttled.status_code = 429
    assert telemetry.unavailable_cause(caused(throttled)) == "storage_throttled"


def test_configure_without_a_connection_string_imports_no_exporter() -> None:
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from uploadsession import telemetry\n"
        "telemetry.configure({})\n"
        "import logging\n"
        "print(logging.getLogger('azure').level, "
        "logging.getLogger('azure.core.pipeline.policies.http_logging_policy').level, "
        "'azure.monitor.opentelemetry' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["30", "30", "False"]


def test_azure_monitor_gets_the_connection_string_and_the_user_assigned_identity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import azure.monitor.opentelemetry as distro
    from azure.identity import ManagedIdentityCredential

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(distro, "configure_azure_monitor", lambda **kw: calls.append(kw))
    connection = "InstrumentationKey=00000000-0000-0000-0000-000000000000"
    client_id = "11111111-1111-1111-1111-111111111111"
    telemetry._configure_azure_monitor(
        {"APPLICATIONINSIGHTS_CONNECTION_STRING": connection, "AZURE_CLIENT_ID": client_id}
    )
    telemetry._configure_azure_monitor(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": connection,
            "UPLOADSESSION_STORAGE__clientId": client_id,
        }
    )
    telemetry._configure_azure_monitor({"APPLICATIONINSIGHTS_CONNECTION_STRING": connection})
    with_identity, from_storage_setting, with_key = calls
    for kwargs in (with_identity, from_storage_setting):
        assert kwargs["connection_string"] == connection
        assert isinstance(kwargs["credential"], ManagedIdentityCredential)
    assert "credential" not in with_key
    assert with_key["instrumentation_options"]["urllib3"] == {"enabled": False}
    assert "azure_sdk" not in with_key["instrumentation_options"]  # storage spans stay on
