"""The HTTP trigger body itself, called as the Functions worker would call it."""

import azure.functions as func

from functions.intake import sharepoint_notifications
from tests.helpers import invocation_context

CONTEXT = invocation_context("sharepoint_notifications")


def request(method: str, params: dict, body: bytes = b"") -> func.HttpRequest:
    return func.HttpRequest(method, "https://app/api/notifications/sharepoint", params=params, body=body)


def test_validation_echoes_the_token_as_plain_text_without_touching_storage(monkeypatch):
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)  # no settings: any storage call would fail
    response = sharepoint_notifications(request("POST", {"validationtoken": "abc 123"}), CONTEXT)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_body() == b"abc 123"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_validation_also_works_with_get_and_graphs_casing():
    response = sharepoint_notifications(request("GET", {"validationToken": "t"}), CONTEXT)
    assert (response.status_code, response.get_body()) == (200, b"t")


def test_a_hostile_validation_token_gets_400():
    response = sharepoint_notifications(request("POST", {"validationtoken": "a\r\nb"}), CONTEXT)
    assert response.status_code == 400
    assert response.mimetype == "application/json"


def test_a_get_without_a_token_is_not_a_notification():
    assert sharepoint_notifications(request("GET", {}), CONTEXT).status_code == 405
