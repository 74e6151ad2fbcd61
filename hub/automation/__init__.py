"""Automation: rules that act on the hub's events, and business hours (docs/automation.md)."""
