"""Faults tests inject into SharePoint and Graph calls, and the throttling windows they leave."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

# Every operation name a fault may target, registered as the services' endpoints are built: a
# fault naming anything else is refused rather than left waiting for a request that never comes.
KNOWN_OPERATIONS: set[str] = set()


@dataclass
class Fault:
    status: int
    retry_after: int | None
    remaining: int
    operation: str
    # Only requests whose path contains this (e.g. a list id), so that another test's leftover
    # work on another list cannot use up a fault meant for this one.
    path_contains: str = ""
    # With status 200: answer normally, this many seconds late (a slow tenant).
    delay_seconds: float = 0.0
    # Matching requests answered normally before the fault begins (the second page of a read).
    after: int = 0


@dataclass
class ThrottleWindow:
    """After a Retry-After: the same app may not send the same request again before `until`
    (monotonic). After a 429, no request at all: SharePoint and Graph count an app's usage per
    tenant across every endpoint, and "throttle any further requests from that client"."""

    service: str
    operation: str
    path: str
    app_id: str | None
    until: float
    status: int

    @property
    def whole_app(self) -> bool:
        return self.status == 429

    def covers(self, service: str, operation: str, path: str, app_id: str | None) -> bool:
        if (self.service, self.app_id) != (service, app_id):
            return False
        return self.whole_app or (self.operation, self.path) == (operation, path)


class Faults:
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.injected: list[Fault] = []
        self.windows: list[ThrottleWindow] = []
        # Requests that came back inside their own Retry-After window: each was throttled again.
        self.early_retries = 0
        # Any request of an app inside a window that throttles it as a whole (after a 429).
        self.requests_while_throttled = 0

    def add(self, fault: Fault) -> None:
        self.injected.append(fault)

    def take(self, service: str, operation: str, path: str = "", app_id: str | None = None) -> Fault | None:
        """The injected fault this request to `service` (SharePoint or Graph) meets, if any. As in
        SharePoint and Graph, an app that asks again before a Retry-After has passed is answered
        the same again (and counted): after a 429, whatever it asks; after a 503, the same request."""
        now = time.monotonic()
        self.windows = [w for w in self.windows if w.until > now]
        for window in self.windows:
            if window.covers(service, operation, path, app_id):
                if (window.operation, window.path) == (operation, path):
                    self.early_retries += 1
                if window.whole_app:
                    self.requests_while_throttled += 1
                return Fault(window.status, max(1, math.ceil(window.until - now)), 0, operation)
        for fault in self.injected:
            if _matches(fault, operation, path) and fault.remaining > 0:
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.remaining -= 1
                if fault.retry_after is not None:
                    until = now + fault.retry_after
                    self.windows.append(ThrottleWindow(service, operation, path, app_id, until, fault.status))
                return fault
        return None


def _matches(fault: Fault, operation: str, path: str) -> bool:
    return fault.operation in ("*", operation) and fault.path_contains.lower() in path.lower()
