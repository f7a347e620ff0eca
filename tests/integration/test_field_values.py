"""The field values store against real Azurite: buckets split over properties, ETag conflicts
answered by a merge, and values read back as written."""

from __future__ import annotations

import uuid

from functions.core.sources.sharepoint.field_values import ITEMS_PER_BUCKET, FieldValueStore, bounded


def test_a_full_bucket_of_long_values_round_trips_through_azurite(services):
    store = FieldValueStore(services.storage)
    scope = f"list-{uuid.uuid4().hex[:8]}"
    names = [f"Field_x0020_{n:02d}" for n in range(20)]
    values = {item_id: bounded(dict.fromkeys(names, "ü" * 400)) for item_id in range(ITEMS_PER_BUCKET)}
    store.write(scope, values, store.read(scope, values))
    [bucket] = store.read(scope, values).values()
    assert bucket.values == values


def test_a_stale_writer_merges_instead_of_overwriting(services):
    store = FieldValueStore(services.storage)
    scope = f"list-{uuid.uuid4().hex[:8]}"
    stale = store.read(scope, [1, 2, 3])
    store.write(scope, {1: {"Status": "one"}}, store.read(scope, [1]))
    store.write(scope, {2: {"Status": "two"}}, store.read(scope, [2]))
    store.write(scope, {3: {"Status": "three"}}, stale)  # read before both writes: conflicts, merges
    [bucket] = store.read(scope, [1, 2, 3]).values()
    assert bucket.values == {1: {"Status": "one"}, 2: {"Status": "two"}, 3: {"Status": "three"}}
