"""Subscriptions: the record we keep, its table, the operations on it, keeping it alive, and how it
is shown."""

from ..sources.base import InvalidSubscriptionRequest
from .record import SubscriptionRecord, hash_client_state, new_client_state
from .renewal import RenewalReport, Renewals
from .service import SubscriptionConflict, SubscriptionNotFound, SubscriptionService
from .store import SubscriptionStore
from .views import SubscriptionViews

__all__ = [
    "InvalidSubscriptionRequest",
    "RenewalReport",
    "Renewals",
    "SubscriptionConflict",
    "SubscriptionNotFound",
    "SubscriptionRecord",
    "SubscriptionService",
    "SubscriptionStore",
    "SubscriptionViews",
    "hash_client_state",
    "new_client_state",
]
