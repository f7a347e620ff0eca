"""Rich notifications' resource data: decrypted only after its signature checks.

Graph encrypts each item with a new symmetric key, wraps that key with RSA-OAEP (SHA-1) to the
certificate the subscription registered, and signs the ciphertext with HMAC-SHA256 under the
symmetric key. So: pick the private key by `encryptionCertificateId`, unwrap the key, compare the
HMAC in constant time, and only then decrypt (AES-CBC, PKCS7, the IV the key's first 16 bytes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs12

from .models import EncryptedContent

# Graph accepts RSA keys of 2,048 to 4,096 bits for encryptionCertificate.
MIN_KEY_BITS, MAX_KEY_BITS = 2048, 4096
IV_BYTES = 16


class ResourceDataRefused(Exception):
    """An item whose resource data is not read: the reason says which check it failed, never what
    it held."""


class CertificateError(ValueError):
    """A configured certificate that cannot decrypt rich notifications; the message says why."""


@dataclass(frozen=True)
class DecryptionKey:
    """One certificate Graph may encrypt to: the id we register it under, its public part for
    Graph, and the private key that opens what Graph sends."""

    certificate_id: str
    thumbprint: str  # SHA-1, upper-case hex: Graph's encryptionCertificateThumbprint
    certificate_base64: str
    private_key: rsa.RSAPrivateKey

    @classmethod
    def load(cls, value: str) -> DecryptionKey:
        """A certificate with its private key, as Key Vault's secret for a certificate holds it
        (base64 PKCS#12, no password) or as PEM (certificate and key)."""
        certificate, key = _certificate_and_key(value.strip())
        if not isinstance(key, rsa.RSAPrivateKey):
            raise CertificateError("the certificate's key is not an RSA key")
        if not MIN_KEY_BITS <= key.key_size <= MAX_KEY_BITS:
            raise CertificateError(f"the RSA key has {key.key_size} bits; Graph takes 2048 to 4096")
        public = certificate.public_key()
        if (
            not isinstance(public, rsa.RSAPublicKey)
            or public.public_numbers() != key.public_key().public_numbers()
        ):
            raise CertificateError("the private key does not belong to the certificate")
        der = certificate.public_bytes(serialization.Encoding.DER)
        return cls(
            # Derived from the certificate itself: the same after a restart, new after a rollover.
            certificate_id="m365-webhooks-" + hashlib.sha256(der).hexdigest()[:32],
            thumbprint=hashlib.sha1(der, usedforsecurity=False).hexdigest().upper(),
            certificate_base64=base64.b64encode(der).decode("ascii"),
            private_key=key,
        )


class DecryptionKeys:
    """The certificates this deployment decrypts with: the current one, which new subscriptions
    and renewals register, and the previous one while subscriptions move off it."""

    def __init__(self, keys: Sequence[DecryptionKey]) -> None:
        self._by_id = {key.certificate_id: key for key in keys}
        self._current = keys[0] if keys else None

    @classmethod
    def load(cls, values: Iterable[str | None]) -> DecryptionKeys:
        return cls([DecryptionKey.load(value) for value in values if value])

    @property
    def current(self) -> DecryptionKey | None:
        return self._current

    def knows(self, certificate_id: str) -> bool:
        return certificate_id in self._by_id

    def decrypt(self, content: EncryptedContent) -> dict[str, Any]:
        """The item's resource, as JSON; raises ResourceDataRefused."""
        key = self._by_id.get(content.encryption_certificate_id)
        if key is None:
            raise ResourceDataRefused("unknown encryptionCertificateId")
        if content.encryption_certificate_thumbprint and not hmac.compare_digest(
            content.encryption_certificate_thumbprint.upper(), key.thumbprint
        ):
            raise ResourceDataRefused("encryptionCertificateThumbprint is not the certificate's")
        data, signature, wrapped = _decoded(content)
        try:
            symmetric_key = key.private_key.decrypt(
                # Graph's choice, not ours: OAEP with SHA-1 is what it wraps the key with.
                wrapped,
                OAEP(mgf=MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None),  # noqa: S303
            )
        except ValueError:
            raise ResourceDataRefused("dataKey does not open with the certificate's key") from None
        expected = hmac.new(symmetric_key, data, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            raise ResourceDataRefused("dataSignature does not match data")
        return _decrypted_json(symmetric_key, data)


def _decoded(content: EncryptedContent) -> tuple[bytes, bytes, bytes]:
    try:
        return (
            base64.b64decode(content.data, validate=True),
            base64.b64decode(content.data_signature, validate=True),
            base64.b64decode(content.data_key, validate=True),
        )
    except binascii.Error:
        raise ResourceDataRefused("data, dataSignature or dataKey is not base64") from None


def _decrypted_json(symmetric_key: bytes, data: bytes) -> dict[str, Any]:
    if len(symmetric_key) not in (16, 24, 32) or not data or len(data) % IV_BYTES:
        raise ResourceDataRefused("data is not AES-CBC ciphertext under dataKey")
    decryptor = Cipher(algorithms.AES(symmetric_key), modes.CBC(symmetric_key[:IV_BYTES])).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(algorithms.AES.block_size).unpadder()
    try:
        plain = unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise ResourceDataRefused("bad padding") from None
    try:
        document = json.loads(plain)
    except (ValueError, RecursionError):
        raise ResourceDataRefused("the decrypted data is not JSON") from None
    if not isinstance(document, dict):
        raise ResourceDataRefused("the decrypted data is not a JSON object")
    return document


def _certificate_and_key(value: str) -> tuple[x509.Certificate, Any]:
    if value.startswith("-----BEGIN"):
        raw = value.encode("ascii")
        try:
            certificate = x509.load_pem_x509_certificate(raw)
            key = serialization.load_pem_private_key(raw, password=None)
        except ValueError as error:
            raise CertificateError(f"not a PEM certificate with its private key: {error}") from None
        return certificate, key
    try:
        bundle = pkcs12.load_pkcs12(base64.b64decode(value, validate=True), None)
    except (binascii.Error, ValueError) as error:
        raise CertificateError(f"neither PEM nor base64 PKCS#12 without a password: {error}") from None
    if bundle.cert is None or bundle.key is None:
        raise CertificateError("the PKCS#12 bundle lacks the certificate or its private key")
    return bundle.cert.certificate, bundle.key
