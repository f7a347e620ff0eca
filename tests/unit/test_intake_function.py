"""The HTTP trigger body itself, called as the Functions worker would call it."""

import subprocess
import sys
from pathlib import Path

import azure.functions as func

from functions.intake import sharepoint_notifications
from tests.helpers import invocation_context

CONTEXT = invocation_context("sharepoint_notifications")
ROOT = Path(__file__).resolve().parents[2]


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


def test_a_cold_instance_answers_the_validation_echo_without_importing_an_sdk_or_pydantic():
    """What the host loads, then one echo, in a fresh interpreter: nothing heavy may be imported."""
    script = """
import sys
import azure.functions as func
import function_app
from functions.intake import graph_notifications
from tests.helpers import invocation_context
url = "https://app/api/notifications/graph"
request = func.HttpRequest("POST", url, params={"validationToken": "t"}, body=b"")
assert graph_notifications(request, invocation_context("graph_notifications")).get_body() == b"t"
heavy = ("pydantic", "azure.data", "azure.storage", "azure.identity", "azure.core", "requests")
print(sorted(name for name in sys.modules if name.startswith(heavy)))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT, timeout=60
    )
    assert result.stdout.strip() == "[]"
