"""Subscriptions: create, read, list, change and delete, for every source. Keeping them alive is
`renewal.py`'s; how they are shown and how they are doing, `views.py`'s."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

from ..checkpoints import CheckpointStore
from ..clock import utc_now
from ..errors import Conflict, NotFound
from ..models import (
    SubscriptionStatus,
    UpdateSubscriptionRequest,
)
from ..read_leases import ReadLeaseStore
from ..sources.base import Draft, InvalidSubscriptionRequest
from ..storage import is_valid_key
from ..tenancy import tenant_scope
from ..tenants.directory import Tenancy, TenantUnavailable
from .record import SubscriptionRecord, hash_client_state, new_client_state
from .store import ListClaimed, SubscriptionStore

if TYPE_CHECKING:
    from ..sources.registry import Sources

log = logging.getLogger(__name__)


class SubscriptionNotFound(NotFound):
    def public_message(self) -> str:
        return f"no subscription {self}"


class SubscriptionConflict(Conflict):
    def __init__(self, message: str, *, existing_id: str | None = None) -> None:
        super().__init__(message)
        self.existing_id = existing_id


@dataclass(frozen=True)
class SubscriptionService:
    store: SubscriptionStore
    checkpoints: CheckpointStore
    read_leases: ReadLeaseStore
    sources: Sources
    # Which tenant a subscription is made in, and whether that tenant is served now.
    tenancy: Tenancy
    clock: Callable[[], datetime] = utc_now

    def parse_request(self, body: bytes) -> Any:
        """A create request, in the model of the source it names; raises pydantic's
        ValidationError, or InvalidSubscriptionRequest for a source this service does not follow."""

        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            document = None  # the model's own parse reports it
        return self.sources.for_request(document).request_model.model_validate_json(body)

    def create(self, request: Any) -> SubscriptionRecord:
        """Subscribe to what a create request (a source's `request_model`) names, in the tenant it
        names (the home tenant's when it names none)."""
        now = self.clock()
        source = self.sources[request.source]
        tenant = self.tenancy.for_id(request.tenant_id)
        with self.tenancy.acting_as(tenant):
            planned = source.draft(request, now)
            draft = replace(
                _draft(source.name, planned, now),
                scope=tenant_scope(None if tenant.home else tenant.id, planned.scope),
                ignore_changes_by=tuple(dict.fromkeys(request.ignore_changes_by)),
            )
            expiration = planned.expiration
            # Claim the scope first: of any number of concurrent creates, exactly one gets past here.
            try:
                self.store.claim_scope(draft.scope, now)
            except ListClaimed as claimed:
                raise SubscriptionConflict(str(claimed), existing_id=claimed.subscription_id) from None
            try:
                record = self._create_claimed(draft, expiration)
            except Exception:
                self.store.release_claim(draft.scope)
                raise
        log.info("created %s subscription %s for %s", record.source, record.id, record.resource)
        return record

    def _create_claimed(self, draft: SubscriptionRecord, expiration: datetime) -> SubscriptionRecord:
        subscriber = self.sources[draft.source].subscriber
        # Read the cursor before subscribing, so no change made in between is missed.
        cursor = subscriber.first_cursor(draft, self.clock())
        record = self.subscribe(draft, expiration, status=SubscriptionStatus.ACTIVE)
        try:
            self.checkpoints.start(
                record.scope,
                address=record.address,
                subscription_id=record.id,
                cursor=cursor,
                at=self.clock(),
                source=record.source,
                fields=record.fields,
            )
            self.store.save(record)
            self.store.bind_claim(record.scope, record.id)
        except Exception as error:
            # Without a record, nothing would ever renew or delete it: take it back at the source.
            log.error("storing new subscription %s failed, deleting it at the source: %s", record.id, error)
            subscriber.delete(record)
            raise
        return record

    def get(self, subscription_id: str) -> SubscriptionRecord:
        record = self.store.get(subscription_id)
        if record is None:
            raise SubscriptionNotFound(subscription_id)
        return record

    def page(
        self, *, after: str = "", top: int, tenant_id: str | None = None
    ) -> tuple[list[SubscriptionRecord], str | None]:
        """A page of subscriptions and the cursor of the next one (None on the last page). The
        cursor is `{source}:{id}` of the last record read; anything else is refused. With
        `tenant_id`, only that tenant's are shown (the home tenant's, filtered here: a page may
        then hold fewer than `top`)."""
        key: tuple[str, str] | None = None
        if after:
            source, _, subscription_id = after.partition(":")
            if source not in self.sources.names or not is_valid_key(subscription_id):
                raise InvalidSubscriptionRequest("after must be the cursor from a nextLink")
            key = (source, subscription_id)
        guest = tenant_id if tenant_id is not None and tenant_id != self.tenancy.home.id else None
        records, more = self.store.page(after=key, top=top, guest=guest)
        next_after = f"{records[-1].source}:{records[-1].id}" if more and records else None
        if tenant_id is not None and guest is None:
            # The home tenant's scopes carry no prefix to filter on in the table service.
            records = [record for record in records if self.tenancy.id_of(record.scope) == tenant_id]
        return records, next_after

    def update(self, subscription_id: str, request: UpdateSubscriptionRequest) -> SubscriptionRecord:
        """What may change in place (who its sinks ignore); nothing is asked of the source."""
        record = self.get(subscription_id)
        names = tuple(dict.fromkeys(request.ignore_changes_by))
        try:
            updated = self.store.save_ignored(record, names)
        except ResourceNotFoundError:
            raise SubscriptionNotFound(subscription_id) from None
        log.info("subscription %s: its sinks ignore changes by %d name(s)", record.id, len(names))
        return updated

    def ignored_in(self, scope: str) -> tuple[str, ...]:
        """Who the sinks of the subscription holding `scope` ignore (nobody, if none holds it)."""
        holder = self.store.holder_of(scope)
        return holder.ignore_changes_by if holder else ()

    def delete(self, subscription_id: str) -> None:
        """Marked first, so that a renewal or a lifecycle event meeting the source's 404 while
        this runs takes it for the delete it is and does not subscribe again."""
        record = self.store.mark_deleting(self.get(subscription_id))
        try:
            self.delete_at_source(record)
        except TenantUnavailable as unavailable:
            log.warning("subscription %s not deleted at its source: %s", record.id, unavailable)
        self.forget(record)
        log.info("deleted %s subscription %s for %s", record.source, record.id, record.resource)

    def forget(self, record: SubscriptionRecord) -> None:
        """Delete what this service keeps of a subscription (its record, cursor, lease and claim);
        the source is not asked."""
        self.store.delete(record)
        self.checkpoints.delete(record.scope, record.source)
        self.read_leases.delete(record.scope, record.source)
        self.store.release_claim(record.scope)

    def delete_at_source(self, record: SubscriptionRecord) -> None:
        """Delete the subscription at its source, acting for its tenant (a tenant that is no
        longer served cannot be asked: its subscriptions lapse there on their own)."""
        with self.tenancy.acting(record.scope):
            self.sources[record.source].subscriber.delete(record)

    def subscribe(
        self,
        draft: SubscriptionRecord,
        expiration: datetime,
        *,
        status: SubscriptionStatus,
        last_renewed: datetime | None = None,
        previous_id: str | None = None,
    ) -> SubscriptionRecord:
        """Subscribe at the source with a fresh clientState; the record keeps only its hash."""
        client_state = new_client_state()
        remote = self.sources[draft.source].subscriber.subscribe(draft, expiration, client_state)
        return replace(
            draft,
            id=remote.id,
            resource=remote.resource,
            notification_url=remote.notification_url,
            expiration=remote.expiration,
            title=remote.title or draft.title,
            client_state_hash=hash_client_state(client_state),
            status=status,
            last_renewed=last_renewed,
            previous_id=previous_id,
            etag=None,
        )


def _draft(source: str, planned: Draft, now: datetime) -> SubscriptionRecord:
    """The record before the source has answered: what it watches, nothing it was given."""
    return SubscriptionRecord(
        id="",
        source=source,
        scope=planned.scope,
        address=planned.address,
        resource=planned.resource,
        notification_url="",
        expiration=now,
        client_state_hash="",
        status=SubscriptionStatus.ACTIVE,
        created=now,
        change_type=planned.change_type,
        fields=planned.fields,
    )
