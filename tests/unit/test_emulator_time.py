"""How the emulator reads the times clients write: `Z`, an offset such as `+02:00`, and the seven
fractional digits .NET writes, as SharePoint and Graph read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from local.m365.clock import parse_time
from local.m365.graph.errors import GraphError
from local.m365.graph.rules import expiration_of
from local.m365.sharepoint.errors import SharePointError
from local.m365.sharepoint.subscriptions import parse_sharepoint_time as sharepoint_time_of

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T10:00:00Z", datetime(2026, 12, 1, 10, 0, tzinfo=UTC)),
        ("2026-12-01T12:00:00+02:00", datetime(2026, 12, 1, 10, 0, tzinfo=UTC)),
        ("2026-12-01T10:00:00.1234567Z", datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-12-01T12:00:00.123456+02:00", datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-12-01T12:00:00.1234567+02:00", datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_every_form_names_the_same_instant(text, expected):
    assert parse_time(text) == expected
    assert sharepoint_time_of(text) == expected
    assert expiration_of(text, "message", NOW) == expected


def test_a_time_written_by_python_with_a_zone_is_what_graph_accepts():
    written = (NOW + timedelta(days=2)).astimezone(timezone(timedelta(hours=2))).isoformat()
    assert written.endswith("+02:00")
    assert expiration_of(written, "message", NOW) == NOW + timedelta(days=2)
    precise = datetime.now(UTC) + timedelta(days=1, microseconds=7)
    assert expiration_of(precise.isoformat(), "message", datetime.now(UTC)) == precise


def test_sharepoint_reads_a_time_without_a_zone_as_utc_and_graph_refuses_it():
    assert sharepoint_time_of("2026-12-01T10:00:00") == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    with pytest.raises(GraphError, match="time zone"):
        expiration_of("2026-12-01T10:00:00", "message", NOW)


@pytest.mark.parametrize("text", ["tomorrow", "2026-13-01T00:00:00Z", ""])
def test_what_is_not_a_time_is_refused_with_each_services_error(text):
    with pytest.raises(SharePointError):
        sharepoint_time_of(text)
    with pytest.raises(GraphError):
        expiration_of(text, "message", NOW)
