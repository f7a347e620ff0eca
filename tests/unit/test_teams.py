"""The Teams source without a network: its intake trusts a POST only when its validationTokens
verify (a forged one with the right clientState enqueues nothing and reads nothing), the worker
logs what a notification carries with no Graph call, and a message becomes a row with its author,
counts and a plain-text preview."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from functions.core.change_log import ChangeLog
from functions.core.checkpoints import CheckpointStore
from functions.core.intake import CachedSubscriptionLookup, receive_notifications
from functions.core.models import NotificationMessage
from functions.core.scopes import RowScope
from functions.core.sources.graph_api import GraphClient
from functions.core.sources.teams import Teams
from functions.core.sources.teams.crypto import DecryptionKey, DecryptionKeys
from functions.core.sources.teams.reader import TeamsReader
from functions.core.sources.teams.resources import InvalidTeamsResource, TeamsResource
from functions.core.sources.teams.rows import PREVIEW_CHARS, message_row, plain_text
from functions.core.sources.teams.subscriber import TeamsSubscriber
from functions.core.sources.teams.tokens import SigningKeys, ValidationTokens
from local.certificates import new_teams_certificate
from local.m365.graph import rich
from tests.fakes.intake import SUB_1, MessageList, RecordLookup, record
from tests.fakes.m365 import StaticToken
from tests.fakes.storage import MemoryStorage

APP = str(uuid.uuid4())
TENANT = str(uuid.uuid4())
CHANNEL = f"/teams/{uuid.uuid4()}/channels/19:abc@thread.tacv2/messages"
MESSAGE = {
    "id": "1700000000000",
    "replyToId": None,
    "createdDateTime": "2026-12-07T10:00:00.000Z",
    "lastModifiedDateTime": "2026-12-07T10:00:00.000Z",
    "deletedDateTime": None,
    "from": {"user": {"id": "u-1", "displayName": "Alice"}, "application": None},
    "body": {"contentType": "html", "content": "<p>Hi <at id='0'>Bob</at>,<br>the &lt;plan&gt; is in.</p>"},
    "channelIdentity": {"teamId": "t-1", "channelId": "19:abc@thread.tacv2"},
    "mentions": [{"id": 0}],
    "attachments": [{"id": "a"}, {"id": "b"}],
}


@pytest.fixture(scope="module")
def key() -> DecryptionKey:
    return DecryptionKey.load(new_teams_certificate())


@pytest.fixture(scope="module")
def signer() -> rich.SigningKey:
    return rich.SigningKey()


@pytest.fixture
def teams(key, signer) -> Teams:
    keys = DecryptionKeys([key])
    tokens = ValidationTokens(SigningKeys("https://keys.invalid", fetch=lambda url: signer.jwks()), APP)
    storage = MemoryStorage()
    graph = GraphClient(StaticToken(), "https://graph.example")
    reader = TeamsReader(CheckpointStore(storage), ChangeLog(storage), graph, keys)
    subscriber = TeamsSubscriber(
        graph, keys, "https://hooks.example/teams", "https://hooks.example/lifecycle"
    )
    return Teams(subscriber=subscriber, reader=reader, tokens=tokens, sweep_max_age=timedelta(hours=6))


def entry(key: DecryptionKey, **changes) -> dict:
    return {
        "subscriptionId": SUB_1,
        "clientState": "secret-state",
        "changeType": "created",
        "resource": "teams('t-1')/channels('19:abc@thread.tacv2')/messages('1700000000000')",
        "tenantId": TENANT,
        "encryptedContent": rich.encrypt(MESSAGE, key.certificate_base64, key.certificate_id),
        **changes,
    }


def post(teams: Teams, document: dict):
    lookup = RecordLookup(dataclasses.replace(record(), source="teams"))
    queue = MessageList()
    result = receive_notifications(
        json.dumps(document).encode(),
        subscriptions=CachedSubscriptionLookup(lookup),
        queue=queue,
        kind=teams.entry_kinds["teams"],
    )
    return result, queue, lookup


def test_a_verified_post_is_queued_still_encrypted(teams, key, signer):
    token = signer.validation_token(APP, TENANT)
    result, queue, _ = post(teams, {"value": [entry(key)], "validationTokens": [token]})
    assert (result.accepted, result.rejected) == (1, 0)
    [queued] = NotificationMessage.model_validate_json(queue.messages[0]).notifications
    assert queued.encrypted_content is not None and "plan" not in queue.messages[0]


@pytest.mark.parametrize("tokens", [None, [], ["not.a.jwt"], "forged"])
def test_a_forged_post_with_the_right_client_state_enqueues_and_reads_nothing(teams, key, tokens):
    if tokens == "forged":
        tokens = [rich.SigningKey().validation_token(APP, TENANT)]
    document = {"value": [entry(key)], **({"validationTokens": tokens} if tokens is not None else {})}
    result, queue, lookup = post(teams, document)
    assert (result.accepted, result.rejected, queue.messages, lookup.reads) == (0, 1, [], 0)
    assert "validationTokens" in result.rejections[0][1]


def test_an_entry_of_another_tenant_spliced_in_refuses_the_whole_post(teams, key, signer):
    other = entry(key, tenantId=str(uuid.uuid4()))
    document = {"value": [entry(key), other], "validationTokens": [signer.validation_token(APP, TENANT)]}
    result, queue, _ = post(teams, document)
    assert (result.accepted, result.rejected, queue.messages) == (0, 2, [])


def test_an_unknown_certificate_or_a_missing_content_is_refused_per_entry(teams, key, signer):
    unknown = entry(key)
    unknown["encryptedContent"]["encryptionCertificateId"] = "someone-elses"
    bare = {k: v for k, v in entry(key).items() if k != "encryptedContent"}
    document = {
        "value": [unknown, bare, entry(key)],
        "validationTokens": [signer.validation_token(APP, TENANT)],
    }
    result, _, _ = post(teams, document)
    assert result.accepted == 1
    assert sorted(reason for _, reason in result.rejections) == [
        "malformed entry (encryptedContent)",
        "unknown encryptionCertificateId",
    ]


def test_a_message_row_says_who_wrote_what_where():
    scope = RowScope(SUB_1, "teams", resource=CHANNEL)
    row = message_row(
        scope, MESSAGE, change_type="created", where="#general", keep_preview=True, read_at=datetime.now(UTC)
    )
    assert row["subject"] == "Alice in #general: Hi Bob, the <plan> is in."
    assert (row["changeType"], row["changedBy"], row["changedByKind"]) == ("add", "u-1", "user")
    fields = json.loads(row["fields"])
    assert (fields["mentions"], fields["attachments"], fields["author"]) == (1, 2, "Alice")
    hidden = message_row(
        scope, MESSAGE, change_type="created", where="#general", keep_preview=False, read_at=datetime.now(UTC)
    )
    assert hidden["subject"] == "Alice in #general" and "preview" not in json.loads(hidden["fields"])
    deleted = {
        **MESSAGE,
        "deletedDateTime": "2026-12-07T11:00:00.000Z",
        "lastModifiedDateTime": "2026-12-07T11:00:00.000Z",
    }
    gone = message_row(
        scope, deleted, change_type=None, where=None, keep_preview=True, read_at=datetime.now(UTC)
    )
    assert gone["changeType"] == "delete" and gone["RowKey"] != row["RowKey"]


def test_a_preview_is_plain_and_at_most_280_characters():
    long = {"contentType": "html", "content": "<div>" + "word " * 200 + "</div>"}
    text = plain_text(long)
    assert len(text) == PREVIEW_CHARS and text.endswith("…")
    assert plain_text({"contentType": "text", "content": "  a\n\n b "}) == "a b"
    assert plain_text(None) == ""


def test_resources_are_the_four_graph_allows_and_nothing_else():
    assert TeamsResource.parse(CHANNEL).kind == "channel"
    assert TeamsResource.parse("/chats/19:x_y@unq.gbl.spaces/messages").kind == "chat"
    assert TeamsResource.parse("teams/getAllMessages").kind == "allChannels"
    assert TeamsResource.parse("/chats/getAllMessages").kind == "allChats"
    for bad in (
        "/teams/x/channels/y/messages",
        "/chats/../messages",
        "/teams/getAllMessages?x=1",
        "/users/a/chats",
    ):
        with pytest.raises(InvalidTeamsResource):
            TeamsResource.parse(bad)
