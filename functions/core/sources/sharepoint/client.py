"""SharePoint Online list webhooks over REST: subscribe, renew, delete, and read changes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ...auth import TokenProvider
from ...models import format_utc
from ...outbound import DEFAULT_POLICY, RetryPolicy, ServiceThrottle, UpstreamError, new_session, send
from ..base import CursorRejected, SubscriptionGone
from .batch import MAX_BATCH_REQUESTS, BatchAnswer, batch_answers, batch_body
from .models import (
    CurrentChangeToken,
    SharePointChange,
    SharePointChangePage,
    SharePointFieldValuesPage,
    SharePointItemPage,
    SharePointItemVersion,
    SharePointListInfo,
    SharePointListItem,
    SharePointSubscription,
    SharePointSubscriptionRequest,
    SharePointUser,
    SharePointVersionPage,
    SiteListView,
)

if TYPE_CHECKING:
    import requests

SERVICE = "sharepoint"
# SPInvalidChangeTokenException codes (not secrets): the token is older than the change log
# (about 60 days), or belongs to another list. A malformed token is a FormatException.
TOO_OLD_TOKEN_CODE = "-2130575172"  # noqa: S105
OTHER_OBJECTS_TOKEN_CODE = "-2130575173"  # noqa: S105
FORMAT_ERROR = "System.FormatException"
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 2000  # ChangeQuery.FetchLimit's maximum
ITEM_PAGE_SIZE = 1000
MAX_IN_VALUES = 500  # values a CAML `In` takes in SharePoint Online
# SPListTemplateType values of what a subscription is usually made for.
GENERIC_LIST = 100
DOCUMENT_LIBRARY = 101
# Every change type Microsoft's reference sample (ChangeManager.cs) asks for: a query that leaves
# one out silently drops the changes behind those notifications.
CHANGE_QUERY_FLAGS = {
    "Item": True,
    "Add": True,
    "Update": True,
    "DeleteObject": True,
    "Restore": True,
    "Rename": True,
    "Move": True,
    "SystemUpdate": True,
}
_JSON = "application/json;odata=nometadata"


def _values_view(fields: Sequence[str], item_ids: Sequence[int]) -> str:
    """CAML for some items' fields and their editor, in folders too (field names are checked
    internal names)."""
    view_fields = "".join(f"<FieldRef Name='{name}'/>" for name in dict.fromkeys([*fields, "Editor"]))
    values = "".join(f"<Value Type='Counter'>{item_id}</Value>" for item_id in item_ids)
    return (
        f"<View Scope='RecursiveAll'><ViewFields>{view_fields}</ViewFields><Query><Where><In>"
        f"<FieldRef Name='ID'/><Values>{values}</Values></In></Where></Query>"
        f"<RowLimit>{len(item_ids)}</RowLimit></View>"
    )


@dataclass(frozen=True)
class ItemRead:
    """An item as the field read found it: the followed fields' values, and its last editor."""

    values: dict[str, Any]
    editor: SharePointUser | None


@dataclass(frozen=True)
class ItemVersions:
    """What `item_versions` read: the list's versioning switch, and the versions of each item
    still there."""

    enabled: bool
    versions: dict[int, list[SharePointItemVersion]]


class ChangeTokenExpired(Exception):
    """The stored token is older than the list's change log: the changes since cannot be read."""


class ChangeTokenRejected(CursorRejected):
    """SharePoint says the stored token is not this list's, or not a token: a bug, not weather."""


@dataclass(frozen=True)
class ListRef:
    """One SharePoint list: absolute site URL and list id (lower-case GUID)."""

    site_url: str
    list_id: str

    @property
    def api_url(self) -> str:
        return f"{self.site_url}/_api/web/lists('{self.list_id}')"


class SharePointClient:
    def __init__(
        self,
        tokens: TokenProvider,
        *,
        session: requests.Session | None = None,
        policy: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        self._tokens = tokens
        self._session = session or new_session()
        self._policy = policy
        self.throttle = ServiceThrottle()

    def create_subscription(
        self, target: ListRef, *, notification_url: str, expiration: datetime, client_state: str
    ) -> SharePointSubscription:
        body = SharePointSubscriptionRequest(
            resource=target.api_url,
            notification_url=notification_url,
            expiration_date_time=format_utc(expiration),
            client_state=client_state,
        )
        # Not idempotent: a blind retry after a lost response could create a second subscription.
        response = self._send(
            "POST",
            f"{target.api_url}/subscriptions",
            "create subscription",
            json=body.model_dump(by_alias=True),
            idempotent=False,
        )
        return SharePointSubscription.model_validate(response.json())

    def renew_subscription(self, target: ListRef, subscription_id: str, expiration: datetime) -> None:
        self._send_to_subscription(
            "PATCH",
            target,
            subscription_id,
            "renew subscription",
            json={"expirationDateTime": format_utc(expiration)},
        )

    def delete_subscription(self, target: ListRef, subscription_id: str) -> None:
        with contextlib.suppress(SubscriptionGone):
            self._send_to_subscription("DELETE", target, subscription_id, "delete subscription")

    def lists(self, site_url: str) -> list[SiteListView]:
        """The site's visible generic lists and document libraries: what a person picks a
        subscription from (calendars, task lists and the like are left out)."""
        response = self._send(
            "GET",
            f"{site_url}/_api/web/lists?$select=Id,Title,BaseTemplate&$filter=Hidden eq false",
            "list the site's lists",
        )
        found = [SharePointListInfo.model_validate(item) for item in response.json()["value"]]
        return [
            SiteListView(
                id=info.id,
                title=info.title,
                base_template=info.base_template,
                kind="library" if info.base_template == DOCUMENT_LIBRARY else "list",
            )
            for info in found
            if info.base_template in (GENERIC_LIST, DOCUMENT_LIBRARY)
        ]

    def list_title(self, target: ListRef) -> str | None:
        """The list's title, for people; None when it cannot be read (a subscription works
        without it)."""
        try:
            response = self._send("GET", f"{target.api_url}?$select=Title", "read list title")
        except UpstreamError:
            return None
        title = response.json().get("Title")
        return title if isinstance(title, str) else None

    def current_change_token(self, target: ListRef) -> str:
        response = self._send(
            "GET", f"{target.api_url}?$select=CurrentChangeToken", "read current change token"
        )
        return CurrentChangeToken.model_validate(response.json()).current_change_token.string_value

    def fetch_changes(
        self,
        target: ListRef,
        since_token: str,
        *,
        subscription_id: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[list[SharePointChange]]:
        """Pages of item changes after `since_token`, oldest first, until a page comes back short."""
        if not 0 < page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"FetchLimit must be 1 to {MAX_PAGE_SIZE}; got {page_size}")
        token = since_token
        while True:
            query = {
                **CHANGE_QUERY_FLAGS,
                "ChangeTokenStart": {"StringValue": token},
                "FetchLimit": page_size,
            }
            try:
                response = self._send(
                    "POST",
                    f"{target.site_url}/_api/web/lists(guid'{target.list_id}')/GetChanges",
                    "get changes",
                    json={"query": query},
                    subscription_id=subscription_id,
                )
            except UpstreamError as error:
                code = error.code or ""
                if code.startswith(TOO_OLD_TOKEN_CODE):
                    raise ChangeTokenExpired(error.upstream_message) from error
                if code.startswith(OTHER_OBJECTS_TOKEN_CODE) or FORMAT_ERROR in code:
                    raise ChangeTokenRejected(
                        "SharePoint refused the stored change token as not this list's: "
                        f"{code}: {error.upstream_message}"
                    ) from error
                raise
            page = SharePointChangePage.model_validate(response.json()).value
            if page:
                yield page
                token = page[-1].change_token.string_value
            if len(page) < page_size:
                return

    def items_modified_since(
        self, target: ListRef, since: datetime, *, subscription_id: str | None = None
    ) -> Iterator[list[SharePointListItem]]:
        """Pages of the items modified at or after `since` (what a resync can still read)."""
        fields = "Id,Modified,GUID,FileLeafRef,FileRef"
        url: str | None = (
            f"{target.api_url}/items?$select={fields}&$orderby=ID&$top={ITEM_PAGE_SIZE}"
            f"&$filter=Modified ge datetime'{since.strftime('%Y-%m-%dT%H:%M:%SZ')}'"
        )
        while url:
            response = self._send("GET", url, "read items modified since", subscription_id=subscription_id)
            page = SharePointItemPage.model_validate(response.json())
            if page.value:
                yield page.value
            url = page.next_link

    def field_values(
        self,
        target: ListRef,
        item_ids: Sequence[int],
        fields: Sequence[str],
        *,
        subscription_id: str | None = None,
    ) -> dict[int, ItemRead]:
        """The fields' current values of those of the items that still exist, and who last wrote
        each: `GetItems` with a CAML `In` on `ID`, one request per 500 items (the most `In` takes
        in SharePoint Online). `*` keeps the view's fields without naming them (a person field
        named in `$select` is refused); `Editor` comes expanded."""
        found: dict[int, ItemRead] = {}
        for start in range(0, len(item_ids), MAX_IN_VALUES):
            chunk = item_ids[start : start + MAX_IN_VALUES]
            response = self._send(
                "POST",
                f"{target.api_url}/GetItems?$select=*,Editor/Name,Editor/EMail&$expand=Editor",
                "read field values",
                json={"query": {"ViewXml": _values_view(fields, chunk)}},
                subscription_id=subscription_id,
            )
            for item in SharePointFieldValuesPage.model_validate(response.json()).value:
                # A person field comes as its user's id (`OwnerId`): that is its value here.
                values = {name: item.values.get(name, item.values.get(f"{name}Id")) for name in fields}
                found[item.id] = ItemRead(values, item.editor)
        return found

    def item_versions(
        self, target: ListRef, item_ids: Sequence[int], *, subscription_id: str | None = None
    ) -> ItemVersions:
        """Whether the list keeps versions, and each item's versions, oldest first: the list's
        `EnableVersioning` and one `items({id})/versions` per item, in `$batch`es of at most 100
        (SharePoint counts each against the app's budget; the batch saves round trips). An item
        gone meanwhile has none."""
        urls = [f"{target.api_url}?$select=EnableVersioning"] + [
            f"{target.api_url}/items({item_id})/versions" for item_id in item_ids
        ]
        answers: list[BatchAnswer] = []
        for start in range(0, len(urls), MAX_BATCH_REQUESTS):
            content_type, body = batch_body(urls[start : start + MAX_BATCH_REQUESTS], _JSON)
            response = self._send(
                "POST",
                f"{target.site_url}/_api/$batch",
                "read item versions",
                data=body,
                content_type=content_type,
                subscription_id=subscription_id,
            )
            try:
                answers += batch_answers(response.headers.get("Content-Type", ""), response.content)
            except ValueError as error:
                raise UpstreamError(
                    service=SERVICE,
                    operation="read item versions",
                    status=response.status_code,
                    message=str(error),
                ) from None
        listed, *per_item = answers
        if listed.status != 200 or not isinstance(listed.body, dict):
            raise UpstreamError(
                service=SERVICE,
                operation="read item versions",
                status=listed.status,
                message="the list's settings",
            )
        versions: dict[int, list[SharePointItemVersion]] = {}
        for item_id, answer in zip(item_ids, per_item, strict=True):
            if answer.status == 200:
                page = SharePointVersionPage.model_validate(answer.body)
                versions[item_id] = sorted(page.value, key=lambda version: version.number)
        return ItemVersions(bool(listed.body.get("EnableVersioning")), versions)

    def _send_to_subscription(
        self, method: str, target: ListRef, subscription_id: str, operation: str, json: Any = None
    ) -> None:
        url = f"{target.api_url}/subscriptions('{subscription_id}')"
        try:
            self._send(method, url, operation, json=json, subscription_id=subscription_id)
        except UpstreamError as error:
            if error.status == 404:
                raise SubscriptionGone(subscription_id) from error
            raise

    def _send(
        self,
        method: str,
        url: str,
        operation: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
        subscription_id: str | None = None,
        idempotent: bool = True,
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {self._tokens.get_token()}", "Accept": _JSON}
        if json is not None or content_type is not None:
            headers["Content-Type"] = content_type or _JSON
        return send(
            self._session,
            method,
            url,
            service=SERVICE,
            operation=operation,
            subscription_id=subscription_id,
            json=json,
            data=data,
            headers=headers,
            idempotent=idempotent,
            policy=self._policy,
            throttle=self.throttle,
        )
