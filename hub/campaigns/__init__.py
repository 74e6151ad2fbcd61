"""Proactive campaigns: one message to a saved segment or a list of identities on one channel, sent through the
outbox at a set rate (sender.py), with its recipients and results in the store (campaign_store.py), its text's
variables filled in per recipient (render.py), a WhatsApp campaign's approved template (templates.py), served at
/api/v1/campaigns (api.py).
docs/automation.md has the rules."""
