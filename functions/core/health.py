"""A cheap readiness check: can this instance reach its queue?"""

from __future__ import annotations

from azure.core.exceptions import AzureError

from .resources import NOTIFICATIONS_QUEUE
from .storage import Storage


def check_storage(storage: Storage) -> str | None:
    """None when the notifications queue answers, else a short reason (no secrets, no trace)."""

    try:
        storage.queue(NOTIFICATIONS_QUEUE).get_queue_properties()
    except AzureError as error:
        return type(error).__name__
    return None
