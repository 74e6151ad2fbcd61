"""Routing settings from config-shaped data (the [routing] TOML table as dicts and lists), validated with clear errors.

{"default_queue": "support", "missed_offers": 3, "transfer_wait": 60,
 "queues": {"support": {"strategy": "skills", "skills": {"english": 3}, "offer_timeout": 20, "direct": false,
                        "sticky_for": 300, "sla_wait": 60, "first_response": 300,
                        "first_response_hours": "business",
                        "stages": [{"after": 30, "skills": {"english": 1}}, {"after": 120, "overflow": "general"},
                                   {"after": 300, "callback": true}]}},
 "agents": [{"id": 7, "queues": ["support"], "capacity": {"voice": 1, "chat": 3, "email": 5},
             "skills": {"english": 5}, "wrapup": 30, "exclusive": ["voice"]}],
 "rules": [{"queue": "support", "channel": ["voice"]}]}
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from hub.routing.rules import RuleError, Rules
from hub.routing.types import CLASSES, AgentConfig, QueueConfig, Stage, Strategy


class RoutingConfigError(ValueError):
    """Routing config is invalid; the message names the setting."""


@dataclass(frozen=True)
class RoutingConfig:
    queues: dict[str, QueueConfig]
    agents: dict[int, AgentConfig]
    rules: Rules
    missed_offers: int = 3
    transfer_wait: float = 60.0

    @classmethod
    def from_dict(cls, raw: Any) -> RoutingConfig:
        if not isinstance(raw, dict):
            raise RoutingConfigError("routing: must be a table")
        unknown = sorted(set(raw) - {"default_queue", "missed_offers", "transfer_wait", "queues", "agents", "rules"})
        if unknown:
            raise RoutingConfigError(f"routing: unknown setting(s) {', '.join(unknown)}")
        queues_raw = raw.get("queues", {})
        if not isinstance(queues_raw, dict) or not queues_raw:
            raise RoutingConfigError("routing.queues: needs at least one queue table")
        queues = {name: parse_queue(name, q) for name, q in queues_raw.items()}
        for q in queues.values():
            for i, stage in enumerate(q.stages):
                if stage.overflow is not None and stage.overflow not in queues:
                    raise RoutingConfigError(
                        f"routing.queues.{q.id}.stages[{i}].overflow: unknown queue {stage.overflow!r}"
                    )
        agents_raw = raw.get("agents", [])
        if not isinstance(agents_raw, list):
            raise RoutingConfigError("routing.agents: must be a list of tables")
        agents: dict[int, AgentConfig] = {}
        for i, a in enumerate(agents_raw):
            agent = parse_agent(a, f"routing.agents[{i}]", set(queues))
            if agent.id in agents:
                raise RoutingConfigError(f"routing.agents[{i}].id: duplicate agent id {agent.id}")
            agents[agent.id] = agent
        try:
            rules = Rules.from_config(raw.get("rules", []), raw.get("default_queue", next(iter(queues))), queues)
        except RuleError as e:
            raise RoutingConfigError(f"routing.{e}") from None
        missed = raw.get("missed_offers", 3)
        if not _is_int(missed) or missed < 1:
            raise RoutingConfigError("routing.missed_offers: must be an integer >= 1")
        wait = _seconds(raw.get("transfer_wait", 60.0), "routing.transfer_wait")
        return cls(queues, agents, rules, missed, wait)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _seconds(v: Any, where: str) -> float:
    if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
        raise RoutingConfigError(f"{where}: must be a number of seconds >= 0")
    return float(v)


def _skills(v: Any, where: str) -> dict[str, int]:
    if not isinstance(v, dict) or not all(isinstance(k, str) and _is_int(p) and 0 <= p <= 100 for k, p in v.items()):
        raise RoutingConfigError(f"{where}: must be a table of skill = proficiency (integer 0..100)")
    return dict(v)


def parse_queue(name: Any, raw: Any) -> QueueConfig:
    where = f"routing.queues.{name}"
    if not isinstance(name, str) or not name or ":" in name:
        raise RoutingConfigError(f"{where}: a queue name is a non-empty string without ':'")
    if not isinstance(raw, dict):
        raise RoutingConfigError(f"{where}: must be a table")
    allowed = {"strategy", "skills", "offer_timeout", "direct", "sticky_for", "sla_wait", "first_response",
               "first_response_hours", "stages"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise RoutingConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    try:
        strategy = Strategy(raw.get("strategy", "longest_idle"))
    except ValueError:
        known = ", ".join(s.value for s in Strategy)
        raise RoutingConfigError(f"{where}.strategy: unknown {raw.get('strategy')!r}; known: {known}") from None
    direct = raw.get("direct", False)
    if not isinstance(direct, bool):
        raise RoutingConfigError(f"{where}.direct: must be true or false")
    offer_timeout = _seconds(raw.get("offer_timeout", 30.0), f"{where}.offer_timeout")
    if offer_timeout <= 0:
        raise RoutingConfigError(f"{where}.offer_timeout: must be > 0")
    stages_raw = raw.get("stages", [])
    if not isinstance(stages_raw, list):
        raise RoutingConfigError(f"{where}.stages: must be a list of tables")
    stages = tuple(_stage(s, f"{where}.stages[{i}]") for i, s in enumerate(stages_raw))
    if any(b.after <= a.after for a, b in itertools.pairwise(stages)):
        raise RoutingConfigError(f"{where}.stages: 'after' must increase from one stage to the next")
    if any(s.overflow == name for s in stages):
        raise RoutingConfigError(f"{where}.stages: a queue cannot overflow to itself")
    hours = raw.get("first_response_hours", "calendar")
    if hours not in ("calendar", "business"):
        raise RoutingConfigError(f"{where}.first_response_hours: \"calendar\" (every second counts) or \"business\" "
                                 "(only the queue's business hours count)")
    return QueueConfig(
        id=name,
        strategy=strategy,
        skills=_skills(raw.get("skills", {}), f"{where}.skills"),
        offer_timeout=offer_timeout,
        direct=direct,
        sticky_for=_seconds(raw.get("sticky_for", 0.0), f"{where}.sticky_for"),
        sla_wait=_seconds(raw.get("sla_wait", 60.0), f"{where}.sla_wait"),
        stages=stages,
        first_response=_seconds(raw.get("first_response", 0.0), f"{where}.first_response"),
        first_response_hours=hours,
    )


def _stage(raw: Any, where: str) -> Stage:
    if not isinstance(raw, dict):
        raise RoutingConfigError(f"{where}: must be a table")
    unknown = sorted(set(raw) - {"after", "skills", "overflow", "callback"})
    if unknown:
        raise RoutingConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    if "after" not in raw:
        raise RoutingConfigError(f"{where}.after: required (seconds in the queue)")
    after = _seconds(raw["after"], f"{where}.after")
    overflow = raw.get("overflow")
    if overflow is not None and (not isinstance(overflow, str) or not overflow):
        raise RoutingConfigError(f"{where}.overflow: must be a queue name")
    callback = raw.get("callback", False)
    if not isinstance(callback, bool):
        raise RoutingConfigError(f"{where}.callback: must be true or false")
    skills = _skills(raw["skills"], f"{where}.skills") if "skills" in raw else None
    if sum([overflow is not None, callback, skills is not None]) != 1:
        raise RoutingConfigError(f"{where}: give exactly one of skills (widen), overflow or callback")
    return Stage(after=after, skills=skills, overflow=overflow, callback=callback)


def parse_agent(raw: Any, where: str, queues: set[str] | None = None) -> AgentConfig:
    if not isinstance(raw, dict):
        raise RoutingConfigError(f"{where}: must be a table")
    unknown = sorted(set(raw) - {"id", "queues", "capacity", "skills", "wrapup", "exclusive"})
    if unknown:
        raise RoutingConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    aid = raw.get("id")
    if not isinstance(aid, int) or isinstance(aid, bool) or aid < 1:
        raise RoutingConfigError(f"{where}.id: required, a positive integer (the agent's id in the store)")
    member_of = raw.get("queues", [])
    if not isinstance(member_of, list) or not all(isinstance(q, str) for q in member_of):
        raise RoutingConfigError(f"{where}.queues: must be a list of queue names")
    if queues is not None:
        missing = [q for q in member_of if q not in queues]
        if missing:
            raise RoutingConfigError(f"{where}.queues: unknown queue {missing[0]!r}")
    capacity = raw.get("capacity", {"voice": 1, "chat": 3, "email": 5})
    if not isinstance(capacity, dict) or not all(
        k in CLASSES and _is_int(v) and 0 <= v <= 1000 for k, v in capacity.items()
    ):
        raise RoutingConfigError(
            f"{where}.capacity: a table of {'/'.join(CLASSES)} = how many at once (integer 0..1000)"
        )
    exclusive = raw.get("exclusive", ["voice"])
    if not isinstance(exclusive, list) or not all(e in CLASSES for e in exclusive):
        raise RoutingConfigError(f"{where}.exclusive: a list of capacity classes ({', '.join(CLASSES)})")
    return AgentConfig(
        id=aid,
        queues=tuple(dict.fromkeys(member_of)),
        capacity=dict(capacity),
        skills=_skills(raw.get("skills", {}), f"{where}.skills"),
        wrapup=_seconds(raw.get("wrapup", 0.0), f"{where}.wrapup"),
        exclusive=frozenset(exclusive),
    )
