"""Sealed secrets: AES-GCM under a key ring whose first key seals and whose others still open."""

from __future__ import annotations

import pytest

from functions.core.settings import SettingsError
from functions.core.sinks.sealing import KeyRing, SealBroken, key_id_of, new_key_ring_setting


def test_a_sealed_value_opens_to_what_was_sealed_and_shows_nothing_of_it():
    ring = KeyRing.parse(new_key_ring_setting("k1"))
    sealed = ring.seal("whsec_c2VjcmV0", bound_to="scope/sink_1/secretSealed")
    assert "whsec_" not in sealed and "c2VjcmV0" not in sealed
    assert key_id_of(sealed) == "k1"
    assert ring.open(sealed, bound_to="scope/sink_1/secretSealed") == "whsec_c2VjcmV0"


def test_a_sealed_value_moved_to_another_sink_or_column_does_not_open():
    ring = KeyRing.parse(new_key_ring_setting())
    sealed = ring.seal("sig=abc", bound_to="scope/sink_1/urlQuerySealed")
    with pytest.raises(SealBroken):
        ring.open(sealed, bound_to="scope/sink_2/urlQuerySealed")
    with pytest.raises(SealBroken):
        ring.open(sealed, bound_to="scope/sink_1/secretSealed")


def test_a_new_key_put_first_seals_while_the_old_one_still_opens():
    old = new_key_ring_setting("k1")
    sealed_before = KeyRing.parse(old).seal("secret", bound_to="x")
    rolled = KeyRing.parse(f"{new_key_ring_setting('k2')};{old}")
    assert rolled.open(sealed_before, bound_to="x") == "secret"
    assert key_id_of(rolled.seal("secret", bound_to="x")) == "k2"
    with pytest.raises(SealBroken, match="k1"):
        KeyRing.parse(new_key_ring_setting("k2")).open(sealed_before, bound_to="x")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "k1",
        "k1=notbase64!",
        "k1=c2hvcnQ=",
        "bad id=" + "A" * 44,
        f"{new_key_ring_setting('a')};{new_key_ring_setting('a')}",
    ],
)
def test_a_malformed_key_ring_is_refused_by_name(value):
    with pytest.raises(SettingsError, match="SINK_SEALING_KEYS"):
        KeyRing.parse(value)
