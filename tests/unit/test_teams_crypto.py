"""Rich notifications: what the emulator encrypts as Graph does, the service decrypts; every
tampered field is refused before anything is decrypted, and the refusal never holds the content."""

from __future__ import annotations

import base64

import pytest

from functions.core.sources.teams.crypto import (
    CertificateError,
    DecryptionKey,
    DecryptionKeys,
    ResourceDataRefused,
)
from functions.core.sources.teams.models import EncryptedContent
from local.certificates import new_teams_certificate
from local.m365.graph import rich

MESSAGE = {"id": "1700000000000", "body": {"contentType": "html", "content": "<p>secret plans</p>"}}


@pytest.fixture(scope="module")
def current() -> DecryptionKey:
    return DecryptionKey.load(new_teams_certificate())


@pytest.fixture(scope="module")
def previous() -> DecryptionKey:
    return DecryptionKey.load(new_teams_certificate("previous"))


def encrypted(key: DecryptionKey, resource: dict = MESSAGE, **changes: str) -> EncryptedContent:
    content = rich.encrypt(resource, key.certificate_base64, key.certificate_id)
    return EncryptedContent.model_validate({**content, **changes})


def flipped(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_what_graph_encrypts_decrypts_to_the_resource(current):
    assert DecryptionKeys([current]).decrypt(encrypted(current)) == MESSAGE


def test_each_item_has_a_key_of_its_own(current):
    first, second = encrypted(current), encrypted(current)
    assert first.data_key != second.data_key and first.data != second.data


def test_both_certificates_open_while_one_rolls_over(current, previous):
    keys = DecryptionKeys([current, previous])
    assert keys.current == current
    assert keys.decrypt(encrypted(previous)) == MESSAGE
    assert keys.decrypt(encrypted(current)) == MESSAGE


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ("data", "dataSignature does not match data"),
        ("dataSignature", "dataSignature does not match data"),
        ("dataKey", "dataKey does not open with the certificate's key"),
    ],
)
def test_a_tampered_field_is_refused_without_its_content(current, field, reason):
    content = rich.encrypt(MESSAGE, current.certificate_base64, current.certificate_id)
    spoiled = EncryptedContent.model_validate({**content, field: flipped(content[field])})
    with pytest.raises(ResourceDataRefused) as refused:
        DecryptionKeys([current]).decrypt(spoiled)
    assert str(refused.value) == reason
    assert "secret" not in str(refused.value)


def test_an_unknown_certificate_id_or_thumbprint_is_refused(current, previous):
    keys = DecryptionKeys([current])
    with pytest.raises(ResourceDataRefused, match="unknown encryptionCertificateId"):
        keys.decrypt(encrypted(previous))
    wrong_thumbprint = encrypted(current, encryptionCertificateThumbprint=previous.thumbprint)
    with pytest.raises(ResourceDataRefused, match="Thumbprint"):
        keys.decrypt(wrong_thumbprint)


def test_bad_padding_under_a_valid_signature_is_refused(current):
    """A sender holding the key could sign garbage: the signature passes, the padding does not."""
    import hashlib
    import hmac
    import os

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = os.urandom(32)
    block = bytes(15) + b"\x00"  # a last byte of 0 is never PKCS7
    data = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor().update(block)
    wrapped = current.private_key.public_key().encrypt(
        key,
        OAEP(mgf=MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None),  # noqa: S303
    )
    content = EncryptedContent.model_validate(
        {
            "data": base64.b64encode(data).decode(),
            "dataSignature": base64.b64encode(hmac.new(key, data, hashlib.sha256).digest()).decode(),
            "dataKey": base64.b64encode(wrapped).decode(),
            "encryptionCertificateId": current.certificate_id,
        }
    )
    with pytest.raises(ResourceDataRefused, match="bad padding"):
        DecryptionKeys([current]).decrypt(content)


def test_not_base64_is_refused(current):
    with pytest.raises(ResourceDataRefused, match="not base64"):
        DecryptionKeys([current]).decrypt(encrypted(current, data="not base64!"))


def test_a_certificate_loads_from_pem_or_key_vaults_pkcs12(current):
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import NoEncryption, pkcs12

    der = base64.b64decode(current.certificate_base64)
    bundle = pkcs12.serialize_key_and_certificates(
        b"teams", current.private_key, x509.load_der_x509_certificate(der), None, NoEncryption()
    )
    loaded = DecryptionKey.load(base64.b64encode(bundle).decode())
    assert loaded.certificate_id == current.certificate_id
    with pytest.raises(CertificateError):
        DecryptionKey.load("neither")
    small = new_teams_certificate(key_size=1024)
    with pytest.raises(CertificateError, match="2048 to 4096"):
        DecryptionKey.load(small)


def test_no_certificate_means_no_current_key():
    assert DecryptionKeys.load([None, ""]).current is None
