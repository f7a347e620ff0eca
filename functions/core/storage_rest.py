"""What the intake's queue put and the drain's change-log read share to speak the storage REST
APIs themselves: the account a connection string names, and a storage token that is reused."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class AccountKey:
    """An account, its key and one service's endpoint, from an account-key connection string."""

    account: str
    key: bytes
    endpoint: str


def account_key(connection_string: str, service: str) -> AccountKey | None:
    """The account-key parts a connection string names for `service` ("queue", "table"); None for
    anything else (`UseDevelopmentStorage=true`, a SAS), which the SDK handles."""
    values = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
    account, key = values.get("AccountName"), values.get("AccountKey")
    if not account or not key:
        return None
    endpoint = values.get(f"{service.capitalize()}Endpoint") or (
        f"{values.get('DefaultEndpointsProtocol', 'https')}://{account}.{service}."
        f"{values.get('EndpointSuffix', 'core.windows.net')}"
    )
    try:
        decoded = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return None
    return AccountKey(account, decoded, endpoint.rstrip("/"))


class CachedBearer:
    """A storage token from an azure-identity credential, fetched again five minutes before it
    expires."""

    def __init__(self, credential: object) -> None:
        self._credential = credential
        self._lock = threading.Lock()
        self._token = ""
        self._expires = 0.0

    def __call__(self) -> str:
        with self._lock:
            if time.time() > self._expires - 300:
                token = self._credential.get_token("https://storage.azure.com/.default")  # type: ignore[attr-defined]
                self._token, self._expires = token.token, float(token.expires_on)
            return self._token


class TableRequestFailed(Exception):
    """A lean table call failed: an outage (no answer, 429, 5xx) or a refusal."""

    def __init__(self, message: str, *, status: int | None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def is_outage(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500


def table_authorization(
    date: str, resource: str, *, account: str | None, key: bytes | None, bearer: Callable[[], str] | None
) -> dict[str, str]:
    """The Authorization header of a Table service call: Shared Key Lite over the date and the
    canonical resource, or the storage token."""
    if key is not None:
        signature = hmac.new(key, f"{date}\n{resource}".encode(), hashlib.sha256).digest()
        return {"Authorization": f"SharedKeyLite {account}:{base64.b64encode(signature).decode()}"}
    if bearer is not None:
        return {"Authorization": f"Bearer {bearer()}"}
    return {}
