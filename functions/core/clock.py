"""The one clock the core reads; every class that needs time takes it as a `clock` to replace
in tests."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)
