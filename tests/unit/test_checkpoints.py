from functions.core.checkpoints import Checkpoint, CheckpointConflict, advance_checkpoint

LIST = "list-1"


def token(number: int) -> str:
    return f"1;3;{LIST};{636000000000000000 + number};{number}"


class RacingCheckpoints:
    """A checkpoint store where another worker moves the checkpoint before our first write."""

    def __init__(self, stored: int, moved_to: int | None = None) -> None:
        self.stored = Checkpoint(LIST, token(stored), "etag-1")
        self.moved_to = moved_to
        self.writes: list[str] = []

    def read(self, list_id):
        return self.stored

    def advance(self, checkpoint, change_token):
        if self.moved_to is not None:
            self.stored = Checkpoint(LIST, token(self.moved_to), "etag-2")
            self.moved_to = None
        if checkpoint.etag != self.stored.etag:
            raise CheckpointConflict(LIST)
        self.writes.append(change_token)
        self.stored = Checkpoint(LIST, change_token, checkpoint.etag + "+")
        return self.stored


def test_the_checkpoint_moves_forward_under_its_etag():
    store = RacingCheckpoints(stored=5)
    checkpoint, ours = advance_checkpoint(store, store.read(LIST), token(9))
    assert ours and checkpoint.change_token == token(9)
    assert store.writes == [token(9)]


def test_the_checkpoint_never_moves_backwards():
    store = RacingCheckpoints(stored=9)
    checkpoint, ours = advance_checkpoint(store, store.read(LIST), token(5))
    assert not ours and checkpoint.change_token == token(9)
    assert store.writes == []


def test_after_a_conflict_a_worker_that_is_behind_leaves_the_checkpoint_alone():
    store = RacingCheckpoints(stored=5, moved_to=12)
    checkpoint, ours = advance_checkpoint(store, store.read(LIST), token(9))
    assert not ours and checkpoint.change_token == token(12)
    assert store.writes == []


def test_after_a_conflict_a_worker_that_is_ahead_writes_over_the_new_etag():
    store = RacingCheckpoints(stored=5, moved_to=7)
    checkpoint, ours = advance_checkpoint(store, store.read(LIST), token(9))
    assert ours and checkpoint.change_token == token(9)
    assert store.writes == [token(9)]
