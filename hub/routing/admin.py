"""Routing config that changes while the hub runs: the config file's [routing] tables are the seed, changes made
through the API are stored (table routing_overrides, migration 8) and win over them, and every hub process builds the
same effective config from the two.

A stored row is one queue table (NULL: the queue is deleted), the ordered rules with the default queue, or one agent's
routing profile (skills, capacity, wrap-up, exclusive).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from hub.config import AgentRoutingSettings, QueueSettings, RoutingSettings
from hub.history.db import Database, Tx
from hub.routing.config import RoutingConfig, RoutingConfigError, parse_agent

QUEUE, RULES, AGENT = "queue", "rules", "agent"


@dataclass
class Overrides:
    queues: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # None: deleted
    rules: dict[str, Any] | None = None  # {"rules": [...], "default_queue": "..."}
    agents: dict[int, dict[str, Any]] = field(default_factory=dict)

    def copy(self) -> Overrides:
        return Overrides(dict(self.queues), None if self.rules is None else dict(self.rules), dict(self.agents))


async def load_overrides(db: Database) -> Overrides:
    rows = await db.read(lambda tx: tx.all("SELECT kind, name, body FROM routing_overrides ORDER BY kind, name"))
    out = Overrides()
    for r in rows:
        body = json.loads(r["body"]) if r["body"] is not None else None
        if r["kind"] == QUEUE:
            out.queues[str(r["name"])] = body
        elif r["kind"] == RULES:
            out.rules = body
        elif r["kind"] == AGENT and body is not None:
            out.agents[int(r["name"])] = body
    return out


def write_override(tx: Tx, kind: str, name: str, body: Any, now: str, by: int | None) -> None:
    text = None if body is None else json.dumps(body)
    tx.exec(
        "INSERT INTO routing_overrides (kind, name, body, updated_at, updated_by) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (kind, name) DO UPDATE SET body = ?, updated_at = ?, updated_by = ?",
        (kind, name, text, now, by, text, now, by),
    )


def effective(seed: RoutingSettings, o: Overrides) -> RoutingSettings:
    """The seed with the overrides applied; raises RoutingConfigError with the engine's reason if it is not valid."""
    queues = dict(seed.queues)
    for name, body in o.queues.items():
        if body is None:
            queues.pop(name, None)
            continue
        try:
            queues[name] = QueueSettings.model_validate(body)
        except ValidationError as e:
            raise RoutingConfigError(f"routing.queues.{name}: {_first_error(e)}") from None
    rules = list(seed.rules) if o.rules is None else list(o.rules.get("rules", []))
    default = seed.default_queue if o.rules is None else str(o.rules.get("default_queue") or seed.default_queue)
    if not queues:
        raise RoutingConfigError("routing.queues: needs at least one queue")
    out = seed.model_copy(update={"queues": queues, "rules": rules, "default_queue": default})
    RoutingConfig.from_dict(out.engine_config())  # the engine's own checks, with its message
    for aid, profile in o.agents.items():
        parse_agent(profile_raw(out, aid, profile), f"routing.agents.{aid}")
    return out


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(x) for x in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


def profile_raw(routing: RoutingSettings, agent_id: int, profile: dict[str, Any] | None,
                fact: AgentRoutingSettings | None = None, queues: list[str] | None = None) -> dict[str, Any]:
    """One agent's engine table: a stored profile wins over the config file's [[routing.agents]] entry."""
    if profile is not None:
        return {
            "id": agent_id,
            "queues": queues or [],
            "capacity": profile.get("capacity") or routing.default_capacity,
            "skills": profile.get("skills", {}),
            "wrapup": profile.get("wrapup", 0.0),
            "exclusive": profile.get("exclusive", ["voice"]),
        }
    return {
        "id": agent_id,
        "queues": queues or [],
        "capacity": fact.capacity if fact and fact.capacity else routing.default_capacity,
        "skills": fact.skills if fact else {},
        "wrapup": fact.wrapup if fact else 0.0,
        "exclusive": fact.exclusive if fact else ["voice"],
    }
