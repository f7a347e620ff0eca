"""`renew_subscriptions`: renews every subscription due within RENEWAL_WINDOW_DAYS."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import azure.functions as func

log = logging.getLogger(__name__)
# host.json's functionTimeout is 10 minutes: start no renewal after 8, so the run ends cleanly.
RENEWAL_TIME_BUDGET = timedelta(minutes=8)
bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("renew_subscriptions")
@bp.timer_trigger(arg_name="timer", schedule="%RENEWAL_SCHEDULE%", run_on_startup=False)
def renew_subscriptions(timer: func.TimerRequest) -> None:
    from .core.services import get_services

    if timer.past_due:
        log.warning("renewal timer is past due; running now")
    services = get_services()
    deadline = datetime.now(UTC) + RENEWAL_TIME_BUDGET
    report = services.renewals.renew_due(services.renewal_window, deadline=deadline)
    log.info(
        "renewal: %d renewed, %d recreated, %d failed, %d left for the next run",
        len(report.renewed),
        len(report.recreated),
        len(report.failed),
        len(report.left_for_next_run),
    )
    if report.failed:
        # Timers are not retried; failing the run makes it visible in the host's metrics.
        raise RuntimeError(f"{len(report.failed)} subscription(s) could not be renewed: {report.failed}")
