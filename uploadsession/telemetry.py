"""OpenTelemetry for the function app: traces, logs and metrics, configured once.

Nothing here imports OpenTelemetry or the Azure Monitor distro at module import: the
Functions host imports ``function_app.py`` to index it and cold start is measured, so
:func:`configure` runs on the first request (from :func:`uploadsession.runtime.get_runtime`).

- ``APPLICATIONINSIGHTS_CONNECTION_STRING`` set → ``configure_azure_monitor``; ingestion is
  identity-based (a :class:`ManagedIdentityCredential`) when ``UPLOADSESSION_STORAGE__clientId``
  or ``AZURE_CLIENT_ID`` names the user-assigned identity.
- otherwise ``UPLOADSESSION_OTEL_CONSOLE=1`` prints spans to stderr and
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` exports them over OTLP (if ``opentelemetry-exporter-otlp``
  is installed) — for ``make run`` / ``uploadsession serve``.
- neither → the OpenTelemetry API's no-op providers (spans and counters cost ~nothing).

Per request, :func:`request_scope` opens the server span and sets the request's ids in a
context variable; a log-record factory copies them onto every log record of the request
(``request_id``, ``client_request_id``), which the Azure Monitor log exporter turns into
custom dimensions. Never put a token, a capability or a query string into a span or a record.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: Counter names (OpenTelemetry meter ``uploadsession``).
BYTES_ACCEPTED = "uploadsession.bytes_accepted"
SEGMENTS_ACCEPTED = "uploadsession.segments_accepted"
SESSIONS_CREATED = "uploadsession.sessions_created"
SESSIONS_COMPLETED = "uploadsession.sessions_completed"
SESSIONS_CANCELLED = "uploadsession.sessions_cancelled"
SESSIONS_PURGED = "uploadsession.sessions_purged"
WRITE_RETRIES = "uploadsession.write_race_retries"
UNAVAILABLE = "uploadsession.unavailable_responses"

_COUNTERS: dict[str, tuple[str, str]] = {
    BYTES_ACCEPTED: ("By", "Segment bytes staged and recorded"),
    SEGMENTS_ACCEPTED: ("{segment}", "Segments recorded (identical retries not counted)"),
    SESSIONS_CREATED: ("{session}", "Upload sessions created"),
    SESSIONS_COMPLETED: ("{session}", "Documents committed"),
    SESSIONS_CANCELLED: ("{session}", "Upload sessions deleted by their creator"),
    SESSIONS_PURGED: ("{session}", "Expired sessions removed by the purge"),
    WRITE_RETRIES: ("{retry}", "ETag-conditional writes that lost a race and were retried"),
    UNAVAILABLE: ("{response}", "503 responses, by cause"),
}

#: Loggers that log every HTTP call's headers at INFO; kept at WARNING in the app.
QUIET_LOGGERS = ("azure", "azure.core.pipeline.policies.http_logging_policy", "azure.identity")


@dataclass
class RequestContext:
    """What is known about the request in flight (filled in as it is learnt)."""

    request_id: str
    client_request_id: str
    function: str
    tenant: str | None = None
    document: str | None = None
    span: Any = None
    extra: dict[str, str] = field(default_factory=dict)


_current: ContextVar[RequestContext | None] = ContextVar("uploadsession_request", default=None)
_lock = threading.Lock()
_configured = False
_tracer: Any = None
_counters: dict[str, Any] = {}


# -- logging -----------------------------------------------------------------------------


def current() -> RequestContext | None:
    return _current.get()


def annotate(*, tenant: str | None = None, document: str | None = None) -> None:
    """Record the tenant / document key of the request in flight (on its span too)."""
    context = _current.get()
    if context is None:
        return
    if tenant is not None:
        context.tenant = tenant
        _set_span_attribute(context, "tenant_id", tenant)
    if document is not None:
        context.document = document
        _set_span_attribute(context, "document_key", document)


def _set_span_attribute(context: RequestContext, name: str, value: str | int) -> None:
    if context.span is not None:
        context.span.set_attribute(name, value)


class RequestIdFilter(logging.Filter):
    """Gives every record ``request_id`` / ``client_request_id`` ("-" outside a request),
    so a handler's format may name them (attach it to the handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _current.get()
        if not hasattr(record, "request_id"):
            record.request_id = context.request_id if context else "-"
        if not hasattr(record, "client_request_id"):
            record.client_request_id = context.client_request_id if context else "-"
        return True


def _install_record_factory() -> None:
    """Stamp the request's ids on every record created during a request, whatever the
    logger or handler (the Functions worker's, Azure Monitor's, the console's)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_uploadsession", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        context = _current.get()
        if context is not None:
            record.request_id = context.request_id
            record.client_request_id = context.client_request_id
        return record

    factory._uploadsession = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def quiet_azure_sdk_logging() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


# -- set-up ------------------------------------------------------------------------------


def configure(env: Mapping[str, str] | None = None) -> None:
    """Set telemetry up once per process (idempotent, thread-safe, never raises)."""
    global _configured
    if _configured:
        return
    with _lock:
        if _configured:
            return
        _configured = True
        env = os.environ if env is None else env
        quiet_azure_sdk_logging()
        _install_record_factory()
        try:
            if env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip():
                _configure_azure_monitor(env)
            elif (
                _truthy(env.get("UPLOADSESSION_OTEL_CONSOLE"))
                or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
            ):
                _configure_local(env)
        except Exception:  # telemetry must never take the service down
            log.exception("telemetry set-up failed; continuing without an exporter")
        _bind_instruments()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _configure_azure_monitor(env: Mapping[str, str]) -> None:
    from azure.monitor.opentelemetry import configure_azure_monitor

    options: dict[str, Any] = {
        "connection_string": env["APPLICATIONINSIGHTS_CONNECTION_STRING"].strip(),
        # Flask/Django/FastAPI/psycopg2 are not used; requests/urllib3 would repeat the
        # Azure SDK's own HTTP spans.
        "instrumentation_options": {
            name: {"enabled": False}
            for name in ("django", "fastapi", "flask", "psycopg2", "urllib", "urllib3")
        },
    }
    client_id = (
        env.get("UPLOADSESSION_STORAGE__clientId", "").strip()
        or env.get("AZURE_CLIENT_ID", "").strip()
    )
    if client_id:
        from azure.identity import ManagedIdentityCredential

        options["credential"] = ManagedIdentityCredential(client_id=client_id)
    configure_azure_monitor(**options)
    log.info("telemetry: exporting to Azure Monitor (identity-based: %s)", bool(client_id))


def _configure_local(env: Mapping[str, str]) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=_resource())
    if _truthy(env.get("UPLOADSESSION_OTEL_CONSOLE")):
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter,
            )
        except ImportError:
            log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-exporter-otlp is not")
        else:
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    use_providers(tracer_provider=provider)


def _resource() -> Any:
    from opentelemetry.sdk.resources import Resource

    return Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "uploadsession")})


def use_providers(
    *, tracer_provider: Any = None, logger_provider: Any = None, meter_provider: Any = None
) -> None:
    """Install SDK providers as the global ones and trace the Azure SDK into them (local
    exporters and tests; ``configure_azure_monitor`` does the same for Azure)."""
    from opentelemetry import metrics, trace

    if tracer_provider is not None:
        trace.set_tracer_provider(tracer_provider)
    if meter_provider is not None:
        metrics.set_meter_provider(meter_provider)
    if logger_provider is not None:
        from opentelemetry._logs import set_logger_provider
        from opentelemetry.instrumentation.logging.handler import LoggingHandler

        set_logger_provider(logger_provider)
        logging.getLogger().addHandler(LoggingHandler(logger_provider=logger_provider))
    enable_azure_sdk_tracing()


def enable_azure_sdk_tracing() -> None:
    """Let azure-core open a span per Table/Blob call (azure-core-tracing-opentelemetry)."""
    from azure.core.settings import settings

    try:
        settings.tracing_implementation = "opentelemetry"
    except ValueError:
        log.warning("azure-core-tracing-opentelemetry is not installed: no storage spans")


def _bind_instruments() -> None:
    global _tracer
    from opentelemetry import metrics, trace

    _tracer = trace.get_tracer("uploadsession")
    meter = metrics.get_meter("uploadsession")
    for name, (unit, description) in _COUNTERS.items():
        _counters[name] = meter.create_counter(name, unit=unit, description=description)


# -- use ---------------------------------------------------------------------------------


def count(name: str, value: int = 1, **attributes: str) -> None:
    """Add to one of the counters above (a no-op before :func:`configure`)."""
    counter = _counters.get(name)
    if counter is not None and value:
        counter.add(value, attributes or None)


@contextlib.contextmanager
def request_scope(
    function: str, request_id: str, client_request_id: str
) -> Iterator[RequestContext]:
    """The server span of one HTTP invocation, with the request's ids as its attributes and
    on every log record made inside it."""
    context = RequestContext(request_id, client_request_id, function)
    token = _current.set(context)
    try:
        if _tracer is None:
            yield context
            return
        from opentelemetry.trace import SpanKind

        with _tracer.start_as_current_span(
            function, kind=SpanKind.SERVER, record_exception=False, set_status_on_exception=False
        ) as span:
            context.span = span
            span.set_attribute("request_id", request_id)
            span.set_attribute("client_request_id", client_request_id)
            span.set_attribute("faas.name", function)
            yield context
    finally:
        _current.reset(token)


def finish(context: RequestContext, status: int, outcome: str) -> None:
    """Record the response on the request's span (status; an error status for 5xx)."""
    span = context.span
    if span is None:
        return
    span.set_attribute("http.response.status_code", status)
    span.set_attribute("outcome", outcome)
    if status >= 500:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, outcome))


def unavailable_cause(error: BaseException) -> str:
    """Why a 503 happened, from the exception chain (a label with no detail in it)."""
    from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError

    cause = error.__cause__
    if cause is None:
        return "busy"  # the ETag race retries were exhausted
    if isinstance(cause, ClientAuthenticationError):
        return "storage_credentials"
    if isinstance(cause, HttpResponseError):
        return "storage_throttled" if cause.status_code in (429, 503) else "storage_error"
    if isinstance(cause, AzureError):
        return "storage_unreachable"
    return type(cause).__name__
