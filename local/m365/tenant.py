"""One Microsoft 365 tenant: what SharePoint and Graph share (the clock, the app tokens, injected
faults, call counters) and each service's own state."""

from __future__ import annotations

import uuid
from collections import Counter

from .clock import Clock
from .faults import Faults
from .graph.rich import SigningKey
from .graph.state import GraphTenant
from .sharepoint.state import SharePointState
from .tokens import Tokens


class Tenant:
    def __init__(self, tenant_id: str | None = None, signing_key: SigningKey | None = None) -> None:
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.display_name = "Contoso"
        self.tokens = Tokens()
        self.clock = Clock()
        self.faults = Faults()
        self.sharepoint = SharePointState(self.tenant_id, self.clock)
        self.graph = GraphTenant(self.tenant_id, signing_key)
        self.reset()

    def reset(self) -> None:
        """Forget every site, list, drive, mailbox, subscription, fault and counter (issued tokens
        stay valid)."""
        self.clock.offset = Clock().offset
        self.faults.clear()
        self.calls: Counter[str] = Counter()
        self.delivery: Counter[str] = Counter()
        # Subscriptions whose notifications are never sent (SharePoint or Graph): changes happen,
        # nothing announces them, as when a subscription goes quiet at the source.
        self.withheld: set[str] = set()
        self.sharepoint.reset()
        self.graph.reset()
