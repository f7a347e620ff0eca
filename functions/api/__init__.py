"""The management API, one blueprint per resource."""

from . import alerts, changes, poison, sinks, subscriptions, tenants

BLUEPRINTS = (subscriptions.bp, changes.bp, sinks.bp, poison.bp, alerts.bp, tenants.bp)
