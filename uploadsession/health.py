"""``GET {base}/health``: no authentication, no secrets (DESIGN §2).

200 ``{"status": "healthy"}`` when Table and Blob storage answer a cheap probe within
:data:`PROBE_SECONDS`; otherwise 503 ``{"status": "unhealthy", "reason": "..."}`` with
``Retry-After``. The reason is a fixed sentence (never a connection string, a URL or an
exception text). The probe runs on a small worker pool so a storage call that hangs past its
socket timeouts still leaves the endpoint answering in time.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Protocol, runtime_checkable

import azure.functions as func

from uploadsession.errors import ConfigError, ServiceUnavailable
from uploadsession.http import _respond
from uploadsession.runtime import get_runtime

log = logging.getLogger(__name__)

HEALTH_ROUTE = "health"
#: How long storage may take to answer the probe (each service's socket timeout).
PROBE_SECONDS = 2.0
#: The endpoint's own deadline, over both probes (DNS, pool start-up).
DEADLINE_SECONDS = 4.0
RETRY_AFTER_SECONDS = 5

bp = func.Blueprint()  # type: ignore[no-untyped-call]

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


@runtime_checkable
class SupportsPing(Protocol):
    def ping(self, timeout: float = ...) -> None: ...


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="health")
    return _pool


def _body(status: int, payload: dict[str, str]) -> func.HttpResponse:
    headers = {"Cache-Control": "no-store"}
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return func.HttpResponse(
        json.dumps(payload), status_code=status, headers=headers, mimetype="application/json"
    )


def _unhealthy(reason: str) -> func.HttpResponse:
    log.warning("health: unhealthy: %s", reason)
    return _body(503, {"status": "unhealthy", "reason": reason})


def check() -> str | None:
    """None when healthy, else the reason."""
    try:
        store = get_runtime().service.store
    except ConfigError:
        return "The service is misconfigured"
    if not isinstance(store, SupportsPing):
        return None  # a store without a probe (tests' in-memory store) is always up
    # The request's context (its span, its request-id) goes along to the worker thread.
    future = _executor().submit(contextvars.copy_context().run, store.ping, PROBE_SECONDS)
    try:
        future.result(timeout=DEADLINE_SECONDS)
    except FutureTimeout:
        return "Storage did not answer in time"
    except ServiceUnavailable as exc:
        return exc.message.removesuffix("; try again later")
    except Exception:
        log.exception("health probe failed")
        return "The storage probe failed"
    return None


def _health(req: func.HttpRequest) -> func.HttpResponse:
    reason = check()
    if reason is not None:
        return _unhealthy(reason)
    return _body(200, {"status": "healthy"})


@bp.function_name("health")
@bp.route(route=HEALTH_ROUTE, methods=["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(req, _health, "health")
