"""`make demo`: the whole SharePoint flow, then OneDrive and Outlook through Graph, on one machine,
step by step, with a summary at the end.

Starts the same stack as `make run`, then acts as a SharePoint user and as an API client.
Exits 0 only if every step did what it should.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from local.clients import EmulatorClient, FunctionsClient
from local.stack import DEFAULT_FUNCTION_KEY, DEFAULT_MASTER_KEY, ROOT, Ports, Stack, describe

SITE = "/sites/demo"
DEMO_USER = "adele@contoso.com"
WAIT_SECONDS = 60


@dataclass
class Step:
    title: str
    ok: bool
    detail: str
    seconds: float


class Tour:
    def __init__(self, stack: Stack) -> None:
        self.emulator = EmulatorClient(stack.emulator_url)
        self.api = FunctionsClient(
            stack.functions_url, key=DEFAULT_FUNCTION_KEY, master_key=DEFAULT_MASTER_KEY
        )
        self.steps: list[Step] = []
        self.list_id = ""
        self.item_id = 0
        self.subscription: dict = {}
        self.drive = ""
        self.drive_subscription: dict = {}
        self.inbox_subscription: dict = {}
        self.team: dict = {}
        self.channel_subscription: dict = {}

    def step(self, title: str, action: Callable[[], str]) -> bool:
        print(f"→ {title} ...", flush=True)
        started = time.monotonic()
        try:
            detail, ok = action(), True
        except Exception as error:  # a failed step is reported, and the tour stops
            detail, ok = f"{type(error).__name__}: {error}", False
        self.steps.append(Step(title, ok, detail, time.monotonic() - started))
        print(f"  {'✔' if ok else '✘'} {detail}", flush=True)
        return ok

    def wait_for_change(self, kind: str, count: int) -> str:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            changes = self.api.changes(self.subscription["id"])
            if len(changes) >= count:
                last = changes[count - 1]
                if (last["changeType"], last["itemId"]) != (kind, self.item_id):
                    raise AssertionError(f"expected {kind} of item {self.item_id}, got {last}")
                return f"GET /api/changes shows '{kind}' of item {self.item_id} ({last['changeToken']})"
            time.sleep(0.25)
        raise TimeoutError(f"no '{kind}' change within {WAIT_SECONDS}s")

    def run(self) -> bool:
        steps = [
            ("Create a list in the SharePoint emulator", self.create_list),
            ("Subscribe through the management API (validation handshake)", self.subscribe),
            ("Add a Teams workflow sink (the emulator's receiver)", self.add_teams_sink),
            ("Add an item", lambda: self.change("add")),
            ("See the Adaptive Card that was posted to Teams", self.show_card),
            ("Update the item", lambda: self.change("update")),
            ("Delete the item", lambda: self.change("delete")),
            ("Renew through the timer (run by the admin API)", self.renew_by_timer),
            ("Delete the subscription", self.unsubscribe),
            ("OneDrive: subscribe to a folder through Graph (two validations)", self.subscribe_drive),
            ("OneDrive: upload a file, see it in the change log", self.upload_file),
            ("Outlook: subscribe to an inbox through Graph", self.subscribe_inbox),
            ("Outlook: a message arrives, see it in the change log", self.receive_message),
            ("Teams: subscribe to a channel, encrypted rich notifications", self.subscribe_channel),
            ("Teams: a message posted, decrypted and logged with no Graph read", self.post_message),
        ]
        return all(self.step(title, action) for title, action in steps)

    def create_list(self) -> str:
        self.list_id = self.emulator.create_list(SITE, f"Demo tasks {datetime.now():%H%M%S}")
        return f"list {self.list_id} on {SITE}"

    def subscribe(self) -> str:
        validations = self.emulator.calls("ValidateNotificationUrl")
        # Expiring within the renewal window, so that the timer has something to renew.
        soon = (datetime.now(UTC) + timedelta(days=7)).isoformat()
        response = self.api.create_subscription(SITE, self.list_id, expirationDateTime=soon)
        if response.status_code != 201:
            raise AssertionError(f"HTTP {response.status_code}: {response.text}")
        self.subscription = response.json()
        if self.emulator.calls("ValidateNotificationUrl") != validations + 1:
            raise AssertionError("SharePoint did not validate the notification URL")
        subscription = self.subscription
        return f"subscription {subscription['id']}, validated, expires {subscription['expirationDateTime']}"

    def add_teams_sink(self) -> str:
        url = self.emulator.receiver_url("teams-workflow", "demo")
        response = self.api.add_sink(self.subscription["id"], "teams-workflow", url)
        if response.status_code != 201:
            raise AssertionError(f"HTTP {response.status_code}: {response.text}")
        return f"sink {response.json()['id']} → {response.json()['url']}"

    def show_card(self) -> str:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            arrived = [r for r in self.emulator.received("teams-workflow", "demo") if r.get("valid")]
            if arrived:
                card = json.loads(arrived[-1]["body"])["attachments"][0]["content"]
                print(json.dumps(card, indent=2), flush=True)
                facts = card["body"][1]["facts"]
                first = facts[0]["title"]
                return f"Adaptive Card {card['version']} (schema-checked), {len(facts)} fact(s): {first}"
            time.sleep(0.25)
        raise TimeoutError(f"no card within {WAIT_SECONDS}s")

    def change(self, kind: str) -> str:
        if kind == "add":
            self.item_id = self.emulator.add_item(SITE, self.list_id, "Write the release notes")
        elif kind == "update":
            self.emulator.update_item(SITE, self.list_id, self.item_id, "Write the release notes (v2)")
        else:
            self.emulator.delete_item(SITE, self.list_id, self.item_id)
        return self.wait_for_change(kind, {"add": 1, "update": 2, "delete": 3}[kind])

    def renew_by_timer(self) -> str:
        before = self.subscription["expirationDateTime"]
        response = self.api.run_function("renew_subscriptions")
        if response.status_code != 202:
            raise AssertionError(f"admin API answered HTTP {response.status_code}")
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            record = self.api.get_subscription(self.subscription["id"]).json()
            if record.get("lastRenewedDateTime"):
                return f"expiry moved from {before} to {record['expirationDateTime']}"
            time.sleep(0.25)
        raise TimeoutError("the timer did not renew the subscription")

    def unsubscribe(self) -> str:
        response = self.api.delete_subscription(self.subscription["id"])
        if response.status_code != 204:
            raise AssertionError(f"HTTP {response.status_code}: {response.text}")
        if any(s["id"] == self.subscription["id"] for s in self.emulator.subscriptions()):
            raise AssertionError("SharePoint still has the subscription")
        return "gone here and at SharePoint"

    def subscribe_graph(self, resource: str, change_type: str) -> dict:
        validations = self.emulator.calls("GraphValidateNotificationUrl")
        response = self.api.create_graph_subscription(resource, change_type)
        if response.status_code != 201:
            raise AssertionError(f"HTTP {response.status_code}: {response.text}")
        if self.emulator.calls("GraphValidateNotificationUrl") != validations + 2:
            raise AssertionError("Graph did not validate both the notification and the lifecycle URL")
        return response.json()

    def wait_for_graph_change(self, subscription_id: str, describe: Callable[[dict], str | None]) -> str:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            for change in self.api.changes(subscription_id):
                if (found := describe(change)) is not None:
                    return found
            time.sleep(0.25)
        raise TimeoutError(f"no change within {WAIT_SECONDS}s")

    def subscribe_drive(self) -> str:
        self.drive = self.emulator.drive_of(DEMO_USER)
        self.drive_subscription = self.subscribe_graph(f"/drives/{self.drive}/root", "updated")
        return describe_subscription(self.drive_subscription)

    def upload_file(self) -> str:
        self.emulator.put_file(self.drive, "Reports/q4.xlsx", b"numbers")
        return self.wait_for_graph_change(
            self.drive_subscription["id"],
            lambda c: f"'{c['changeType']}' of {c['fileName']}" if c.get("fileName") == "q4.xlsx" else None,
        )

    def subscribe_inbox(self) -> str:
        resource = f"/users/{DEMO_USER}/mailFolders('inbox')/messages"
        self.inbox_subscription = self.subscribe_graph(resource, "created,updated,deleted")
        return describe_subscription(self.inbox_subscription)

    def receive_message(self) -> str:
        message = self.emulator.send_to_folder(DEMO_USER, "inbox", "Quarterly numbers are in")
        return self.wait_for_graph_change(
            self.inbox_subscription["id"],
            lambda c: (
                f"'{c['changeType']}' of message '{c['subject']}'" if c.get("itemId") == message else None
            ),
        )

    def subscribe_channel(self) -> str:
        self.team = self.emulator.create_team(f"Demo team {datetime.now():%H%M%S}", ["General"])
        resource = f"/teams/{self.team['id']}/channels/{self.team['channels']['General']}/messages"
        response = self.api.create_teams_subscription(resource)
        if response.status_code != 201:
            raise AssertionError(f"HTTP {response.status_code}: {response.text}")
        self.channel_subscription = response.json()
        return f"{describe_subscription(self.channel_subscription)} ({self.channel_subscription['title']})"

    def post_message(self) -> str:
        author = EmulatorClient(self.emulator.base_url, user=DEMO_USER)
        try:
            message = author.post_channel_message(
                self.team["id"], self.team["channels"]["General"], "<p>The <b>release</b> is out</p>"
            )
        finally:
            author.close()
        reads = self.emulator.calls("ChannelMessagesDelta") + self.emulator.calls("GetChannelMessage")
        found = self.wait_for_graph_change(
            self.channel_subscription["id"],
            lambda c: f"'{c['changeType']}': {c['subject']}" if c.get("itemId") == message else None,
        )
        if self.emulator.calls("ChannelMessagesDelta") + self.emulator.calls("GetChannelMessage") != reads:
            raise AssertionError("the service read the message back from Graph")
        return found

    def summary(self) -> str:
        width = max(len(s.title) for s in self.steps)
        lines = [f"{'step':<{width}}  result  seconds", f"{'-' * width}  ------  -------"]
        lines += [
            f"{s.title:<{width}}  {'ok' if s.ok else 'FAILED':<6}  {s.seconds:7.2f}" for s in self.steps
        ]
        return "\n".join(lines)


def describe_subscription(subscription: dict) -> str:
    return f"subscription {subscription['id']}, expires {subscription['expirationDateTime']}"


def main() -> int:
    stack = Stack(
        ports=Ports(
            functions=int(os.environ.get("FUNCTIONS_PORT", "7071")),
            emulator=int(os.environ.get("M365_EMULATOR_PORT", "7072")),
        ),
        delivery_interval=float(os.environ.get("M365_EMULATOR_DELIVERY_INTERVAL", "1")),
        retry_interval=float(os.environ.get("M365_EMULATOR_RETRY_INTERVAL", "5")),
        log_dir=ROOT / ".run" / "demo",
    )
    print("Starting Azurite, the Microsoft 365 emulator and the local Functions host ...", flush=True)
    with stack:
        print(describe(stack), flush=True)
        tour = Tour(stack)
        passed = tour.run()
        print("\n" + tour.summary())
        print("\nDemo " + ("succeeded." if passed else f"FAILED. Logs: {stack.log_dir}"))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
