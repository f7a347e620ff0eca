"""The validation handshake: Microsoft 365 calls the notification URL with a token to echo.

Standard library only: on a cold instance the echo is answered before pydantic, the models or any
Azure SDK is imported (SharePoint and Graph give it a few seconds, a cold start included).
"""

from __future__ import annotations

from collections.abc import Mapping

from .errors import BadRequest

MAX_VALIDATION_TOKEN_LENGTH = 1024


class InvalidValidationToken(BadRequest):
    error_code = "InvalidValidationToken"


def find_validation_token(params: Mapping[str, str]) -> str | None:
    """SharePoint sends `validationtoken`, Graph `validationToken`: match the name in any case."""
    for name, value in params.items():
        if name.lower() == "validationtoken":
            return value
    return None


def checked_validation_token(token: str) -> str:
    """The token is echoed into a response body: bound its size and refuse control characters."""
    if not token or len(token) > MAX_VALIDATION_TOKEN_LENGTH:
        raise InvalidValidationToken(
            f"validation token must be 1 to {MAX_VALIDATION_TOKEN_LENGTH} characters"
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in token):
        raise InvalidValidationToken("validation token must not contain control characters")
    return token
