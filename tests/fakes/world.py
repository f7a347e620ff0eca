"""The function app's whole object graph in one process, for the fast tier: the real services,
workers, readers, subscribers and clients, on in-memory storage, SharePoint and Graph, with
connector receivers that answer what a test scripts."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.core.change_log import ChangeLog
from functions.core.checkpoints import CheckpointStore
from functions.core.models import NotificationMessage, QueuedNotification
from functions.core.resources import NOTIFICATIONS_QUEUE
from functions.core.services import Services
from functions.core.settings import Settings
from functions.core.sinks.rate import RateGate
from functions.core.sinks.record import Sink
from functions.core.sinks.sender import Outcome, SinkSender
from functions.core.sources.graph_api import GraphClient
from functions.core.sources.registry import Built, build_sources
from functions.core.sources.sharepoint.client import SharePointClient
from tests.fakes.m365 import NO_WAIT, FakeGraph, FakeSharePoint, StaticToken
from tests.fakes.storage import MemoryStorage

TENANT = "https://contoso.sharepoint.com"
SITE = f"{TENANT}/sites/team"
GRAPH_URL = "https://graph.example"


def settings(**overrides: str) -> Settings:
    key = base64.b64encode(os.urandom(32)).decode()
    return Settings.from_environ(
        {
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "NOTIFICATION_BASE_URL": "https://hooks.example",
            "SHAREPOINT_TENANT_URL": TENANT,
            "GRAPH_BASE_URL": GRAPH_URL,
            "SHAREPOINT_AUTH": "emulator",
            "SINK_SEALING_KEYS": f"k1={key}",
            **overrides,
        }
    )


@dataclass
class Receivers:
    """Stands in for the egress: every post a sink makes lands here and is answered by `answer`."""

    posts: list[tuple[Sink, dict[str, str], bytes]] = field(default_factory=list)
    answer: Callable[[Sink], Outcome] = lambda sink: Outcome(True, 200, "HTTP 200")

    def bodies(self, sink_id: str) -> list[Any]:
        return [json.loads(body) for sink, _, body in self.posts if sink.id == sink_id]


class RecordingSender(SinkSender):
    def __init__(self, receivers: Receivers, rate_gate: RateGate) -> None:
        super().__init__(allow_loopback_http=False, rate_gate=rate_gate)
        self._receivers = receivers

    def _post(self, sink: Sink, body: bytes, headers: dict[str, str]) -> Outcome:
        self._receivers.posts.append((sink, headers, body))
        return self._receivers.answer(sink)


class SteppingClock:
    """Real time, plus the pauses the read coordinator asked for: its waits cost nothing and
    still happen in the order they would."""

    def __init__(self) -> None:
        self.skipped = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.skipped

    def pause(self, seconds: float) -> None:
        self.skipped += timedelta(seconds=seconds)


@dataclass
class World:
    services: Services
    storage: MemoryStorage
    sharepoint: FakeSharePoint
    graph: FakeGraph
    receivers: Receivers
    clock: SteppingClock

    def notification(self, subscription_id: str, source: str = "sharepoint", **fields: Any) -> str:
        """The queue message the intake would write for one notification."""
        message = NotificationMessage(
            source=source,
            received_at=self.clock.now(),
            notifications=[QueuedNotification(subscription_id=subscription_id, **fields)],
        )
        return message.model_dump_json(by_alias=True, exclude_none=True)

    def queued(self, name: str = NOTIFICATIONS_QUEUE) -> list[str]:
        return self.storage.queue(name).take_all()


def world(**overrides: str) -> World:
    configured = settings(**overrides)
    storage = MemoryStorage()
    sharepoint = FakeSharePoint(TENANT)
    graph = FakeGraph(GRAPH_URL)
    receivers = Receivers()

    def sources(storage: Any, checkpoints: CheckpointStore, change_log: ChangeLog) -> Built:
        return build_sources(
            configured,
            storage,
            checkpoints,
            change_log,
            sharepoint_client=SharePointClient(StaticToken(), session=sharepoint, policy=NO_WAIT),  # type: ignore[arg-type]
            graph_client=GraphClient(StaticToken(), GRAPH_URL, session=graph, policy=NO_WAIT),  # type: ignore[arg-type]
        )

    services = Services.assemble(
        configured,
        storage=storage,
        intake_storage=storage,
        sources=sources,
        sender=RecordingSender(receivers, RateGate(storage)),
    )
    clock = SteppingClock()
    reads = dataclasses.replace(services.worker.reads, clock=clock.now, pause=clock.pause)
    services = dataclasses.replace(
        services,
        worker=dataclasses.replace(services.worker, reads=reads),
        sweep=dataclasses.replace(services.sweep, reads=reads),
    )
    return World(services, storage, sharepoint, graph, receivers, clock)
