import base64
import json
import uuid

import pytest

from functions.core import intake
from functions.core.errors import PayloadTooLarge
from functions.core.intake import (
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    MAX_LOOKUPS_PER_REQUEST,
    MAX_MESSAGE_JSON_BYTES,
    BadNotificationRequest,
    CachedSubscriptionLookup,
    Deadline,
    receive_notifications,
)
from functions.core.models import NotificationMessage
from functions.core.sources.sharepoint import NOTIFICATION_ENTRIES
from functions.core.storage import StorageUnavailable
from functions.core.validation import InvalidValidationToken, checked_validation_token, find_validation_token
from tests.fakes.intake import SUB_1, SUB_2, MessageList, RecordLookup, record

STRANGER = "5f0d8a57-58b6-4d4c-a7c3-0c9a3d1e3e11"

# Verbatim from the SharePoint webhooks overview, with our subscription id and state.
DOC_ENTRY = {
    "subscriptionId": SUB_1,
    "clientState": "secret-state",
    "expirationDateTime": "2016-04-30T17:27:00.0000000Z",
    "resource": "b9f6f714-9df8-470b-b22e-653855e1c181",
    "tenantId": "00000000-0000-0000-0000-000000000000",
    "siteUrl": "/",
    "webId": "dbc5a806-e4d4-46e5-951c-6344d70b62fa",
}


def body(*entries) -> bytes:
    return json.dumps({"value": list(entries)}).encode()


def receive(payload: bytes, lookup=None, queue=None):
    lookup = CachedSubscriptionLookup(lookup or RecordLookup(record()))
    queue = queue if queue is not None else MessageList()
    return receive_notifications(payload, subscriptions=lookup, queue=queue, kind=NOTIFICATION_ENTRIES), queue


def test_validation_token_is_found_whatever_the_casing_of_its_name():
    assert find_validation_token({"validationtoken": "a"}) == "a"
    assert find_validation_token({"validationToken": "b"}) == "b"
    assert find_validation_token({"VALIDATIONTOKEN": "c"}) == "c"
    assert find_validation_token({"other": "x"}) is None


def test_validation_token_is_echoed_unchanged_when_it_is_plain_text():
    token = "Validation: Testing client application reachability for subscription Request-Id: 1 <b>"
    assert checked_validation_token(token) == token


@pytest.mark.parametrize(
    "token", ["", "x" * 1025, "abc\r\nSet-Cookie: a=b", "tab\there", "nul\x00", "del\x7f"]
)
def test_hostile_validation_tokens_are_refused(token):
    with pytest.raises(InvalidValidationToken):
        checked_validation_token(token)


def test_the_documented_notification_is_accepted_and_queued_as_one_message():
    result, queue = receive(body(DOC_ENTRY))
    assert (result.accepted, result.rejected, result.messages) == (1, 0, 1)
    message = NotificationMessage.model_validate_json(queue.messages[0])
    assert message.notifications[0].subscription_id == SUB_1
    assert message.notifications[0].resource == DOC_ENTRY["resource"]


def test_the_queue_message_never_carries_the_client_state():
    _, queue = receive(body(DOC_ENTRY))
    assert "secret-state" not in queue.messages[0]
    assert "clientState" not in queue.messages[0]


def test_a_wrong_client_state_is_rejected_and_nothing_is_queued():
    result, queue = receive(body({**DOC_ENTRY, "clientState": "guess"}))
    assert (result.accepted, result.rejected) == (0, 1)
    assert result.rejections == [(SUB_1, "clientState does not match")]
    assert queue.messages == []


@pytest.mark.parametrize("state", [None, "absent"])
def test_a_missing_or_null_client_state_is_parsed_but_does_not_match_a_secret(state):
    entry: dict[str, str | None] = dict(DOC_ENTRY)
    if state == "absent":
        del entry["clientState"]
    else:
        entry["clientState"] = None
    result, _ = receive(body(entry))
    assert result.rejections == [(SUB_1, "clientState does not match")]


def test_an_unknown_subscription_is_rejected():
    result, queue = receive(body({**DOC_ENTRY, "subscriptionId": STRANGER}))
    assert result.rejections == [(STRANGER, "unknown subscription")]
    assert queue.messages == []


def test_a_mixed_batch_queues_the_good_entries_and_counts_the_bad_ones():
    lookup = RecordLookup(record(SUB_1, "s1"), record(SUB_2, "s2", list_id="list-2"))
    payload = body(
        {**DOC_ENTRY, "subscriptionId": SUB_1, "clientState": "s1"},
        {**DOC_ENTRY, "subscriptionId": SUB_2, "clientState": "wrong"},
        {**DOC_ENTRY, "subscriptionId": SUB_2, "clientState": "s2"},
        {"subscriptionId": SUB_1},
        "not an object",
    )
    result, queue = receive(payload, lookup)
    assert (result.accepted, result.rejected, result.messages) == (2, 3, 1)
    queued = NotificationMessage.model_validate_json(queue.messages[0]).notifications
    assert [n.subscription_id for n in queued] == [SUB_1, SUB_2]
    assert result.rejections[1][1].startswith("malformed entry")


def test_a_subscription_id_that_is_not_a_guid_is_refused_without_a_lookup():
    lookup = RecordLookup(record())
    result, _ = receive(body({**DOC_ENTRY, "subscriptionId": "x" * 5000}), lookup)
    assert result.rejections[0][1] == "malformed entry (subscriptionId)"
    assert lookup.reads == 0


def test_an_upper_case_subscription_id_finds_its_lower_case_record():
    result, _ = receive(body({**DOC_ENTRY, "subscriptionId": SUB_1.upper()}))
    assert result.accepted == 1


def test_timestamps_with_seven_fractional_digits_are_read():
    result, _ = receive(body({**DOC_ENTRY, "expirationDateTime": "2026-04-30T17:27:00.1234567Z"}))
    assert result.accepted == 1


@pytest.mark.parametrize(
    "payload", [b"{not json", b"\xff\xfe", b"[]", b'{"value": []}', b'{"value": {}}', b'"text"', b""]
)
def test_malformed_json_or_a_wrong_shape_is_a_bad_request(payload):
    with pytest.raises(BadNotificationRequest):
        receive(payload)


def test_a_body_over_one_mebibyte_is_refused_before_parsing():
    with pytest.raises(PayloadTooLarge):
        receive(b" " * (MAX_BODY_BYTES + 1))


def test_storage_trouble_surfaces_as_storage_unavailable():
    with pytest.raises(StorageUnavailable):
        receive(body(DOC_ENTRY), queue=MessageList(unavailable=True))


def test_a_batch_too_large_for_one_queue_message_is_split_below_the_64_kib_limit():
    # Non-ASCII site names: the limit is in bytes, not characters.
    entries = [{**DOC_ENTRY, "siteUrl": f"/sites/{'é' * 450}{i}"} for i in range(200)]
    result, queue = receive(body(*entries))
    assert result.accepted == 200
    assert result.messages == len(queue.messages) > 1
    for message in queue.messages:
        assert len(message.encode()) <= MAX_MESSAGE_JSON_BYTES
        assert len(base64.b64encode(message.encode())) <= 64 * 1024
    queued = [n for m in queue.messages for n in NotificationMessage.model_validate_json(m).notifications]
    assert len(queued) == 200


def test_the_lookup_cache_reads_a_known_subscription_once():
    store = RecordLookup(record())
    lookup = CachedSubscriptionLookup(store)
    assert lookup.get(SUB_1) is lookup.get(SUB_1)
    assert store.reads == 1


def test_the_lookup_cache_remembers_a_miss_only_briefly():
    store = RecordLookup()
    remembering = CachedSubscriptionLookup(store)
    assert remembering.get("new") is None
    assert remembering.get("new") is None
    assert store.reads == 1
    forgetting = CachedSubscriptionLookup(store, miss_ttl_seconds=0)
    assert forgetting.get("new") is None
    store.records["new"] = record("new")
    assert forgetting.get("new") is not None


NESTED = b"[" * 5000 + b"]" * 5000
HUGE_INTEGER = b'{"value": [' + b"1" * 4301 + b"]}"


@pytest.mark.parametrize(
    "payload", [NESTED, HUGE_INTEGER, b'{"value": [' + NESTED + b"]}"], ids=["nested", "int", "deep"]
)
def test_hostile_json_is_a_bad_request_not_a_crash(payload):
    with pytest.raises(BadNotificationRequest):
        receive(payload)


def test_nesting_past_the_limit_is_refused_the_same_on_every_python():
    """Python 3.13's parser reads 5,000 brackets that 3.11's refuses: the limit is ours, not its."""
    entry = json.dumps(DOC_ENTRY).encode()
    filler = b"[" * (MAX_JSON_DEPTH - 2) + b"]" * (MAX_JSON_DEPTH - 2)  # the envelope and value: 2 more
    at_limit = b'{"value": [' + entry + b", " + filler + b"]}"
    past_it = at_limit.replace(b"[[", b"[[[", 1).replace(b"]]", b"]]]", 1)
    result, _ = receive(at_limit)
    assert result.accepted == 1
    with pytest.raises(BadNotificationRequest, match="nested deeper than 32"):
        receive(past_it)


@pytest.mark.parametrize("field", ["clientState", "tenantId", "siteUrl", "resource", "webId"])
def test_a_lone_surrogate_in_any_field_rejects_that_entry_and_queues_nothing(field):
    payload = json.dumps({"value": [{**DOC_ENTRY, field: "a" + chr(0xD800) + "b"}]}).encode()
    assert b"\\ud800" in payload  # JSON's escape, which json.loads turns into a lone surrogate
    result, queue = receive(payload)
    assert (result.accepted, result.rejected) == (0, 1)
    assert result.rejections[0][1] == f"malformed entry ({field})"
    assert queue.messages == []


def test_repeated_and_unknown_ids_cost_a_bounded_number_of_reads():
    store = RecordLookup(record())
    unknown = [str(uuid.UUID(int=n)) for n in range(1, 2001)]
    entries = [DOC_ENTRY] * 500 + [{**DOC_ENTRY, "subscriptionId": sid} for sid in unknown]
    result, queue = receive(body(*entries), store)
    assert store.reads == MAX_LOOKUPS_PER_REQUEST
    assert result.storage_reads == MAX_LOOKUPS_PER_REQUEST
    assert (result.accepted, result.rejected) == (500, 2000)
    reasons = {reason for _, reason in result.rejections}
    assert reasons == {
        "unknown subscription",
        "not looked up (too many unknown subscriptions in one request)",
    }
    assert len(queue.messages) >= 1
    summary = result.summary()
    assert summary.startswith("500 accepted, 2000 rejected: ")
    assert summary.count("e.g.") == 2  # one sample list per reason, not a line per entry


def test_the_known_subscription_is_read_first_even_behind_many_unknown_ones():
    # The budget is spent in order; a repeated known id is read once and then cached.
    store = RecordLookup(record())
    lookup = CachedSubscriptionLookup(store)
    lookup.get(SUB_1)
    unknown = [{**DOC_ENTRY, "subscriptionId": str(uuid.UUID(int=n))} for n in range(1, 100)]
    result, _ = receive_with(lookup, body(*unknown, DOC_ENTRY))
    assert result.accepted == 1


def test_an_entry_too_large_for_a_queue_message_is_rejected_and_the_rest_queued(monkeypatch):
    # Entries are bounded field by field, so only a smaller limit shows the rule at work.
    monkeypatch.setattr(intake, "MAX_MESSAGE_JSON_BYTES", 600)
    oversized = {**DOC_ENTRY, "siteUrl": "/sites/" + "é" * 300}  # 600 bytes in UTF-8
    result, queue = receive(body(oversized, DOC_ENTRY))
    assert (result.accepted, result.rejected) == (1, 1)
    assert result.rejections[0][1] == "too large for a queue message"
    assert all(len(m.encode()) <= 600 for m in queue.messages)


def test_the_storage_budget_turns_a_slow_store_into_storage_unavailable():
    ticks = iter(range(100))
    deadline = Deadline(2.0, clock=lambda: float(next(ticks)))  # every check is a second later
    lookup = CachedSubscriptionLookup(RecordLookup(record()))
    entries = [{**DOC_ENTRY, "subscriptionId": str(uuid.UUID(int=n))} for n in range(1, 10)]
    with pytest.raises(StorageUnavailable, match="storage budget"):
        receive_notifications(
            body(*entries),
            subscriptions=lookup,
            queue=MessageList(),
            deadline=deadline,
            kind=NOTIFICATION_ENTRIES,
        )


def receive_with(lookup, payload: bytes):
    queue = MessageList()
    return receive_notifications(payload, subscriptions=lookup, queue=queue, kind=NOTIFICATION_ENTRIES), queue


def test_with_a_configured_tenant_entries_naming_another_are_refused_before_any_read():
    ours = {**DOC_ENTRY, "tenantId": "A1B2C3D4-0000-0000-0000-000000000001"}
    foreign = {**DOC_ENTRY, "subscriptionId": SUB_2, "tenantId": str(uuid.uuid4())}
    lookup = RecordLookup(record(SUB_1), record(SUB_2))
    queue = MessageList()
    result = receive_notifications(
        body(ours, foreign),
        subscriptions=CachedSubscriptionLookup(lookup),
        queue=queue,
        kind=NOTIFICATION_ENTRIES,
        tenant_id="a1b2c3d4-0000-0000-0000-000000000001",
    )
    assert (result.accepted, result.rejected) == (1, 1)
    assert result.rejections == [(SUB_2, "another tenant's")]
    assert "1 another tenant's" in result.summary()
    assert lookup.reads == 1


def test_a_burst_repeating_one_entry_is_accepted_whole_and_queued_once():
    """SharePoint sends an entry per change: the worker needs each distinct entry once."""
    lookup = RecordLookup(record())
    queue = MessageList()
    result = receive_notifications(
        body(*[DOC_ENTRY] * 100, {**DOC_ENTRY, "resource": "another-list"}),
        subscriptions=CachedSubscriptionLookup(lookup),
        queue=queue,
        kind=NOTIFICATION_ENTRIES,
    )
    assert (result.accepted, result.rejected, result.messages, lookup.reads) == (101, 0, 1, 1)
    [message] = [NotificationMessage.model_validate_json(m) for m in queue.messages]
    assert [n.resource for n in message.notifications] == [DOC_ENTRY["resource"], "another-list"]
