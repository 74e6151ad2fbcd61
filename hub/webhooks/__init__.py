"""Signed outbound webhooks: subscriptions, the durable delivery log and its sender (docs/webhooks.md)."""
