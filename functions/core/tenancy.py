"""Whose Microsoft 365 a piece of work touches: the tenant it acts for, and how a tenant's keys
stay apart from every other's.

A scope (the key of a cursor, a change log, a lease, a sink) carries its tenant, so partition
keys never meet across tenants even when the ids under them do (a list GUID copied between
tenants, the same Graph resource path). The home tenant's scopes carry nothing: a deployment that
ran single-tenant keeps every key it has (docs/operations.md, "Upgrading to many tenants").

The tenant a call acts for is set around each unit of work (a queue message's subscription, a
renewal, a sweep visit, an API request) by `acting_for`, and read where a token is chosen and a
throttling hold is kept; a call to Microsoft 365 outside any unit of work acts for the home tenant.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

# Table keys may not hold '/', '\\', '#' or '?'; no scope of any source holds '~'.
_SEPARATOR = "~"
_TENANT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def is_tenant_id(value: str) -> bool:
    """A directory (tenant) id: a lower-case GUID."""
    return bool(_TENANT_ID.match(value))


@dataclass(frozen=True)
class ActingTenant:
    """The tenant a unit of work acts for: its id, its SharePoint root (where its sites live and
    the audience of its SharePoint tokens), and whether it is the deployment's own."""

    id: str
    sharepoint_url: str
    home: bool


_acting: ContextVar[ActingTenant | None] = ContextVar("acting_tenant", default=None)


@contextmanager
def acting_for(tenant: ActingTenant) -> Iterator[ActingTenant]:
    token = _acting.set(tenant)
    try:
        yield tenant
    finally:
        _acting.reset(token)


def acting_tenant() -> ActingTenant | None:
    """The tenant the current unit of work acts for; None outside any (the home tenant's calls)."""
    return _acting.get()


def throttle_key() -> str:
    """Microsoft 365 throttles an app per tenant: the key of the acting tenant's hold."""
    tenant = _acting.get()
    return "" if tenant is None or tenant.home else tenant.id


def tenant_scope(tenant_id: str | None, inner: str) -> str:
    """The scope of `inner` (what a source calls the watched thing) in a guest tenant; the home
    tenant's (`tenant_id` None) is `inner` itself."""
    return inner if tenant_id is None else f"{tenant_id}{_SEPARATOR}{inner}"


def tenant_scope_range(tenant_id: str) -> tuple[str, str]:
    """Every scope of a guest tenant sorts in [low, high): a range the table service can filter."""
    return f"{tenant_id}{_SEPARATOR}", f"{tenant_id}{chr(ord(_SEPARATOR) + 1)}"


def scope_tenant(scope: str) -> str | None:
    """The guest tenant a scope belongs to; None for the home tenant's."""
    tenant, separator, _ = scope.partition(_SEPARATOR)
    return tenant if separator else None


def inner_scope(scope: str) -> str:
    """What the source calls the watched thing (a list's id), without its tenant."""
    return scope.rpartition(_SEPARATOR)[2]
