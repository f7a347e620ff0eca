"""Rich notifications as Graph makes them: each item's resource encrypted under a new symmetric
key (AES-CBC, PKCS7, the IV the key's first 16 bytes), the key wrapped with RSA-OAEP (SHA-1) to the
subscription's certificate, the ciphertext signed with HMAC-SHA256; and `validationTokens`, JWTs
from "the identity platform" (here a key the emulator publishes as a JWKS) saying Graph's
change-tracking app sent them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

GRAPH_CHANGE_TRACKING_APP_ID = "0bf30f3b-4a52-48df-9a82-234910c4a086"
KEYS_PATH = "/common/discovery/v2.0/keys"
TOKEN_LIFETIME_SECONDS = 3600


def certificate_public_key(certificate_base64: str) -> rsa.RSAPublicKey:
    """The RSA public key of a base64 DER certificate; ValueError if it is not one Graph takes."""
    certificate = x509.load_der_x509_certificate(base64.b64decode(certificate_base64, validate=True))
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or not 2048 <= key.key_size <= 4096:
        raise ValueError("the certificate's key must be RSA, 2048 to 4096 bits")
    return key


def thumbprint(certificate_base64: str) -> str:
    der = base64.b64decode(certificate_base64)
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


def encrypt(resource: dict[str, Any], certificate_base64: str, certificate_id: str) -> dict[str, str]:
    """One item's `encryptedContent`, under a key made for it alone."""
    symmetric_key = os.urandom(32)
    padder = padding.PKCS7(algorithms.AES.block_size).padder()
    padded = padder.update(json.dumps(resource).encode("utf-8")) + padder.finalize()
    encryptor = Cipher(algorithms.AES(symmetric_key), modes.CBC(symmetric_key[:16])).encryptor()
    data = encryptor.update(padded) + encryptor.finalize()
    wrapped = certificate_public_key(certificate_base64).encrypt(
        symmetric_key,
        OAEP(mgf=MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None),  # noqa: S303 - Graph's
    )
    return {
        "data": base64.b64encode(data).decode("ascii"),
        "dataSignature": base64.b64encode(hmac.new(symmetric_key, data, hashlib.sha256).digest()).decode(
            "ascii"
        ),
        "dataKey": base64.b64encode(wrapped).decode("ascii"),
        "encryptionCertificateId": certificate_id,
        "encryptionCertificateThumbprint": thumbprint(certificate_base64),
    }


@dataclass
class SigningKey:
    """The emulator's stand-in for the identity platform's token signing key, published at
    KEYS_PATH as a JWKS (the local stack points IDENTITY_KEYS_URL at it)."""

    private_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    kid: str = field(default_factory=lambda: uuid.uuid4().hex)

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "kty": "RSA", "alg": "RS256"}]}

    def validation_token(
        self, app_id: str, tenant_id: str, *, now: float | None = None, **overrides: Any
    ) -> str:
        """A v2 token as Graph's validation tokens are: issued by the tenant, to the app, for
        Graph's change-tracking app. `overrides` change claims (the faults)."""
        issued = int(now if now is not None else time.time())
        claims = {
            "aud": app_id,
            "iss": f"https://login.microsoftonline.com/{tenant_id}/v2.0",
            "iat": issued,
            "nbf": issued,
            "exp": issued + TOKEN_LIFETIME_SECONDS,
            "azp": GRAPH_CHANGE_TRACKING_APP_ID,
            "azpacr": "2",
            "tid": tenant_id,
            "ver": "2.0",
            **overrides,
        }
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid})
