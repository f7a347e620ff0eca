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
CHANGE_TOKEN_TOO_OLD = "-2130575172, Microsoft.SharePoint.SPInvalidChangeTokenException"
CHANGE_TOKEN_OF_ANOTHER_OBJECT = "-2130575173, Microsoft.SharePoint.SPInvalidChangeTokenException"
FORMAT = "-1, System.FormatException"
INVALID_CLIENT_QUERY = "-1, Microsoft.SharePoint.Client.InvalidClientQueryException"
ACCESS_DENIED = "-2147024891, System.UnauthorizedAccessException"
FILE_NOT_FOUND = "-2147024894, System.IO.FileNotFoundException"
FILE_EXISTS = "-2130575257, Microsoft.SharePoint.SPException"
FILE_CHECKED_OUT = "-2130575306, Microsoft.SharePoint.SPFileCheckOutException"
FILE_NOT_CHECKED_OUT = "-2130575305, Microsoft.SharePoint.SPFileCheckOutException"
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


def unknown_property(name: str, type_name: str) -> SharePointError:
    return SharePointError(
        400,
        INVALID_CLIENT_QUERY,
        f"The property '{name}' does not exist on type '{type_name}'. Make sure to only use property "
        "names that are defined by the type.",
    )


def argument_out_of_range(parameter: str) -> SharePointError:
    return SharePointError(
        400,
        ARGUMENT_OUT_OF_RANGE,
        f"Specified argument was out of the range of valid values.\r\nParameter name: {parameter}",
    )


def change_token_too_old() -> SharePointError:
    return SharePointError(
        400,
        CHANGE_TOKEN_TOO_OLD,
        "The changeToken refers to a time before the start of the current change log.",
    )


def change_token_of_another_object() -> SharePointError:
    return SharePointError(
        400,
        CHANGE_TOKEN_OF_ANOTHER_OBJECT,
        "Cannot use the changeToken from one object against a different object",
    )


def malformed_change_token() -> SharePointError:
    return SharePointError(400, FORMAT, "Input string was not in a correct format.")


def access_denied() -> SharePointError:
    return SharePointError(
        403,
        ACCESS_DENIED,
        "Access denied. You do not have permission to perform this action or access this resource.",
    )


def file_not_found(server_relative_url: str) -> SharePointError:
    return SharePointError(404, FILE_NOT_FOUND, "File Not Found.")


def file_exists(server_relative_url: str) -> SharePointError:
    return SharePointError(400, FILE_EXISTS, f"A file with the name {server_relative_url} already exists.")


def file_checked_out(server_relative_url: str) -> SharePointError:
    return SharePointError(
        400, FILE_CHECKED_OUT, f'The file "{server_relative_url}" is checked out for editing by another user.'
    )


def file_not_checked_out(server_relative_url: str) -> SharePointError:
    return SharePointError(400, FILE_NOT_CHECKED_OUT, f'The file "{server_relative_url}" is not checked out.')


def error_response(error: SharePointError, request_id: str, *, verbose: bool = False) -> JSONResponse:
    """`odata.error` in nometadata and minimal metadata; `error` under `Accept: odata=verbose`."""
    headers = {"request-id": request_id, "SPRequestGuid": request_id, **error.headers}
    detail = {"code": error.code, "message": {"lang": "en-US", "value": error.message}}
    body = {"error": detail} if verbose else {"odata.error": detail}
    return JSONResponse(body, status_code=error.status, headers=headers)
