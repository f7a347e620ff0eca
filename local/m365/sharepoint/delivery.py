"""Notification delivery as SharePoint does it: batched per notification URL, sent on a timer,
retried a few times on failure, then dropped."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

import httpx

from ..tenant import Tenant
from .model import PendingNotification, notification_time

log = logging.getLogger("m365.delivery")

DELIVERY_TIMEOUT_SECONDS = 5.0
MAX_RETRIES = 5


class Deliverer:
    def __init__(
        self, tenant: Tenant, http: httpx.AsyncClient, *, interval: float, retry_interval: float
    ) -> None:
        self.tenant = tenant
        self.http = http
        self.interval = interval
        self.retry_interval = retry_interval
        self._lock = asyncio.Lock()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.deliver_due()
            except Exception:  # the loop must outlive any one bad delivery
                log.exception("delivery round failed")

    async def deliver_due(self, *, force: bool = False) -> dict[str, int]:
        async with self._lock:
            now = time.monotonic()
            due = [p for p in self.tenant.sharepoint.pending if force or p.due <= now]
            self.tenant.sharepoint.pending = [p for p in self.tenant.sharepoint.pending if p not in due]
            batches: dict[str, dict[str, PendingNotification]] = defaultdict(dict)
            for pending in due:
                if pending.subscription_id in self.tenant.withheld:
                    self.tenant.delivery["withheld"] += 1
                    continue
                found = self.tenant.sharepoint.find_subscription(pending.subscription_id)
                if found is None:
                    continue
                self.tenant.sharepoint.expire_subscriptions(found[1])
                if pending.subscription_id not in found[1].subscriptions:
                    continue
                # Several changes to one subscription since the last round become one entry.
                batch = batches[found[2].notification_url]
                previous = batch.get(pending.subscription_id)
                if previous is None or pending.attempts > previous.attempts:
                    batch[pending.subscription_id] = pending
            sent = 0
            for url, entries in batches.items():
                if await self._post(url, list(entries.values())):
                    sent += 1
                    self.tenant.delivery["delivered"] += len(entries)
                else:
                    self._schedule_retry(list(entries.values()), now)
            return {"requests": sent, "pending": len(self.tenant.sharepoint.pending)}

    async def _post(self, url: str, entries: list[PendingNotification]) -> bool:
        value = []
        for pending in entries:
            found = self.tenant.sharepoint.find_subscription(pending.subscription_id)
            if found is None:  # deleted since the change: SharePoint sends nothing for it
                continue
            site, _, subscription = found
            value.append(
                {
                    "subscriptionId": subscription.id,
                    "clientState": subscription.client_state,
                    "expirationDateTime": notification_time(subscription.expiration),
                    "resource": subscription.list_id,
                    "tenantId": self.tenant.tenant_id,
                    "siteUrl": site.path,
                    "webId": site.web_id,
                }
            )
        self.tenant.delivery["requests"] += 1
        try:
            answer = await self.http.post(url, json={"value": value}, timeout=DELIVERY_TIMEOUT_SECONDS)
        except httpx.HTTPError as error:
            log.warning("delivery to %s failed: %s", url, type(error).__name__)
            return False
        if not 200 <= answer.status_code < 300:
            log.warning("delivery to %s failed: HTTP %d", url, answer.status_code)
            return False
        return True

    def _schedule_retry(self, entries: list[PendingNotification], now: float) -> None:
        self.tenant.delivery["failed"] += len(entries)
        for pending in entries:
            pending.attempts += 1
            if pending.attempts > MAX_RETRIES:
                self.tenant.delivery["dropped"] += 1
                continue
            pending.due = now + self.retry_interval
            self.tenant.sharepoint.pending.append(pending)
