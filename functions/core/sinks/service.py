"""The connector lifecycle: add a sink to a subscription, list, test, remove, rotate its secret,
redeliver what it missed."""

from __future__ import annotations

import secrets as random_ids
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from pydantic import Field

from ..models import ChangeKind, WireModel
from ..subscriptions import SubscriptionService
from .delivery import Outcome, SinkDelivery
from .payloads import sample_changes
from .record import ROTATION_OVERLAP, WEBHOOK, InvalidSink, Sink, check_secret, check_url, new_secret
from .store import SinkStore


class SinkNotFound(LookupError):
    pass


class CreateSinkRequest(WireModel):
    type: Literal["teams-workflow", "message-card", "webhook"]
    url: str = Field(min_length=8, max_length=2048)
    change_types: list[ChangeKind] = Field(default_factory=list, alias="changeTypes", max_length=8)
    secret: str | None = Field(default=None, max_length=200)


class RotateSecretRequest(WireModel):
    secret: str | None = Field(default=None, max_length=200)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SinkService:
    sinks: SinkStore
    subscriptions: SubscriptionService
    delivery: SinkDelivery
    allow_loopback_http: bool = False
    clock: Callable[[], datetime] = utc_now

    def create(self, subscription_id: str, request: CreateSinkRequest) -> tuple[Sink, str | None]:
        """The sink, and its signing secret (webhooks only): returned here and never again."""
        record = self.subscriptions.get(subscription_id)
        url = check_url(request.type, request.url, allow_loopback_http=self.allow_loopback_http)
        secret = None
        if request.type == WEBHOOK:
            secret = check_secret(request.secret) if request.secret else new_secret()
        elif request.secret:
            raise InvalidSink("only webhook sinks take a secret")
        sink = Sink(
            id=f"sink_{random_ids.token_hex(8)}",
            scope=record.scope,
            subscription_id=record.id,
            type=request.type,
            url=url,
            change_types=tuple(dict.fromkeys(kind.value for kind in request.change_types)),
            created=self.clock(),
            secret=secret,
        )
        self.sinks.save(sink)
        return sink, secret

    def list(self, subscription_id: str) -> list[Sink]:
        return sorted(
            self.sinks.of_scope(self.subscriptions.get(subscription_id).scope), key=lambda s: s.created
        )

    def get(self, subscription_id: str, sink_id: str) -> Sink:
        sink = self.sinks.get(self.subscriptions.get(subscription_id).scope, sink_id)
        if sink is None:
            raise SinkNotFound(sink_id)
        return sink

    def delete(self, subscription_id: str, sink_id: str) -> None:
        """Nothing is sent to it afterwards: queued batches find no sink and are dropped."""
        self.sinks.delete(self.get(subscription_id, sink_id))

    def test(self, subscription_id: str, sink_id: str) -> Outcome:
        sink = self.get(subscription_id, sink_id)
        record = self.subscriptions.get(subscription_id)
        site_url = record.site_url or None
        return self.delivery.test(sink, sample_changes(record.id, site_url, record.resource, self.clock()))

    def redeliver(self, subscription_id: str, sink_id: str) -> int:
        return self.delivery.redeliver(self.get(subscription_id, sink_id))

    def rotate_secret(
        self, subscription_id: str, sink_id: str, request: RotateSecretRequest
    ) -> tuple[Sink, str]:
        """A new secret; the old one keeps signing beside it for ROTATION_OVERLAP."""
        sink = self.get(subscription_id, sink_id)
        if sink.type != WEBHOOK:
            raise InvalidSink("only webhook sinks have a secret")
        secret = check_secret(request.secret) if request.secret else new_secret()
        rotated = replace(
            sink,
            secret=secret,
            previous_secret=sink.secret,
            previous_secret_until=self.clock() + ROTATION_OVERLAP,
        )
        self.sinks.save(rotated)
        return rotated, secret
