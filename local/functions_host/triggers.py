"""Queue and timer triggers with the real host's semantics (host.json `extensions.queues`,
poison queues, six-field NCRONTAB schedules, `runOnStartup`, `past_due`)."""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta, timezone

from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

from .config import FunctionSpec, HostConfig, resolve_setting_expression
from .invocation import invoke

log = logging.getLogger("Host.Triggers")

# While a message is being processed it stays invisible; the real host renews this lease.
PROCESSING_LEASE_SECONDS = 600
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
        self.stop = stop
        queue_name = resolve_setting_expression(function.trigger["queueName"], config.environ)
        setting = function.trigger.get("connection") or "AzureWebJobsStorage"
        connection = config.environ.get(setting)
        if not connection:
            raise KeyError(f"queue trigger {function.name}: app setting {setting} is not set")
        policies = {
            "message_encode_policy": BinaryBase64EncodePolicy(),
            "message_decode_policy": BinaryBase64DecodePolicy(),
            "retry_policy": LinearRetry(backoff=1, random_jitter_range=0.5, retry_total=2),
        }
        self.queue = QueueClient.from_connection_string(connection, queue_name, **policies)
        self.poison = QueueClient.from_connection_string(connection, f"{queue_name}-poison", **policies)
        self.executor = ThreadPoolExecutor(self.options.batch_size, thread_name_prefix=function.name)

    def run(self) -> None:
        from azure.core.exceptions import AzureError

        for client in (self.queue, self.poison):
            try:
                client.create_queue()
            except AzureError:
                pass  # exists already, or storage is down: polling below reports it
        in_flight: set[Future] = set()
        delay = MIN_POLLING_INTERVAL
        while not self.stop.is_set():
            in_flight = {f for f in in_flight if not f.done()}
            if len(in_flight) > self.options.new_batch_threshold:
                wait(in_flight, timeout=0.5, return_when=FIRST_COMPLETED)
                continue
            try:
                messages = list(self.queue.receive_messages(
                    max_messages=self.options.batch_size,
                    messages_per_page=min(32, self.options.batch_size),
                    visibility_timeout=PROCESSING_LEASE_SECONDS,
                ))
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
        argument = QueueMessage(
            id=message.id,
            body=message.content,
            dequeue_count=message.dequeue_count,
            pop_receipt=message.pop_receipt,
            insertion_time=message.inserted_on,
            expiration_time=message.expires_on,
            time_next_visible=message.next_visible_on,
        )
        try:
            invoke(self.function, argument)
        except Exception:
            if message.dequeue_count >= self.options.max_dequeue_count:
                self._move_to_poison(message)
            else:
                self.queue.update_message(message, visibility_timeout=int(self.options.visibility_timeout))
            return
        self.queue.delete_message(message)

    def _move_to_poison(self, message) -> None:
        log.warning(
            "Message %s has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
            message.id, self.options.max_dequeue_count, self.poison.queue_name,
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
        now = datetime.now(timezone.utc)
        due = self.next_after(now)
        if self.function.trigger.get("runOnStartup"):
            self.fire(past_due=False, next_due=due)
        while not self.stop.wait(max(0.0, (due - datetime.now(timezone.utc)).total_seconds())):
            now = datetime.now(timezone.utc)
            following = self.next_after(now)
            self.fire(past_due=now - due > PAST_DUE_TOLERANCE, next_due=following)
            due = following

    def fire(self, *, past_due: bool, next_due: datetime) -> None:
        now = datetime.now(timezone.utc)
        status = {
            "Last": (self.last or now).isoformat(),
            "Next": next_due.isoformat(),
            "LastUpdated": now.isoformat(),
        }
        self.last = now
        try:
            invoke(self.function, TimerRequest(past_due=past_due, schedule_status=status,
                                               schedule={"AdjustForDST": True}))
        except Exception:
            pass  # logged by invoke; timers are not retried


def run_by_admin(function: FunctionSpec, payload: str) -> None:
    """What `POST /admin/functions/{name}` runs: the trigger argument built from `input`."""
    if function.trigger_type == "queueTrigger":
        argument: object = QueueMessage(id=str(uuid.uuid4()), body=payload.encode(), dequeue_count=1)
    else:
        argument = TimerRequest(past_due=False)
    try:
        invoke(function, argument)
    except Exception:
        pass  # logged by invoke
