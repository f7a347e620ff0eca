"""Secrets at rest: AES-GCM under a key the app reads from an app setting (in Azure a Key Vault
reference), so that reading the `sinks` table alone reveals no signing secret and no `sig=`.

The setting holds a key ring, `SINK_SEALING_KEYS` = `kid=base64key[;kid=base64key...]`, the first
being the one new seals use. Every sealed value names its key id, so a new key can be put first
while the old ones still open what they sealed. Each value is bound to its sink and field
(associated data): a sealed secret copied into another row or column does not open.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..settings import SettingsError

SEALING_KEYS = "SINK_SEALING_KEYS"
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_NONCE_BYTES = 12


class SealBroken(ValueError):
    """A sealed value could not be opened: unknown key id, or tampered with."""


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, value: str) -> KeyRing:
        keys: list[tuple[str, bytes]] = []
        for part in filter(None, (p.strip() for p in value.split(";"))):
            key_id, _, encoded = part.partition("=")
            if not _KEY_ID.match(key_id):
                raise SettingsError(f"{SEALING_KEYS}: key ids are 1-32 letters, digits, '_' or '-'")
            try:
                key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
            except ValueError:
                raise SettingsError(f"{SEALING_KEYS}: key {key_id!r} is not base64") from None
            if len(key) != 32:
                raise SettingsError(f"{SEALING_KEYS}: key {key_id!r} must be 32 bytes (AES-256)")
            keys.append((key_id, key))
        if not keys:
            raise SettingsError(f"{SEALING_KEYS} is required: kid=base64 of 32 random bytes")
        if len({key_id for key_id, _ in keys}) != len(keys):
            raise SettingsError(f"{SEALING_KEYS}: a key id appears twice")
        return cls(tuple(keys))

    @property
    def current_id(self) -> str:
        return self.keys[0][0]

    def seal(self, plaintext: str, *, bound_to: str) -> str:

        key_id, key = self.keys[0]
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), bound_to.encode())
        return f"{key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str, *, bound_to: str) -> str:

        key_id, _, encoded = sealed.partition(":")
        key = dict(self.keys).get(key_id)
        if key is None:
            raise SealBroken(f"sealed under key {key_id!r}, which {SEALING_KEYS} no longer holds")
        raw = base64.b64decode(encoded)
        try:
            return AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], bound_to.encode()).decode()
        except InvalidTag:
            raise SealBroken("a sealed value did not open: tampered with, or moved") from None


def key_id_of(sealed: str) -> str:
    return sealed.partition(":")[0]


def new_key_ring_setting(key_id: str = "k1") -> str:
    """A fresh `SINK_SEALING_KEYS` value (the local stack writes one into local.settings.json)."""
    return f"{key_id}={base64.b64encode(secrets.token_bytes(32)).decode()}"
