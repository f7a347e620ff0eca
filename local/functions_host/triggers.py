"""Queue and timer triggers with the real host's semantics (host.json `extensions.queues`,
poison queues, six-field NCRONTAB schedules, `runOnStartup`, `past_due`)."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.functions import meta
from azure.functions.queue import QueueMessageInConverter
from azure.functions.timer import TimerRequestConverter

from .config import FunctionSpec, HostConfig, resolve_setting_expression
from .invocation import invoke

log = logging.getLogger("Host.Triggers")

# While a message is being processed it stays invisible; the real host renews this lease. The
# fault tests shorten it (LOCAL_HOST_PROCESSING_LEASE_SECONDS) to see a killed host's messages
# come back in seconds rather than ten minutes.
PROCESSING_LEASE_SECONDS = 600
PROCESSING_LEASE_SETTING = "LOCAL_HOST_PROCESSING_LEASE_SECONDS"
MIN_POLLING_INTERVAL = 0.1
PAST_DUE_TOLERANCE = timedelta(seconds=1)


class QueueListener:
    """Polls one queue for one function, like the host's queue listener."""

    def __init__(self, function: FunctionSpec, config: HostConfig, stop: threading.Event) -> None:
        from azure.storage.queue import (
            BinaryBase64DecodePolicy,
            BinaryBase64EncodePolicy,
            LinearRetry,
            QueueClient,
        )

        self.function = function
        self.options = config.queue_options
        self.processing_lease = int(config.environ.get(PROCESSING_LEASE_SETTING, PROCESSING_LEASE_SECONDS))
        self.stop = stop
        queue_name = resolve_setting_expression(function.trigger["queueName"], config.environ)
        setting = function.trigger.get("connection") or "AzureWebJobsStorage"
        connection = config.environ.get(setting)
        if not connection:
            raise KeyError(f"queue trigger {function.name}: app setting {setting} is not set")

        def client(name: str) -> QueueClient:
            return QueueClient.from_connection_string(
                connection,
                name,
                message_encode_policy=BinaryBase64EncodePolicy(),
                message_decode_policy=BinaryBase64DecodePolicy(),
                retry_policy=LinearRetry(backoff=1, random_jitter_range=1, retry_total=2),
            )

        self.queue = client(queue_name)
        self.poison = client(f"{queue_name}-poison")
        self.executor = ThreadPoolExecutor(self.options.batch_size, thread_name_prefix=function.name)

    def run(self) -> None:
        from azure.core.exceptions import AzureError

        for client in (self.queue, self.poison):
            # It exists already, or storage is down: polling below reports that.
            with contextlib.suppress(AzureError):
                client.create_queue()
        in_flight: set[Future] = set()
        delay = MIN_POLLING_INTERVAL
        while not self.stop.is_set():
            in_flight = {f for f in in_flight if not f.done()}
            if len(in_flight) > self.options.new_batch_threshold:
                wait(in_flight, timeout=0.5, return_when=FIRST_COMPLETED)
                continue
            try:
                messages = list(
                    self.queue.receive_messages(
                        max_messages=self.options.batch_size,
                        messages_per_page=min(32, self.options.batch_size),
                        visibility_timeout=self.processing_lease,
                    )
                )
            except AzureError as error:
                log.warning("polling queue %s failed: %s", self.queue.queue_name, type(error).__name__)
                messages = []
            if not messages:
                self.stop.wait(delay)
                delay = min(delay * 2, self.options.max_polling_interval)
                continue
            delay = MIN_POLLING_INTERVAL
            in_flight.update(self.executor.submit(self._process, message) for message in messages)
        self.executor.shutdown(wait=True, cancel_futures=True)

    def _process(self, message) -> None:
        if message.dequeue_count > self.options.max_dequeue_count:
            self._move_to_poison(message)
            return
        argument = queue_trigger_argument(
            message.content,
            id=message.id,
            dequeue_count=message.dequeue_count,
            pop_receipt=message.pop_receipt,
            inserted_on=message.inserted_on,
            expires_on=message.expires_on,
            next_visible_on=message.next_visible_on,
        )
        from azure.core.exceptions import AzureError

        try:
            invoke(self.function, argument)
        except Exception:
            succeeded = False
        else:
            succeeded = True
        try:
            if succeeded:
                self.queue.delete_message(message)
            elif message.dequeue_count >= self.options.max_dequeue_count:
                self._move_to_poison(message)
            else:
                self.queue.update_message(message, visibility_timeout=int(self.options.visibility_timeout))
        except AzureError as error:
            # As the real host: the message comes back when its processing lease ends, and runs again.
            log.warning(
                "queue %s: could not %s message %s (%s); it is visible again in %d s",
                self.queue.queue_name,
                "delete" if succeeded else "release",
                message.id,
                type(error).__name__,
                self.processing_lease,
            )

    def _move_to_poison(self, message) -> None:
        log.warning(
            "Message %s has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
            message.id,
            self.options.max_dequeue_count,
            self.poison.queue_name,
        )
        self.poison.send_message(message.content)
        self.queue.delete_message(message)


class TimerSchedule:
    """Fires one timer function on its NCRONTAB schedule (`{second} {minute} {hour} ...`)."""

    def __init__(self, function: FunctionSpec, config: HostConfig, stop: threading.Event) -> None:
        self.function = function
        self.stop = stop
        self.expression = resolve_setting_expression(function.trigger["schedule"], config.environ)
        self.last: datetime | None = None

    def next_after(self, moment: datetime) -> datetime:
        from croniter import croniter

        return croniter(self.expression, moment, second_at_beginning=True).get_next(datetime)

    def run(self) -> None:
        now = datetime.now(UTC)
        due = self.next_after(now)
        if self.function.trigger.get("runOnStartup"):
            self.fire(past_due=False, next_due=due)
        while not self.stop.wait(max(0.0, (due - datetime.now(UTC)).total_seconds())):
            now = datetime.now(UTC)
            following = self.next_after(now)
            self.fire(past_due=now - due > PAST_DUE_TOLERANCE, next_due=following)
            due = following

    def fire(self, *, past_due: bool, next_due: datetime) -> None:
        now = datetime.now(UTC)
        status = {
            "Last": (self.last or now).isoformat(),
            "Next": next_due.isoformat(),
            "LastUpdated": now.isoformat(),
        }
        self.last = now
        # Logged by invoke; timers are not retried.
        with contextlib.suppress(Exception):
            invoke(self.function, timer_trigger_argument(past_due=past_due, schedule_status=status))


def queue_trigger_argument(
    content: bytes,
    *,
    id: str,
    dequeue_count: int,
    pop_receipt: str | None = None,
    inserted_on: datetime | None = None,
    expires_on: datetime | None = None,
    next_visible_on: datetime | None = None,
) -> Any:
    """The `func.QueueMessage` the Python worker builds: the host's data and trigger metadata,
    decoded by the converter that `azure.functions` registers for `queueTrigger`."""
    metadata = {"Id": meta.Datum(id, "string"), "DequeueCount": meta.Datum(str(dequeue_count), "json")}
    for name, value in (
        ("PopReceipt", pop_receipt),
        ("InsertionTime", inserted_on),
        ("ExpirationTime", expires_on),
        ("NextVisibleTime", next_visible_on),
    ):
        if value is not None:
            text = value.isoformat() if isinstance(value, datetime) else value
            metadata[name] = meta.Datum(text, "string")
    return QueueMessageInConverter.decode(meta.Datum(content, "bytes"), trigger_metadata=metadata)


def timer_trigger_argument(*, past_due: bool, schedule_status: dict[str, str] | None = None) -> Any:
    """The `func.TimerRequest` the Python worker builds from the host's JSON payload."""
    payload = {
        "Schedule": {"AdjustForDST": True},
        "ScheduleStatus": schedule_status or {},
        "IsPastDue": past_due,
    }
    return TimerRequestConverter.decode(meta.Datum(json.dumps(payload), "json"), trigger_metadata={})


def run_by_admin(function: FunctionSpec, payload: str) -> None:
    """What `POST /admin/functions/{name}` runs: the trigger argument built from `input`."""
    if function.trigger_type == "queueTrigger":
        argument = queue_trigger_argument(payload.encode(), id=str(uuid.uuid4()), dequeue_count=1)
    else:
        argument = timer_trigger_argument(past_due=False)
    # Logged by invoke.
    with contextlib.suppress(Exception):
        invoke(function, argument)
