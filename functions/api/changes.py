"""Management API, changes (function key): a subscription's change log, a page at a time."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import azure.functions as func

from ..responses import error_response, json_response
from .common import next_link, run, top_parameter

if TYPE_CHECKING:
    from ..core.services import Services

log = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]

DEFAULT_CHANGES_PAGE = 100


@bp.function_name("list_changes")
@bp.route(route="changes", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_changes(req: func.HttpRequest) -> func.HttpResponse:
    return run(_list_changes, req)


def _list_changes(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from ..core.change_log import MAX_PAGE_SIZE
    from ..core.models import dump

    subscription_id = req.params.get("subscriptionId")
    if not subscription_id:
        return error_response(400, "BadRequest", "the subscriptionId query parameter is required")
    top = top_parameter(req, DEFAULT_CHANGES_PAGE, MAX_PAGE_SIZE)
    if top is None:
        return error_response(400, "BadRequest", f"top must be a whole number from 1 to {MAX_PAGE_SIZE}")
    scope = services.subscriptions.get(subscription_id).scope
    page = services.change_log.view_page(scope, after=req.params.get("after", ""), top=top)
    body: dict[str, Any] = {"value": [dump(change) for change in page.changes]}
    if page.next_after:
        body["nextLink"] = next_link(
            req.url, {"subscriptionId": subscription_id, "top": top, "after": page.next_after}
        )
    return json_response(body)
