"""Migrations 94-97: each customer's report figures by hour (reports sliced by segment), the agents' presence
history (staffing: agents needed against agents available), and the keywords of customer messages by week
(keyword trends)."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        94,
        "reports: each customer's figures by UTC hour, so a report can be sliced by a segment's members now "
        "(run `hub reports rebuild` once to fill them for the history before this version)",
        """
CREATE TABLE report_customer_hours (
    customer_id BIGINT NOT NULL,
    hour TEXT NOT NULL,
    metric TEXT NOT NULL,
    n BIGINT NOT NULL,
    total DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (customer_id, hour, metric)
)
""",
    ),
    (
        95,
        "reports: every change of an agent's presence, for the agents available each hour",
        """
CREATE TABLE agent_presence_log (
    id {id},
    agent_id BIGINT NOT NULL,
    presence TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX agent_presence_log_at ON agent_presence_log (at, agent_id);
CREATE INDEX agent_presence_log_agent ON agent_presence_log (agent_id, at)
""",
    ),
    (
        96,
        "reports: the keywords of customers' messages by week, for keyword trends (run `hub reports rebuild` once "
        "to count the history before this version)",
        """
CREATE TABLE report_keywords (
    dim TEXT NOT NULL,
    value TEXT NOT NULL,
    week TEXT NOT NULL,
    word TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (dim, value, week, word)
)
""",
    ),
    (
        97,
        "reports: a customer message's event names the message, so the roller can count its keywords",
        "ALTER TABLE conversation_events ADD COLUMN message_id BIGINT",
    ),
]
