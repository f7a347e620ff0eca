"""`deliver_changes`: sends one batch of changes to one sink (a Teams workflow, a MessageCard
endpoint or a signed webhook)."""

from __future__ import annotations

import logging

import azure.functions as func

from .core.storage import DELIVERIES_QUEUE

log = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("deliver_changes")
@bp.queue_trigger(arg_name="message", queue_name=DELIVERIES_QUEUE, connection="AzureWebJobsStorage")
def deliver_changes(message: func.QueueMessage) -> None:
    from .core.services import get_services

    # Failed attempts are re-queued with back-off by the delivery itself; an exception here is a
    # bug or an outage, and the host retries it like any other.
    outcome = get_services().delivery.deliver(message.get_body().decode("utf-8"))
    log.info("deliver_changes: message %s (dequeue count %s): %s", message.id, message.dequeue_count, outcome)
