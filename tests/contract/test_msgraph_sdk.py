"""The emulator's Graph, driven by `msgraph-sdk` as a user's own app drives Microsoft Graph: the SDK
as shipped (its retry handler included), with only its base URL, allowed hosts and credential
pointed at the emulator. Deltas go through the SDK's own `delta` builders, uploads through its
`content.put`, and the error shapes through its `ODataError`."""

from __future__ import annotations

import asyncio
import gc
import uuid
import warnings
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import pytest
import requests
from azure.core.credentials import AccessToken
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.drive_item import DriveItem
from msgraph.generated.models.event import Event
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.subscription import Subscription
from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import (
    DeltaRequestBuilder as EventsDelta,
)
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_item import BatchRequestItem

T = TypeVar("T")


class EmulatorCredential:
    """An async `TokenCredential` holding a token the emulator issued (in Azure: a
    `ClientSecretCredential` or a managed identity)."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(datetime.now(UTC).timestamp()) + 3000)

    async def close(self) -> None:
        pass


def graph_client(emulator_url: str, token: str) -> GraphServiceClient:
    host = urlsplit(emulator_url).hostname or "127.0.0.1"
    auth = AzureIdentityAuthenticationProvider(
        EmulatorCredential(token), scopes=["https://graph.microsoft.com/.default"], allowed_hosts=[host]
    )
    adapter = GraphRequestAdapter(auth)
    adapter.base_url = f"{emulator_url}/v1.0"
    return GraphServiceClient(request_adapter=adapter)


@pytest.fixture
def loop() -> Any:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()
    # After the test, its client and its loop: what the SDK left open is collected here.
    collect_unclosed_error_responses()


@pytest.fixture
def run(loop: asyncio.AbstractEventLoop) -> Any:
    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        return loop.run_until_complete(coroutine)

    return run


@pytest.fixture(scope="module")
def token(emulator_url: str) -> str:
    return requests.post(f"{emulator_url}/_emulator/token", json={}, timeout=10).json()["access_token"]


class Released:
    """The test's client, let go at teardown: pytest keeps a test's fixture values until its
    teardown has ended, after the loop's collection, so the test holds this and not the client."""

    def __init__(self, graph: GraphServiceClient) -> None:
        self.graph: GraphServiceClient | None = graph

    def __getattr__(self, name: str) -> Any:
        return getattr(self.graph, name)


@pytest.fixture
def client(emulator_url: str, token: str, run: Any) -> Iterator[GraphServiceClient]:
    held = Released(graph_client(emulator_url, token))
    yield cast(GraphServiceClient, held)
    assert held.graph is not None
    # The adapter's pooled connections, closed on the loop that opened them.
    run(closed(held.graph))
    held.graph = None


async def closed(graph: GraphServiceClient) -> None:
    await cast(GraphRequestAdapter, graph.request_adapter)._http_client.aclose()


def collect_unclosed_error_responses() -> None:
    """The SDK leaves the connection of a response it raised as an ODataError unclosed (kiota's
    httpx adapter): collected here, quietly, instead of warning in whatever test the garbage
    collector next runs in."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:6]}@contoso.onmicrosoft.com"


def emulator(emulator_url: str, path: str, body: dict[str, Any] | None = None) -> None:
    requests.post(f"{emulator_url}/_emulator/{path}", json=body or {}, timeout=10).raise_for_status()


def test_subscriptions_created_listed_patched_and_deleted(
    run: Any, client: GraphServiceClient, user: str, echo_url: str
) -> None:
    expiry = datetime.now(timezone(timedelta(hours=-5))).replace(microsecond=654321) + timedelta(hours=2)
    created = run(
        client.subscriptions.post(
            Subscription(
                change_type="created,updated",
                notification_url=f"{echo_url}/graph",
                resource=f"users/{user}/mailFolders('inbox')/messages",
                expiration_date_time=expiry,
                client_state="opaque",
            )
        )
    )
    assert created.id and abs(created.expiration_date_time - expiry) < timedelta(seconds=1)
    assert created.id in [s.id for s in run(client.subscriptions.get()).value]

    later = expiry + timedelta(hours=1)
    patched = run(
        client.subscriptions.by_subscription_id(created.id).patch(Subscription(expiration_date_time=later))
    )
    assert abs(patched.expiration_date_time - later) < timedelta(seconds=1)

    run(client.subscriptions.by_subscription_id(created.id).delete())
    assert created.id not in [s.id for s in run(client.subscriptions.get()).value]
    with pytest.raises(ODataError) as gone:
        run(client.subscriptions.by_subscription_id(created.id).get())
    assert gone.value.response_status_code == 404

    whole_mailbox = Subscription(
        change_type="created",
        notification_url=f"{echo_url}/graph",
        resource=f"users/{user}/messages",
        expiration_date_time=datetime.now(UTC) + timedelta(hours=1),
    )
    assert run(client.subscriptions.post(whole_mailbox)).id
    too_long = Subscription(
        **{**vars(whole_mailbox), "expiration_date_time": datetime.now(UTC) + timedelta(days=30)}
    )
    with pytest.raises(ODataError) as refused:
        run(client.subscriptions.post(too_long))
    assert refused.value.response_status_code == 400 and refused.value.error.code == "InvalidRequest"


def test_drive_uploads_and_delta_through_the_sdk(run: Any, client: GraphServiceClient, user: str) -> None:
    drive = run(client.users.by_user_id(user).drive.get())
    items = client.drives.by_drive_id(drive.id).items
    uploaded = run(items.by_drive_item_id("root:/Reports/q4 plan.txt:").content.put(b"draft"))
    assert uploaded.name == "q4 plan.txt" and uploaded.size == 5

    first = run(items.by_drive_item_id("root").delta.get())
    names = [item.name for item in first.value]
    assert "q4 plan.txt" in names and first.odata_delta_link

    run(items.by_drive_item_id(uploaded.id).patch(DriveItem(name="q4 final.txt")))
    changed = run(items.by_drive_item_id("root").delta.with_url(first.odata_delta_link).get())
    assert [item.name for item in changed.value] == ["q4 final.txt"]


def test_messages_and_events_with_their_deltas(run: Any, client: GraphServiceClient, user: str) -> None:
    mailbox = client.users.by_user_id(user)
    inbox_delta = mailbox.mail_folders.by_mail_folder_id("inbox").messages.delta
    start = run(inbox_delta.get())
    while start.odata_next_link:
        start = run(inbox_delta.with_url(start.odata_next_link).get())

    posted = run(
        mailbox.mail_folders.by_mail_folder_id("inbox").messages.post(Message(subject="Quarterly review"))
    )
    draft = run(mailbox.messages.post(Message(subject="A draft", body=ItemBody(content="…"))))
    assert posted.id and draft.id
    changes = run(inbox_delta.with_url(start.odata_delta_link).get())
    assert [m.subject for m in changes.value] == ["Quarterly review"]

    window = EventsDelta.DeltaRequestBuilderGetQueryParameters(
        start_date_time="2026-01-01T00:00:00Z", end_date_time="2027-01-01T00:00:00Z"
    )
    events_delta = mailbox.calendar_view.delta
    first = run(events_delta.get(RequestConfiguration(query_parameters=window)))
    meeting = Event(
        subject="Planning",
        start=DateTimeTimeZone(date_time="2026-12-02T10:00:00", time_zone="UTC"),
        end=DateTimeTimeZone(date_time="2026-12-02T11:00:00", time_zone="UTC"),
    )
    assert run(mailbox.events.post(meeting)).id
    after = run(events_delta.with_url(first.odata_delta_link).get())
    assert [e.subject for e in after.value] == ["Planning"]


def test_a_batch(run: Any, client: GraphServiceClient, user: str, emulator_url: str) -> None:
    drive_request = client.users.by_user_id(user).drive.to_get_request_information()
    post = client.users.by_user_id(user).messages.to_post_request_information(Message(subject="batched"))
    drive_step, post_step = BatchRequestItem(drive_request), BatchRequestItem(post)
    post_step.set_depends_on([drive_step])
    content = BatchRequestContent({drive_step.id: drive_step, post_step.id: post_step})

    # msgraph-core 1.5 may keep each step's absolute URL, which Graph answers with a 400 per step
    # (msgraph-sdk-python issue 1015); the emulator does the same. The workaround users apply:
    if drive_step.url.startswith("http"):
        answers = run(client.batch.post(batch_request_content=content))
        assert set(answers.get_response_status_codes().values()) == {400}
    for step in (drive_step, post_step):
        step.url = step.url.removeprefix(f"{emulator_url}/v1.0")
    answers = run(client.batch.post(batch_request_content=content))
    assert answers.get_response_status_codes() == {drive_step.id: 200, post_step.id: 201}


def test_error_shapes(run: Any, client: GraphServiceClient, emulator_url: str, user: str) -> None:
    drive = run(client.users.by_user_id(user).drive.get())
    with pytest.raises(ODataError) as missing:
        run(client.drives.by_drive_id(drive.id).items.by_drive_item_id("no-such-item").get())
    assert missing.value.response_status_code == 404 and missing.value.error.code == "itemNotFound"

    with pytest.raises(ODataError) as unknown:
        run(
            client.users.by_user_id(user)
            .drive.with_url(f"{emulator_url}/v1.0/users/{user}/noSuchThing")
            .get()
        )
    assert unknown.value.response_status_code == 400 and unknown.value.error.code == "BadRequest"

    stranger = graph_client(emulator_url, "not-a-token")
    with pytest.raises(ODataError) as unauthorized:
        run(stranger.users.by_user_id(user).drive.get())
    run(closed(stranger))
    assert unauthorized.value.response_status_code == 401
    assert unauthorized.value.error.code == "InvalidAuthenticationToken"
    assert unauthorized.value.response_headers.get("www-authenticate").startswith("Bearer ")


def test_throttling_is_retried_after_the_time_graph_names(
    run: Any, client: GraphServiceClient, emulator_url: str, user: str
) -> None:
    run(client.users.by_user_id(user).drive.get())
    emulator(emulator_url, "faults", {"operation": "GetDrive", "status": 429, "retryAfter": 1, "times": 1})
    assert run(client.users.by_user_id(user).drive.get()).id  # the SDK's retry handler waited and retried

    emulator(emulator_url, "faults", {"operation": "GetDrive", "status": 429, "retryAfter": 1, "times": 10})
    try:
        with pytest.raises(ODataError) as throttled:
            run(client.users.by_user_id(user).drive.get())
    finally:
        requests.delete(f"{emulator_url}/_emulator/faults", timeout=10)
    assert throttled.value.response_status_code == 429
    assert throttled.value.response_headers.get("retry-after") == "1"


def test_expired_delta_tokens(run: Any, client: GraphServiceClient, emulator_url: str, user: str) -> None:
    drive = run(client.users.by_user_id(user).drive.get())
    drive_delta = client.drives.by_drive_id(drive.id).items.by_drive_item_id("root").delta
    drive_link = run(drive_delta.get()).odata_delta_link
    inbox_delta = client.users.by_user_id(user).mail_folders.by_mail_folder_id("inbox").messages.delta
    inbox = run(inbox_delta.get())
    while inbox.odata_next_link:
        inbox = run(inbox_delta.with_url(inbox.odata_next_link).get())

    emulator(
        emulator_url, "graph/expire-delta-tokens", {"outlookStatus": 400, "outlookCode": "syncStateNotFound"}
    )
    with pytest.raises(ODataError) as gone:
        run(drive_delta.with_url(drive_link).get())
    assert gone.value.response_status_code == 410 and gone.value.error.code == "resyncRequired"
    with pytest.raises(ODataError) as not_found:
        run(inbox_delta.with_url(inbox.odata_delta_link).get())
    assert not_found.value.response_status_code == 400 and not_found.value.error.code == "syncStateNotFound"


def test_a_subscription_whose_expiry_is_written_to_the_second(
    run: Any, client: GraphServiceClient, user: str, echo_url: str, emulator_url: str
) -> None:
    """kiota writes a datetime without microseconds as `…T12:00:00+00:00`: Graph takes it."""
    validations = requests.get(f"{emulator_url}/_emulator/counters", timeout=10).json()["calls"]
    expiry = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    created = run(
        client.subscriptions.post(
            Subscription(
                change_type="created",
                notification_url=f"{echo_url}/graph",
                resource=f"users/{user}/mailFolders('inbox')/messages",
                expiration_date_time=expiry,
            )
        )
    )
    assert created.id and created.expiration_date_time == expiry
    after = requests.get(f"{emulator_url}/_emulator/counters", timeout=10).json()["calls"]
    assert after["GraphValidateNotificationUrl"] == validations.get("GraphValidateNotificationUrl", 0) + 1
    run(client.subscriptions.by_subscription_id(created.id).delete())
