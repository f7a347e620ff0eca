"""What every management operation shares: the services, one error mapping, paging."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import azure.functions as func

from ..responses import error_to_response

if TYPE_CHECKING:
    from ..core.services import Services

Operation = Callable[["Services", func.HttpRequest], func.HttpResponse]


def run(operation: Operation, req: func.HttpRequest) -> func.HttpResponse:
    """Run a management operation; any failure becomes the JSON error for it (core/errors.py)."""
    from ..core.services import get_services

    try:
        return operation(get_services(), req)
    except Exception as error:
        name = getattr(operation, "func", operation).__name__
        return error_to_response(error, operation=name.lstrip("_"))


def top_parameter(req: func.HttpRequest, default: int, maximum: int) -> int | None:
    """The `top` query parameter, or None when it is not a whole number from 1 to `maximum`."""
    # Digits only: int() would also take " 5", "+7", "1_000" and Arabic-Indic digits.
    raw_top = req.params.get("top", str(default))
    value = int(raw_top) if re.fullmatch(r"[0-9]{1,4}", raw_top) else 0
    return value if 1 <= value <= maximum else None


def tenant_parameter(req: func.HttpRequest) -> str | None:
    """The `tenantId` query parameter (a directory id, any case), lower-cased; None if absent."""
    from ..core.errors import BadRequest
    from ..core.tenancy import is_tenant_id

    raw: str | None = req.params.get("tenantId")
    if raw is None:
        return None
    if not is_tenant_id(raw.lower()):
        raise BadRequest("tenantId must be a directory (tenant) id, a GUID")
    return raw.lower()


def next_link(url: str, query: dict[str, Any]) -> str:
    from urllib.parse import urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
