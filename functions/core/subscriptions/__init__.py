"""Subscriptions: the record we keep, its table, and the operations on it."""

from ..sources.base import InvalidSubscriptionRequest
from .record import SubscriptionRecord, hash_client_state, new_client_state
from .service import (
    RenewalReport,
    SubscriptionConflict,
    SubscriptionNotFound,
    SubscriptionService,
)
from .store import SubscriptionStore

__all__ = [
    "InvalidSubscriptionRequest",
    "RenewalReport",
    "SubscriptionConflict",
    "SubscriptionNotFound",
    "SubscriptionRecord",
    "SubscriptionService",
    "SubscriptionStore",
    "hash_client_state",
    "new_client_state",
]
