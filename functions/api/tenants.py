"""Management API, tenants (function key): onboard an organisation (the admin-consent URL to
send its administrator to), list and read them, remove one with everything kept of it; and the
anonymous consent callback the identity platform redirects the administrator to."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from ..responses import json_response
from .common import run

if TYPE_CHECKING:
    from ..core.services import Services

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("create_tenant")
@bp.route(route="tenants", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def create_tenant(req: func.HttpRequest) -> func.HttpResponse:
    return run(_create_tenant, req)


@bp.function_name("list_tenants")
@bp.route(route="tenants", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_tenants(req: func.HttpRequest) -> func.HttpResponse:
    return run(_list_tenants, req)


@bp.function_name("get_tenant")
@bp.route(route="tenants/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_tenant(req: func.HttpRequest) -> func.HttpResponse:
    return run(_get_tenant, req)


@bp.function_name("delete_tenant")
@bp.route(route="tenants/{id}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
def delete_tenant(req: func.HttpRequest) -> func.HttpResponse:
    return run(_delete_tenant, req)


@bp.function_name("tenant_consent")
@bp.route(route="consent", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def tenant_consent(req: func.HttpRequest) -> func.HttpResponse:
    return run(_tenant_consent, req)


def _create_tenant(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from ..core.models import dump
    from ..core.tenants.models import CreateTenantRequest

    view = services.tenants.onboard(CreateTenantRequest.model_validate_json(req.get_body() or b""))
    return json_response(dump(view), 201, headers={"Location": f"/api/tenants/{view.id}"})


def _list_tenants(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from ..core.models import dump

    return json_response({"value": [dump(view) for view in services.tenants.views()]})


def _get_tenant(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from ..core.models import dump

    return json_response(dump(services.tenants.get(req.route_params["id"])))


def _delete_tenant(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from ..core.models import dump

    return json_response(dump(services.tenants.remove(req.route_params["id"])))


def _tenant_consent(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from ..core.models import dump
    from ..core.tenants.models import ConsentAnswer

    view = services.tenants.consented(ConsentAnswer.model_validate(dict(req.params)))
    return json_response(dump(view))
