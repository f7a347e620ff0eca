"""Which tenant a unit of work acts for, and whether that tenant may be served now.

Every subscription, checkpoint, lease and sink belongs to the tenant its scope names (tenancy.py).
Before a read, a renewal or an API call touches Microsoft 365, it asks here: the home tenant is
always served; a guest only while `active` (records are kept in memory for CACHE_SECONDS, so a
revocation reaches every instance within that). A guest whose authority refuses the app turns
`revoked`, once, with one alert; its work stops, every other tenant's goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import datetime

from ..alerts import Alerts, Condition
from ..auth import GuestTokens, TenantRefused
from ..clock import utc_now
from ..errors import Conflict, NotFound
from ..tenancy import ActingTenant, acting_for, acting_tenant, scope_tenant
from .record import TenantRecord
from .store import TenantChanged, TenantStore

log = logging.getLogger(__name__)

CACHE_SECONDS = 30.0


class TenantNotFound(NotFound):
    def public_message(self) -> str:
        return f"no tenant {self}"


class TenantUnavailable(Conflict):
    """A guest tenant that is not `active`: nothing is read, renewed or created for it."""

    def __init__(self, tenant_id: str, state: str) -> None:
        super().__init__(f"tenant {tenant_id} is {state}: it must consent again before it is served")
        self.tenant_id = tenant_id
        self.state = state


class Tenancy:
    def __init__(
        self,
        home: ActingTenant,
        store: TenantStore | None,
        guests: GuestTokens | None,
        alerts: Alerts,
        *,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.home = home
        self.store = store
        self._guests = guests
        self._alerts = alerts
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, TenantRecord | None]] = {}

    @property
    def serves_guests(self) -> bool:
        return self.store is not None

    def id_of(self, scope: str) -> str:
        return scope_tenant(scope) or self.home.id

    def for_scope(self, scope: str) -> ActingTenant:
        return self.for_id(scope_tenant(scope))

    def for_id(self, tenant_id: str | None) -> ActingTenant:
        """The tenant to act for; raises TenantNotFound, or TenantUnavailable for a guest that is
        not active."""
        if tenant_id is None or tenant_id == self.home.id:
            return self.home
        record = self._record(tenant_id)
        if record is None or record.state == "removed":
            raise TenantNotFound(tenant_id)
        if record.state != "active":
            raise TenantUnavailable(tenant_id, record.state)
        return record.acting

    def acting(self, scope: str) -> AbstractContextManager[ActingTenant]:
        """Act for the scope's tenant; a refusal by its authority on the way revokes it."""
        return self.acting_as(self.for_scope(scope))

    @contextmanager
    def acting_as(self, tenant: ActingTenant) -> Iterator[ActingTenant]:
        """Act for `tenant`; a refusal by its authority on the way revokes it."""
        with acting_for(tenant):
            try:
                yield tenant
            except TenantRefused as refused:
                self.revoke(refused.tenant_id, str(refused))
                raise TenantUnavailable(refused.tenant_id, "revoked") from None

    def still_consented(self) -> bool:
        """After Microsoft 365 answered the acting guest's call 401 or 403: ask its authority for
        a fresh token. False (and the tenant revoked) when it refuses the app."""
        tenant = acting_tenant()
        if tenant is None or tenant.home or self._guests is None:
            return True
        self._guests.forget(tenant.id)
        try:
            self._guests.token(tenant.id, tenant.sharepoint_url)
        except TenantRefused as refused:
            self.revoke(tenant.id, str(refused))
            return False
        return True

    def revoke(self, tenant_id: str, reason: str) -> None:
        """Turn an active guest `revoked` (written under its ETag: of several instances noticing,
        one writes and one alert goes out)."""
        if self.store is None:
            return
        if self._guests is not None:
            self._guests.forget(tenant_id)
        record = self.store.get(tenant_id)
        if record is None or record.state != "active":
            return
        try:
            self.store.save(record.revoked(reason, self._clock()))
        except TenantChanged:
            return
        self.forget(tenant_id)
        log.error(
            "tenant %s revoked: %s; its reads and renewals stop until it consents again", tenant_id, reason
        )
        self._alerts.raise_(tenant_id, Condition.TENANT_REVOKED, reason)

    def restored(self, tenant_id: str) -> None:
        """The tenant consented again: its cached state goes, and its alert recovers."""
        self.forget(tenant_id)
        self._alerts.recover(tenant_id, Condition.TENANT_REVOKED)

    def forget(self, tenant_id: str) -> None:
        with self._lock:
            self._cache.pop(tenant_id, None)

    def _record(self, tenant_id: str) -> TenantRecord | None:
        if self.store is None:
            return None
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(tenant_id)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        record = self.store.get(tenant_id)
        with self._lock:
            self._cache[tenant_id] = (now, replace(record, etag=None) if record else None)
        return record
