"""Which agent: the pure rules, and each strategy's choice through both backends."""

from __future__ import annotations

import pytest

from hub.routing.state import RoutingState
from hub.routing.strategies import agent_score, can_take, is_ready, meets, waiting_score
from hub.routing.types import AgentConfig, Presence, QueueConfig, Strategy, Waiting

VOICE = frozenset({"voice"})


@pytest.mark.parametrize(
    ("cls", "load", "ok"),
    [
        ("chat", {}, True),
        ("chat", {"chat": 3}, False),
        ("chat", {"voice": 1}, False),  # on a call: nothing else
        ("voice", {"chat": 2}, True),  # chats do not block a call
        ("email", {}, False),  # no email capacity at all
    ],
)
def test_can_take(cls: str, load: dict[str, int], ok: bool) -> None:
    assert can_take(cls, {"voice": 1, "chat": 3}, load, VOICE) is ok


def test_ready_needs_presence_no_wrapup_and_room() -> None:
    cap = {"chat": 1}
    assert is_ready(Presence.AVAILABLE, 0.0, 10.0, cap, {}, VOICE)
    assert not is_ready(Presence.AWAY, 0.0, 10.0, cap, {}, VOICE)
    assert not is_ready(Presence.AVAILABLE, 11.0, 10.0, cap, {}, VOICE)
    assert not is_ready(Presence.AVAILABLE, 0.0, 10.0, cap, {"chat": 1}, VOICE)


def test_scores_order_agents() -> None:
    def score(strategy: Strategy, **kw: object) -> float:
        args: dict[str, object] = {"last_activity": 0.0, "load": {}, "capacity": {"chat": 4}, "round_robin": 0.0}
        args.update(kw)
        return agent_score(strategy, match=int(args.pop("match", 0)), **args)  # type: ignore[arg-type]

    assert score(Strategy.LONGEST_IDLE, last_activity=5.0) < score(Strategy.LONGEST_IDLE, last_activity=6.0)
    assert score(Strategy.LEAST_OCCUPIED, load={"chat": 1}) < score(Strategy.LEAST_OCCUPIED, load={"chat": 3})
    assert score(Strategy.ROUND_ROBIN, round_robin=2.0) < score(Strategy.ROUND_ROBIN, round_robin=3.0)
    # Best match first, however long the other has been idle.
    assert score(Strategy.SKILLS, match=9, last_activity=9e8) < score(Strategy.SKILLS, match=8, last_activity=0.0)
    assert meets({"es": 3}, {"es": 3}) and not meets({"es": 2}, {"es": 3}) and not meets({}, {"es": 1})
    assert waiting_score(1, 9e8) < waiting_score(0, 1.0) and waiting_score(0, 1.0) < waiting_score(0, 2.0)


async def order(state: RoutingState, strategy: Strategy, n: int = 6) -> list[int]:
    """Who gets each of n chats, agents 1..3 of which agent 3 is the most skilled and 1 the longest idle."""
    await state.put_queue(QueueConfig("q", strategy=strategy, direct=True, skills={"x": 1}), 0.0)
    for aid, skill in ((1, 2), (2, 3), (3, 5)):
        await state.put_agent(AgentConfig(aid, ("q",), capacity={"chat": 3}, skills={"x": skill}), 0.0)
        await state.set_presence(aid, Presence.AVAILABLE, float(aid))
    out = []
    for cid in range(1, n + 1):
        await state.enqueue(Waiting(cid, "q", "webchat", 0, 10.0 + cid), 10.0 + cid, 0)
        claim = await state.dispatch_queue("q", 10.0 + cid)
        assert claim is not None
        out.append(claim.agent)
    return out


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (Strategy.LONGEST_IDLE, [1, 2, 3, 1, 2, 3]),
        (Strategy.LEAST_OCCUPIED, [1, 2, 3, 1, 2, 3]),
        (Strategy.ROUND_ROBIN, [1, 2, 3, 1, 2, 3]),
        (Strategy.SKILLS, [3, 3, 3, 2, 2, 2]),  # the best match until full, then the next best
    ],
)
async def test_strategy_choice(state: RoutingState, strategy: Strategy, expected: list[int]) -> None:
    assert await order(state, strategy) == expected


async def test_least_occupied_prefers_the_emptier_agent(state: RoutingState) -> None:
    await state.put_queue(QueueConfig("q", strategy=Strategy.LEAST_OCCUPIED, direct=True), 0.0)
    await state.put_agent(AgentConfig(1, ("q",), capacity={"chat": 2}), 0.0)
    await state.put_agent(AgentConfig(2, ("q",), capacity={"chat": 8}), 0.0)
    for aid in (1, 2):
        await state.set_presence(aid, Presence.AVAILABLE, 0.0)
    got = []
    for cid in range(1, 6):
        await state.enqueue(Waiting(cid, "q", "sms", 0, float(cid)), float(cid), 0)
        claim = await state.dispatch_queue("q", float(cid))
        assert claim is not None
        got.append(claim.agent)
    # 1/2 busy is fuller than 1/8, 2/8, 3/8: agent 2 keeps getting work until it is as occupied.
    assert got == [1, 2, 2, 2, 2]
