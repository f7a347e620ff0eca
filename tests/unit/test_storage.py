"""Storage clients as Azure builds them (identity-based settings), and what storage errors mean."""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from functions.core.outbound import UpstreamError
from functions.core.settings import Settings
from functions.core.storage import Storage, StorageUnavailable, is_outage, outages_reported
from functions.responses import error_to_response

IDENTITY_SETTINGS = {
    "AzureWebJobsStorage__credential": "managedidentity",
    "AzureWebJobsStorage__clientId": "identity-client-id",
    "AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.windows.net",
    "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net",
    "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
    "NOTIFICATION_BASE_URL": "https://app.example",
    "SHAREPOINT_TENANT_URL": "https://contoso.sharepoint.com",
}


class FakeManagedIdentity:
    instances: ClassVar[list[FakeManagedIdentity]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        FakeManagedIdentity.instances.append(self)

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        raise AssertionError("no token is needed to build a client")


def status_error(status: int, kind: type[HttpResponseError] = HttpResponseError) -> HttpResponseError:
    error = kind(message=f"HTTP {status}")
    error.status_code = status
    return error


def test_identity_based_clients_use_the_service_uris_and_one_managed_identity(monkeypatch):
    FakeManagedIdentity.instances.clear()
    monkeypatch.setattr("functions.core.storage.ManagedIdentityCredential", FakeManagedIdentity)
    storage = Storage(Settings.from_environ(IDENTITY_SETTINGS).storage)

    table = storage.table("subscriptions")
    queue = storage.queue("notifications")

    assert table.url.startswith("https://acct.table.core.windows.net")
    assert table.table_name == "subscriptions"
    assert queue.url == "https://acct.queue.core.windows.net/notifications"
    assert len(FakeManagedIdentity.instances) == 1
    assert FakeManagedIdentity.instances[0].kwargs == {"client_id": "identity-client-id"}
    assert storage.table("subscriptions") is table  # built once, shared by every caller


def test_the_development_storage_shorthand_needs_no_key_in_our_code():
    storage = Storage(
        Settings.from_environ(
            {**IDENTITY_SETTINGS, "AzureWebJobsStorage": "UseDevelopmentStorage=true"}
        ).storage
    )
    assert storage.queue("notifications").url == "http://127.0.0.1:10001/devstoreaccount1/notifications"
    assert storage.table("changes").url.startswith("http://127.0.0.1:10002")


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (ServiceRequestError("connection refused"), True),
        (ServiceResponseError("read timed out"), True),
        (status_error(429), True),
        (status_error(500), True),
        (status_error(503), True),
        (status_error(400), False),
        (status_error(403), False),
        (status_error(409), False),
        (status_error(404, ResourceNotFoundError), False),
        (HttpResponseError("no response at all"), False),
        (ValueError("not a storage error"), False),
    ],
)
def test_only_network_errors_timeouts_429_and_5xx_are_outages(error, outage):
    assert is_outage(error) is outage


def test_an_outage_becomes_storage_unavailable_and_names_the_operation():
    with (
        pytest.raises(StorageUnavailable, match="reading subscription x"),
        outages_reported("reading subscription x"),
    ):
        raise status_error(503)


def test_a_4xx_passes_through_as_the_bug_it_is():
    with pytest.raises(HttpResponseError), outages_reported("reading subscription x"):
        raise status_error(400)


def test_the_management_api_answers_an_outage_with_503_and_retry_after():
    response = error_to_response(StorageUnavailable("queue: timed out"), operation="list_subscriptions")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert json.loads(response.get_body())["error"]["code"] == "StorageUnavailable"


def test_the_management_api_answers_a_throttled_call_with_503_and_a_retry_after_rounded_up():
    held = UpstreamError(
        service="sharepoint", operation="create subscription", status=429, message="held", retry_after=59.2
    )
    response = error_to_response(held, operation="create_subscription")
    assert (response.status_code, response.headers["Retry-After"]) == (503, "60")


def test_the_management_api_answers_a_storage_4xx_with_500_and_logs_the_cause(caplog):
    with caplog.at_level(logging.ERROR, logger="functions.core.errors"):
        response = error_to_response(status_error(400), operation="list_subscriptions")
    assert response.status_code == 500
    assert "Retry-After" not in response.headers
    assert json.loads(response.get_body())["error"]["code"] == "InternalError"
    [record] = caplog.records
    assert record.exc_info is not None  # the traceback is in the log, not in the response
    assert "list_subscriptions" in record.getMessage()
