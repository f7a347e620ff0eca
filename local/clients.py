"""HTTP clients for the two local services, shared by tests, `make demo` and the benchmarks."""

from __future__ import annotations

from typing import Any

import httpx


def notification_entry(subscription_id: str, *, site_url: str, **fields: str) -> dict[str, str]:
    """One entry of a SharePoint webhook POST, shaped like the overview doc's example."""
    return {
        "subscriptionId": subscription_id,
        "clientState": "x",
        "expirationDateTime": "2026-04-30T17:27:00.0000000Z",
        "resource": "b9f6f714-9df8-470b-b22e-653855e1c181",
        "tenantId": "00000000-0000-0000-0000-000000000000",
        "siteUrl": site_url,
        "webId": "dbc5a806-e4d4-46e5-951c-6344d70b62fa",
        **fields,
    }


EDITOR_CLIENT_ID = "00000000-0000-0000-0000-0000000000e1"


class EmulatorClient:
    """Acts as a SharePoint user (lists, items) and as a test harness (`/_emulator/`). Its writes
    are app-only (its own app, not the service's), or a delegated `user`'s."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, user: str | None = None) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=timeout)
        self.user = user
        self._token: str | None = None
        self._tenants: list[EmulatorClient] = []

    def close(self) -> None:
        for client in self._tenants:
            client.close()
        self.http.close()

    def _auth(self) -> dict[str, str]:
        if self._token is None:
            # A person's edits, not the service app's: SharePoint and Graph throttle per app, so a
            # 429 the service meets must not hold back the changes a test makes.
            grant = {"client_id": EDITOR_CLIENT_ID} | ({"user": self.user} if self.user else {})
            token = self.http.post("/_emulator/token", json=grant)
            self._token = token.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}", "Accept": "application/json;odata=nometadata"}

    def sharepoint(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(
            method, path, headers={**self._auth(), **kwargs.pop("headers", {})}, **kwargs
        )

    def _ok(self, response: httpx.Response) -> httpx.Response:
        response.raise_for_status()
        return response

    def create_list(self, site: str, title: str) -> str:
        response = self.sharepoint(
            "POST", f"{site}/_api/web/lists", json={"Title": title, "BaseTemplate": 100}
        )
        return self._ok(response).json()["Id"]

    def create_list_with_id(self, site: str, title: str, list_id: str) -> str:
        """A list keeping an id it had in another tenant (a migrated site)."""
        body = {"site": site, "title": title, "id": list_id}
        return self._ok(self.http.post("/_emulator/lists", json=body)).json()["Id"]

    def create_library(self, site: str, title: str) -> tuple[str, str]:
        """A document library: its id and its root folder's server-relative URL."""
        response = self.sharepoint(
            "POST", f"{site}/_api/web/lists", json={"Title": title, "BaseTemplate": 101}
        )
        body = self._ok(response).json()
        return body["Id"], body["RootFolder"]["ServerRelativeUrl"]

    def upload(self, site: str, folder: str, name: str, content: bytes = b"hello") -> dict[str, Any]:
        response = self.sharepoint(
            "POST",
            f"{site}/_api/web/GetFolderByServerRelativeUrl('{folder}')/Files/add(url='{name}',overwrite=true)",
            content=content,
        )
        return self._ok(response).json()

    def add_folder(self, site: str, parent: str, name: str) -> dict[str, Any]:
        response = self.sharepoint(
            "POST", f"{site}/_api/web/GetFolderByServerRelativeUrl('{parent}')/Folders/add('{name}')"
        )
        return self._ok(response).json()

    def file_call(self, site: str, path: str, call: str) -> httpx.Response:
        """CheckOut(), CheckIn(comment='',checkintype=1), moveto(newurl='…',flags=1), recycle()."""
        return self._ok(
            self.sharepoint("POST", f"{site}/_api/web/GetFileByServerRelativeUrl('{path}')/{call}")
        )

    def rename_file(self, site: str, path: str, new_name: str) -> None:
        self._ok(
            self.sharepoint(
                "POST",
                f"{site}/_api/web/GetFileByServerRelativeUrl('{path}')/ListItemAllFields",
                json={"FileLeafRef": new_name},
                headers={"X-HTTP-Method": "MERGE", "IF-MATCH": "*"},
            )
        )

    def delete_file(self, site: str, path: str) -> None:
        self._ok(self.sharepoint("DELETE", f"{site}/_api/web/GetFileByServerRelativeUrl('{path}')"))

    def add_item(self, site: str, list_id: str, title: str, **fields: Any) -> int:
        body = {"Title": title, **fields}
        response = self.sharepoint("POST", f"{site}/_api/web/lists('{list_id}')/items", json=body)
        return self._ok(response).json()["Id"]

    def update_item(
        self, site: str, list_id: str, item_id: int, title: str | None = None, **fields: Any
    ) -> None:
        body = ({"Title": title} if title is not None else {}) | fields
        self._ok(
            self.sharepoint(
                "POST",
                f"{site}/_api/web/lists('{list_id}')/items({item_id})",
                json=body,
                headers={"X-HTTP-Method": "MERGE", "IF-MATCH": "*"},
            )
        )

    def delete_item(self, site: str, list_id: str, item_id: int) -> None:
        self._ok(self.sharepoint("DELETE", f"{site}/_api/web/lists('{list_id}')/items({item_id})"))

    def recycle_item(self, site: str, list_id: str, item_id: int) -> str:
        response = self.sharepoint("POST", f"{site}/_api/web/lists('{list_id}')/items({item_id})/recycle()")
        return self._ok(response).json()["value"]

    def restore(self, site: str, recycle_id: str) -> None:
        self._ok(self.sharepoint("POST", f"{site}/_api/web/RecycleBin('{recycle_id}')/restore()"))

    def deliver(self) -> dict[str, int]:
        return self._ok(self.http.post("/_emulator/deliver")).json()

    def counters(self) -> dict[str, Any]:
        return self._ok(self.http.get("/_emulator/counters")).json()

    def calls(self, operation: str) -> int:
        return self.counters()["calls"].get(operation, 0)

    def early_retries(self) -> int:
        """Requests that came back before their Retry-After had passed (each throttled again)."""
        return int(self.counters()["earlyRetries"])

    def requests_while_throttled(self) -> int:
        """Requests of any kind an app sent inside the Retry-After of a 429 (each throttled)."""
        return int(self.counters()["requestsWhileThrottled"])

    def inject_fault(
        self,
        operation: str,
        status: int,
        *,
        retry_after: int | None = None,
        times: int = 1,
        path_contains: str = "",
        delay_seconds: float = 0.0,
        after: int = 0,
    ) -> None:
        body: dict[str, Any] = {
            "operation": operation,
            "status": status,
            "times": times,
            "pathContains": path_contains,
            "delaySeconds": delay_seconds,
            "after": after,
        }
        if retry_after is not None:
            body["retryAfter"] = retry_after
        self._ok(self.http.post("/_emulator/faults", json=body))

    def clear_faults(self) -> None:
        self._ok(self.http.delete("/_emulator/faults"))

    # --- Microsoft Graph, as a user of OneDrive and Outlook, and Graph's test controls ----------

    def graph(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": self._auth()["Authorization"], **kwargs.pop("headers", {})}
        return self.http.request(method, f"/v1.0{path}", headers=headers, **kwargs)

    def drive_of(self, user: str) -> str:
        return self._ok(self.graph("GET", f"/users/{user}/drive")).json()["id"]

    def put_file(self, drive: str, path: str, content: bytes = b"hello") -> dict[str, Any]:
        return self._ok(self.graph("PUT", f"/drives/{drive}/root:/{path}:/content", content=content)).json()

    def update_drive_item(self, drive: str, item: str, **changes: Any) -> dict[str, Any]:
        return self._ok(self.graph("PATCH", f"/drives/{drive}/items/{item}", json=changes)).json()

    def delete_drive_item(self, drive: str, item: str) -> None:
        self._ok(self.graph("DELETE", f"/drives/{drive}/items/{item}"))

    def send_to_folder(self, user: str, folder: str, subject: str) -> str:
        response = self.graph(
            "POST", f"/users/{user}/mailFolders('{folder}')/messages", json={"subject": subject}
        )
        return self._ok(response).json()["id"]

    def create_event(self, user: str, subject: str) -> str:
        body = {
            "subject": subject,
            "start": {"dateTime": "2026-12-01T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-01T10:00:00", "timeZone": "UTC"},
        }
        return self._ok(self.graph("POST", f"/users/{user}/events", json=body)).json()["id"]

    def update_outlook(self, user: str, collection: str, item: str, **changes: Any) -> None:
        self._ok(self.graph("PATCH", f"/users/{user}/{collection}/{item}", json=changes))

    def delete_outlook(self, user: str, collection: str, item: str) -> None:
        self._ok(self.graph("DELETE", f"/users/{user}/{collection}/{item}"))

    # --- Teams: a user's messages (delegated, as Graph requires), and the test controls ---------

    def create_team(self, name: str, channels: list[str]) -> dict[str, Any]:
        return self._ok(
            self.http.post("/_emulator/teams", json={"displayName": name, "channels": channels})
        ).json()

    def post_channel_message(self, team: str, channel: str, html: str, reply_to: str | None = None) -> str:
        path = f"/teams/{team}/channels/{channel}/messages" + (f"/{reply_to}/replies" if reply_to else "")
        body = {"body": {"contentType": "html", "content": html}}
        return self._ok(self.graph("POST", path, json=body)).json()["id"]

    def edit_channel_message(self, team: str, channel: str, message: str, html: str) -> None:
        body = {"body": {"contentType": "html", "content": html}}
        self._ok(self.graph("PATCH", f"/teams/{team}/channels/{channel}/messages/{message}", json=body))

    def delete_channel_message(self, team: str, channel: str, message: str) -> None:
        self._ok(self.graph("POST", f"/teams/{team}/channels/{channel}/messages/{message}/softDelete"))

    def spoil_rich_notifications(self, fault: str, times: int = 1) -> None:
        self._ok(self.http.post("/_emulator/teams/faults", json={"fault": fault, "times": times}))

    def grant_app_roles(self, roles: list[str], app_id: str | None = None) -> None:
        self._ok(self.http.post("/_emulator/graph/permissions", json={"appId": app_id, "roles": roles}))

    def graph_subscriptions(self) -> list[dict[str, Any]]:
        return self._ok(self.http.get("/_emulator/graph/subscriptions")).json()["value"]

    def graph_lifecycle(self, subscription_id: str, event: str) -> dict[str, Any]:
        body = {"subscriptionId": subscription_id, "lifecycleEvent": event}
        return self._ok(self.http.post("/_emulator/graph/lifecycle", json=body)).json()

    def expire_delta_tokens(self, outlook_status: int = 410, outlook_code: str = "resyncRequired") -> None:
        """Every delta link issued so far is refused; Outlook's with `outlook_status` (as an
        expired Outlook token may answer 400 syncStateNotFound, without a Location)."""
        body = {"outlookStatus": outlook_status, "outlookCode": outlook_code}
        self._ok(self.http.post("/_emulator/graph/expire-delta-tokens", json=body))

    def delay_graph_notifications(self, seconds: float, subscription_id: str | None = None) -> None:
        """Graph holds new notifications back (all, or one subscription's) for `seconds`."""
        body = {"seconds": seconds, "subscriptionId": subscription_id}
        self._ok(self.http.post("/_emulator/graph/delay", json=body))

    # --- connector receivers --------------------------------------------------------------------

    def receiver_url(self, kind: str, name: str) -> str:
        return f"{self.base_url}/_receivers/{kind}/{name}"

    def received(self, kind: str, name: str) -> list[dict[str, Any]]:
        return self._ok(self.http.get(f"/_receivers/{kind}/{name}")).json()["value"]

    def receiver_behaviour(self, kind: str, name: str, **behaviour: Any) -> None:
        self._ok(self.http.post(f"/_receivers/{kind}/{name}/behaviour", json=behaviour))

    def receiver_requires_token(self, kind: str, name: str) -> None:
        self._ok(self.http.post(f"/_receivers/{kind}/{name}/require-token"))

    def receiver_secret(self, name: str, secret: str) -> None:
        self._ok(self.http.post(f"/_receivers/webhook/{name}/secret", json={"secret": secret}))

    def withhold(self, subscription_id: str, withhold: bool = True) -> None:
        """That subscription's notifications are no longer sent (SharePoint or Graph)."""
        body = {"subscriptionId": subscription_id, "withhold": withhold}
        self._ok(self.http.post("/_emulator/withhold", json=body))

    def advance_clock(self, seconds: float) -> None:
        self._ok(self.http.post("/_emulator/clock", json={"advanceSeconds": seconds}))

    def set_clock_offset(self, seconds: float) -> None:
        self._ok(self.http.post("/_emulator/clock", json={"offsetSeconds": seconds}))

    def accept_expired_change_tokens(self, accept: bool) -> None:
        self._ok(self.http.post("/_emulator/quirks", json={"acceptExpiredChangeTokens": accept}))

    def omit_change_editors(self, omit: bool) -> None:
        """GetChanges leaves Editor and EditorEmailHint empty, as SharePoint often does."""
        self._ok(self.http.post("/_emulator/quirks", json={"omitChangeEditors": omit}))

    def drop_subscription(self, subscription_id: str) -> None:
        self._ok(self.http.delete(f"/_emulator/subscriptions/{subscription_id}"))

    def subscriptions(self) -> list[dict[str, Any]]:
        return self._ok(self.http.get("/_emulator/subscriptions")).json()["value"]

    def add_tenant(self, display_name: str) -> dict[str, str]:
        """A guest tenant: `{"id", "displayName", "sharePointUrl"}`."""
        return self._ok(self.http.post("/_emulator/tenants", json={"displayName": display_name})).json()

    def in_tenant(self, tenant_id: str) -> EmulatorClient:
        """The same harness, acting in a guest tenant (its SharePoint, its Graph data, its faults);
        closed with this one."""
        client = EmulatorClient(f"{self.base_url}/_tenants/{tenant_id}", user=self.user)
        self._tenants.append(client)
        return client

    def admin_answers(self, answer: str) -> None:
        """How this tenant's administrator answers a consent prompt: accept or deny."""
        self._ok(self.http.post("/_emulator/consent", json={"answer": answer}))

    def revoke_consent(self, app_id: str) -> None:
        """This tenant's administrator deletes the app's service principal."""
        self._ok(self.http.post("/_emulator/consent/revoke", json={"appId": app_id}))


class FunctionsClient:
    """The service's own HTTP surface, through the local host, with a function key."""

    def __init__(
        self, base_url: str, *, key: str | None, master_key: str | None = None, timeout: float = 30.0
    ):
        self.base_url = base_url
        self.master_key = master_key
        headers = {"x-functions-key": key} if key else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def create_subscription(self, site_url: str, list_id: str, **extra: Any) -> httpx.Response:
        return self.http.post("/api/subscriptions", json={"siteUrl": site_url, "listId": list_id, **extra})

    def create_graph_subscription(self, resource: str, change_type: str) -> httpx.Response:
        body = {"source": "graph", "resource": resource, "changeType": change_type}
        return self.http.post("/api/subscriptions", json=body)

    def create_teams_subscription(self, resource: str, **extra: Any) -> httpx.Response:
        return self.http.post("/api/subscriptions", json={"source": "teams", "resource": resource, **extra})

    def add_sink(self, subscription_id: str, sink_type: str, url: str, **extra: Any) -> httpx.Response:
        body = {"type": sink_type, "url": url, **extra}
        return self.http.post(f"/api/subscriptions/{subscription_id}/sinks", json=body)

    def sinks(self, subscription_id: str) -> list[dict[str, Any]]:
        response = self.http.get(f"/api/subscriptions/{subscription_id}/sinks")
        response.raise_for_status()
        return response.json()["value"]

    def list_subscriptions(self, **params: Any) -> httpx.Response:
        return self.http.get("/api/subscriptions", params=params)

    def all_subscriptions(self, top: int = 1000) -> list[dict[str, Any]]:
        """Every subscription, following nextLink page by page."""
        listed: list[dict[str, Any]] = []
        response = self.list_subscriptions(top=top)
        while True:
            page = response.raise_for_status().json()
            listed.extend(page["value"])
            if "nextLink" not in page:
                return listed
            response = self.http.get(page["nextLink"])

    def get_subscription(self, subscription_id: str) -> httpx.Response:
        return self.http.get(f"/api/subscriptions/{subscription_id}")

    def renew_subscription(self, subscription_id: str) -> httpx.Response:
        return self.http.post(f"/api/subscriptions/{subscription_id}/renew")

    def delete_subscription(self, subscription_id: str) -> httpx.Response:
        return self.http.delete(f"/api/subscriptions/{subscription_id}")

    def changes(self, subscription_id: str, *, top: int = 100) -> list[dict[str, Any]]:
        """Every change of the subscription, following `nextLink` to the end."""
        response = self.http.get("/api/changes", params={"subscriptionId": subscription_id, "top": top})
        changes: list[dict[str, Any]] = []
        while True:
            response.raise_for_status()
            body = response.json()
            changes.extend(body["value"])
            if "nextLink" not in body:
                return changes
            response = self.http.get(body["nextLink"])

    def onboard_tenant(self, tenant_id: str, display_name: str, sharepoint_url: str) -> httpx.Response:
        body = {"tenantId": tenant_id, "displayName": display_name, "sharePointUrl": sharepoint_url}
        return self.http.post("/api/tenants", json=body)

    def tenants(self) -> list[dict[str, Any]]:
        return self.http.get("/api/tenants").raise_for_status().json()["value"]

    def tenant(self, tenant_id: str) -> httpx.Response:
        return self.http.get(f"/api/tenants/{tenant_id}")

    def remove_tenant(self, tenant_id: str) -> httpx.Response:
        return self.http.delete(f"/api/tenants/{tenant_id}")

    def run_function(self, name: str, payload: str = "") -> httpx.Response:
        return self.http.post(
            f"/admin/functions/{name}",
            json={"input": payload},
            headers={"x-functions-key": self.master_key or ""},
        )
