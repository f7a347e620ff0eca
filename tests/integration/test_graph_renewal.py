"""Renewal at each source's own cadence: renew when less than the smaller of RENEWAL_WINDOW_DAYS
and half the lifetime is left (Outlook lives 7 days, a drive 29, SharePoint 180)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

from functions.core.sources.graph.models import CreateGraphSubscriptionRequest
from functions.core.sources.sharepoint.models import CreateSubscriptionRequest
from tests.integration.conftest import SITE

DAY = 86_400
WINDOW = timedelta(days=45)


def graph(resource: str, change_type: str) -> CreateGraphSubscriptionRequest:
    return CreateGraphSubscriptionRequest(source="graph", resource=resource, change_type=change_type)


def test_each_source_is_renewed_at_its_own_cadence(services, emulator, new_list):
    user = f"renew-{uuid.uuid4().hex[:6]}@contoso.com"
    drive = emulator.drive_of(user)
    inbox = services.subscriptions.create(graph(f"/users/{user}/mailFolders('inbox')/messages", "created"))
    files = services.subscriptions.create(graph(f"/drives/{drive}/root", "updated"))
    sharepoint = services.subscriptions.create(CreateSubscriptionRequest(site_url=SITE, list_id=new_list))
    ours = {inbox.id, files.id, sharepoint.id}
    start = datetime.now(UTC)

    def renew_after(days: int):
        emulator.advance_clock(days * DAY - emulator_offset())
        later = dataclasses.replace(services.renewals, clock=lambda: start + timedelta(days=days))
        return later.renew_due(WINDOW)

    def emulator_offset() -> float:
        return emulator.http.get("/_emulator/clock").json()["offsetSeconds"]

    try:
        day_4 = renew_after(4)  # inbox: 3 of 7 days left, under half its lifetime
        assert set(day_4.renewed) & ours == {inbox.id}
        assert not day_4.failed
        [remote] = [s for s in emulator.graph_subscriptions() if s["id"] == inbox.id]
        remote_expiry = datetime.fromisoformat(remote["expirationDateTime"].replace("Z", "+00:00"))
        assert remote_expiry - (start + timedelta(days=4)) > timedelta(days=6, hours=22)

        day_16 = renew_after(16)  # drive: 13.4 of 29.4 days left; the inbox lapsed on day 11
        assert set(day_16.renewed) & ours == {files.id}
        [(gone, replacement)] = [pair for pair in day_16.recreated if pair[0] == inbox.id]
        assert services.subscriptions.get(replacement).previous_id == gone
        assert sharepoint.id not in set(day_16.renewed) | {old for old, _ in day_16.recreated}
    finally:
        emulator.set_clock_offset(0)
