"""Onboarding and offboarding: an organisation is asked to consent, consents (or declines), and
is removed with everything this service kept of it.

The consent request's `state` is sealed with the deployment's key ring (so it cannot be forged
or altered), names the tenant and an expiry, and carries a nonce kept in the `tenants` table
until the answer comes: the nonce is deleted as it is taken, so an answer counts once.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from ..change_log import ChangeLog
from ..clock import utc_now
from ..errors import BadRequest, Conflict
from ..models import format_utc
from ..resources import ITEM_FIELDS_TABLE
from ..sinks.sealing import KeyRing, SealBroken
from ..sinks.service import SinkService
from ..storage import Storage, purge_partition
from ..subscriptions import SubscriptionService
from ..subscriptions.record import SubscriptionRecord
from .directory import Tenancy, TenantNotFound
from .models import ConsentAnswer, CreateTenantRequest, TenantRemoval, TenantView
from .record import TenantRecord
from .store import ConsentRequest, TenantStore

log = logging.getLogger(__name__)

CONSENT_LIFETIME = timedelta(minutes=15)
# Admin consent with `/.default` grants every permission the app registration lists.
CONSENT_SCOPE = "https://graph.microsoft.com/.default"
_STATE_BINDING = "tenant-consent"


class ConsentRefused(BadRequest):
    """A consent answer this service did not ask for, or not any more."""


class SingleTenant(Conflict):
    def public_message(self) -> str:
        return "this deployment serves its own tenant only (TENANCY=single)"


@dataclass(frozen=True)
class ConsentSettings:
    app_id: str
    redirect_url: str
    login_authority: str


@dataclass(frozen=True)
class TenantService:
    tenancy: Tenancy
    consent: ConsentSettings | None
    keys: KeyRing | None
    subscriptions: SubscriptionService
    sinks: SinkService
    change_log: ChangeLog
    storage: Storage
    clock: Callable[[], datetime] = utc_now

    @property
    def store(self) -> TenantStore:
        if self.tenancy.store is None or self.consent is None or self.keys is None:
            raise SingleTenant()
        return self.tenancy.store

    def onboard(self, request: CreateTenantRequest) -> TenantView:
        """A tenant to serve (pending until its administrator consents), with the URL to send
        that administrator to. Asking again gives a new URL (the old one still works until it
        expires); a tenant that is served stays served meanwhile."""
        store = self.store
        if request.tenant_id == self.tenancy.home.id:
            raise Conflict("the home tenant is always served; it needs no consent")
        now = self.clock()
        record = store.get(request.tenant_id)
        if record is None:
            record = store.create(
                TenantRecord(request.tenant_id, request.display_name, request.sharepoint_url, "pending", now)
            )
        elif record.state == "removed":
            record = store.save(
                TenantRecord(
                    request.tenant_id,
                    request.display_name,
                    request.sharepoint_url,
                    "pending",
                    now,
                    etag=record.etag,
                )
            )
        log.info("tenant %s (%s) asked to consent", record.id, record.state)
        return self.view(record).model_copy(update={"consent_url": self._consent_url(record.id, now)})

    def consented(self, answer: ConsentAnswer) -> TenantView:
        """The administrator's answer: the tenant turns `active`, or keeps its state with the
        error recorded. A forged, altered, expired or replayed `state` is refused."""
        store = self.store
        tenant_id, nonce = self._opened(answer.state)
        request = store.take_consent(nonce)
        if request is None or request.tenant_id != tenant_id:
            raise ConsentRefused("state was already used, or has expired")
        if request.expires < self.clock():
            raise ConsentRefused("state has expired: ask for a new consent URL")
        if answer.tenant is not None and answer.tenant != tenant_id:
            raise ConsentRefused("the consent answer names another tenant than was asked")
        record = store.get(tenant_id)
        if record is None or record.state == "removed":
            raise TenantNotFound(tenant_id)
        if answer.error is not None or answer.admin_consent is None:
            error = f"{answer.error or 'no_consent'}: {answer.error_description or ''}".strip()
            record = store.save(record.refused(error))
            log.warning("tenant %s did not consent: %s", tenant_id, error)
            return self.view(record)
        scopes = tuple((answer.scope or CONSENT_SCOPE).split())
        record = store.save(record.activated(scopes, self.clock()))
        self.tenancy.restored(tenant_id)
        log.info("tenant %s consented: active", tenant_id)
        return self.view(record)

    def views(self) -> list[TenantView]:
        home = self.tenancy.home
        mine = TenantView(
            id=home.id, display_name="home", sharepoint_url=home.sharepoint_url, state="active", home=True
        )
        guests = [self.view(record) for record in self.tenancy.store.all()] if self.tenancy.store else []
        return [mine, *guests]

    def get(self, tenant_id: str) -> TenantView:
        record = self.store.get(tenant_id)
        if record is None:
            raise TenantNotFound(tenant_id)
        return self.view(record)

    def remove(self, tenant_id: str) -> TenantRemoval:
        """Offboard a tenant: its subscriptions deleted at the source (best effort: a tenant whose
        consent is gone cannot be asked, and they lapse there), its sinks, cursors, checkpoints,
        leases, change rows and field values deleted here; the record stays, `removed`."""
        store = self.store
        record = store.get(tenant_id)
        if record is None:
            raise TenantNotFound(tenant_id)
        if tenant_id == self.tenancy.home.id:
            raise Conflict("the home tenant cannot be removed")
        removal = TenantRemoval(
            tenant_id=tenant_id,
            subscriptions=0,
            deleted_at_source=0,
            not_deleted_at_source=[],
            sinks=0,
            change_rows=0,
            field_values=0,
        )
        scopes: set[str] = set()
        for subscription in self._subscriptions_of(tenant_id):
            scopes.add(subscription.scope)
            try:
                self.subscriptions.delete_at_source(subscription)
                deleted = 1
            except Exception as error:  # best effort, and reported
                log.warning(
                    "tenant %s: subscription %s not deleted at its source: %s",
                    tenant_id,
                    subscription.id,
                    error,
                )
                removal.not_deleted_at_source.append(subscription.id)
                deleted = 0
            self.subscriptions.forget(subscription)
            removal = removal.model_copy(
                update={
                    "subscriptions": removal.subscriptions + 1,
                    "deleted_at_source": removal.deleted_at_source + deleted,
                    "sinks": removal.sinks + self.sinks.delete_all(subscription.scope),
                }
            )
        change_rows = sum(self.change_log.purge(scope) for scope in scopes)
        field_values = sum(purge_partition(self.storage.table(ITEM_FIELDS_TABLE), scope) for scope in scopes)
        store.save(record.removed(self.clock()))
        self.tenancy.forget(tenant_id)
        log.info("tenant %s removed: %s", tenant_id, removal.model_dump_json(by_alias=True))
        return removal.model_copy(update={"change_rows": change_rows, "field_values": field_values})

    def view(self, record: TenantRecord) -> TenantView:
        return TenantView(
            id=record.id,
            display_name=record.display_name,
            sharepoint_url=record.sharepoint_url,
            state=record.state,
            scopes=list(record.scopes) or None,
            created_date_time=format_utc(record.created),
            consented_date_time=format_utc(record.consented_at) if record.consented_at else None,
            revoked_date_time=format_utc(record.revoked_at) if record.revoked_at else None,
            removed_date_time=format_utc(record.removed_at) if record.removed_at else None,
            error=record.error,
        )

    def _subscriptions_of(self, tenant_id: str) -> list[SubscriptionRecord]:
        found: list[SubscriptionRecord] = []
        after = ""
        while True:
            records, after_next = self.subscriptions.page(after=after, top=1000, tenant_id=tenant_id)
            found.extend(records)
            if after_next is None:
                return found
            after = after_next

    def _consent_url(self, tenant_id: str, now: datetime) -> str:
        assert self.consent is not None and self.keys is not None
        nonce = secrets.token_urlsafe(32)
        expires = now + CONSENT_LIFETIME
        self.store.ask_consent(ConsentRequest(nonce, tenant_id, expires))
        state = self.keys.seal(json.dumps({"tenant": tenant_id, "nonce": nonce}), bound_to=_STATE_BINDING)
        query = urlencode(
            {
                "client_id": self.consent.app_id,
                "scope": CONSENT_SCOPE,
                "redirect_uri": self.consent.redirect_url,
                "state": state,
            }
        )
        return f"{self.consent.login_authority}/{tenant_id}/v2.0/adminconsent?{query}"

    def _opened(self, state: str) -> tuple[str, str]:
        assert self.keys is not None
        try:
            opened = json.loads(self.keys.open(state, bound_to=_STATE_BINDING))
            return str(opened["tenant"]), str(opened["nonce"])
        except (SealBroken, ValueError, KeyError, TypeError):
            raise ConsentRefused("state is not one this service issued") from None
