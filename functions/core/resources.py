"""The queues and tables this service uses, by name (standard library only: the trigger modules
import it when the host loads them, before any SDK)."""

NOTIFICATIONS_QUEUE = "notifications"
NOTIFICATIONS_POISON_QUEUE = "notifications-poison"
SUBSCRIPTIONS_TABLE = "subscriptions"
CHECKPOINTS_TABLE = "checkpoints"
CHANGES_TABLE = "changes"
FAILURES_TABLE = "failures"
SINKS_TABLE = "sinks"
SINK_CURSORS_TABLE = "sinkcursors"
SINK_RATES_TABLE = "sinkrates"
READ_LEASES_TABLE = "readleases"
ITEM_FIELDS_TABLE = "itemfields"
ALERTS_TABLE = "alerts"
TENANTS_TABLE = "tenants"
DELIVERIES_QUEUE = "deliveries"
DELIVERIES_POISON_QUEUE = "deliveries-poison"
QUEUES = (NOTIFICATIONS_QUEUE, NOTIFICATIONS_POISON_QUEUE, DELIVERIES_QUEUE, DELIVERIES_POISON_QUEUE)
TABLES = (
    SUBSCRIPTIONS_TABLE,
    CHECKPOINTS_TABLE,
    CHANGES_TABLE,
    FAILURES_TABLE,
    SINKS_TABLE,
    SINK_CURSORS_TABLE,
    SINK_RATES_TABLE,
    READ_LEASES_TABLE,
    ITEM_FIELDS_TABLE,
    ALERTS_TABLE,
    TENANTS_TABLE,
)
