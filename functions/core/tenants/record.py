"""One organisation this deployment serves, as the `tenants` table keeps it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from ..tenancy import ActingTenant

# pending: asked to consent; active: consented, served; revoked: its authority refuses the app
# (reads and renewals stop until it consents again); removed: offboarded, its data deleted.
TenantState = Literal["pending", "active", "revoked", "removed"]


@dataclass(frozen=True)
class TenantRecord:
    id: str
    display_name: str
    sharepoint_url: str
    state: TenantState
    created: datetime
    # What the administrator consented to (the `scope` the consent answer named).
    scopes: tuple[str, ...] = ()
    consented_at: datetime | None = None
    revoked_at: datetime | None = None
    removed_at: datetime | None = None
    # The consent's `error: error_description`, or why the tenant was revoked.
    error: str | None = None
    etag: str | None = field(default=None, compare=False)

    @property
    def acting(self) -> ActingTenant:
        return ActingTenant(self.id, self.sharepoint_url, home=False)

    def activated(self, scopes: tuple[str, ...], at: datetime) -> TenantRecord:
        return replace(self, state="active", scopes=scopes, consented_at=at, revoked_at=None, error=None)

    def refused(self, error: str) -> TenantRecord:
        return replace(self, error=error[:500])

    def revoked(self, reason: str, at: datetime) -> TenantRecord:
        return replace(self, state="revoked", revoked_at=at, error=reason[:500])

    def removed(self, at: datetime) -> TenantRecord:
        return replace(self, state="removed", removed_at=at)
