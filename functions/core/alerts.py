"""Health alerts: one card or event to the deployment's alert sink (`ALERT_SINK_URL`) when a
subscription turns silent, is recreated after the source forgot it, fails to renew, fails reads
`ALERT_AFTER_FAILED_READS` times in a row, or loses a sink to disabling; and one when it recovers.

The `alerts` table keeps, per subscription and condition, whether it is raised and when an alert
was last sent, under its ETag: of several instances noticing the same thing, one sends. At most
one alert per subscription and condition an hour; a recovery is sent only for an alert that was.
The alert sink goes through the same egress and signing as every connector; an alert that could
not be sent stays `pending` and the connectors' catch-up timer sends it again.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from .clock import utc_now
from .models import AlertView, dump, format_utc
from .resources import ALERTS_TABLE
from .sinks.record import Sink
from .sinks.sender import SinkSender
from .storage import TableRepository, outages_reported

log = logging.getLogger(__name__)

MIN_INTERVAL = timedelta(hours=1)


class Condition(StrEnum):
    SILENT = "silent"
    RECREATED = "recreated"
    RENEWAL_FAILED = "renewalFailed"
    READS_FAILING = "readsFailing"
    SINK_DISABLED = "sinkDisabled"
    # Keyed by the tenant's id rather than a subscription's.
    TENANT_REVOKED = "tenantRevoked"


WHAT = {
    Condition.SILENT: ("is silent: changes come with no notification", "hears notifications again"),
    Condition.RECREATED: ("was recreated: the source had forgotten it", ""),
    Condition.RENEWAL_FAILED: ("failed to renew", "renewed again"),
    Condition.READS_FAILING: ("fails to read its changes", "reads its changes again"),
    Condition.SINK_DISABLED: ("lost a connector: it was disabled", "has its connector back"),
    Condition.TENANT_REVOKED: (
        "refused this app (consent revoked): its reads and renewals stopped",
        "consented again: its reads and renewals go on",
    ),
}


@dataclass(frozen=True)
class AlertState:
    raised: bool
    sent_at: datetime | None
    # The raise was sent (not held back by the hourly limit): its recovery is sent too.
    announced: bool
    pending: str | None  # the body of an alert not yet delivered
    etag: str | None


class AlertStore(TableRepository):
    table_name = ALERTS_TABLE

    def read(self, subscription_id: str, condition: Condition) -> AlertState:
        with outages_reported(f"reading the {condition} alert of {subscription_id}"):
            try:
                entity = self._table.get_entity(subscription_id, condition.value)
            except ResourceNotFoundError:
                return AlertState(False, None, False, None, None)
        return _state(entity)

    def write(self, subscription_id: str, condition: Condition, state: AlertState) -> bool:
        """False when another writer came first."""
        entity: dict[str, Any] = {
            "PartitionKey": subscription_id,
            "RowKey": condition.value,
            "raised": state.raised,
            "announced": state.announced,
        }
        if state.sent_at is not None:
            entity["sentAt"] = state.sent_at
        if state.pending is not None:
            entity["pending"] = state.pending
        with outages_reported(f"writing the {condition} alert of {subscription_id}"):
            try:
                if state.etag is None:
                    self._table.create_entity(entity)
                else:
                    self._replace_if_unchanged(entity, state.etag)
            except (ResourceExistsError, ResourceModifiedError):
                return False
        return True

    def of(self, subscription_id: str) -> list[tuple[Condition, AlertState]]:
        """Every condition this subscription has had an alert for (one partition)."""
        with outages_reported(f"reading the alerts of {subscription_id}"):
            entities = list(
                self._table.query_entities("PartitionKey eq @pk", parameters={"pk": subscription_id})
            )
        return [(Condition(entity["RowKey"]), _state(entity)) for entity in entities]

    def pending(self) -> list[tuple[str, Condition, AlertState]]:
        with outages_reported("reading alerts not yet delivered"):
            entities = list(self._table.query_entities("pending ne ''"))
        return [
            (entity["PartitionKey"], Condition(entity["RowKey"]), _state(entity))
            for entity in entities
            if entity.get("pending")
        ]


def _state(entity: Any) -> AlertState:
    return AlertState(
        bool(entity.get("raised")),
        entity.get("sentAt"),
        bool(entity.get("announced")),
        entity.get("pending"),
        str(entity.metadata["etag"]),
    )


@dataclass(frozen=True)
class AlertSink:
    """Where the deployment's alerts go: a Teams workflow or a signed webhook; or, with no
    ALERT_SINK_URL, nowhere (nothing is recorded or sent, and no caller has to ask)."""

    type: str  # teams-workflow, webhook, or NOWHERE
    url: str
    secret: str | None = None

    @classmethod
    def nowhere(cls) -> AlertSink:
        return cls(NOWHERE, "")

    @property
    def sends(self) -> bool:
        return self.type != NOWHERE

    def as_sink(self) -> Sink:
        return Sink("alerts", "-", "-", self.type, self.url, (), utc_now(), secret=self.secret)


NOWHERE = "nowhere"


@dataclass(frozen=True)
class Alerts:
    store: AlertStore
    sender: SinkSender
    sink: AlertSink
    clock: Callable[[], datetime] = utc_now

    def raise_(self, subscription_id: str, condition: Condition, detail: str) -> None:
        """Raised, and said so unless an alert of this condition went out within the hour (a
        recreation is an event, said each time, at most hourly)."""
        if not self.sink.sends:
            return
        with _best_effort(subscription_id, condition):
            state = self.store.read(subscription_id, condition)
            if state.raised:
                return
            now = self.clock()
            said = state.sent_at is None or now - state.sent_at >= MIN_INTERVAL
            body = _body(subscription_id, condition, True, detail, now) if said else None
            stays_raised = condition is not Condition.RECREATED
            new = AlertState(
                stays_raised, now if said else state.sent_at, said and stays_raised, body, state.etag
            )
            if self.store.write(subscription_id, condition, new) and body is not None:
                self._deliver(subscription_id, condition)

    def recover(self, subscription_id: str, condition: Condition, detail: str = "") -> None:
        """No longer raised; said so if the raise was."""
        if not self.sink.sends:
            return
        with _best_effort(subscription_id, condition):
            state = self.store.read(subscription_id, condition)
            if not state.raised:
                return
            now = self.clock()
            body = _body(subscription_id, condition, False, detail, now) if state.announced else None
            new = AlertState(False, now if body else state.sent_at, False, body, state.etag)
            if self.store.write(subscription_id, condition, new) and body is not None:
                self._deliver(subscription_id, condition)

    def views(self, subscription_id: str) -> list[dict[str, Any]]:
        return [dump(view) for view in self.of(subscription_id)]

    def of(self, subscription_id: str) -> list[AlertView]:
        """What `GET /api/subscriptions/{id}/alerts` shows: each condition, whether it is raised,
        and when an alert was last sent (and whether one still waits to be delivered)."""
        return [
            AlertView(
                condition=condition.value,
                raised=state.raised,
                last_sent_date_time=format_utc(state.sent_at) if state.sent_at else None,
                undelivered=state.pending is not None,
            )
            for condition, state in self.store.of(subscription_id)
        ]

    def deliver_pending(self) -> int:
        """Send every alert that could not be sent before; returns how many went."""
        if not self.sink.sends:
            return 0
        return sum(
            self._deliver(subscription_id, condition)
            for subscription_id, condition, _ in self.store.pending()
        )

    def _deliver(self, subscription_id: str, condition: Condition) -> bool:
        state = self.store.read(subscription_id, condition)
        if state.pending is None:
            return False
        event = json.loads(state.pending)
        outcome = self.sender.send_alert(self.sink.as_sink(), event, self.clock())
        if not outcome.ok:
            log.warning(
                "alert %s of subscription %s not delivered: %s; sent again by the catch-up timer",
                condition, subscription_id, outcome.detail,
            )  # fmt: skip
            return False
        self.store.write(
            subscription_id,
            condition,
            AlertState(state.raised, state.sent_at, state.announced, None, state.etag),
        )
        return True


@contextmanager
def _best_effort(subscription_id: str, condition: Condition) -> Iterator[None]:
    """An alert must never fail the work that noticed the condition."""
    try:
        yield
    except Exception as error:
        log.warning("alert %s of subscription %s not recorded: %s", condition, subscription_id, error)


def _body(subscription_id: str, condition: Condition, raised: bool, detail: str, at: datetime) -> str:
    raised_text, recovered_text = WHAT[condition]
    subject = (
        ("Tenant", "tenantId")
        if condition is Condition.TENANT_REVOKED
        else ("Subscription", "subscriptionId")
    )
    return json.dumps(
        {
            "type": "m365.alert",
            "id": f"alert_{uuid.uuid4().hex}",
            subject[1]: subscription_id,
            "condition": condition.value,
            "state": "raised" if raised else "recovered",
            "summary": f"{subject[0]} {subscription_id} {raised_text if raised else recovered_text}",
            "detail": detail[:500],
            "at": at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
    )
