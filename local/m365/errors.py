"""SharePoint's error bodies, from one factory: `{"odata.error": {"code", "message": {...}}}`."""

from __future__ import annotations

from starlette.responses import JSONResponse

# Codes as SharePoint Online writes them: "<number>, <exception type>".
ARGUMENT = "-1, System.ArgumentException"
ARGUMENT_OUT_OF_RANGE = "-1, System.ArgumentOutOfRangeException"
INVALID_OPERATION = "-1, System.InvalidOperationException"
NOT_FOUND = "-1, Microsoft.SharePoint.Client.ResourceNotFoundException"
LIST_NOT_FOUND = "-1, System.ArgumentException"
ITEM_NOT_FOUND = "-2147024809, System.ArgumentException"
INVALID_CHANGE_TOKEN = "-2130575172, Microsoft.SharePoint.SPInvalidChangeTokenException"
THROTTLED = "-2147024860, Microsoft.SharePoint.SPQueryThrottledException"
DUPLICATE_LIST = "-2130575342, Microsoft.SharePoint.SPException"


class SharePointError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def list_not_found() -> SharePointError:
    return SharePointError(
        404,
        LIST_NOT_FOUND,
        "List does not exist.\n\nThe page you selected contains a list that does not exist. "
        "It may have been deleted by another user.",
    )


def item_not_found() -> SharePointError:
    return SharePointError(
        404, ITEM_NOT_FOUND, "Item does not exist. It may have been deleted by another user."
    )


def subscription_not_found(subscription_id: str) -> SharePointError:
    return SharePointError(404, NOT_FOUND, f"The subscription '{subscription_id}' does not exist.")


def validation_failed(notification_url: str) -> SharePointError:
    return SharePointError(
        400, INVALID_OPERATION, f"Failed to validate the notification URL '{notification_url}'."
    )


def error_response(error: SharePointError, request_id: str) -> JSONResponse:
    headers = {"request-id": request_id, "SPRequestGuid": request_id, **error.headers}
    body = {"odata.error": {"code": error.code, "message": {"lang": "en-US", "value": error.message}}}
    return JSONResponse(body, status_code=error.status, headers=headers)
