"""Read leases remembered per instance, against a real Azurite: a lease this instance last wrote is
not read again before the next read, and one another instance changed meanwhile is found stale by
its ETag and read again, so the decisions stay those the stored lease gives."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from functions.core.checkpoints import CheckpointStore
from functions.core.read_leases import Outcome, ReadCoordinator, ReadLeaseStore
from functions.core.settings import StorageSettings
from functions.core.storage import Storage


def instance(stack) -> tuple[ReadLeaseStore, ReadCoordinator]:
    leases = ReadLeaseStore(Storage(StorageSettings(connection_string=stack.connection_string)))
    return leases, ReadCoordinator(leases, clock=lambda: datetime.now(UTC), pause=lambda seconds: None)


def test_a_lease_changed_by_another_instance_is_read_again_and_decides_as_stored(stack):
    scope = f"remembered-{uuid.uuid4().hex[:8]}"
    leases_a, instance_a = instance(stack)
    _, instance_b = instance(stack)
    before_any = datetime.now(UTC) - timedelta(seconds=5)

    assert instance_a.read("sharepoint", scope, before_any, lambda: "a").outcome is Outcome.READ
    remembered = leases_a.read(scope, "sharepoint")  # from memory: A wrote it last
    assert remembered.etag is not None and remembered.holder is None

    notified = datetime.now(UTC)
    assert instance_b.read("sharepoint", scope, notified, lambda: "b").outcome is Outcome.READ
    # A still remembers its own release; B's read began after `notified`: the stored lease covers
    # it, and A finds that out when its write under the old ETag fails.
    assert leases_a.read(scope, "sharepoint").etag == remembered.etag
    assert instance_a.read("sharepoint", scope, notified, lambda: "a again").outcome is Outcome.COVERED


def test_the_reads_checkpoint_write_records_its_notification_without_a_write_of_its_own(stack):
    checkpoints = CheckpointStore(Storage(StorageSettings(connection_string=stack.connection_string)))
    scope = f"noted-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).replace(microsecond=0)
    checkpoints.start(
        scope, address="/sites/x", subscription_id="s", cursor="c1", at=now, source="sharepoint"
    )
    checkpoints.note_notification(scope, now, "sharepoint")
    read = checkpoints.read(scope, "sharepoint")
    assert read is not None
    checkpoints.replace(read, "c2", now)
    stored = checkpoints.read(scope, "sharepoint")
    assert stored is not None and stored.last_notification == now
    checkpoints.flush_notification(scope, "sharepoint")  # nothing left to record: no write
    assert checkpoints.read(scope, "sharepoint").etag == stored.etag  # type: ignore[union-attr]
