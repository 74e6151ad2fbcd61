"""The agents' presence history (agent_presence_log): every change is recorded where the store changes an agent's
presence, and read back as the agents available each hour (staffing: needed against available)."""

from __future__ import annotations

from datetime import datetime, timedelta

from hub.history.db import Tx
from hub.model import format_time


def record(tx: Tx, agent_id: int, presence: str, now: str) -> bool:
    """Log AGENT_ID's presence from NOW, unless it is what the log says already (both routing's own change and the
    store's write pass here). Returns whether a row was added."""
    last = tx.one("SELECT presence FROM agent_presence_log WHERE agent_id = ? ORDER BY at DESC, id DESC LIMIT 1",
                  (agent_id,))
    if last is not None and str(last["presence"]) == presence:
        return False
    tx.exec("INSERT INTO agent_presence_log (agent_id, presence, at) VALUES (?, ?, ?)", (agent_id, presence, now))
    return True


def available_by_hour(tx: Tx, start: datetime, hours: int, queue: str | None = None,
                      until: datetime | None = None) -> list[float]:
    """For each of HOURS hours from START: the agents available on average in it (available agent-seconds / 3600),
    from the log; only agents in QUEUE when one is given. Time after UNTIL (now) is not counted."""
    end = start + timedelta(hours=hours)
    lo, hi = format_time(start), format_time(end)
    params: list[object] = [lo]
    member = ""
    if queue is not None:
        member = " AND agent_id IN (SELECT agent_id FROM agent_queues WHERE queue = ?)"
        params.append(queue)
    # Each agent's state as the window opens (their last change before it), then every change inside it.
    rows = tx.all(
        "SELECT l.agent_id, l.presence, l.at FROM agent_presence_log l WHERE l.id IN (SELECT MAX(id) FROM "
        f"agent_presence_log WHERE at < ?{member} GROUP BY agent_id)", params)
    inside = tx.all(f"SELECT agent_id, presence, at FROM agent_presence_log WHERE at >= ? AND at < ?{member} "
                    "ORDER BY at, id", [lo, hi, *params[1:]])
    out = [0.0] * hours
    stop = min(end, until) if until is not None else end
    since: dict[int, datetime] = {}  # available agents and since when (in this window)

    def add(a: datetime, b: datetime) -> None:
        while a < b:
            i = int((a - start).total_seconds() // 3600)
            edge = min(b, start + timedelta(hours=i + 1))
            if 0 <= i < hours:
                out[i] += (edge - a).total_seconds() / 3600
            a = edge

    for r in rows:
        if str(r["presence"]) == "available":
            since[int(r["agent_id"])] = start
    for r in inside:
        agent, at = int(r["agent_id"]), min(datetime.fromisoformat(str(r["at"])), stop)
        if str(r["presence"]) == "available":
            since.setdefault(agent, at)
        elif agent in since:
            add(since.pop(agent), at)
    for began in since.values():
        add(began, stop)
    return [round(x, 2) for x in out]
