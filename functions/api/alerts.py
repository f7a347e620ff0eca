"""Management API, health alerts (function key): what was said about a subscription."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from ..responses import json_response
from .common import run

if TYPE_CHECKING:
    from ..core.services import Services

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("list_alerts")
@bp.route(route="subscriptions/{id}/alerts", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_alerts(req: func.HttpRequest) -> func.HttpResponse:
    return run(_list_alerts, req)


def _list_alerts(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    record = services.subscriptions.get(req.route_params["id"])
    return json_response({"value": services.alerts.views(record.id)})
