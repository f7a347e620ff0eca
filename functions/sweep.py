"""`sweep_changes`: reads every list not synced for SWEEP_MAX_AGE_HOURS, notification or not."""

from __future__ import annotations

import logging

import azure.functions as func

log = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("sweep_changes")
@bp.timer_trigger(arg_name="timer", schedule="%SWEEP_SCHEDULE%", run_on_startup=False)
def sweep_changes(timer: func.TimerRequest) -> None:
    from .core.services import get_services

    if timer.past_due:
        log.warning("sweep timer is past due; running now")
    report = get_services().sweep.run()
    log.info(
        "sweep_changes: %d list(s) synced, %d change(s) written, %d resync(s), %d being read by "
        "the worker, %d failed",
        len(report.synced),
        report.changes_written,
        report.resyncs,
        len(report.busy),
        len(report.failed),
    )
    if report.failed:
        # Timers are not retried; failing the run makes it visible in the host's metrics.
        raise RuntimeError(f"{len(report.failed)} list(s) could not be swept: {report.failed}")
