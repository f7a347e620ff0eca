"""Connector receivers: Teams workflows, MessageCard endpoints and signed webhooks, checking what
they are sent."""
