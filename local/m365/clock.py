"""The emulator's clock, and the times SharePoint and Graph write and read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_DOTNET_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


class Clock:
    """Real time plus an offset that tests can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


def ticks(moment: datetime) -> int:
    """.NET ticks (100 ns since 0001-01-01 UTC), as SharePoint writes them in change tokens."""
    delta = moment - _DOTNET_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def parse_time(value: str) -> datetime:
    """An ISO 8601 time as both services read one: `Z` or an offset such as `+02:00`, and up to
    seven fractional digits (.NET writes seven; Python keeps six). Naive when it names no zone;
    ValueError when it is not a time."""
    return datetime.fromisoformat(value.strip())
