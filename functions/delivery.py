"""`deliver_changes`: sends a sink what its cursor says it is owed (a Teams workflow, a
MessageCard endpoint or a signed webhook); `catch_up_sinks`: the timer that signals any sink still
owed rows, so that a lost signal only delays."""

from __future__ import annotations

import logging
import uuid

import azure.functions as func

from .core.resources import DELIVERIES_QUEUE

log = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("deliver_changes")
@bp.queue_trigger(arg_name="message", queue_name=DELIVERIES_QUEUE, connection="AzureWebJobsStorage")
def deliver_changes(message: func.QueueMessage) -> None:
    from .core.services import get_services

    # Failed sends back off through the sink's cursor; an exception here is a storage outage or a
    # bug, and the host retries the message. Should it end in the poison queue, nothing is lost:
    # the cursor still says what is owed, and `catch_up_sinks` signals it again.
    # The message id names the cursor's lease holder: the same message, redelivered after a crash,
    # takes its own lease back at once.
    holder = message.id or uuid.uuid4().hex
    report = get_services().delivery.drain(message.get_body().decode("utf-8"), holder=holder)
    # One line per run, as process_notifications writes: the fields a KQL query filters on.
    log.info(
        "deliver_changes: message %s (dequeue count %s): sink %s (%s): %d batch(es) delivered, %s%s%s%s",
        message.id,
        message.dequeue_count,
        report.sink_id,
        report.why,
        report.batches_delivered,
        report.ended,
        f"; attempt {report.attempt} ({report.detail})" if report.attempt else "",
        f"; {report.detail}" if report.detail and not report.attempt else "",
        f"; retry in {report.retry_in_seconds}s" if report.retry_in_seconds is not None else "",
    )


@bp.function_name("catch_up_sinks")
@bp.timer_trigger(arg_name="timer", schedule="%SINK_CATCH_UP_SCHEDULE%", run_on_startup=False)
def catch_up_sinks(timer: func.TimerRequest) -> None:
    from .core.services import get_services

    if timer.past_due:
        log.warning("sink catch-up timer is past due; running now")
    log.info("catch_up_sinks: %d sink(s) owed rows were signalled", get_services().delivery.catch_up())
