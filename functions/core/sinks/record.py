"""A sink as this service keeps it: its configuration. Its URL and secrets are credentials: kept
sealed, never returned in full, never logged. What it has been sent is its cursor (cursor.py)."""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from ..egress import EgressRefused
from ..egress import check_url as check_egress
from ..errors import BadRequest
from ..models import ChangeView, format_utc

TEAMS_WORKFLOW, MESSAGE_CARD, WEBHOOK = "teams-workflow", "message-card", "webhook"
SINK_TYPES = (TEAMS_WORKFLOW, MESSAGE_CARD, WEBHOOK)
# The retired Office 365 connector hosts in Teams (REFERENCE: Connectors).
RETIRED_CONNECTOR_HOST = ".webhook.office.com"
# Teams workflow trigger URLs: where they live now, and where they lived until 2025-11-30.
WORKFLOW_HOST = ".environment.api.powerplatform.com"
RETIRED_WORKFLOW_HOST = ".logic.azure.com"
RETIRED_WORKFLOW_WARNING = (
    "this is a *.logic.azure.com workflow URL; Microsoft moved workflow triggers to "
    "*.environment.api.powerplatform.com and announced that the old URLs stop working on "
    "2025-11-30: copy the trigger's new URL from the workflow and add it as a new sink"
)
SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks prefix, not a secret)
# After a rotation, batches are signed with both secrets for this long.
ROTATION_OVERLAP = timedelta(hours=24)
AUTH_NONE, AUTH_ENTRA = "none", "entra"


class InvalidSink(BadRequest):
    pass


class SinkState(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


def new_secret() -> str:
    """Standard Webhooks' form: `whsec_` and base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def check_secret(secret: str) -> str:
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSink("secret must be 'whsec_' followed by base64 of 24 to 64 random bytes")
    try:
        raw = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except ValueError:
        raise InvalidSink("secret must be 'whsec_' followed by base64 of 24 to 64 random bytes") from None
    if not 24 <= len(raw) <= 64:
        raise InvalidSink("secret must carry 24 to 64 random bytes")
    return secret


def check_url(sink_type: str, url: str, *, allow_loopback_http: bool) -> tuple[str, str | None]:
    """The URL if we may send to it, and a warning for the caller when it will soon stop working."""
    try:
        check_egress(url, allow_loopback_http=allow_loopback_http)
    except EgressRefused as refused:
        raise InvalidSink(str(refused)) from None
    host = (urlsplit(url).hostname or "").lower()
    if host.endswith(RETIRED_CONNECTOR_HOST):
        raise InvalidSink(
            "Office 365 connectors (*.webhook.office.com) are retired in Teams: create a Teams workflow "
            "with the 'When a Teams webhook request is received' trigger and add it as a "
            "'teams-workflow' sink instead"
        )
    warning = (
        RETIRED_WORKFLOW_WARNING
        if sink_type == TEAMS_WORKFLOW and host.endswith(RETIRED_WORKFLOW_HOST)
        else None
    )
    return url, warning


def mask(url: str) -> str:
    """Enough to recognise a URL, not enough to use it: scheme, host and the last 4 characters of
    its path (a workflow's `sig=` is in the query, which is never shown)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/…{parts.path[-4:]}"


@dataclass(frozen=True)
class Sink:
    id: str
    scope: str  # the subscription's scope: sinks follow the list or resource, not one subscription
    subscription_id: str
    type: str
    url: str
    change_types: tuple[str, ...]
    created: datetime
    secret: str | None = None
    previous_secret: str | None = None
    previous_secret_until: datetime | None = None
    state: SinkState = SinkState.ACTIVE
    disabled_reason: str | None = None
    disabled_at: datetime | None = None
    auth: str = AUTH_NONE
    # Changes made by these (application ids, user principal names) stay in the change log but are
    # not sent here: a receiver's own writes back to the list do not come back to it.
    ignore_changes_by: tuple[str, ...] = ()
    # The table's ETag when read: every write of the record is conditional on it.
    etag: str | None = None

    def wants(self, change: ChangeView, also_ignoring: tuple[str, ...] = ()) -> bool:
        """A change of a type it takes, by nobody it ignores or `also_ignoring` (its
        subscription's list)."""
        if self.change_types and change.change_type.value not in self.change_types:
            return False
        by = (change.changed_by or "").lower()
        ignored = (*self.ignore_changes_by, *also_ignoring)
        return not (by and any(_names(entry.lower(), by) for entry in ignored))

    def signing_secrets(self, now: datetime) -> list[str]:
        """The current secret, and the previous one while the rotation overlap lasts."""
        secrets_ = [self.secret] if self.secret else []
        if self.previous_secret and self.previous_secret_until and now < self.previous_secret_until:
            secrets_.append(self.previous_secret)
        return secrets_

    @property
    def warning(self) -> str | None:
        host = (urlsplit(self.url).hostname or "").lower()
        return (
            RETIRED_WORKFLOW_WARNING
            if self.type == TEAMS_WORKFLOW and host.endswith(RETIRED_WORKFLOW_HOST)
            else None
        )

    def view(self) -> dict[str, object]:
        body: dict[str, object] = {
            "id": self.id,
            "subscriptionId": self.subscription_id,
            "type": self.type,
            "url": mask(self.url),
            "changeTypes": list(self.change_types),
            "ignoreChangesBy": list(self.ignore_changes_by),
            "state": self.state.value,
            "auth": self.auth,
            "createdDateTime": format_utc(self.created),
        }
        if self.disabled_reason:
            body["disabledReason"] = self.disabled_reason
        if self.disabled_at:
            body["disabledDateTime"] = format_utc(self.disabled_at)
        if self.previous_secret_until:
            body["previousSecretValidUntil"] = format_utc(self.previous_secret_until)
        if self.warning:
            body["warning"] = self.warning
        return body


GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _names(entry: str, changed_by: str) -> bool:
    """An entry names who made a change: the same user principal name or application id, or an
    application id inside SharePoint's claim (`i:0i.t|ms.sp.ext|{app id}@{tenant id}`)."""
    return entry == changed_by or (GUID.fullmatch(entry) is not None and f"|{entry}@" in changed_by)
