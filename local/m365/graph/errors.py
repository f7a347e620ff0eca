"""Graph's errors, as Graph writes them: `{"error": {"code", "message", "innerError"}}` with
the request's id, and the few the routes raise most."""

from __future__ import annotations

import time

from starlette.responses import JSONResponse

WWW_AUTHENTICATE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
    'client_id="00000003-0000-0000-c000-000000000000"'
)


class GraphError(Exception):
    """Graph's error body: `{"error": {"code", "message", "innerError"}}`."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def not_found(what: str = "The resource could not be found.") -> GraphError:
    return GraphError(404, "ResourceNotFound", what)


def bad_request(message: str, code: str = "InvalidRequest") -> GraphError:
    return GraphError(400, code, message)


def graph_error_response(error: GraphError, request_id: str) -> JSONResponse:
    body = {
        "error": {
            "code": error.code,
            "message": error.message,
            "innerError": {
                "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": request_id,
            },
        }
    }
    return JSONResponse(body, status_code=error.status, headers={"request-id": request_id, **error.headers})
