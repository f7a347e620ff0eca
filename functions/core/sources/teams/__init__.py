"""Teams channel and chat messages, delivered with the message inside (rich notifications):
verified by their `validationTokens`, decrypted once their signature checks, logged without a read.
Gaps and the sweep read back with a channel's messages delta or a filtered messages list."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ...change_log import ChangeLog
from ...checkpoints import CheckpointStore
from ...models import QueuedNotification
from ...settings import Settings
from ..base import EXPIRY_SAFETY_MARGIN, Draft, EntryKind, InvalidSubscriptionRequest
from ..graph_api import GraphClient, names_lifecycle_event
from .crypto import DecryptionKeys
from .models import CreateTeamsSubscriptionRequest, TeamsNotification
from .reader import TEAMS, TeamsReader
from .resources import MAX_LIFETIME, TeamsResource, check_change_type
from .subscriber import TeamsSubscriber
from .tokens import SigningKeys, ValidationTokens

if TYPE_CHECKING:
    from ...subscriptions.record import SubscriptionRecord

__all__ = ["TEAMS", "Teams"]

# Graph's Teams notifications come within seconds; the same 15-minute allowance as Outlook's.
NOTIFICATION_DELAY = timedelta(minutes=15)


def _queued(notification: TeamsNotification) -> QueuedNotification:
    content = notification.encrypted_content
    return QueuedNotification(
        subscription_id=notification.subscription_id,
        resource=notification.resource,
        tenant_id=notification.tenant_id,
        change_type=notification.change_type,
        lifecycle_event=notification.lifecycle_event,
        encrypted_content=content.model_dump(by_alias=True, exclude_none=True) if content else None,
    )


@dataclass(frozen=True)
class Teams:
    subscriber: TeamsSubscriber
    reader: TeamsReader
    tokens: ValidationTokens
    sweep_max_age: timedelta
    name: str = TEAMS
    request_model: type[BaseModel] = CreateTeamsSubscriptionRequest
    # Rows are keyed by each message's own time; a late notification lands behind later rows.
    writes_behind: bool = True

    @classmethod
    def build(
        cls, settings: Settings, checkpoints: CheckpointStore, change_log: ChangeLog, client: GraphClient
    ) -> Teams:
        keys = DecryptionKeys.load([settings.teams_certificate, settings.teams_previous_certificate])
        signing_keys = SigningKeys(settings.identity_keys_url)
        source = cls(
            subscriber=TeamsSubscriber(
                client, keys, settings.teams_notification_url, settings.teams_lifecycle_url
            ),
            reader=TeamsReader(
                checkpoints, change_log, client, keys, keep_preview=settings.teams_keep_preview
            ),
            tokens=ValidationTokens(
                signing_keys,
                settings.graph_app_id,
                guest_app_id=settings.multi_tenant_app_id if settings.multi_tenant else None,
            ),
            sweep_max_age=timedelta(hours=settings.graph_sweep_max_age_hours),
        )
        if settings.graph_app_id:
            signing_keys.prefetch()
        return source

    @property
    def entry_kinds(self) -> Mapping[str, EntryKind]:
        """Change notifications, trusted once their validationTokens verify; lifecycle events,
        which carry no data (a forged one can cause a read, never a row)."""
        changes = EntryKind(TEAMS, TeamsNotification, self._check_change, _queued, trust=self._trust)
        lifecycle = EntryKind(TEAMS, TeamsNotification, names_lifecycle_event, _queued)
        return {TEAMS: changes, f"{TEAMS}/lifecycle": lifecycle}

    @property
    def carried(self) -> TeamsReader:
        return self.reader

    def _check_change(self, notification: TeamsNotification) -> str:
        """A change entry carries its message, encrypted to a certificate we hold."""
        if notification.change_type is None or notification.lifecycle_event is not None:
            return "malformed entry (changeType)"
        if notification.encrypted_content is None:
            return "malformed entry (encryptedContent)"
        if not self.reader.keys.knows(notification.encrypted_content.encryption_certificate_id):
            return "unknown encryptionCertificateId"
        return ""

    def _trust(self, validation_tokens: Any, entries: Sequence[TeamsNotification]) -> str:
        tenants = {entry.tenant_id for entry in entries if entry.tenant_id}
        if any(entry.tenant_id is None for entry in entries):
            return "an entry names no tenantId"
        return self.tokens.refusal(validation_tokens, tenants)

    def draft(self, request: Any, now: datetime) -> Draft:
        if not isinstance(request, CreateTeamsSubscriptionRequest):
            raise InvalidSubscriptionRequest("the request is not a Teams subscription request")
        if self.reader.keys.current is None:
            raise InvalidSubscriptionRequest(
                "Teams messages come encrypted: set TEAMS_CERTIFICATE (docs/teams.md) before subscribing"
            )
        resource = TeamsResource.parse(request.resource)
        return Draft(
            scope=scope_of(resource.path),
            address=resource.path,
            resource=resource.path,
            expiration=now + MAX_LIFETIME - EXPIRY_SAFETY_MARGIN,
            change_type=check_change_type(request.change_type),
        )

    def expected_delay(self, address: str) -> timedelta:
        return NOTIFICATION_DELAY

    def view_fields(self, record: SubscriptionRecord) -> dict[str, Any]:
        return {}

    def cursor_issued(self, cursor: str) -> datetime | None:
        return None

    def warm(self) -> None:
        """The signing keys, read now rather than by the first rich notification."""
        self.tokens.warm()


def scope_of(resource: str) -> str:
    """The key of a Teams resource's cursor and change log (table keys may not hold '/')."""
    return "teams-" + hashlib.sha256(resource.lower().encode("utf-8")).hexdigest()[:40]
