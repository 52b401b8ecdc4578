"""The purge timer blueprint: removes expired sessions and their staged bytes.

The schedule comes from the ``PURGE_SCHEDULE`` setting (NCRONTAB, default every 5 minutes),
read when the host indexes the app.
"""

from __future__ import annotations

import logging

import azure.functions as func

from uploadsession.config import purge_schedule
from uploadsession.runtime import get_runtime

log = logging.getLogger(__name__)

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("purge_expired_sessions")
@bp.timer_trigger(schedule=purge_schedule(), arg_name="timer", run_on_startup=False)
def purge_expired_sessions(timer: func.TimerRequest) -> None:
    report = get_runtime().service.purge()
    log.info(
        "purge: removed %d expired sessions (%d with staged bytes)%s",
        report.sessions,
        report.staged_discarded,
        " (past due)" if timer.past_due else "",
    )
