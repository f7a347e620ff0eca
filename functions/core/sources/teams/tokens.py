"""`validationTokens`: the JWTs that say Microsoft Graph sent a rich notification.

Each token is checked completely, as no public sample does: RS256 signature under the identity
platform's published keys (cached; fetched again once when a token names a key not seen yet),
`exp` and `nbf`, `aud` our app's id, the caller (`azp` in v2 tokens, `appid` in v1) Graph's
change-tracking app, and an issuer of the tenant each entry names. A POST whose tenants do not
each have a token that passes is not trusted at all.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jwt

from ...errors import Outage
from ...outbound import RetryPolicy, UpstreamError, new_session, send
from ...settings import MICROSOFT_IDENTITY_KEYS_URL

log = logging.getLogger(__name__)

# Microsoft Graph Change Tracking: the app that signs validation tokens' requests.
GRAPH_CHANGE_TRACKING_APP_ID = "0bf30f3b-4a52-48df-9a82-234910c4a086"
_ISSUERS = (
    re.compile(r"https://login\.microsoftonline\.com/(?P<tenant>[0-9a-fA-F-]{36})/v2\.0"),
    re.compile(r"https://sts\.windows\.net/(?P<tenant>[0-9a-fA-F-]{36})/"),
)
# Clocks differ; Entra ID's own libraries allow five minutes.
LEEWAY_SECONDS = 300
# Graph must be answered within 3 s: fetching keys on that path gets one short try.
KEYS_POLICY = RetryPolicy(max_attempts=1, connect_timeout=1.0, read_timeout=1.5)
# Not again within this after a fetch, however many unknown key ids arrive: a flood of made-up
# ids must not turn into a flood of requests to the identity platform.
REFETCH_SPACING_SECONDS = 60.0
KEYS_MAX_AGE_SECONDS = 24 * 3600.0
MAX_REMEMBERED_TOKENS = 1000
MAX_TOKENS_PER_POST = 20


class SigningKeysUnavailable(Outage):
    """The identity platform's keys could not be read: the POST is answered 503, and Graph retries."""

    error_code = "SigningKeysUnavailable"
    retry_after_seconds = 10


@dataclass
class _Fetched:
    keys: dict[str, Any]
    at: float


class SigningKeys:
    """The identity platform's signing keys by `kid`, fetched through the bounded outbound path."""

    def __init__(
        self,
        url: str = MICROSOFT_IDENTITY_KEYS_URL,
        *,
        fetch: Callable[[str], dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._fetch = fetch or _fetch_jwks
        self._clock = clock
        self._lock = threading.Lock()
        self._fetched: _Fetched | None = None

    def prefetch(self) -> None:
        """Read the keys in the background, so that a cold instance's first rich notification
        finds them (a failure here is only logged: the first POST tries again)."""
        threading.Thread(target=self.prefetch_now, name="signing-keys", daemon=True).start()

    def prefetch_now(self) -> None:
        """Read the keys now (the host's warmup); a failure is only logged, as for prefetch."""
        try:
            self.key(None)
        except SigningKeysUnavailable as error:
            log.warning("could not prefetch the identity platform's signing keys: %s", error)

    def key(self, kid: str | None) -> Any | None:
        """The key named `kid` (None: just make sure keys are loaded); fetched again at most once
        per spacing when the cached set lacks it."""
        with self._lock:
            now = self._clock()
            fetched = self._fetched
            stale = fetched is None or now - fetched.at > KEYS_MAX_AGE_SECONDS
            missing = kid is not None and fetched is not None and kid not in fetched.keys
            if fetched is None or stale or (missing and now - fetched.at > REFETCH_SPACING_SECONDS):
                fetched = self._load(now, fetched)
            return fetched.keys.get(kid) if kid is not None else None

    def _load(self, now: float, kept: _Fetched | None) -> _Fetched:
        try:
            document = self._fetch(self._url)
            keys = {
                key["kid"]: jwt.PyJWK(key, algorithm="RS256").key
                for key in document.get("keys", [])
                if isinstance(key, dict) and key.get("kty") == "RSA" and key.get("kid")
            }
        except (UpstreamError, ValueError, KeyError, jwt.PyJWKError) as error:
            if kept is not None:  # keep serving the keys we have
                kept.at = now
                log.warning("could not refresh the identity platform's signing keys: %s", error)
                return kept
            raise SigningKeysUnavailable(f"the identity platform's signing keys: {error}") from None
        self._fetched = _Fetched(keys, now)
        return self._fetched


def _fetch_jwks(url: str) -> dict[str, Any]:
    response = send(
        new_session(), "GET", url, service="identity", operation="signing keys", policy=KEYS_POLICY
    )
    document = response.json()
    if not isinstance(document, dict):
        raise ValueError("the keys document is not a JSON object")
    return document


class ValidationTokens:
    """Checks a POST's `validationTokens` for the tenants its entries name."""

    def __init__(
        self,
        keys: SigningKeys,
        app_id: str | None,
        clock: Callable[[], float] = time.time,
        *,
        guest_app_id: str | None = None,
    ) -> None:
        self._keys = keys
        self._app_id = app_id
        # Subscriptions in guest tenants are the multi-tenant app's: their tokens name it.
        self._audiences = [audience for audience in (app_id, guest_app_id) if audience]
        self._clock = clock
        self._lock = threading.Lock()
        # Tokens that passed, by digest: (expiry, tenant). Graph reuses a token across POSTs.
        self._verified: dict[str, tuple[float, str]] = {}

    def warm(self) -> None:
        if self._app_id:
            self._keys.prefetch_now()

    def refusal(self, tokens: Iterable[Any] | None, tenants: set[str]) -> str:
        """Why the POST is not trusted, or "" when every tenant has a token that passes."""
        if not self._app_id:
            return "validationTokens cannot be checked: GRAPH_APP_ID is not set"
        listed = list(tokens) if tokens is not None else []
        if not listed:
            return "validationTokens absent"
        if len(listed) > MAX_TOKENS_PER_POST:
            return "too many validationTokens"
        if not tenants:
            return "no tenantId to check validationTokens against"
        vouched: set[str] = set()
        reasons: list[str] = []
        for token in listed:
            if not isinstance(token, str):
                reasons.append("a validation token is not a string")
                continue
            tenant, reason = self._tenant_of(token)
            if reason:
                reasons.append(reason)
            else:
                vouched.add(tenant)
        unvouched = {tenant.lower() for tenant in tenants} - vouched
        if unvouched:
            why = reasons[0] if reasons else "no token issued by its tenant"
            return f"validationTokens do not vouch for tenant(s) {', '.join(sorted(unvouched))}: {why}"
        return ""

    def _tenant_of(self, token: str) -> tuple[str, str]:
        digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        now = self._clock()
        with self._lock:
            remembered = self._verified.get(digest)
        if remembered is not None and remembered[0] + LEEWAY_SECONDS > now:
            return remembered[1], ""
        try:
            claims = self._verified_claims(token)
        except jwt.InvalidTokenError as error:
            return "", f"{type(error).__name__}: {error}"
        caller = claims.get("azp") or claims.get("appid")
        if caller != GRAPH_CHANGE_TRACKING_APP_ID:
            return "", "the token's caller (azp/appid) is not Microsoft Graph Change Tracking"
        tenant = _issuer_tenant(claims.get("iss"))
        if tenant is None:
            return "", "the token's issuer is not the Microsoft identity platform's"
        with self._lock:
            if len(self._verified) >= MAX_REMEMBERED_TOKENS:
                self._verified = {k: v for k, v in self._verified.items() if v[0] + LEEWAY_SECONDS > now}
                if len(self._verified) >= MAX_REMEMBERED_TOKENS:
                    self._verified.clear()
            self._verified[digest] = (float(claims["exp"]), tenant)
        return tenant, ""

    def _verified_claims(self, token: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != "RS256":
            raise jwt.InvalidAlgorithmError("validation tokens are signed RS256")
        key = self._keys.key(str(header.get("kid") or ""))
        if key is None:
            raise jwt.InvalidSignatureError("no published key has the token's kid")
        return jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=self._audiences,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "nbf", "iss", "aud"]},
        )


def _issuer_tenant(issuer: Any) -> str | None:
    if not isinstance(issuer, str):
        return None
    for pattern in _ISSUERS:
        if (match := pattern.fullmatch(issuer)) is not None:
            return match["tenant"].lower()
    return None
