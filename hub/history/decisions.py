"""The routing decisions the hub applied, one row each, written in the transaction that applies them: the wall's
figures (answered, in SLA, offers turned down or missed, abandoned, first replies) are counted from here for any
time window, so they say their window and survive a restart (the routing state's counters start from zero)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.history.db import Tx
from hub.routing.events import (
    Assigned,
    FirstResponded,
    Offered,
    OfferTimedOut,
    Rejected,
    Resolved,
    RoutingEvent,
    SlaBreached,
)


def record(tx: Tx, events: list[RoutingEvent], now: str, sla_wait: Mapping[str, float]) -> None:
    """SLA_WAIT: each queue's answer target in seconds (an answer within it counts as in SLA)."""
    rows: list[tuple[Any, ...]] = []
    for e in events:
        if isinstance(e, Assigned):
            target = sla_wait.get(e.queue, 0.0)
            rows.append((e.type, e.queue, e.conversation, e.agent, e.waited, int(e.waited <= target)))
            if e.accepted:  # an offer taken, rather than a direct assignment: the queue's offers_accepted
                rows.append(("routing.accepted", e.queue, e.conversation, e.agent, None, None))
        elif isinstance(e, Offered | Rejected | OfferTimedOut):
            rows.append((e.type, e.queue, e.conversation, e.agent, None, None))
        elif isinstance(e, Resolved) and e.agent is None and not e.snoozed:
            rows.append(("routing.abandoned", e.queue, e.conversation, None, None, None))
        elif isinstance(e, FirstResponded):
            rows.append((e.type, e.queue, e.conversation, e.agent, e.waited, int(e.within)))
        elif isinstance(e, SlaBreached) and e.kind == "first_response":
            rows.append((e.type, e.queue, e.conversation, None, e.waited, 0))
    for r in rows:
        tx.exec("INSERT INTO routing_decisions (at, type, queue, conversation_id, agent_id, seconds, within) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", (now, *r))


@dataclass(frozen=True)
class QueueFigures:
    """One queue's figures over a time window."""

    offered: int = 0
    answered: int = 0
    answered_in_sla: int = 0
    rejected: int = 0
    timed_out: int = 0
    abandoned: int = 0
    responded: int = 0
    responded_in_target: int = 0
    first_response_breached: int = 0

    def to_json(self) -> dict[str, Any]:
        known = self.responded_in_target + self.first_response_breached
        return {
            "offered": self.offered, "answered": self.answered, "answered_in_sla": self.answered_in_sla,
            "sla_attainment": self.answered_in_sla / self.answered if self.answered else None,
            "rejected": self.rejected, "timed_out": self.timed_out, "abandoned": self.abandoned,
            "responded": self.responded, "responded_in_target": self.responded_in_target,
            "first_response_breached": self.first_response_breached,
            "first_response_attainment": self.responded_in_target / known if known else None,
        }


def figures(tx: Tx, since: str) -> dict[str, QueueFigures]:
    """Every queue's figures from SINCE (a stored time) until now."""
    counts: dict[str, dict[str, int]] = {}
    for r in tx.all("SELECT queue, type, COUNT(*) AS n, SUM(within) AS w FROM routing_decisions WHERE at >= ? "
                    "GROUP BY queue, type", (since,)):
        q = counts.setdefault(str(r["queue"]), {})
        n, w = int(r["n"]), int(r["w"] or 0)
        kind = str(r["type"])
        if kind == "routing.offered":
            q["offered"] = n
        elif kind == "routing.assigned":
            q["answered"], q["answered_in_sla"] = n, w
        elif kind == "routing.rejected":
            q["rejected"] = n
        elif kind == "routing.offer_timed_out":
            q["timed_out"] = n
        elif kind == "routing.abandoned":
            q["abandoned"] = n
        elif kind == "routing.first_response":
            q["responded"], q["responded_in_target"] = n, w
        elif kind == "routing.sla_breached":
            q["first_response_breached"] = n
    return {name: QueueFigures(**c) for name, c in counts.items()}


def counters(tx: Tx) -> dict[str, dict[str, int]]:
    """Every queue's counters as the routing state keeps them (hub.routing.types.QueueStats), from every decision
    the store recorded: what a routing state rebuilt from the store starts from (a restart, Redis wiped). One
    scan of the table."""
    out: dict[str, dict[str, int]] = {}
    names = {"routing.offered": ("offered", None), "routing.accepted": ("accepted", None),
             "routing.assigned": ("answered", "answered_in_sla"), "routing.rejected": ("rejected", None),
             "routing.offer_timed_out": ("timed_out", None), "routing.abandoned": ("abandoned", None),
             "routing.first_response": ("responded", "responded_in_sla")}
    for r in tx.all("SELECT queue, type, COUNT(*) AS n, SUM(within) AS w FROM routing_decisions GROUP BY queue, type"):
        if (name := names.get(str(r["type"]))) is None:
            continue
        q = out.setdefault(str(r["queue"]), {})
        count, within = name
        q[count] = int(r["n"])
        if within is not None:
            q[within] = int(r["w"] or 0)
    # A first reply's outcome is counted once: breached when the sweep saw its deadline pass, or when the reply
    # came late before the sweep did.
    for r in tx.all("SELECT queue, COUNT(DISTINCT conversation_id) AS n FROM routing_decisions "
                    "WHERE type = 'routing.sla_breached' OR (type = 'routing.first_response' AND within = 0) "
                    "GROUP BY queue"):
        out.setdefault(str(r["queue"]), {})["response_breached"] = int(r["n"])
    return out


def holding(tx: Tx) -> dict[int, dict[str, int]]:
    """What each agent holds, by channel, as the store says (assigned conversations): right after a restart too."""
    out: dict[int, dict[str, int]] = {}
    for r in tx.all("SELECT agent_id, channel, COUNT(*) AS n FROM conversations WHERE status = 'assigned' "
                    "AND agent_id IS NOT NULL GROUP BY agent_id, channel"):
        out.setdefault(int(r["agent_id"]), {})[str(r["channel"])] = int(r["n"])
    return out
