"""`process_notifications`: reads what changed for each list named in a queue message."""

from __future__ import annotations

import logging

import azure.functions as func

from .core.resources import NOTIFICATIONS_QUEUE

log = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("process_notifications")
@bp.queue_trigger(arg_name="message", queue_name=NOTIFICATIONS_QUEUE, connection="AzureWebJobsStorage")
def process_notifications(message: func.QueueMessage, context: func.Context) -> None:
    from .core.services import get_services

    # Raising hands the message back to the host: retried, then `notifications-poison`.
    report = get_services().worker.process_message(message.get_body().decode("utf-8"))
    # One line per run, naming the intake request's trace: the README's KQL joins on it.
    log.info(
        "process_notifications: message %s (id %s, dequeue count %s, invocation %s, notification "
        "traceparent %s): %d list(s) synced, %d change(s) written, %d resync(s), "
        "%d covered by an earlier read, %d carried by the notification (%d item(s) refused), "
        "%d unknown subscription(s), %d deferred for %ds%s",
        message.id,
        report.message_id or "-",
        message.dequeue_count,
        context.invocation_id,
        report.traceparent or "-",
        report.lists_synced,
        report.changes_written,
        report.resyncs,
        report.covered,
        report.carried,
        report.refused_items,
        len(report.unknown_subscriptions),
        len(report.deferred),
        report.deferred_seconds,
        f"; poisoned: {report.poisoned_because}" if report.poisoned_because else "",
    )
