"""Migrations 94-97, 110, 112 and 114: each customer's report figures by hour and day, and each saved segment's
(reports sliced by segment), the agents' presence history (staffing: agents needed against agents available), and
the keywords of customer messages by week (keyword trends)."""

from __future__ import annotations

#: the metrics kept per customer (report_customer_rollups has a count column n_<metric> for each), as of migration 110
CUSTOMER_METRICS = (
    "opened", "reopened", "after_hours", "repeat", "messages_in", "messages_out", "first_response",
    "first_response_bh", "first_response_targeted", "first_response_in_sla", "reply", "reply_bh", "resolved",
    "resolved_bh", "offered", "offers_accepted", "offers_rejected", "offers_timed_out", "wait", "answered_in_sla",
    "abandoned", "transfers", "csat", "csat_satisfied",
)
#: the metrics that also sum seconds (or a score): a t_<metric> column each; the others only count
CUSTOMER_TIMED = (
    "first_response", "first_response_bh", "reply", "reply_bh", "resolved", "resolved_bh", "wait", "abandoned",
    "csat",
)
#: report_customer_rollups' figure columns: a count per metric, then a sum per timed metric
CUSTOMER_COLUMNS = (*(f"n_{m}" for m in CUSTOMER_METRICS), *(f"t_{m}" for m in CUSTOMER_TIMED))
_COLUMNS = ",\n".join([f"    n_{m} BIGINT NOT NULL DEFAULT 0" for m in CUSTOMER_METRICS]
                       + [f"    t_{m} DOUBLE PRECISION NOT NULL DEFAULT 0" for m in CUSTOMER_TIMED])

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
    (
        110,
        "reports: each customer's figures as one row per UTC hour and per business day, every metric a column "
        "(reports by segment read a row per member and day, not per hour and metric); run `hub reports rebuild` "
        "once to fill it from the events",
        f"""
DROP TABLE report_customer_hours;
CREATE TABLE report_customer_rollups (
    customer_id BIGINT NOT NULL,
    grain TEXT NOT NULL,
    bucket TEXT NOT NULL,
{_COLUMNS},
    PRIMARY KEY (customer_id, grain, bucket)
);
CREATE INDEX report_customer_rollups_bucket ON report_customer_rollups (grain, bucket, customer_id)
""",
    ),
    (
        112,
        "reports: each saved segment's figures by UTC hour and business day, the sum of its members' as of the "
        "roller's last look (report_segment_members); a report by segment adds the rows of the customers who "
        "joined since and takes away those who left",
        f"""
CREATE TABLE report_segment_members (
    segment_id BIGINT NOT NULL,
    customer_id BIGINT NOT NULL,
    PRIMARY KEY (segment_id, customer_id)
);
CREATE INDEX report_segment_members_customer ON report_segment_members (customer_id, segment_id);
CREATE TABLE report_segment_rollups (
    segment_id BIGINT NOT NULL,
    grain TEXT NOT NULL,
    bucket TEXT NOT NULL,
{_COLUMNS},
    PRIMARY KEY (segment_id, grain, bucket)
)
""",
    ),
    (
        114,
        "reports: keyword counts kept once, by week, channel and queue (the counts for everything, a channel or a "
        "queue are their sums, made when a trend is read), not once per slice: a third of the rows the roller "
        "wrote for every message; report_keywords keeps what was counted before this version and is read with them",
        """
CREATE TABLE report_keywords_by_queue (
    week TEXT NOT NULL,
    channel TEXT NOT NULL,
    queue TEXT NOT NULL,
    word TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (week, channel, queue, word)
)
""",
    ),
]
