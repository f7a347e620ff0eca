"""SharePoint and Graph in memory, at the wire: `requests`-session stand-ins that answer the calls
the service's own clients make, with the shapes and error codes the emulator (and Microsoft 365)
use. The fast tier runs the real clients, readers and subscribers against them; the emulator and
the end-to-end tests check the same paths over HTTP.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import requests

from functions.core.outbound import RetryPolicy
from functions.core.scopes import ticks
from local.m365.sharepoint import caml, lookups
from local.m365.sharepoint.errors import SharePointError
from local.m365.sharepoint.model import SHAREPOINT_APP, SYSTEM_ACCOUNT, SiteUser

# No waiting between retries in the fast tier.
NO_WAIT = RetryPolicy(max_attempts=3, base_delay=0.0, max_retry_after=30)
TOO_OLD_TOKEN = "-2130575172, Microsoft.SharePoint.SPInvalidChangeTokenException"
OTHER_OBJECTS_TOKEN = "-2130575173, Microsoft.SharePoint.SPInvalidChangeTokenException"


def response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer.headers.update(headers or {})
    answer._content = b"" if body is None else json.dumps(body).encode()
    return answer


class Session:
    """Routes each request to a handler; `fail_next` answers the next matching calls with an error
    first (`(status, body, headers)`)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.faults: list[tuple[str, tuple[int, Any, dict[str, str]]]] = []

    def fail_next(self, path_contains: str, status: int, body: Any = None, **headers: str) -> None:
        self.faults.append((path_contains, (status, body, headers)))

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.requests.append((method, url))
        for index, (contains, (status, body, headers)) in enumerate(self.faults):
            if contains in url:
                del self.faults[index]
                return response(status, body, headers)
        if urlsplit(url).path.endswith("/_api/$batch"):
            return self._batch(
                kwargs.get("data") or b"", (kwargs.get("headers") or {}).get("Content-Type", "")
            )
        return self.handle(method, url, kwargs.get("json"))

    def handle(self, method: str, url: str, body: Any) -> requests.Response:
        raise NotImplementedError

    def _batch(self, body: bytes, content_type: str) -> requests.Response:
        """SharePoint's `$batch` of GETs: each run as its own request, answered in one multipart."""
        boundary = content_type.split("boundary=", 1)[1]
        parts = []
        for chunk in body.decode().split(f"--{boundary}")[1:]:
            if chunk.startswith("--"):
                break
            request_line = next(line for line in chunk.splitlines() if line.startswith("GET "))
            answer = self.handle("GET", request_line.split(" ")[1], None)
            parts.append(
                f"--batchresponse\r\nContent-Type: application/http\r\n\r\n"
                f"HTTP/1.1 {answer.status_code} X\r\nCONTENT-TYPE: application/json\r\n\r\n{answer.text}\r\n"
            )
        answer = response(200)
        answer._content = ("".join(parts) + "--batchresponse--\r\n").encode()
        answer.headers["Content-Type"] = "multipart/mixed; boundary=batchresponse"
        return answer

    def count(self, contains: str) -> int:
        return sum(1 for _, url in self.requests if contains in url)


def sharepoint_error(status: int, code: str, message: str) -> requests.Response:
    return response(status, {"odata.error": {"code": code, "message": {"lang": "en-US", "value": message}}})


@dataclass
class FakeList:
    id: str
    title: str
    base_template: int = 100
    # (change number, ticks, change type, item id)
    changes: list[tuple[int, int, int, int]] = field(default_factory=list)
    items: dict[int, datetime] = field(default_factory=dict)
    # The items' field values, as GetItems answers them.
    values: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Change number -> SP.ChangeItem's Editor and EditorEmailHint, where SharePoint gave them.
    editors: dict[int, tuple[str, str | None]] = field(default_factory=dict)
    # Item -> who last wrote it (its Editor field), as GetItems expands it.
    item_editors: dict[int, SiteUser] = field(default_factory=dict)
    # False: GetChanges names no editor, as SharePoint often answers (sp-dev-docs issue 10017).
    log_names_editors: bool = True
    # Change numbers below this are gone from the change log.
    log_starts_at: int = 0
    # Each item's versions, oldest first, as `items({id})/versions` lists them (newest first).
    versions: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    enable_versioning: bool = True
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)


def site_user(claim: str, email: str | None) -> SiteUser:
    """The item's Editor for a change's editor: an app-only write is SharePoint App."""
    if claim.startswith("i:0i.t|"):
        return SHAREPOINT_APP
    return SiteUser(7, (email or claim).split("@")[0], claim, email or "")


def _editor(editor: tuple[str, str | None] | None) -> dict[str, str]:
    if editor is None:
        return {}
    claim, email = editor
    return {"Editor": claim} | ({"EditorEmailHint": email} if email else {})


class FakeSharePoint(Session):
    """One tenant: lists, their change logs and subscriptions."""

    def __init__(
        self, tenant_url: str = "https://contoso.sharepoint.com", clock: Callable[[], datetime] | None = None
    ):
        super().__init__()
        self.tenant_url = tenant_url
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lists: dict[str, FakeList] = {}
        self._numbers = itertools.count(1)
        self._item_ids = itertools.count(1)

    # --- what a person does ----------------------------------------------------------------------

    def create_list(self, title: str = "Tasks", base_template: int = 100) -> str:
        list_id = str(uuid.uuid4())
        self.lists[list_id] = FakeList(list_id, title, base_template)
        return list_id

    def change(
        self,
        list_id: str,
        change_type: int = 1,
        item_id: int | None = None,
        *,
        editor: tuple[str, str | None] | None = None,
        **values: Any,
    ) -> int:
        """Record a change (1 add, 2 update, 3 delete), by `editor` (Editor, EditorEmailHint) if
        given, setting the given field values; returns the item id."""
        item = item_id if item_id is not None else next(self._item_ids)
        now = self.clock()
        fake = self.lists[list_id]
        number = next(self._numbers)
        fake.changes.append((number, ticks(now), change_type, item))
        if editor is not None:
            fake.editors[number] = editor
            fake.item_editors[item] = site_user(*editor)
        if change_type == 3:
            fake.items.pop(item, None)
            fake.values.pop(item, None)
        else:
            fake.items[item] = now
            fake.values[item] = {**fake.values.get(item, {}), **values}
        if change_type in (1, 2):
            kept = fake.versions.get(item, []) if fake.enable_versioning else []
            who = fake.item_editors.get(item, SYSTEM_ACCOUNT)
            version = {
                **fake.values[item],
                "Created": now.isoformat().replace("+00:00", "Z"),
                "VersionLabel": f"{len(fake.versions.get(item, [])) + 1}.0",
                "Editor": {"LookupId": who.id, "LookupValue": who.title, "Email": who.email},
            }
            fake.versions[item] = [*kept, version]
        return item

    def forget_changes_before_now(self, list_id: str) -> None:
        """The change log no longer reaches back to any token issued so far."""
        self.lists[list_id].log_starts_at = next(self._numbers)

    def token(self, list_id: str, number: int | None = None) -> str:
        changes = self.lists[list_id].changes
        last = number if number is not None else (changes[-1][0] if changes else 0)
        return f"1;3;{list_id};{ticks(self.clock())};{last}"

    # --- what the REST API answers ---------------------------------------------------------------

    def handle(self, method: str, url: str, body: Any) -> requests.Response:
        path = unquote(urlsplit(url).path)
        found = re.search(r"lists(?:\('|\(guid')([0-9a-f-]+)'\)", path)
        fake = self.lists.get(found.group(1)) if found else None
        if path.endswith("/_api/web/lists") and method == "GET":
            return response(
                200,
                {
                    "value": [
                        {"Id": x.id, "Title": x.title, "BaseTemplate": x.base_template}
                        for x in self.lists.values()
                    ]
                },
            )
        if fake is None:
            return sharepoint_error(404, "-1, System.ArgumentException", "List does not exist.")
        if path.endswith("/versions"):
            item = int(path.rsplit("/items(", 1)[1].split(")", 1)[0])
            if item not in fake.items:
                return sharepoint_error(404, "-2147024809, System.ArgumentException", "Item does not exist.")
            history = fake.versions.get(item, [])
            return response(
                200, {"value": [{**v, "IsCurrentVersion": n == 0} for n, v in enumerate(reversed(history))]}
            )
        if "EnableVersioning" in url:
            return response(200, {"EnableVersioning": fake.enable_versioning})
        if path.endswith("/GetChanges"):
            return self._get_changes(fake, body["query"])
        if path.endswith("/GetItems") and method == "POST":
            return self._get_items(fake, body["query"], parse_qs(urlsplit(url).query))
        if path.endswith("/subscriptions") and method == "POST":
            return self._subscribe(fake, body)
        subscription = re.search(r"/subscriptions\('([^']+)'\)$", path)
        if subscription:
            return self._subscription(fake, method, subscription.group(1), body)
        if path.endswith("/items"):
            return self._items(fake, url)
        if url.endswith("?$select=Title"):
            return response(200, {"Title": fake.title})
        if "CurrentChangeToken" in url:
            return response(200, {"CurrentChangeToken": {"StringValue": self.token(fake.id)}})
        return sharepoint_error(404, "-1, Microsoft.SharePoint.Client.ResourceNotFoundException", path)

    def _get_items(
        self, fake: FakeList, query: dict[str, Any], parameters: dict[str, list[str]]
    ) -> requests.Response:
        """The emulator's CAML and `$select`/`$expand` reading (local/m365/sharepoint/caml.py and
        lookups.py), over these items."""
        try:
            parsed = caml.parse(query.get("ViewXml"))
            projection = lookups.parse(
                ",".join(parameters.get("$select", [])), ",".join(parameters.get("$expand", []))
            )
        except SharePointError as error:
            return sharepoint_error(error.status, error.code, error.message)
        found = sorted(i for i in fake.items if parsed.ids is None or i in parsed.ids)
        values = []
        for i in found:
            editor = fake.item_editors.get(i, SYSTEM_ACCOUNT)
            whole = {"Id": i, "ID": i, **fake.values[i], "AuthorId": editor.id, "EditorId": editor.id}
            people = {"Author": editor, "Editor": editor}
            values.append(lookups.apply(projection, caml.view(whole, parsed.view_fields), people))
        return response(200, {"value": values})

    def _get_changes(self, fake: FakeList, query: dict[str, Any]) -> requests.Response:
        parts = query["ChangeTokenStart"]["StringValue"].split(";")
        if len(parts) != 5 or not parts[4].isdigit():
            return sharepoint_error(
                400, "-1, System.FormatException", "Input string was not in a correct format."
            )
        if parts[2] != fake.id:
            return sharepoint_error(
                400, OTHER_OBJECTS_TOKEN, "The change token refers to a different object."
            )
        after = int(parts[4])
        if after < fake.log_starts_at - 1:
            return sharepoint_error(400, TOO_OLD_TOKEN, "The change token you specified is too old.")
        limit = int(query.get("FetchLimit", 1000))
        page = [c for c in fake.changes if c[0] > after][:limit]
        return response(
            200,
            {
                "value": [
                    {
                        "ChangeToken": {"StringValue": f"1;3;{fake.id};{stamp};{number}"},
                        "ChangeType": kind,
                        "ItemId": item,
                        "Time": (
                            datetime(1, 1, 1, tzinfo=UTC) + timedelta(microseconds=stamp // 10)
                        ).isoformat(),
                    }
                    | (_editor(fake.editors.get(number)) if fake.log_names_editors else {})
                    for number, stamp, kind, item in page
                ]
            },
        )

    def _items(self, fake: FakeList, url: str) -> requests.Response:
        query = parse_qs(urlsplit(url).query)
        found = re.search(r"datetime'([^']+)'", query["$filter"][0])
        assert found is not None, "the client filters items by Modified"
        since = datetime.fromisoformat(found.group(1))
        value = [
            {"Id": item, "Modified": modified.isoformat(), "GUID": str(uuid.UUID(int=item))}
            for item, modified in sorted(fake.items.items())
            if modified >= since
        ]
        return response(200, {"value": value})

    def _subscribe(self, fake: FakeList, body: dict[str, Any]) -> requests.Response:
        subscription = {**body, "id": str(uuid.uuid4())}
        fake.subscriptions[subscription["id"]] = subscription
        return response(201, subscription)

    def _subscription(
        self, fake: FakeList, method: str, subscription_id: str, body: Any
    ) -> requests.Response:
        if subscription_id not in fake.subscriptions:
            return sharepoint_error(404, "-1, Microsoft.SharePoint.Client.ResourceNotFoundException", "gone")
        if method == "DELETE":
            del fake.subscriptions[subscription_id]
        elif method == "PATCH":
            fake.subscriptions[subscription_id].update(body)
        return response(204)


@dataclass
class FakeDriveItem:
    id: str
    name: str
    modified: datetime
    created: datetime
    deleted: bool = False


class FakeGraph(Session):
    """One drive (`/drives/{id}/root`) per resource, with delta links that count changes."""

    def __init__(self, base_url: str = "https://graph.example", clock: Callable[[], datetime] | None = None):
        super().__init__()
        self.base_url = base_url
        self.clock = clock or (lambda: datetime.now(UTC))
        self.items: dict[str, FakeDriveItem] = {}
        # Every change as (sequence, item id); a delta link names the sequence it has read up to.
        self.journal: list[tuple[int, str]] = []
        self._sequence = itertools.count(1)
        # Links below this sequence are refused with expired_answer.
        self.links_valid_from = 0
        self.expired_answer = (410, "resyncRequired")
        self.subscriptions: dict[str, dict[str, Any]] = {}

    def put(self, name: str, item_id: str | None = None) -> str:
        now = self.clock()
        item = self.items.get(item_id or "")
        if item is None:
            item = FakeDriveItem(item_id or uuid.uuid4().hex[:12], name, now, now)
            self.items[item.id] = item
        else:
            item.name, item.modified = name, now
        self.journal.append((next(self._sequence), item.id))
        return item.id

    def delete(self, item_id: str) -> None:
        self.items[item_id].deleted = True
        self.journal.append((next(self._sequence), item_id))

    def expire_links(self, status: int = 410, code: str = "resyncRequired") -> None:
        """Every link issued so far is refused: 410 with a Location, or (Outlook) another 4xx."""
        self.links_valid_from = next(self._sequence)
        self.expired_answer = (status, code)

    def handle(self, method: str, url: str, body: Any) -> requests.Response:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        if parts.path.endswith("/delta"):
            return self._delta(parts.path, query)
        if parts.path == "/v1.0/subscriptions" and method == "POST":
            created = {**body, "id": str(uuid.uuid4())}
            self.subscriptions[created["id"]] = created
            return response(201, created)
        found = re.fullmatch(r"/v1\.0/subscriptions/([^/]+)(/reauthorize)?", parts.path)
        if found and found.group(1) in self.subscriptions:
            subscription = self.subscriptions[found.group(1)]
            if method == "DELETE":
                del self.subscriptions[found.group(1)]
                return response(204)
            if method == "PATCH":
                subscription.update(body)
            return response(200, subscription) if not found.group(2) else response(204)
        return response(404, {"error": {"code": "itemNotFound", "message": "not found", "innerError": {}}})

    def _delta(self, path: str, query: dict[str, list[str]]) -> requests.Response:
        last = self.journal[-1][0] if self.journal else 0
        link = f"{self.base_url}{path}?token="
        if query.get("token") == ["latest"]:
            return response(200, {"value": [], "@odata.deltaLink": f"{link}{last}"})
        after = int(query["token"][0]) if "token" in query else -1
        if 0 <= after < self.links_valid_from:
            status, code = self.expired_answer
            headers = {"Location": f"{self.base_url}{path}"} if status == 410 else {}
            return response(
                status, {"error": {"code": code, "message": "Resync required.", "innerError": {}}}, headers
            )
        changed = dict.fromkeys(item for sequence, item in self.journal if sequence > after)
        value = [self._item_json(self.items[item]) for item in changed]
        return response(200, {"value": value, "@odata.deltaLink": f"{link}{last}"})

    def _item_json(self, item: FakeDriveItem) -> dict[str, Any]:
        if item.deleted:
            return {"id": item.id, "deleted": {"state": "deleted"}}
        return {
            "id": item.id,
            "name": item.name,
            "file": {},
            "createdDateTime": item.created.isoformat().replace("+00:00", "Z"),
            "lastModifiedDateTime": item.modified.isoformat().replace("+00:00", "Z"),
        }


class StaticToken:
    def get_token(self) -> str:
        return "token"
