"""Migrations 50-59 (and 90): the hub's event log, automation rules, business hours and outbound webhooks."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        50,
        "automation: the durable event log (one row per event, written with the change it describes), rules, "
        "labels, priority and customer attributes",
        """
CREATE TABLE hub_events (
    id {id},
    type TEXT NOT NULL,
    conversation_id BIGINT,
    message_id BIGINT,
    depth INTEGER NOT NULL DEFAULT 0,
    automatic INTEGER NOT NULL DEFAULT 0,
    payload TEXT,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    processed_at TEXT
);
CREATE INDEX hub_events_pending ON hub_events (status, id);
CREATE INDEX hub_events_conversation ON hub_events (conversation_id, id);
CREATE TABLE automation_rules (
    id {id},
    name TEXT NOT NULL,
    event TEXT NOT NULL,
    position INTEGER NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    conditions TEXT NOT NULL,
    actions TEXT NOT NULL,
    runs INTEGER NOT NULL DEFAULT 0,
    last_run_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE automation_runs (
    rule_id BIGINT NOT NULL,
    event_id BIGINT NOT NULL,
    conversation_id BIGINT,
    at TEXT NOT NULL,
    PRIMARY KEY (rule_id, event_id)
);
CREATE TABLE conversation_labels (
    conversation_id BIGINT NOT NULL REFERENCES conversations(id),
    label TEXT NOT NULL,
    PRIMARY KEY (conversation_id, label)
);
ALTER TABLE conversations ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
CREATE TABLE customer_attributes (
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (customer_id, name)
)
""",
    ),
    (
        51,
        "outbound webhooks: subscriptions and the durable delivery log",
        """
CREATE TABLE webhook_subscriptions (
    id {id},
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    events TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE webhook_deliveries (
    id {id},
    subscription_id BIGINT NOT NULL REFERENCES webhook_subscriptions(id),
    event_id BIGINT NOT NULL,
    conversation_id BIGINT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_until TEXT,
    response_status INTEGER,
    last_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (subscription_id, conversation_id, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id)
""",
    ),
    (
        52,
        "business hours (per queue and a default) and the out-of-hours replies already sent",
        """
CREATE TABLE business_hours (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE hours_replies (
    conversation_id BIGINT NOT NULL,
    window_end TEXT NOT NULL,
    message_id BIGINT,
    PRIMARY KEY (conversation_id, window_end)
)
""",
    ),
    (
        53,
        "bots that answer first: a bot per queue, and the customer messages waiting for their bot's answer",
        """
CREATE TABLE bots (
    queue TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    handoff_queue TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT NOT NULL
);
CREATE TABLE bot_turns (
    id {id},
    queue TEXT NOT NULL,
    conversation_id BIGINT NOT NULL,
    message_id BIGINT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_until TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX bot_turns_due ON bot_turns (status, next_attempt_at)
""",
    ),
    (
        90,
        "automation: what a rule could not do the last time it ran (a value its attribute's type refuses), until "
        "the rule is saved again",
        """
ALTER TABLE automation_rules ADD COLUMN problem TEXT;
ALTER TABLE automation_rules ADD COLUMN problem_at TEXT
""",
    ),
]
