"""Connectors: processed changes published to Teams workflows, MessageCard endpoints and signed
webhooks, each a sink configured per subscription."""
