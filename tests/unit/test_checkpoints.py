from datetime import UTC, datetime, timedelta

from functions.core.checkpoints import Checkpoint, CheckpointConflict
from functions.core.sources.sharepoint.reader import commit_sync

LIST = "list-1"
EARLIER = datetime(2026, 1, 1, tzinfo=UTC)
NOW = EARLIER + timedelta(hours=1)


def token(number: int) -> str:
    return f"1;3;{LIST};{636000000000000000 + number};{number}"


def checkpoint(number: int, etag: str, synced: datetime = EARLIER) -> Checkpoint:
    return Checkpoint(LIST, "https://t/sites/x", "sub-1", token(number), synced, etag, "sharepoint")


class RacingCheckpoints:
    """A checkpoint store where another worker moves the checkpoint before our first write."""

    def __init__(self, stored: int, moved_to: int | None = None) -> None:
        self.stored = checkpoint(stored, "etag-1")
        self.moved_to = moved_to
        self.writes: list[tuple[str, datetime]] = []

    def read(self, scope, source):
        return self.stored

    def replace(self, current, change_token, at):
        if self.moved_to is not None:
            self.stored = checkpoint(self.moved_to, "etag-2")
            self.moved_to = None
        if current.etag != self.stored.etag:
            raise CheckpointConflict(LIST)
        self.writes.append((change_token, at))
        self.stored = Checkpoint(
            LIST, current.address, current.subscription_id, change_token, at, current.etag + "+", "sharepoint"
        )
        return self.stored


def test_the_checkpoint_moves_forward_under_its_etag_and_records_the_sync():
    store = RacingCheckpoints(stored=5)
    stored, moved = commit_sync(store, store.read(LIST, "sharepoint"), token(9), NOW)
    assert moved
    assert (stored.cursor, stored.last_synced) == (token(9), NOW)
    assert store.writes == [(token(9), NOW)]


def test_the_checkpoint_never_moves_backwards_but_the_sync_is_still_recorded():
    store = RacingCheckpoints(stored=9)
    stored, moved = commit_sync(store, store.read(LIST, "sharepoint"), token(5), NOW)
    assert not moved
    assert (stored.cursor, stored.last_synced) == (token(9), NOW)
    assert store.writes == [(token(9), NOW)]


def test_the_time_of_the_last_sync_never_moves_backwards_either():
    store = RacingCheckpoints(stored=5)
    store.stored = checkpoint(5, "etag-1", synced=NOW)
    stored, _ = commit_sync(store, store.read(LIST, "sharepoint"), token(9), EARLIER)
    assert stored.last_synced == NOW


def test_after_a_conflict_a_worker_that_is_behind_leaves_the_token_alone():
    store = RacingCheckpoints(stored=5, moved_to=12)
    stored, moved = commit_sync(store, store.read(LIST, "sharepoint"), token(9), NOW)
    assert not moved
    assert stored.cursor == token(12)
    assert store.writes == [(token(12), NOW)]


def test_after_a_conflict_a_worker_that_is_ahead_writes_over_the_new_etag():
    store = RacingCheckpoints(stored=5, moved_to=7)
    stored, moved = commit_sync(store, store.read(LIST, "sharepoint"), token(9), NOW)
    assert moved
    assert stored.cursor == token(9)
    assert store.writes == [(token(9), NOW)]
