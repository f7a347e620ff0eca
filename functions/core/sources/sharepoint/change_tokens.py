"""SharePoint change tokens: `1;3;{listId};{utcTicks};{changeNumber}` (version;scope;scopeId;...)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

_DOTNET_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


class InvalidChangeToken(ValueError):
    pass


@dataclass(frozen=True, order=True)
class ChangeToken:
    change_number: int
    ticks: int
    value: str = field(compare=False)

    @property
    def time(self) -> datetime:
        """When SharePoint issued the token (its ticks are 100 ns since 0001-01-01 UTC)."""
        return _DOTNET_EPOCH + timedelta(microseconds=self.ticks // 10)

    @property
    def row_key(self) -> str:
        """A table RowKey that sorts like the token: zero-padded change number, then ticks."""
        return f"{self.change_number:020d}-{self.ticks:020d}"


def parse_change_token(value: str) -> ChangeToken:
    parts = value.split(";")
    if len(parts) != 5:
        raise InvalidChangeToken(f"not a SharePoint change token: {value!r}")
    try:
        ticks, number = int(parts[3]), int(parts[4])
    except ValueError:
        raise InvalidChangeToken(f"not a SharePoint change token: {value!r}") from None
    if ticks < 0 or number < 0:
        raise InvalidChangeToken(f"not a SharePoint change token: {value!r}")
    return ChangeToken(change_number=number, ticks=ticks, value=value)
