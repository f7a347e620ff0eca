"""validationTokens, checked completely: signature under the published keys (fetched again once
for an unknown kid), expiry, audience, Graph's change-tracking app as the caller, and an issuer for
every tenant the POST names."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from functions.core.sources.teams.tokens import (
    GRAPH_CHANGE_TRACKING_APP_ID,
    SigningKeys,
    SigningKeysUnavailable,
    ValidationTokens,
)
from local.m365.graph.rich import SigningKey

APP = str(uuid.uuid4())
TENANT = str(uuid.uuid4())


class Published:
    """The identity platform's keys endpoint: counts fetches; can rotate to a new key."""

    def __init__(self) -> None:
        self.key = SigningKey()
        self.fetches = 0
        self.down = False

    def __call__(self, url: str) -> dict:
        self.fetches += 1
        if self.down:
            from functions.core.outbound import UpstreamError

            raise UpstreamError(service="identity", operation="signing keys", status=503, message="down")
        return self.key.jwks()


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def tokens(published) -> ValidationTokens:
    return ValidationTokens(SigningKeys("https://keys.invalid", fetch=published), APP)


def test_a_token_graph_issued_for_our_app_and_tenant_passes(tokens, published):
    token = published.key.validation_token(APP, TENANT)
    assert tokens.refusal([token], {TENANT}) == ""
    assert tokens.refusal([token], {TENANT.upper()}) == ""  # GUIDs compare without case


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"aud": str(uuid.uuid4())}, "InvalidAudienceError"),
        ({"exp": int(time.time()) - 3600}, "ExpiredSignatureError"),
        ({"nbf": int(time.time()) + 3600}, "ImmatureSignatureError"),
        ({"azp": str(uuid.uuid4())}, "not Microsoft Graph Change Tracking"),
        ({"iss": "https://evil.example/v2.0"}, "issuer"),
        ({"iss": f"https://login.microsoftonline.com/{uuid.uuid4()}/v2.0"}, "do not vouch for tenant"),
    ],
)
def test_a_token_with_a_wrong_claim_is_refused(tokens, published, claims, why):
    token = published.key.validation_token(APP, TENANT, **claims)
    assert why in tokens.refusal([token], {TENANT})


def test_a_v1_token_names_the_caller_as_appid(tokens, published):
    v1 = published.key.validation_token(
        APP,
        TENANT,
        iss=f"https://sts.windows.net/{TENANT}/",
        ver="1.0",
        azp=None,
        appid=GRAPH_CHANGE_TRACKING_APP_ID,
    )
    assert tokens.refusal([v1], {TENANT}) == ""


def test_a_token_signed_by_anyone_else_is_refused(tokens):
    forger = SigningKey()
    assert "InvalidSignatureError" in tokens.refusal([forger.validation_token(APP, TENANT)], {TENANT})
    unsigned = jwt.encode({"aud": APP}, key="", algorithm="none")
    assert "RS256" in tokens.refusal([unsigned], {TENANT})


def test_absent_tokens_or_a_tenant_without_one_refuse_the_post(tokens, published):
    assert tokens.refusal(None, {TENANT}) == "validationTokens absent"
    assert tokens.refusal([], {TENANT}) == "validationTokens absent"
    assert tokens.refusal([None], {TENANT}).startswith("validationTokens do not vouch")
    other = str(uuid.uuid4())
    assert other in tokens.refusal([published.key.validation_token(APP, TENANT)], {TENANT, other})
    both = [published.key.validation_token(APP, TENANT), published.key.validation_token(APP, other)]
    assert tokens.refusal(both, {TENANT, other}) == ""


def test_a_rotated_key_is_fetched_once_and_a_flood_of_unknown_kids_fetches_nothing_more(tokens, published):
    assert tokens.refusal([published.key.validation_token(APP, TENANT)], {TENANT}) == ""
    assert published.fetches == 1
    forger = SigningKey()
    for _ in range(50):
        tokens.refusal([forger.validation_token(APP, TENANT, jti=str(uuid.uuid4()))], {TENANT})
    assert published.fetches == 1  # within the spacing: the cache answers


def test_unknown_kid_refetches_after_the_spacing(published):
    now = [1000.0]
    keys = SigningKeys("https://keys.invalid", fetch=published, clock=lambda: now[0])
    tokens = ValidationTokens(keys, APP)
    tokens.refusal([published.key.validation_token(APP, TENANT)], {TENANT})
    published.key = SigningKey()  # the identity platform rolls its key
    now[0] += 61
    assert tokens.refusal([published.key.validation_token(APP, TENANT)], {TENANT}) == ""
    assert published.fetches == 2


def test_keys_that_cannot_be_fetched_make_the_post_retryable(published):
    published.down = True
    tokens = ValidationTokens(SigningKeys("https://keys.invalid", fetch=published), APP)
    with pytest.raises(SigningKeysUnavailable) as unavailable:
        tokens.refusal([published.key.validation_token(APP, TENANT)], {TENANT})
    assert unavailable.value.http_status == 503
    assert unavailable.value.headers()["Retry-After"] == "10"


def test_without_an_app_id_nothing_is_trusted(published):
    tokens = ValidationTokens(SigningKeys("https://keys.invalid", fetch=published), None)
    assert "GRAPH_APP_ID" in tokens.refusal([published.key.validation_token(APP, TENANT)], {TENANT})


def test_serving_guest_tenants_a_token_for_the_multi_tenant_app_passes_too(published):
    guest_app = str(uuid.uuid4())
    keys = SigningKeys("https://keys.invalid", fetch=published)
    guest_tenant = str(uuid.uuid4())
    both = ValidationTokens(keys, APP, guest_app_id=guest_app)
    assert both.refusal([published.key.validation_token(guest_app, guest_tenant)], {guest_tenant}) == ""
    assert both.refusal([published.key.validation_token(APP, TENANT)], {TENANT}) == ""
    home_only = ValidationTokens(keys, APP)
    refused = home_only.refusal([published.key.validation_token(guest_app, guest_tenant)], {guest_tenant})
    assert "InvalidAudienceError" in refused
