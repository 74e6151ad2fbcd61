"""Migrations 80-82: labels, snooze and saved views; 91 and 119: the indexes the inbox and search need at scale."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        80,
        "labels: admin-defined (slug, title, color), on conversations and customers; labels rules set before are kept",
        """
CREATE TABLE labels (
    name TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    color TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
INSERT INTO labels (name, title, color, created_at, updated_at)
    SELECT DISTINCT label, label, '#64748b', '1970-01-01T00:00:00.000000Z', '1970-01-01T00:00:00.000000Z'
    FROM conversation_labels;
CREATE INDEX conversation_labels_label ON conversation_labels (label, conversation_id);
CREATE TABLE customer_labels (
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    label TEXT NOT NULL,
    PRIMARY KEY (customer_id, label)
);
CREATE INDEX customer_labels_label ON customer_labels (label, customer_id)
""",
    ),
    (
        81,
        "snooze: a snoozed conversation (status 'snoozed') keeps its owner and wakes at a time or on the customer's "
        "next message",
        """
ALTER TABLE conversations ADD COLUMN snoozed_until TEXT;
ALTER TABLE conversations ADD COLUMN snoozed_at TEXT;
ALTER TABLE conversations ADD COLUMN snoozed_by BIGINT;
ALTER TABLE conversations ADD COLUMN wake_reason TEXT;
CREATE INDEX conversations_snoozed ON conversations (status, snoozed_until)
""",
    ),
    (
        82,
        "views: saved inbox filters, an agent's own (agent_id) or shared with the team (agent_id NULL)",
        """
CREATE TABLE saved_views (
    id {id},
    agent_id BIGINT,
    name TEXT NOT NULL,
    filters TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX saved_views_agent ON saved_views (agent_id)
""",
    ),
]

# The inbox and search at a big center's scale (bench.inbox; docs/performance.md).
MIGRATIONS.append(
    (
        91,
        "inbox at scale: the active conversations in inbox order (a page reads its first rows, not every open one), "
        "and each queue's and agent's customers (the visibility rule's subquery, without a scan)",
        """
CREATE INDEX conversations_active ON conversations (updated_at, id, queue, agent_id)
    WHERE status IN ('open', 'assigned');
CREATE INDEX conversations_queue_customer ON conversations (queue, customer_id);
CREATE INDEX conversations_agent_customer ON conversations (agent_id, customer_id)
""",
    )
)

# An inbox page by queue and by agent (docs/performance.md, "The inbox's page at 100,000 open conversations").
MIGRATIONS.append(
    (
        119,
        "inbox pages: each queue's and each agent's active conversations in inbox order, so a page of one queue, of "
        "Mine, or of an agent's few queues reads its first rows instead of every active conversation",
        """
CREATE INDEX conversations_active_queue ON conversations (queue, updated_at, id)
    WHERE status IN ('open', 'assigned');
CREATE INDEX conversations_active_agent ON conversations (agent_id, updated_at, id)
    WHERE status IN ('open', 'assigned')
""",
    )
)
