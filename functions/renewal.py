"""`renew_subscriptions`: renews every subscription due within RENEWAL_WINDOW_DAYS."""

from __future__ import annotations

import logging

import azure.functions as func

log = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("renew_subscriptions")
@bp.timer_trigger(arg_name="timer", schedule="%RENEWAL_SCHEDULE%", run_on_startup=False)
def renew_subscriptions(timer: func.TimerRequest) -> None:
    from .core.services import get_services

    if timer.past_due:
        log.warning("renewal timer is past due; running now")
    services = get_services()
    report = services.subscriptions.renew_due(services.renewal_window)
    log.info(
        "renewal: %d renewed, %d recreated, %d failed",
        len(report.renewed),
        len(report.recreated),
        len(report.failed),
    )
    if report.failed:
        # Timers are not retried; failing the run makes it visible in the host's metrics.
        raise RuntimeError(f"{len(report.failed)} subscription(s) could not be renewed: {report.failed}")
