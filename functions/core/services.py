"""The object graph of one process, built once from the settings on first use."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache, partial

from .alerts import Alerts, AlertSink, AlertStore
from .auth import POWER_AUTOMATE_RESOURCE, GuestTokens, guest_tokens_for, token_provider_for
from .change_log import ChangeLog
from .checkpoints import CheckpointStore
from .clock import utc_now
from .failures import FailureLog
from .gaps import GapWatch
from .intake import CachedSubscriptionLookup
from .poison import PoisonQueue
from .queue_writer import QueueWriter
from .read_leases import ReadCoordinator, ReadLeaseStore
from .resources import NOTIFICATIONS_QUEUE
from .settings import Settings, get_settings
from .sinks.cursor import CursorStore
from .sinks.delivery import DeliveryPolicy, SinkDelivery
from .sinks.rate import RateGate
from .sinks.record import WEBHOOK, InvalidSink, check_secret, check_url
from .sinks.sealing import KeyRing
from .sinks.sender import SinkSender
from .sinks.service import SinkService
from .sinks.store import SinkStore
from .sources.registry import Built, Sources, build_sources
from .sources.sharepoint import SharePoint
from .storage import DEFAULT_TIMEOUTS, FAST_TIMEOUTS, Storage, StorageTimeouts
from .subscriptions import Renewals, SubscriptionService, SubscriptionStore, SubscriptionViews
from .sweep import ChangeSweep
from .tenancy import ActingTenant
from .tenants.directory import Tenancy
from .tenants.service import ConsentSettings, TenantService
from .tenants.store import TenantStore
from .worker import Worker

log = logging.getLogger(__name__)


# How many subscription records the warmup reads ahead into the intake's lookups, a page at a time.
WARM_RECORDS = 5_000
WARM_PAGE = 1_000


@dataclass(frozen=True)
class Services:
    settings: Settings
    storage: Storage
    # The intake's own clients: short timeouts, no SDK retries (its answer is due within seconds).
    intake_storage: Storage
    sources: Sources
    # SharePoint's own: the lists of a site, to pick a subscription from.
    sharepoint: SharePoint
    # Per source: the intake's subscription lookups.
    subscription_lookups: dict[str, CachedSubscriptionLookup]
    intake_queue: QueueWriter
    change_log: ChangeLog
    subscriptions: SubscriptionService
    renewals: Renewals
    subscription_views: SubscriptionViews
    worker: Worker
    sweep: ChangeSweep
    poison: PoisonQueue
    delivery: SinkDelivery
    sinks: SinkService
    alerts: Alerts
    tenancy: Tenancy
    tenants: TenantService

    def warm(self) -> None:
        """Make ready what the intake's first notification would otherwise make on its clock:
        the queue's connections, the subscriptions it looks up (the first WARM_RECORDS), and what
        each source checks its notifications with."""
        putter = self.intake_storage.putter(NOTIFICATIONS_QUEUE)
        if putter is not None:
            putter.warm()
        after: tuple[str, str] | None = None
        for _ in range(WARM_RECORDS // WARM_PAGE):
            records, more = self.subscriptions.store.page(after=after, top=WARM_PAGE)
            for lookup in self.subscription_lookups.values():
                lookup.preload(records)
            if not more or not records:
                break
            after = (records[-1].source, records[-1].id)
        for source in self.sources:
            source.warm()

    @property
    def renewal_window(self) -> timedelta:
        return timedelta(days=self.settings.renewal_window_days)

    @classmethod
    def from_settings(cls, settings: Settings, *, timeouts: StorageTimeouts = DEFAULT_TIMEOUTS) -> Services:
        storage = Storage(settings.storage, timeouts)
        guests = guest_tokens_for(settings)
        return cls.assemble(
            settings,
            storage=storage,
            intake_storage=Storage(settings.storage, FAST_TIMEOUTS),
            sources=partial(build_sources, settings, guests=guests),
            sender=SinkSender(
                allow_loopback_http=settings.allow_loopback_http_sinks,
                rate_gate=RateGate(storage),
                flow_tokens=token_provider_for(settings, POWER_AUTOMATE_RESOURCE),
            ),
            guests=guests,
        )

    @classmethod
    def assemble(
        cls,
        settings: Settings,
        *,
        storage: Storage,
        intake_storage: Storage,
        sources: Callable[[Storage, CheckpointStore, ChangeLog], Built],
        sender: SinkSender,
        guests: GuestTokens | None = None,
    ) -> Services:
        """The object graph on the given storage, sources and connector sender (the fast tests
        give in-memory ones); `guests`, the multi-tenant app's tokens (TENANCY=multi)."""
        checkpoints = CheckpointStore(storage)
        read_leases = ReadLeaseStore(storage)
        change_log = ChangeLog(storage)
        queue = QueueWriter(storage)
        poison = PoisonQueue(storage, FailureLog(storage))
        built = sources(storage, checkpoints, change_log)
        registry = built.sources
        alerts = Alerts(AlertStore(storage), sender, alert_sink(settings))
        tenancy = Tenancy(
            ActingTenant(settings.sharepoint_tenant_id or "", settings.sharepoint_tenant_url, home=True),
            TenantStore(storage) if settings.multi_tenant else None,
            guests,
            alerts,
        )
        store = SubscriptionStore(storage, registry.names)
        subscriptions = SubscriptionService(
            store=store, checkpoints=checkpoints, read_leases=read_leases, sources=registry, tenancy=tenancy
        )
        renewals = Renewals(subscriptions, checkpoints, alerts, request_sync=queue.request_sync)
        views = SubscriptionViews(
            store,
            checkpoints,
            registry,
            silent_after=timedelta(hours=settings.silent_after_hours),
            home_tenant=settings.sharepoint_tenant_id,
        )
        keys = KeyRing.parse(settings.sink_sealing_keys) if settings.sink_sealing_keys else None
        delivery = SinkDelivery(
            sinks=SinkStore(storage, keys),
            cursors=CursorStore(storage),
            change_log=change_log,
            queue=queue,
            sender=sender,
            policy=DeliveryPolicy(
                base_delay=float(settings.sink_retry_base_seconds),
                disable_after=timedelta(hours=settings.sink_disable_after_hours),
            ),
            writing_behind=frozenset(source.name for source in registry if source.writes_behind),
            alerts=alerts,
            ignored_in=subscriptions.ignored_in,
        )
        reads = ReadCoordinator(read_leases, clock=utc_now)
        gaps = GapWatch(
            checkpoints,
            registry,
            state_of=views.notification_state,
            note_gap=views.note_gap,
            alerts=alerts,
        )
        worker = Worker(
            subscriptions=store,
            checkpoints=checkpoints,
            sources=registry,
            lifecycle=renewals.handle_lifecycle,
            queue=queue,
            publish=delivery.signal,
            poison=poison,
            failures=FailureLog(storage),
            reads=reads,
            alerts=alerts,
            alert_after_failed_reads=settings.alert_after_failed_reads,
            state_of=views.state,
            gaps=gaps,
            tenancy=tenancy,
        )
        intake_store = SubscriptionStore(intake_storage, registry.names)
        sinks = SinkService(
            sinks=delivery.sinks,
            subscriptions=subscriptions,
            delivery=delivery,
            allow_loopback_http=settings.allow_loopback_http_sinks,
        )
        return cls(
            settings=settings,
            storage=storage,
            intake_storage=intake_storage,
            sources=registry,
            sharepoint=built.sharepoint,
            subscription_lookups={
                name: CachedSubscriptionLookup(intake_store, source=name) for name in registry.names
            },
            intake_queue=QueueWriter(intake_storage),
            change_log=change_log,
            subscriptions=subscriptions,
            renewals=renewals,
            subscription_views=views,
            worker=worker,
            sweep=ChangeSweep(checkpoints, registry, reads, delivery.signal, gaps, tenancy),
            poison=poison,
            delivery=delivery,
            sinks=sinks,
            alerts=alerts,
            tenancy=tenancy,
            tenants=TenantService(
                tenancy=tenancy,
                consent=consent_settings(settings),
                keys=keys,
                subscriptions=subscriptions,
                sinks=sinks,
                change_log=change_log,
                storage=storage,
            ),
        )


def consent_settings(settings: Settings) -> ConsentSettings | None:
    if not settings.multi_tenant or settings.multi_tenant_app_id is None:
        return None
    return ConsentSettings(
        settings.multi_tenant_app_id, settings.consent_redirect_url, settings.login_authority
    )


def alert_sink(settings: Settings) -> AlertSink:
    """The deployment's alert sink, if one is set and the egress policy lets us send to it (a URL
    it refuses is logged, and alerts stay off: they must never stop the service)."""
    if settings.alert_sink_url is None:
        return AlertSink.nowhere()
    try:
        url, _ = check_url(
            settings.alert_sink_type,
            settings.alert_sink_url,
            allow_loopback_http=settings.allow_loopback_http_sinks,
        )
        secret = (
            check_secret(settings.alert_sink_secret or "") if settings.alert_sink_type == WEBHOOK else None
        )
    except InvalidSink as refused:
        log.error("the alert sink is refused, so no health alert is sent: %s", refused)
        return AlertSink.nowhere()
    return AlertSink(settings.alert_sink_type, url, secret)


@lru_cache(maxsize=1)
def get_services() -> Services:
    return Services.from_settings(get_settings())
