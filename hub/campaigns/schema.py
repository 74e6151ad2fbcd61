"""Migrations 86-89 and 71: campaigns, their recipients, and a WhatsApp campaign's approved template."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        86,
        "campaigns: a message to a segment or a list of identities, and each recipient's outcome (the message written "
        "through the outbox, or why they were skipped)",
        """
CREATE TABLE campaigns (
    id {id},
    name TEXT NOT NULL,
    channel TEXT NOT NULL,
    text TEXT NOT NULL,
    subject TEXT,
    segment_id BIGINT,
    identities TEXT,
    rate_per_minute INTEGER NOT NULL,
    status TEXT NOT NULL,
    scheduled_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    created_by BIGINT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX campaigns_due ON campaigns (status, scheduled_at);
CREATE TABLE campaign_recipients (
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id),
    position INTEGER NOT NULL,
    customer_id BIGINT,
    identity TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    message_id BIGINT,
    queued_at TEXT,
    reply_until TEXT,
    PRIMARY KEY (campaign_id, position)
);
CREATE INDEX campaign_recipients_status ON campaign_recipients (campaign_id, status, position);
CREATE INDEX campaign_recipients_queued ON campaign_recipients (campaign_id, queued_at);
CREATE INDEX campaign_recipients_message ON campaign_recipients (message_id)
""",
    ),
    (
        71,
        "campaign_templates: the approved WhatsApp template a campaign sends (Twilio's ContentSid) and what fills "
        "each of its variables",
        # No foreign key: on a new database this runs before campaigns exists (86), which PostgreSQL refuses.
        """
CREATE TABLE campaign_templates (
    campaign_id BIGINT PRIMARY KEY,
    sid TEXT NOT NULL,
    name TEXT NOT NULL,
    variables TEXT NOT NULL
)
""",
    ),
]
