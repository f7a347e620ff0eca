"""The emulator's SharePoint Online, in memory: sites -> lists -> items, change log, subscriptions.

Keyed like the real service. All mutation happens on the server's event loop, one request at a
time, so no locks are needed.
"""

from __future__ import annotations

import secrets
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import errors
from .errors import SharePointError

MAX_SUBSCRIPTION_LIFETIME = timedelta(days=180)
CHANGE_LOG_RETENTION = timedelta(days=60)
DEFAULT_FETCH_LIMIT = 1000
TOKEN_LIFETIME_SECONDS = 3599
_DOTNET_EPOCH = datetime(1, 1, 1, tzinfo=UTC)

CHANGE_ADD, CHANGE_UPDATE, CHANGE_DELETE, CHANGE_RESTORE = 1, 2, 3, 7


def ticks(moment: datetime) -> int:
    """.NET ticks (100 ns since 0001-01-01 UTC), as SharePoint writes them in change tokens."""
    delta = moment - _DOTNET_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def sharepoint_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def notification_time(moment: datetime) -> str:
    """Notifications carry seven fractional digits: `2016-04-30T17:27:00.0000000Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


class Clock:
    """Real time plus an offset that tests can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class Item:
    id: int
    fields: dict[str, Any]
    created: datetime
    modified: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            **self.fields,
            "Id": self.id,
            "ID": self.id,
            "Created": sharepoint_time(self.created),
            "Modified": sharepoint_time(self.modified),
        }


@dataclass
class Change:
    number: int
    time: datetime
    change_type: int
    item_id: int
    list_id: str

    @property
    def token(self) -> str:
        return f"1;3;{self.list_id};{ticks(self.time)};{self.number}"


@dataclass
class Subscription:
    id: str
    list_id: str
    notification_url: str
    expiration: datetime
    client_state: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "clientState": self.client_state,
            "expirationDateTime": sharepoint_time(self.expiration),
            "id": self.id,
            "notificationUrl": self.notification_url,
            "resource": self.list_id,
            "resourceData": None,
        }


@dataclass
class SpList:
    id: str
    title: str
    base_template: int
    created: datetime
    items: dict[int, Item] = field(default_factory=dict)
    next_item_id: int = 1
    changes: list[Change] = field(default_factory=list)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)


@dataclass
class Site:
    path: str
    id: str
    web_id: str
    lists: dict[str, SpList] = field(default_factory=dict)


@dataclass
class RecycledItem:
    id: str
    site_path: str
    list_id: str
    item: Item


@dataclass
class Fault:
    status: int
    retry_after: int | None
    remaining: int
    operation: str


@dataclass
class PendingNotification:
    subscription_id: str
    site_path: str
    list_id: str
    due: float
    attempts: int = 0


class SharePointTenant:
    def __init__(self, tenant_id: str | None = None) -> None:
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.clock = Clock()
        self.sites: dict[str, Site] = {}
        self.recycle_bin: dict[str, RecycledItem] = {}
        self.change_number = 0
        self.calls: Counter[str] = Counter()
        self.delivery: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self.tokens: dict[str, float] = {}
        self.pending: list[PendingNotification] = []

    # --- sites and lists ---------------------------------------------------------------------

    def site(self, path: str) -> Site:
        """A site exists on first use, as if an admin had created it."""
        if path not in self.sites:
            self.sites[path] = Site(path=path, id=str(uuid.uuid4()), web_id=str(uuid.uuid4()))
        return self.sites[path]

    def create_list(self, site_path: str, title: str, base_template: int) -> SpList:
        site = self.site(site_path)
        if not title:
            raise SharePointError(400, errors.ARGUMENT, "The list title must not be empty.")
        if any(lst.title.lower() == title.lower() for lst in site.lists.values()):
            raise SharePointError(
                409,
                errors.DUPLICATE_LIST,
                "A list, survey, discussion board, or document library with the specified title "
                "already exists in this Web site.  Please choose another title.",
            )
        new_list = SpList(
            id=str(uuid.uuid4()), title=title, base_template=base_template, created=self.clock.now()
        )
        site.lists[new_list.id] = new_list
        return new_list

    def find_list(self, site_path: str, *, list_id: str | None = None, title: str | None = None) -> SpList:
        site = self.site(site_path)
        if list_id is not None:
            found = site.lists.get(list_id.lower().strip("{}"))
        else:
            found = next(
                (
                    candidate
                    for candidate in site.lists.values()
                    if candidate.title.lower() == (title or "").lower()
                ),
                None,
            )
        if found is None:
            raise errors.list_not_found()
        return found

    def list_json(self, site: Site, sp_list: SpList) -> dict[str, Any]:
        return {
            "Id": sp_list.id,
            "Title": sp_list.title,
            "BaseTemplate": sp_list.base_template,
            "ItemCount": len(sp_list.items),
            "Created": sharepoint_time(sp_list.created),
            "ParentWebUrl": site.path,
            "CurrentChangeToken": {"StringValue": self.current_change_token(sp_list)},
        }

    def current_change_token(self, sp_list: SpList) -> str:
        return f"1;3;{sp_list.id};{ticks(self.clock.now())};{self.change_number}"

    # --- items ---------------------------------------------------------------------------------

    def add_item(self, site_path: str, sp_list: SpList, fields: dict[str, Any]) -> Item:
        now = self.clock.now()
        item = Item(id=sp_list.next_item_id, fields=_writable(fields), created=now, modified=now)
        sp_list.next_item_id += 1
        sp_list.items[item.id] = item
        self._record_change(site_path, sp_list, CHANGE_ADD, item.id)
        return item

    def update_item(self, site_path: str, sp_list: SpList, item_id: int, fields: dict[str, Any]) -> None:
        item = self.get_item(sp_list, item_id)
        item.fields.update(_writable(fields))
        item.modified = self.clock.now()
        self._record_change(site_path, sp_list, CHANGE_UPDATE, item_id)

    def delete_item(self, site_path: str, sp_list: SpList, item_id: int) -> None:
        self.get_item(sp_list, item_id)
        del sp_list.items[item_id]
        self._record_change(site_path, sp_list, CHANGE_DELETE, item_id)

    def recycle_item(self, site_path: str, sp_list: SpList, item_id: int) -> str:
        item = self.get_item(sp_list, item_id)
        del sp_list.items[item_id]
        recycled = RecycledItem(str(uuid.uuid4()), site_path, sp_list.id, item)
        self.recycle_bin[recycled.id] = recycled
        self._record_change(site_path, sp_list, CHANGE_DELETE, item_id)
        return recycled.id

    def restore(self, recycle_id: str) -> None:
        recycled = self.recycle_bin.pop(recycle_id.lower().strip("{}"), None)
        if recycled is None:
            raise errors.item_not_found()
        sp_list = self.find_list(recycled.site_path, list_id=recycled.list_id)
        sp_list.items[recycled.item.id] = recycled.item
        self._record_change(recycled.site_path, sp_list, CHANGE_RESTORE, recycled.item.id)

    def get_item(self, sp_list: SpList, item_id: int) -> Item:
        if item_id not in sp_list.items:
            raise errors.item_not_found()
        return sp_list.items[item_id]

    def _record_change(self, site_path: str, sp_list: SpList, change_type: int, item_id: int) -> None:
        self.change_number += 1
        sp_list.changes.append(Change(self.change_number, self.clock.now(), change_type, item_id, sp_list.id))
        self.expire_subscriptions(sp_list)
        for subscription in sp_list.subscriptions.values():
            self.pending.append(PendingNotification(subscription.id, site_path, sp_list.id, due=0.0))

    # --- change log ----------------------------------------------------------------------------

    def get_changes(self, sp_list: SpList, query: dict[str, Any]) -> list[Change]:
        if not query.get("Item"):
            return []
        wanted = {
            code
            for flag, code in (
                ("Add", CHANGE_ADD),
                ("Update", CHANGE_UPDATE),
                ("DeleteObject", CHANGE_DELETE),
                ("Restore", CHANGE_RESTORE),
            )
            if query.get(flag)
        }
        limit = int(query.get("FetchLimit") or query.get("RowLimit") or DEFAULT_FETCH_LIMIT)
        start = (query.get("ChangeTokenStart") or {}).get("StringValue")
        after = self._change_number_after(sp_list, start) if start else 0
        selected = [c for c in sp_list.changes if c.number > after and c.change_type in wanted]
        return selected[:limit]

    def _change_number_after(self, sp_list: SpList, token: str) -> int:
        parts = token.split(";")
        invalid = SharePointError(
            400,
            errors.INVALID_CHANGE_TOKEN,
            "The change token is not valid. It may have expired or been used with another list.",
        )
        if len(parts) != 5 or parts[2].lower() != sp_list.id:
            raise invalid
        try:
            token_ticks, number = int(parts[3]), int(parts[4])
        except ValueError:
            raise invalid from None
        if token_ticks < ticks(self.clock.now() - CHANGE_LOG_RETENTION):
            raise invalid
        return number

    # --- subscriptions -------------------------------------------------------------------------

    def check_subscription_request(self, body: dict[str, Any]) -> tuple[str, datetime, str | None]:
        notification_url = body.get("notificationUrl")
        if not isinstance(notification_url, str) or not notification_url.startswith(("https://", "http://")):
            raise SharePointError(400, errors.ARGUMENT, "The notificationUrl must be an absolute URL.")
        expiration = _parse_time(body.get("expirationDateTime"))
        now = self.clock.now()
        if expiration <= now:
            raise SharePointError(
                400, errors.ARGUMENT_OUT_OF_RANGE, "The expirationDateTime must be in the future."
            )
        if expiration > now + MAX_SUBSCRIPTION_LIFETIME:
            raise SharePointError(
                400,
                errors.ARGUMENT_OUT_OF_RANGE,
                "The expirationDateTime must not be more than 180 days from now.",
            )
        client_state = body.get("clientState")
        if client_state is not None and (not isinstance(client_state, str) or len(client_state) > 255):
            raise SharePointError(400, errors.ARGUMENT, "The clientState is not valid.")
        return notification_url, expiration, client_state

    def add_subscription(
        self, sp_list: SpList, notification_url: str, expiration: datetime, client_state: str | None
    ) -> Subscription:
        subscription = Subscription(str(uuid.uuid4()), sp_list.id, notification_url, expiration, client_state)
        sp_list.subscriptions[subscription.id] = subscription
        return subscription

    def get_subscription(self, sp_list: SpList, subscription_id: str) -> Subscription:
        self.expire_subscriptions(sp_list)
        subscription = sp_list.subscriptions.get(subscription_id.lower().strip("{}"))
        if subscription is None:
            raise errors.subscription_not_found(subscription_id)
        return subscription

    def renew_subscription(self, sp_list: SpList, subscription_id: str, body: dict[str, Any]) -> None:
        subscription = self.get_subscription(sp_list, subscription_id)
        if "expirationDateTime" in body:
            expiration = _parse_time(body["expirationDateTime"])
            now = self.clock.now()
            if not now < expiration <= now + MAX_SUBSCRIPTION_LIFETIME:
                raise SharePointError(
                    400,
                    errors.ARGUMENT_OUT_OF_RANGE,
                    "The expirationDateTime must be in the future and not more than 180 days from now.",
                )
            subscription.expiration = expiration
        if "notificationUrl" in body:
            subscription.notification_url = body["notificationUrl"]

    def delete_subscription(self, sp_list: SpList, subscription_id: str) -> None:
        self.get_subscription(sp_list, subscription_id)
        del sp_list.subscriptions[subscription_id.lower().strip("{}")]

    def find_subscription(self, subscription_id: str) -> tuple[Site, SpList, Subscription] | None:
        for site in self.sites.values():
            for sp_list in site.lists.values():
                if subscription_id in sp_list.subscriptions:
                    return site, sp_list, sp_list.subscriptions[subscription_id]
        return None

    def expire_subscriptions(self, sp_list: SpList) -> None:
        """SharePoint removes a subscription once it has expired."""
        now = self.clock.now()
        for subscription_id in [s.id for s in sp_list.subscriptions.values() if s.expiration <= now]:
            del sp_list.subscriptions[subscription_id]

    # --- access tokens and injected faults -----------------------------------------------------

    def issue_token(self, wall_time: float) -> str:
        token = secrets.token_urlsafe(32)
        self.tokens[token] = wall_time + TOKEN_LIFETIME_SECONDS
        return token

    def token_is_valid(self, token: str, wall_time: float) -> bool:
        expires = self.tokens.get(token)
        return expires is not None and wall_time < expires

    def take_fault(self, operation: str) -> Fault | None:
        for fault in self.faults:
            if fault.operation in ("*", operation) and fault.remaining > 0:
                fault.remaining -= 1
                return fault
        return None


def _writable(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in ("Id", "ID", "__metadata", "odata.type")}


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise SharePointError(400, errors.ARGUMENT, "The expirationDateTime is required.")
    text = value.strip().replace("Z", "+00:00")
    if "." in text:
        # .NET writes up to seven fractional digits; Python reads six.
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise SharePointError(400, errors.ARGUMENT, f"'{value}' is not a valid date and time.") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
