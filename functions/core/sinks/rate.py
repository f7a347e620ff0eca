"""Teams throttles a workflow URL above 4 requests a second, counted at Teams, whatever instance
sent them: the slots are handed out in storage, one entity per URL (keyed by its hash, so the
table holds no URL), written under its ETag."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from ..resources import SINK_RATES_TABLE
from ..storage import Storage, TableRepository, outages_reported

MAX_TRIES = 8


class RateGate(TableRepository):
    table_name = SINK_RATES_TABLE

    def __init__(
        self,
        storage: Storage,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(storage)
        self._clock = clock
        self._sleep = sleep

    def wait(self, url: str, per_second: float) -> None:
        """Wait for this URL's next free slot, taken for us in storage."""

        key = hashlib.sha256(url.encode()).hexdigest()[:48]
        interval = 1.0 / per_second
        for _ in range(MAX_TRIES):
            with outages_reported("taking a send slot for a Teams workflow"):
                try:
                    entity = self._table.get_entity("slots", key)
                except ResourceNotFoundError:
                    entity = None
                now = self._clock()
                slot = max(now, float(entity["next"]) if entity else now)
                taken = {"PartitionKey": "slots", "RowKey": key, "next": slot + interval}
                try:
                    if entity is None:
                        self._table.create_entity(taken)
                    else:
                        self._replace_if_unchanged(taken, str(entity.metadata["etag"]))
                except (ResourceExistsError, ResourceModifiedError):
                    continue
            if slot > now:
                self._sleep(slot - now)
            return
        # Many senders at once on one URL: go ahead after one interval rather than fail.
        self._sleep(interval)
