"""Graph's rules for Teams subscriptions, checked on create: the permission each resource needs
(or resource-specific consent), rich notifications' certificate, the lifecycle URL past one hour,
and one tenant-wide subscription of each kind per app."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .errors import GraphError, bad_request
from .model import GraphSubscription
from .rich import certificate_public_key
from .rules import WatchedResource
from .state import GraphTenant

LIFECYCLE_URL_REQUIRED_PAST = timedelta(hours=1)
_NEEDS = {
    "channel": ("ChannelMessage.Read.All", "ChannelMessage.Read.All,ChannelMessage.ReadWrite.All"),
    "chat": ("Chat.Read.All", "Chat.Read.All,Chat.ReadWrite.All"),
    "allChannels": ("ChannelMessage.Read.All", "ChannelMessage.Read.All,ChannelMessage.ReadWrite.All"),
    "allChats": ("Chat.Read.All", "Chat.Read.All,Chat.ReadWrite.All"),
}


def lifetime_kind(body: dict[str, Any]) -> str:
    return "chatMessage" if body.get("includeResourceData") is True else "chatMessageWithoutResourceData"


def check_teams_subscription(
    graph: GraphTenant,
    target: WatchedResource,
    body: dict[str, Any],
    app_id: str,
    expiration: datetime,
    now: datetime,
) -> None:
    kind = target.container.split(":", 1)[0]
    role, listed = _NEEDS[kind]
    consented = _consented(graph, target, app_id)
    if role not in graph.teams.roles_of(app_id) and not consented:
        what = "tenant-wide chat messages" if kind == "allChats" else f"{kind} messages"
        raise GraphError(
            403,
            "ExtensionError",
            f"Operation: Create; Exception: [Status Code: Forbidden; Reason: Required permissions to "
            f"access {what} subscription one of ('{listed}') is missing.]",
        )
    if body.get("includeResourceData") is True:
        certificate, certificate_id = body.get("encryptionCertificate"), body.get("encryptionCertificateId")
        if not isinstance(certificate, str) or not certificate:
            raise bad_request(
                "encryptionCertificate is required when includeResourceData is true.", "InvalidRequest"
            )
        if not isinstance(certificate_id, str) or not certificate_id or len(certificate_id) > 128:
            raise bad_request(
                "encryptionCertificateId is required when includeResourceData is true.", "InvalidRequest"
            )
        try:
            certificate_public_key(certificate)
        except ValueError:
            raise bad_request("encryptionCertificate is not a valid certificate.", "InvalidRequest") from None
    if expiration - now > LIFECYCLE_URL_REQUIRED_PAST and not body.get("lifecycleNotificationUrl"):
        raise bad_request(
            "lifecycleNotificationUrl is a required property for subscription creation on this resource "
            "when the expirationDateTime value is set to greater than 1 hour",
            "InvalidRequest",
        )
    if kind.startswith("all") and any(
        s.app_id == app_id and s.container == target.container for s in graph.subscriptions.values()
    ):
        raise GraphError(
            409,
            "Conflict",
            f"An app may hold one subscription to {body['resource']}; this app holds one already.",
        )


def rich_fields(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "include_resource_data": body.get("includeResourceData") is True,
        "encryption_certificate": body.get("encryptionCertificate"),
        "encryption_certificate_id": body.get("encryptionCertificateId"),
    }


def patch_certificate(found: GraphSubscription, body: dict[str, Any]) -> None:
    """A renewing PATCH may move a rich subscription to a new certificate (both fields together)."""
    certificate, certificate_id = body.get("encryptionCertificate"), body.get("encryptionCertificateId")
    if certificate is None and certificate_id is None:
        return
    if (
        not found.include_resource_data
        or not isinstance(certificate, str)
        or not isinstance(certificate_id, str)
    ):
        raise bad_request(
            "encryptionCertificate and encryptionCertificateId change together, on a subscription with "
            "includeResourceData.",
            "InvalidRequest",
        )
    try:
        certificate_public_key(certificate)
    except ValueError:
        raise bad_request("encryptionCertificate is not a valid certificate.", "InvalidRequest") from None
    found.encryption_certificate, found.encryption_certificate_id = certificate, certificate_id


def _consented(graph: GraphTenant, target: WatchedResource, app_id: str) -> bool:
    kind, _, rest = target.container.partition(":")
    if kind == "channel":
        return app_id in graph.teams.team(rest.split(":", 1)[0]).consented_apps
    if kind == "chat":
        return app_id in graph.teams.chat(rest).consented_apps
    return False
