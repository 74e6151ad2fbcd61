"""Which agent: eligibility and the per-queue ordering score (lowest first) of each strategy.

The Redis backend runs the same rules in Lua (hub/routing/redis.py); the shared contract test keeps them equal.
"""

from __future__ import annotations

from collections.abc import Mapping

from hub.routing.types import Presence, Strategy

# Skills dominate the score; the idle time only breaks ties between equal matches.
SKILL_WEIGHT = 1e10


def can_take(
    capacity_class: str, capacity: Mapping[str, int], load: Mapping[str, int], exclusive: frozenset[str]
) -> bool:
    """Room for one more conversation of this class; a call (an exclusive class) blocks everything else."""
    if load.get(capacity_class, 0) >= capacity.get(capacity_class, 0):
        return False
    # Plain loops, not any()/all() over a generator: these run several times in every decision.
    for e in exclusive:
        if e != capacity_class and load.get(e, 0) > 0:
            return False
    return True


def meets(skills: Mapping[str, int], minimums: Mapping[str, int]) -> bool:
    for s, m in minimums.items():
        if skills.get(s, 0) < m:
            return False
    return True


def skill_match(skills: Mapping[str, int], required: Mapping[str, int]) -> int:
    return sum(skills.get(s, 0) for s in required)


def is_ready(
    presence: Presence,
    wrapup_until: float,
    now: float,
    capacity: Mapping[str, int],
    load: Mapping[str, int],
    exclusive: frozenset[str],
) -> bool:
    """Could take at least one more conversation of some class right now."""
    if presence is not Presence.AVAILABLE or now < wrapup_until:
        return False
    for c in capacity:
        if can_take(c, capacity, load, exclusive):
            return True
    return False


def agent_score(
    strategy: Strategy,
    *,
    last_activity: float,
    load: Mapping[str, int],
    capacity: Mapping[str, int],
    round_robin: float,
    match: int,
) -> float:
    """The agent's place in a queue's ready index: lowest is offered first."""
    if strategy is Strategy.LONGEST_IDLE:
        return last_activity
    if strategy is Strategy.LEAST_OCCUPIED:
        total = sum(capacity.values())
        return sum(load.values()) / total if total else 1.0
    if strategy is Strategy.ROUND_ROBIN:
        return round_robin
    return -match * SKILL_WEIGHT + last_activity


def waiting_score(priority: int, enqueued_at: float) -> float:
    """A conversation's place in its queue: higher priority first, then oldest first."""
    return -priority * SKILL_WEIGHT + enqueued_at
