"""Migration 70: satisfaction surveys, one per conversation at most."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        70,
        "csat: one satisfaction survey per resolved conversation (scheduled, sent, answered or skipped)",
        """
CREATE TABLE csat_surveys (
    id {id},
    conversation_id BIGINT NOT NULL UNIQUE,
    customer_id BIGINT NOT NULL,
    queue TEXT NOT NULL DEFAULT '',
    agent_id BIGINT,
    status TEXT NOT NULL,
    resolved_at TEXT NOT NULL,
    channel TEXT,
    identity TEXT,
    message_id BIGINT,
    sent_at TEXT,
    expires_at TEXT,
    score INTEGER,
    comment TEXT,
    answered_at TEXT,
    answer_message_id BIGINT,
    reason TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX csat_surveys_scheduled ON csat_surveys (status, resolved_at);
CREATE INDEX csat_surveys_customer ON csat_surveys (customer_id, status)
""",
    ),
]
