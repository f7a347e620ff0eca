"""The emulator's Entra ID as strict as the identity platform: admin consent, and client
credentials with a client assertion checked against the app's federated credentials; tokens
that only the service and tenant they were asked for take."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from local.clients import EmulatorClient

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REDIRECT = "https://hooks.example/api/consent"


@pytest.fixture
def app(emulator) -> str:
    """A multi-tenant app whose federated credential is the emulator's managed identity."""
    identity = emulator.http.get("/_emulator/managed-identity").json()
    app_id = str(uuid.uuid4())
    emulator.http.post(
        "/_emulator/apps",
        json={
            "appId": app_id,
            "redirectUris": [REDIRECT],
            "federatedCredentials": [{**identity, "audiences": ["api://AzureADTokenExchange"]}],
        },
    ).raise_for_status()
    return app_id


@pytest.fixture
def guest(emulator) -> dict[str, str]:
    return emulator.add_tenant(f"guest-{uuid.uuid4().hex[:6]}")


def assertion(emulator: EmulatorClient) -> str:
    return emulator.http.post("/_emulator/managed-identity/token", json={}).json()["access_token"]


def consent(emulator: EmulatorClient, tenant: str, app_id: str, redirect: str = REDIRECT) -> httpx.Response:
    query = urlencode(
        {
            "client_id": app_id,
            "scope": "https://graph.microsoft.com/.default",
            "redirect_uri": redirect,
            "state": "s1",
        }
    )
    return emulator.http.get(f"/{tenant}/v2.0/adminconsent?{query}")


def token(emulator: EmulatorClient, tenant: str, app_id: str, scope: str, **form: str) -> httpx.Response:
    body = {
        "grant_type": "client_credentials",
        "client_id": app_id,
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(emulator),
        **form,
    }
    return emulator.http.post(f"/{tenant}/oauth2/v2.0/token", data=body)


def code_of(response: httpx.Response) -> int:
    return response.json()["error_codes"][0]


def test_consent_sends_the_browser_back_with_the_tenant_and_the_state(emulator, app, guest):
    answered = consent(emulator, guest["id"], app)
    assert answered.status_code == 302
    back = urlsplit(answered.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == REDIRECT
    assert {k: v[0] for k, v in parse_qs(back.query).items()} == {
        "admin_consent": "True",
        "tenant": guest["id"],
        "state": "s1",
        "scope": "https://graph.microsoft.com/.default",
    }


def test_a_declined_consent_comes_back_as_access_denied(emulator, app, guest):
    emulator.in_tenant(guest["id"]).admin_answers("deny")
    back = parse_qs(urlsplit(consent(emulator, guest["id"], app).headers["location"]).query)
    assert back["error"] == ["access_denied"] and back["error_subcode"] == ["cancel"]
    assert back["error_description"][0].startswith("AADSTS65004:") and back["state"] == ["s1"]


def test_an_unregistered_redirect_uri_is_refused_without_a_redirect(emulator, app, guest):
    refused = consent(emulator, guest["id"], app, redirect="https://evil.example/steal")
    assert refused.status_code == 400 and "AADSTS50011" in refused.text


def test_a_consented_tenant_issues_tokens_for_graph_and_its_sharepoint(emulator, app, guest):
    consent(emulator, guest["id"], app)
    for resource in ("https://graph.microsoft.com", guest["sharePointUrl"]):
        issued = token(emulator, guest["id"], app, f"{resource}/.default")
        assert issued.status_code == 200, issued.text
        assert issued.json()["token_type"] == "Bearer" and issued.json()["expires_in"] == 3599


def test_a_tenant_that_never_consented_refuses_the_app(emulator, app, guest):
    refused = token(emulator, guest["id"], app, "https://graph.microsoft.com/.default")
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    assert code_of(refused) == 700016


def test_an_assertion_the_federated_credential_does_not_name_is_refused(emulator, guest):
    other = str(uuid.uuid4())
    emulator.http.post(
        "/_emulator/apps",
        json={
            "appId": other,
            "redirectUris": [REDIRECT],
            "federatedCredentials": [
                {
                    "issuer": "https://login.microsoftonline.com/x/v2.0",
                    "subject": "someone-else",
                    "audiences": [],
                }
            ],
        },
    )
    consent(emulator, guest["id"], other)
    refused = token(emulator, guest["id"], other, "https://graph.microsoft.com/.default")
    assert refused.status_code == 400 and code_of(refused) == 70021
    assert "Assertion Subject" in refused.json()["error_description"]


@pytest.mark.parametrize(
    ("form", "status", "code"),
    [
        ({"client_assertion": "not.a.jwt"}, 400, 50027),
        ({"client_assertion_type": "", "client_assertion": ""}, 401, 7000218),
        ({"grant_type": "password"}, 400, 70003),
        ({"scope": "https://graph.microsoft.com/Mail.Read"}, 400, 1002012),
        ({"scope": "https://fabrikam.sharepoint.com/.default"}, 400, 500011),
    ],
    ids=["forged assertion", "no assertion", "another grant", "no .default", "another resource"],
)
def test_what_the_identity_platform_refuses_is_refused_with_its_code(
    emulator, app, guest, form, status, code
):
    consent(emulator, guest["id"], app)
    form = dict(form)
    scope = form.pop("scope", "https://graph.microsoft.com/.default")
    refused = token(emulator, guest["id"], app, scope, **form)
    assert (refused.status_code, code_of(refused)) == (status, code)


def test_a_token_is_taken_only_by_the_service_and_the_tenant_it_was_asked_for(emulator, app, guest):
    consent(emulator, guest["id"], app)
    graph = token(emulator, guest["id"], app, "https://graph.microsoft.com/.default").json()["access_token"]
    sharepoint = token(emulator, guest["id"], app, f"{guest['sharePointUrl']}/.default").json()[
        "access_token"
    ]
    web = f"/_tenants/{guest['id']}/_api/web/lists"

    def call(path: str, bearer: str) -> int:
        return emulator.http.get(path, headers={"Authorization": f"Bearer {bearer}"}).status_code

    assert call(web, sharepoint) == 200
    assert call(web, graph) == 401  # a Graph token at SharePoint
    assert call("/_api/web/lists", sharepoint) == 401  # another tenant's SharePoint
    assert call("/v1.0/subscriptions", graph) == 200
    assert call("/v1.0/subscriptions", sharepoint) == 401  # a SharePoint token at Graph


def test_a_revoked_consent_ends_the_apps_tokens_and_refuses_new_ones(emulator, app, guest):
    consent(emulator, guest["id"], app)
    graph = token(emulator, guest["id"], app, "https://graph.microsoft.com/.default").json()["access_token"]
    emulator.in_tenant(guest["id"]).revoke_consent(app)
    headers = {"Authorization": f"Bearer {graph}"}
    assert emulator.http.get("/v1.0/subscriptions", headers=headers).status_code == 401
    assert code_of(token(emulator, guest["id"], app, "https://graph.microsoft.com/.default")) == 700016
