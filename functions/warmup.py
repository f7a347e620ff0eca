"""`warmup`: what the host runs on an instance added by scale-out before it sends the instance
traffic (Flex Consumption and Premium; not the old Consumption plan). It builds what the intake's
first notification would otherwise build on Graph's 3-s clock: the services, the storage clients,
the queue connection, the identity platform's signing keys."""

from __future__ import annotations

import logging
import time

import azure.functions as func

# Not re-exported by azure-functions 1.26, though its __all__ names it.
from azure.functions.warmup import WarmUpContext

log = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("warmup")
@bp.warm_up_trigger("warmup")
def warmup(warmup: WarmUpContext) -> None:
    from .core.services import get_services

    started = time.monotonic()
    try:
        get_services().warm()
    except (
        Exception
    ) as error:  # the instance still serves: what warmup could not make, the first request makes
        log.warning("warmup: not everything could be made ready: %s: %s", type(error).__name__, error)
        return
    log.info("warmup: the intake's clients are ready in %.0f ms", (time.monotonic() - started) * 1000)
