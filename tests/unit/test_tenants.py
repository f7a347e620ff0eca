"""Many tenants, in memory: scope keys per tenant, onboarding and the consent answer (a sealed,
single-use, short-lived state), the acting tenant's tokens and throttling hold, and the intake
refusing an entry that names another tenant than its subscription's."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from functions.core.auth import FederatedExchange, GuestTokens, TenantRefused, TenantTokens
from functions.core.intake import CachedSubscriptionLookup, receive_notifications
from functions.core.outbound import ServiceThrottle, UpstreamError
from functions.core.sinks.service import CreateSinkRequest
from functions.core.sources.sharepoint import NOTIFICATION_ENTRIES
from functions.core.sources.sharepoint.models import CreateSubscriptionRequest
from functions.core.tenancy import (
    ActingTenant,
    acting_for,
    inner_scope,
    scope_tenant,
    tenant_scope,
    tenant_scope_range,
)
from functions.core.tenants.directory import TenantNotFound, TenantUnavailable
from functions.core.tenants.models import ConsentAnswer, CreateTenantRequest
from functions.core.tenants.record import TenantRecord
from functions.core.tenants.service import CONSENT_LIFETIME, ConsentRefused, SingleTenant
from tests.fakes.intake import SUB_1, MessageList, RecordLookup, record
from tests.fakes.m365 import response
from tests.fakes.world import TENANT, world

HOME = "11111111-1111-4111-8111-111111111111"
GUEST = "22222222-2222-4222-8222-222222222222"
APP = "33333333-3333-4333-8333-333333333333"
LIST = "6a7e4fa6-0c7f-4a25-9d3e-0123456789ab"


@pytest.fixture
def env():
    return world(TENANCY="multi", MULTI_TENANT_APP_ID=APP, SHAREPOINT_TENANT_ID=HOME)


def onboard(env, tenant_id: str = GUEST):
    return env.services.tenants.onboard(
        CreateTenantRequest(
            tenant_id=tenant_id, display_name="Fabrikam", sharepoint_url="https://fabrikam.sharepoint.com"
        )
    )


def answer_of(consent_url: str, **answer: str) -> ConsentAnswer:
    state = parse_qs(urlsplit(consent_url).query)["state"][0]
    return ConsentAnswer.model_validate({"state": state, **answer})


def test_a_guest_scope_carries_its_tenant_and_the_home_scope_is_unchanged():
    assert tenant_scope(None, LIST) == LIST
    guest = tenant_scope(GUEST, LIST)
    assert guest != LIST and scope_tenant(guest) == GUEST and inner_scope(guest) == LIST
    assert scope_tenant(LIST) is None and inner_scope(LIST) == LIST


def test_onboarding_gives_the_admin_consent_url_and_the_tenant_waits_pending(env):
    view = onboard(env)
    assert view.state == "pending"
    url = urlsplit(view.consent_url)
    assert (
        f"{url.scheme}://{url.netloc}{url.path}"
        == f"https://login.microsoftonline.com/{GUEST}/v2.0/adminconsent"
    )
    query = parse_qs(url.query)
    assert query["client_id"] == [APP]
    assert query["scope"] == ["https://graph.microsoft.com/.default"]
    assert query["redirect_uri"] == ["https://hooks.example/api/consent"]
    with pytest.raises(TenantUnavailable):
        env.services.tenancy.for_id(GUEST)


def test_consent_activates_the_tenant_once_and_a_replay_is_refused(env):
    url = onboard(env).consent_url
    answer = answer_of(url, admin_consent="True", tenant=GUEST, scope="https://graph.microsoft.com/.default")
    assert env.services.tenants.consented(answer).state == "active"
    assert env.services.tenancy.for_id(GUEST) == ActingTenant(
        GUEST, "https://fabrikam.sharepoint.com", home=False
    )
    with pytest.raises(ConsentRefused, match="already used"):
        env.services.tenants.consented(answer)


@pytest.mark.parametrize(
    "forge",
    [
        lambda state: state[:-4] + ("AAAA" if not state.endswith("AAAA") else "BBBB"),
        lambda state: "k1:" + "A" * 80,
        lambda state: "not a state",
    ],
    ids=["altered", "made up", "garbage"],
)
def test_a_forged_state_is_refused(env, forge):
    url = onboard(env).consent_url
    state = parse_qs(urlsplit(url).query)["state"][0]
    with pytest.raises(ConsentRefused, match="not one this service issued"):
        env.services.tenants.consented(ConsentAnswer(state=forge(state), admin_consent="True", tenant=GUEST))


def test_a_state_past_its_lifetime_is_refused(env):
    url = onboard(env).consent_url
    answer = answer_of(url, admin_consent="True", tenant=GUEST)
    real_clock = env.services.tenants.clock
    late = env.services.tenants.__class__(
        **{
            **env.services.tenants.__dict__,
            "clock": lambda: real_clock() + CONSENT_LIFETIME + timedelta(seconds=1),
        }
    )
    with pytest.raises(ConsentRefused, match="expired"):
        late.consented(answer)


def test_an_answer_for_another_tenant_than_was_asked_is_refused(env):
    url = onboard(env).consent_url
    with pytest.raises(ConsentRefused, match="another tenant"):
        env.services.tenants.consented(answer_of(url, admin_consent="True", tenant=HOME.replace("1", "4")))


def test_a_declined_consent_keeps_the_tenant_pending_with_the_error(env):
    url = onboard(env).consent_url
    view = env.services.tenants.consented(
        answer_of(
            url,
            error="access_denied",
            error_subcode="cancel",
            error_description="AADSTS65004: User declined to consent to access the app.",
        )
    )
    assert view.state == "pending" and view.error.startswith("access_denied: AADSTS65004")


def test_anything_else_in_the_consent_answer_is_refused():
    with pytest.raises(ValueError, match="code"):
        ConsentAnswer.model_validate({"state": "s", "admin_consent": "True", "code": "x"})


def test_a_single_tenant_deployment_has_no_tenants_to_onboard():
    single = world()
    with pytest.raises(SingleTenant):
        onboard(single)
    assert [view.home for view in single.services.tenants.views()] == [True]


def test_an_unknown_guest_is_not_found_and_the_home_tenant_needs_no_record(env):
    assert env.services.tenancy.for_id(None).home and env.services.tenancy.for_id(HOME).home
    with pytest.raises(TenantNotFound):
        env.services.tenancy.for_id(GUEST)


class Tokens:
    def __init__(self, name: str) -> None:
        self.name = name
        self.asked: list[tuple[str, str]] = []

    def get_token(self) -> str:
        return self.name

    def token(self, tenant_id: str, resource: str) -> str:
        self.asked.append((tenant_id, resource))
        return f"{tenant_id}:{resource}"


def test_tokens_follow_the_acting_tenant():
    home, guests = Tokens("home"), Tokens("guest")
    sharepoint = TenantTokens(home, guests, None)  # type: ignore[arg-type]
    graph = TenantTokens(home, guests, "https://graph.microsoft.com")  # type: ignore[arg-type]
    assert sharepoint.get_token() == "home"
    with acting_for(ActingTenant(GUEST, "https://fabrikam.sharepoint.com", home=False)):
        assert sharepoint.get_token() == f"{GUEST}:https://fabrikam.sharepoint.com"
        assert graph.get_token() == f"{GUEST}:https://graph.microsoft.com"
    with acting_for(ActingTenant(HOME, "https://contoso.sharepoint.com", home=True)):
        assert graph.get_token() == "home"


def test_a_throttled_tenant_holds_only_its_own_calls():
    now = [0.0]
    throttle = ServiceThrottle(clock=lambda: now[0])
    guest = ActingTenant(GUEST, "https://fabrikam.sharepoint.com", home=False)
    with acting_for(guest):
        throttle.hold(60)
        assert throttle.remaining() == 60
    assert throttle.remaining() == 0
    with acting_for(ActingTenant(str(uuid.uuid4()), "https://other.sharepoint.com", home=False)):
        assert throttle.remaining() == 0


def receive_as(entry_tenant: str | None, *, guests: bool = True):
    guest_record = dataclasses.replace(record(), scope=tenant_scope(GUEST, LIST))
    entry = {
        "subscriptionId": SUB_1,
        "clientState": "secret-state",
        "expirationDateTime": "2026-04-30T17:27:00.0000000Z",
        "resource": LIST,
        "siteUrl": "/",
        "webId": "dbc5a806-e4d4-46e5-951c-6344d70b62fa",
    }
    if entry_tenant is not None:
        entry["tenantId"] = entry_tenant
    return receive_notifications(
        json.dumps({"value": [entry]}).encode(),
        subscriptions=CachedSubscriptionLookup(RecordLookup(guest_record)),
        queue=MessageList(),
        kind=NOTIFICATION_ENTRIES,
        tenant_id=HOME,
        guests=guests,
    )


def test_the_intake_takes_an_entry_of_its_subscriptions_own_tenant():
    result = receive_as(GUEST)
    assert (result.accepted, result.rejected) == (1, 0)


@pytest.mark.parametrize("named", [HOME, str(uuid.uuid4()), None], ids=["home", "a third", "none"])
def test_the_intake_refuses_an_entry_naming_another_tenant_than_its_subscriptions(named):
    result = receive_as(named)
    assert (result.accepted, result.rejected) == (0, 1)
    assert result.rejections[0][1] == "not its subscription's tenant"


def test_serving_one_tenant_the_intake_refuses_another_before_any_read():
    result = receive_as(GUEST, guests=False)
    assert result.rejections[0][1] == "another tenant's" and result.storage_reads == 0


def test_a_guest_tenants_scopes_sort_in_one_range_no_other_scope_enters():
    low, high = tenant_scope_range(GUEST)
    assert low <= tenant_scope(GUEST, LIST) < high
    assert low <= tenant_scope(GUEST, "graph-" + "f" * 40) < high
    for other in (LIST, tenant_scope(HOME, LIST), "graph-" + "0" * 40, GUEST):
        assert not low <= other < high


@pytest.fixture
def served():
    """A multi-tenant world with one active guest (served by the same fake SharePoint) and an
    alert sink, with a subscription in each tenant."""
    env = world(
        TENANCY="multi",
        MULTI_TENANT_APP_ID=APP,
        SHAREPOINT_TENANT_ID=HOME,
        ALERT_SINK_URL="https://20.30.40.60/workflow",
        ALERT_SINK_TYPE="teams-workflow",
        SWEEP_MAX_AGE_HOURS="0",
    )
    store = env.services.tenancy.store
    assert store is not None
    store.create(TenantRecord(GUEST, "Fabrikam", TENANT, "active", env.clock.now()))
    guest_list, home_list = env.sharepoint.create_list(), env.sharepoint.create_list()
    theirs = env.services.subscriptions.create(
        CreateSubscriptionRequest(site_url="/sites/team", list_id=guest_list, tenant_id=GUEST)
    )
    mine = env.services.subscriptions.create(
        CreateSubscriptionRequest(site_url="/sites/team", list_id=home_list)
    )
    return env, theirs, mine, guest_list, home_list


def test_a_guest_subscription_lives_under_its_tenants_scope(served):
    env, theirs, mine, guest_list, home_list = served
    assert theirs.scope == tenant_scope(GUEST, guest_list) and mine.scope == home_list
    views = {view.id: view for view in map(env.services.subscription_views.plain_view, (theirs, mine))}
    assert (views[theirs.id].tenant_id, views[theirs.id].list_id) == (GUEST, guest_list)
    assert (views[mine.id].tenant_id, views[mine.id].list_id) == (HOME, home_list)
    listed, _ = env.services.subscriptions.page(top=100, tenant_id=GUEST)
    assert [record.id for record in listed] == [theirs.id]
    listed, _ = env.services.subscriptions.page(top=100, tenant_id=HOME)
    assert [record.id for record in listed] == [mine.id]


def test_a_revoked_tenant_is_neither_read_renewed_nor_swept_and_the_home_tenant_is(served):
    env, theirs, mine, guest_list, home_list = served
    env.services.tenancy.revoke(GUEST, "tenant refused the app: AADSTS700016: not found in the directory")
    env.services.tenancy.revoke(GUEST, "noticed again by another read")
    env.sharepoint.change(guest_list)
    env.sharepoint.change(home_list)

    held = env.services.worker.process_message(env.notification(theirs.id))
    assert held.tenant_held == [theirs.id] and held.changes_written == 0
    read = env.services.worker.process_message(env.notification(mine.id))
    assert read.changes_written == 1 and read.tenant_held == []

    for due in (theirs, mine):
        current = env.services.subscriptions.get(due.id)
        env.services.subscriptions.store.save(
            current.renewed(env.clock.now() + timedelta(days=5), env.clock.now())
        )
    renewal = env.services.renewals.renew_due(timedelta(days=45))
    assert renewal.tenant_held == [theirs.id] and renewal.renewed == [mine.id] and renewal.failed == []
    sweep = env.services.sweep.run()
    assert sweep.tenant_held == [theirs.scope] and mine.scope in sweep.synced

    alerts = [json.loads(body) for _, _, body in env.receivers.posts]
    said = [card["attachments"][0]["content"]["body"][0]["text"] for card in alerts]
    assert said == [f"Tenant {GUEST} refused this app (consent revoked): its reads and renewals stopped"]
    assert env.services.tenants.get(GUEST).state == "revoked"


def test_a_tenant_that_consents_again_is_read_from_where_it_stopped(served):
    env, theirs, _, guest_list, _ = served
    env.services.tenancy.revoke(GUEST, "AADSTS700016")
    made_while_revoked = [env.sharepoint.change(guest_list) for _ in range(2)]
    env.services.worker.process_message(env.notification(theirs.id))
    url = env.services.tenants.onboard(
        CreateTenantRequest(tenant_id=GUEST, display_name="Fabrikam", sharepoint_url=TENANT)
    ).consent_url
    assert (
        env.services.tenants.consented(answer_of(url, admin_consent="True", tenant=GUEST)).state == "active"
    )
    assert env.services.sweep.run().changes_written == len(made_while_revoked)


def test_removing_a_tenant_deletes_its_subscriptions_rows_and_sinks_and_leaves_home_alone(served):
    env, theirs, mine, guest_list, home_list = served
    env.sharepoint.change(guest_list)
    env.sharepoint.change(home_list)
    env.services.worker.process_message(env.notification(theirs.id))
    env.services.worker.process_message(env.notification(mine.id))
    env.services.sinks.create(theirs.id, CreateSinkRequest(type="webhook", url="https://20.30.40.50/hook"))
    removal = env.services.tenants.remove(GUEST)
    assert (removal.subscriptions, removal.deleted_at_source, removal.sinks, removal.change_rows) == (
        1,
        1,
        1,
        1,
    )
    assert env.sharepoint.lists[guest_list].subscriptions == {}
    assert env.services.change_log.last_key(theirs.scope) == ""
    assert env.services.change_log.last_key(mine.scope) != ""
    assert env.services.subscriptions.store.get(mine.id) is not None
    with pytest.raises(TenantNotFound):
        env.services.tenancy.for_id(GUEST)


class Authority:
    """A tenant's token endpoint: answers each form it is sent with what the test scripts."""

    def __init__(self, status: int, body: dict) -> None:
        self.status, self.body = status, body
        self.forms: list[tuple[str, dict[str, list[str]]]] = []

    def request(self, method: str, url: str, **kwargs):
        from urllib.parse import parse_qs as parse

        self.forms.append((url, parse(kwargs["data"].decode())))
        return response(self.status, self.body)


def exchange(authority: Authority) -> GuestTokens:
    settings = world(TENANCY="multi", MULTI_TENANT_APP_ID=APP, SHAREPOINT_TENANT_ID=HOME).services.settings
    federated = FederatedExchange(settings, lambda: "the-managed-identity's-assertion")
    federated._session = authority  # type: ignore[assignment]
    return GuestTokens(federated)


def test_a_guest_token_is_asked_of_its_tenants_authority_with_the_assertion_and_kept():
    authority = Authority(200, {"token_type": "Bearer", "expires_in": 3599, "access_token": "t"})
    tokens = exchange(authority)
    assert tokens.token(GUEST, "https://graph.microsoft.com") == "t"
    assert tokens.token(GUEST, "https://graph.microsoft.com") == "t"  # cached
    [(url, form)] = authority.forms
    assert url == f"https://login.microsoftonline.com/{GUEST}/oauth2/v2.0/token"
    assert form == {
        "grant_type": ["client_credentials"],
        "client_id": [APP],
        "scope": ["https://graph.microsoft.com/.default"],
        "client_assertion_type": ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"],
        "client_assertion": ["the-managed-identity's-assertion"],
    }
    tokens.forget(GUEST)
    tokens.token(GUEST, "https://graph.microsoft.com")
    assert len(authority.forms) == 2


def test_an_authority_that_no_longer_knows_the_app_refuses_the_tenant():
    refusal = {
        "error": "unauthorized_client",
        "error_description": "AADSTS700016: Application with identifier 'x' was not found in the directory.",
        "error_codes": [700016],
    }
    with pytest.raises(TenantRefused) as refused:
        exchange(Authority(400, refusal)).token(GUEST, "https://graph.microsoft.com")
    assert refused.value.code == "AADSTS700016" and refused.value.tenant_id == GUEST


def test_any_other_refusal_is_not_a_revocation():
    other = {
        "error": "invalid_request",
        "error_description": "AADSTS90002: Tenant not found.",
        "error_codes": [90002],
    }
    with pytest.raises(UpstreamError) as failed:
        exchange(Authority(400, other)).token(GUEST, "https://graph.microsoft.com")
    assert not isinstance(failed.value, TenantRefused) and failed.value.code == "AADSTS90002"


class RefusingGuests:
    """A guest's authority that no longer lets the app in."""

    def __init__(self) -> None:
        self.forgotten: list[str] = []

    def token(self, tenant_id: str, resource: str) -> str:
        raise TenantRefused(tenant_id, "AADSTS700016", "AADSTS700016: not found in the directory")

    def forget(self, tenant_id: str) -> None:
        self.forgotten.append(tenant_id)


def test_a_401_from_microsoft_365_asks_the_authority_and_revokes_a_tenant_it_refuses(served):
    env, *_ = served
    tenancy = env.services.tenancy
    guests = RefusingGuests()
    tenancy._guests = guests
    with acting_for(tenancy.for_id(GUEST)):
        assert tenancy.still_consented() is False
    assert GUEST in guests.forgotten and env.services.tenants.get(GUEST).state == "revoked"
    with acting_for(tenancy.home):
        assert tenancy.still_consented() is True  # the home tenant's own identity is not asked


def test_a_refusal_met_while_acting_revokes_the_tenant_and_ends_the_work(served):
    env, theirs, *_ = served
    with pytest.raises(TenantUnavailable), env.services.tenancy.acting(theirs.scope):
        raise TenantRefused(GUEST, "AADSTS65001", "AADSTS65001: no consent")
    assert env.services.tenants.get(GUEST).state == "revoked"
