"""What the sinks are sent, checked the way Teams and connector endpoints check it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from functions.core.models import ChangeKind, ChangeView
from functions.core.sinks.payloads import MAX_PAYLOAD_BYTES, adaptive_card_messages, message_cards, plain
from local.m365.receivers.cards import adaptive_card_problems, message_card_problem, teams_problems

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def change(n: int, file_name: str | None = None) -> ChangeView:
    return ChangeView(
        id=f"{n:040d}",
        subscription_id="s",
        source="sharepoint",
        site_url="https://contoso.sharepoint.com/sites/x",
        list_id="0b5ea4c5-3c3b-4a0e-9a57-6f0c3c7b1d2e",
        item_id=n,
        change_type=ChangeKind.UPDATE,
        time="2026-11-28T12:00:00Z",
        file_name=file_name,
        server_relative_url=f"/sites/x/Docs/{file_name}" if file_name else None,
    )


def test_a_card_for_a_change_is_valid_against_the_adaptive_card_schema():
    [message] = adaptive_card_messages([change(1), change(2, "plan.docx")])
    assert teams_problems(json.dumps(message).encode()) == (202, [])
    facts = message["attachments"][0]["content"]["body"][1]["facts"]
    assert "ID=1" in facts[0]["value"]
    assert "https://contoso.sharepoint.com/sites/x/Docs/plan.docx" in facts[1]["value"]


def test_the_receiver_refuses_what_teams_refuses():
    assert adaptive_card_problems({"type": "AdaptiveCard", "version": "1.6", "body": []})
    assert adaptive_card_problems({"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "Blink"}]})
    assert teams_problems(b'{"type": "message", "attachments": []}')[0] == 400
    assert message_card_problem(b'{"@type": "MessageCard", "@context": "http://schema.org/extensions"}') == (
        "Summary or Text is required."
    )


def test_untrusted_names_cannot_become_links_or_markup():
    hostile = "[click](https://evil.example) *bold* <img src=x>"
    assert plain(hostile) == r"\[click\]\(https://evil\.example\) \*bold\* \<img src=x\>"
    [message] = adaptive_card_messages([change(1, hostile)])
    title = message["attachments"][0]["content"]["body"][1]["facts"][0]["title"]
    assert r"\[click\]\(https://evil\.example\)" in title


def test_a_large_batch_is_split_so_each_payload_stays_under_28_kb():
    changes = [change(n, f"{'report-' * 20}{n}.docx") for n in range(300)]
    for build in (adaptive_card_messages, message_cards):
        payloads = build(changes)
        assert len(payloads) > 1
        assert all(len(json.dumps(p)) <= MAX_PAYLOAD_BYTES for p in payloads)
        facts = [
            f
            for p in payloads
            for f in (
                p["attachments"][0]["content"]["body"][1]["facts"]
                if "attachments" in p
                else p["sections"][0]["facts"]
            )
        ]
        assert len(facts) == 300
    assert all(teams_problems(json.dumps(m).encode())[0] == 202 for m in adaptive_card_messages(changes))
