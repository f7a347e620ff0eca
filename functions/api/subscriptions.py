"""Management API, subscriptions (function key): create, list, read, update, renew, delete; the lists of a
site to subscribe to; and the anonymous health check. One function per operation, so that
Application Insights counts requests and failures per operation."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import azure.functions as func

from ..responses import error_response, json_response
from .common import next_link, run, tenant_parameter, top_parameter

if TYPE_CHECKING:
    from ..core.services import Services

log = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]

DEFAULT_SUBSCRIPTIONS_PAGE = 100
MAX_SUBSCRIPTIONS_PAGE = 1000


@bp.function_name("create_subscription")
@bp.route(route="subscriptions", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def create_subscription(req: func.HttpRequest) -> func.HttpResponse:
    return run(_create_subscription, req)


@bp.function_name("list_subscriptions")
@bp.route(route="subscriptions", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_subscriptions(req: func.HttpRequest) -> func.HttpResponse:
    return run(_list_subscriptions, req)


@bp.function_name("get_subscription")
@bp.route(route="subscriptions/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_subscription(req: func.HttpRequest) -> func.HttpResponse:
    return run(_get_subscription, req)


@bp.function_name("update_subscription")
@bp.route(route="subscriptions/{id}", methods=["PATCH"], auth_level=func.AuthLevel.FUNCTION)
def update_subscription(req: func.HttpRequest) -> func.HttpResponse:
    return run(_update_subscription, req)


@bp.function_name("delete_subscription")
@bp.route(route="subscriptions/{id}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
def delete_subscription(req: func.HttpRequest) -> func.HttpResponse:
    return run(_delete_subscription, req)


@bp.function_name("renew_subscription")
@bp.route(route="subscriptions/{id}/renew", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def renew_subscription(req: func.HttpRequest) -> func.HttpResponse:
    return run(_renew_subscription, req)


@bp.function_name("list_site_lists")
@bp.route(route="sites/lists", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_site_lists(req: func.HttpRequest) -> func.HttpResponse:
    return run(_list_site_lists, req)


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    from ..core.answer_times import INTAKE_ANSWERS, WINDOW_SECONDS
    from ..core.health import check_storage
    from ..core.services import get_services

    late = INTAKE_ANSWERS.late_share()
    # This instance's notification answers over Graph's 3-s deadline, in the last 10 minutes.
    intake = {"answers": late.answers, "over3s": late.late, "share": round(late.share, 3)}
    intake["windowSeconds"] = int(WINDOW_SECONDS)
    problem = check_storage(get_services().intake_storage)
    if problem:
        return json_response({"status": "unhealthy", "storage": problem, "intake": intake}, 503)
    return json_response({"status": "ok", "storage": "ok", "intake": intake})


# --- the operations ----------------------------------------------------------------------------


def _create_subscription(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from ..core.models import dump

    record = services.subscriptions.create(services.subscriptions.parse_request(req.get_body() or b""))
    location = f"/api/subscriptions/{record.id}"
    view = services.subscription_views.plain_view(record)
    return json_response(dump(view), 201, headers={"Location": location})


def _list_subscriptions(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from ..core.models import dump

    top = top_parameter(req, DEFAULT_SUBSCRIPTIONS_PAGE, MAX_SUBSCRIPTIONS_PAGE)
    if top is None:
        return error_response(
            400, "BadRequest", f"top must be a whole number from 1 to {MAX_SUBSCRIPTIONS_PAGE}"
        )
    tenant_id = tenant_parameter(req)
    records, next_after = services.subscriptions.page(
        after=req.params.get("after", ""), top=top, tenant_id=tenant_id
    )
    body: dict[str, Any] = {
        "value": [
            dump(services.subscription_views.view(record, services.renewal_window)) for record in records
        ]
    }
    if next_after:
        query = {"top": top, "after": next_after, **({"tenantId": tenant_id} if tenant_id else {})}
        body["nextLink"] = next_link(req.url, query)
    return json_response(body)


def _get_subscription(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from ..core.models import dump

    record = services.subscriptions.get(req.route_params["id"])
    health = services.subscription_views.health(record, sinks=services.sinks.states(record.id))
    view = services.subscription_views.view(record, services.renewal_window)
    return json_response(dump(view.model_copy(update={"health": health})))


def _update_subscription(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from ..core.models import UpdateSubscriptionRequest, dump

    request = UpdateSubscriptionRequest.model_validate_json(req.get_body() or b"")
    updated = services.subscriptions.update(req.route_params["id"], request)
    return json_response(dump(services.subscription_views.view(updated, services.renewal_window)))


def _list_site_lists(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from ..core.models import dump
    from ..core.tenancy import acting_for

    with acting_for(services.tenancy.for_id(tenant_parameter(req))):
        lists = services.sharepoint.site_lists(req.params.get("siteUrl", ""))
    return json_response({"value": [dump(item) for item in lists]})


def _delete_subscription(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    services.sinks.delete_subscription(req.route_params["id"])
    return func.HttpResponse(status_code=204)


def _renew_subscription(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from ..core.models import dump

    renewed = services.renewals.renew(req.route_params["id"])
    return json_response(dump(services.subscription_views.plain_view(renewed)))
