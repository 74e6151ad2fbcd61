"""In-process routing state: the embedded default, and the reference the Redis backend's Lua must agree with.

Every index is a heap with lazy deletion: an entry carries the token its conversation (or score its agent) had when
it was pushed, and is dropped when popped stale. Each decision touches O(log n) entries, never a whole queue.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from hub.routing.strategies import agent_score, can_take, is_ready, meets, skill_match, waiting_score
from hub.routing.types import (
    CAPACITY_CLASS,
    CLASSES,
    SCAN_LIMIT,
    AgentConfig,
    AgentId,
    AgentStats,
    Claim,
    ConversationId,
    ConversationView,
    Escalation,
    Expiry,
    Presence,
    QueueConfig,
    QueueId,
    QueueStats,
    Release,
    Strategy,
    Waiting,
)

# (score, member as text, token, id): member text breaks ties exactly like a Redis sorted set does.
_Entry = tuple[float, str, int, int]


@dataclass
class _Agent:
    config: AgentConfig
    presence: Presence = Presence.OFFLINE
    load: dict[str, int] = field(default_factory=dict)
    wrapup_until: float = 0.0
    last: float = 0.0
    missed: int = 0
    round_robin: dict[QueueId, float] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)


@dataclass
class _Conversation:
    id: ConversationId
    queue: QueueId
    channel: str
    priority: int
    enqueued_at: float
    queued_at: float
    customer: int | None
    state: str = "waiting"  # waiting | parked | offered | assigned
    agent: AgentId | None = None  # the agent it is parked for, offered to or assigned to
    until: float = 0.0  # parked until, or the offer's deadline
    stage: int = 0
    skip: set[AgentId] = field(default_factory=set)
    token: int = 0

    @property
    def cls(self) -> str:
        return CAPACITY_CLASS[self.channel]

    @property
    def score(self) -> float:
        return waiting_score(self.priority, self.enqueued_at)


def _pop_valid(heap: list[_Entry], valid: Callable[[_Entry], bool]) -> _Entry | None:
    """The first valid entry, left in place; stale entries above it are dropped."""
    while heap:
        if valid(heap[0]):
            return heap[0]
        heapq.heappop(heap)
    return None


class MemoryState:
    def __init__(self) -> None:
        self.queues: dict[QueueId, QueueConfig] = {}
        self.agents: dict[AgentId, _Agent] = {}
        self.conversations: dict[ConversationId, _Conversation] = {}
        self._waiting: dict[tuple[QueueId, str], list[_Entry]] = {}
        self._age: dict[tuple[QueueId, int], list[_Entry]] = {}
        self._oldest: dict[QueueId, list[_Entry]] = {}
        self._waiting_count: Counter[QueueId] = Counter()
        self._parked: dict[AgentId, list[_Entry]] = {}
        self._parked_until: list[_Entry] = []
        self._offers: list[_Entry] = []
        self._ready: dict[QueueId, list[_Entry]] = {}
        self._ready_score: dict[QueueId, dict[AgentId, float]] = {}
        self._wrapups: list[_Entry] = []
        self._round_robin: Counter[QueueId] = Counter()
        self._last_agent: dict[int, AgentId] = {}
        self._queue_counts: dict[QueueId, Counter[str]] = {}
        self._members: dict[QueueId, set[AgentId]] = {}
        self._tokens = itertools.count(1)

    # settings and presence

    async def put_queue(self, queue: QueueConfig, now: float) -> None:
        self.queues[queue.id] = queue
        self._queue_counts.setdefault(queue.id, Counter())
        self._members.setdefault(queue.id, set())
        # Strategy or skills may have changed: rebuild this queue's ready index from its members.
        self._ready[queue.id] = []
        self._ready_score[queue.id] = {}
        for aid in sorted(self._members[queue.id]):
            self._reindex(self.agents[aid], now, only=queue.id)

    async def put_agent(self, agent: AgentConfig, now: float) -> None:
        a = self.agents.get(agent.id)
        if a is None:
            a = self.agents[agent.id] = _Agent(agent, last=now)
        for q in set(a.config.queues) - set(agent.queues):
            self._members.get(q, set()).discard(agent.id)
            self._ready_score.get(q, {}).pop(agent.id, None)
        a.config = agent
        for q in agent.queues:
            self._members.setdefault(q, set()).add(agent.id)
        self._reindex(a, now)

    async def set_presence(self, agent: AgentId, presence: Presence, now: float) -> bool:
        a = self.agents.get(agent)
        if a is None:
            return False
        if presence is Presence.AVAILABLE and a.presence is not Presence.AVAILABLE:
            a.missed = 0
            a.last = now
        a.presence = presence
        self._reindex(a, now)
        return True

    # the ready index of agents, per queue

    def _reindex(self, a: _Agent, now: float, only: QueueId | None = None) -> None:
        cfg = a.config
        ready = is_ready(a.presence, a.wrapup_until, now, cfg.capacity, a.load, cfg.exclusive)
        for qid in cfg.queues if only is None else (only,):
            q = self.queues.get(qid)
            if q is None:
                continue
            scores = self._ready_score[qid]
            if not ready or not meets(cfg.skills, q.floor):
                scores.pop(cfg.id, None)
                continue
            score = agent_score(
                q.strategy,
                last_activity=a.last,
                load=a.load,
                capacity=cfg.capacity,
                round_robin=a.round_robin.get(qid, 0.0),
                match=skill_match(cfg.skills, q.skills),
            )
            if scores.get(cfg.id) != score:
                scores[cfg.id] = score
                heap = self._ready[qid]
                heapq.heappush(heap, (score, str(cfg.id), 0, cfg.id))
                if len(heap) > 4 * len(scores) + 64:
                    self._ready[qid] = [(s, str(i), 0, i) for i, s in scores.items()]
                    heapq.heapify(self._ready[qid])

    def _eligible(self, a: _Agent, c: _Conversation, minimums: dict[str, int], now: float) -> bool:
        return (
            a.presence is Presence.AVAILABLE
            and now >= a.wrapup_until
            and can_take(c.cls, a.config.capacity, a.load, a.config.exclusive)
            and meets(a.config.skills, minimums)
        )

    # conversations in and out of the indexes

    def _put_waiting(self, c: _Conversation) -> None:
        c.state, c.agent, c.until, c.token = "waiting", None, 0.0, next(self._tokens)
        sid = str(c.id)
        heapq.heappush(self._waiting.setdefault((c.queue, c.cls), []), (c.score, sid, c.token, c.id))
        heapq.heappush(self._age.setdefault((c.queue, c.stage), []), (c.queued_at, sid, c.token, c.id))
        heapq.heappush(self._oldest.setdefault(c.queue, []), (c.enqueued_at, sid, c.token, c.id))
        self._waiting_count[c.queue] += 1

    def _park(self, c: _Conversation, agent: AgentId, until: float) -> None:
        c.state, c.agent, c.until, c.token = "parked", agent, until, next(self._tokens)
        sid = str(c.id)
        heapq.heappush(self._parked.setdefault(agent, []), (c.score, sid, c.token, c.id))
        heapq.heappush(self._parked_until, (until, sid, c.token, c.id))
        heapq.heappush(self._oldest.setdefault(c.queue, []), (c.enqueued_at, sid, c.token, c.id))
        self._waiting_count[c.queue] += 1

    def _take_out(self, c: _Conversation) -> None:
        """Leave the waiting/parked indexes (their entries go stale with the token)."""
        if c.state in ("waiting", "parked"):
            self._waiting_count[c.queue] -= 1
        c.token = next(self._tokens)

    def _valid(self, state: str) -> Callable[[_Entry], bool]:
        def valid(e: _Entry) -> bool:
            c = self.conversations.get(e[3])
            return c is not None and c.token == e[2] and c.state == state

        return valid

    def _free(self, a: _Agent, cls: str) -> None:
        a.load[cls] = max(0, a.load.get(cls, 0) - 1)

    def _claim(self, c: _Conversation, a: _Agent, now: float) -> Claim:
        q = self.queues[c.queue]
        self._take_out(c)
        a.load[c.cls] = a.load.get(c.cls, 0) + 1
        a.last = now
        if q.strategy is Strategy.ROUND_ROBIN:
            self._round_robin[q.id] += 1
            a.round_robin[q.id] = float(self._round_robin[q.id])
        c.agent = a.config.id
        self._queue_counts[q.id]["offered"] += 1
        a.counts["offered"] += 1
        if q.direct:
            c.state, c.until = "assigned", 0.0
            self._answered(c, a, now)
        else:
            c.state, c.until = "offered", now + q.offer_timeout
            heapq.heappush(self._offers, (c.until, str(c.id), c.token, c.id))
        self._reindex(a, now)
        return Claim(c.id, a.config.id, c.queue, c.channel, not q.direct, None if q.direct else c.until, c.enqueued_at)

    def _answered(self, c: _Conversation, a: _Agent, now: float) -> None:
        counts = self._queue_counts[c.queue]
        counts["answered"] += 1
        if now - c.enqueued_at <= self.queues[c.queue].sla_wait:
            counts["answered_in_sla"] += 1
        if c.customer is not None:
            self._last_agent[c.customer] = a.config.id

    # decisions

    async def enqueue(self, item: Waiting, now: float, sticky_for: float) -> AgentId | None:
        if item.id in self.conversations:
            raise KeyError(f"conversation {item.id} is already routed")
        if item.queue not in self.queues:
            raise KeyError(f"unknown queue {item.queue!r}")
        if item.channel not in CAPACITY_CLASS:
            raise KeyError(f"unknown channel {item.channel!r}")
        c = _Conversation(item.id, item.queue, item.channel, item.priority, item.enqueued_at, now, item.customer)
        self.conversations[c.id] = c
        last = self._last_agent.get(item.customer) if item.customer is not None and sticky_for > 0 else None
        if last is not None and last in self.agents and self.agents[last].presence is Presence.AVAILABLE:
            self._park(c, last, now + sticky_for)
            return last
        self._put_waiting(c)
        return None

    def _head(self, queue: QueueId, cls: str) -> _Conversation | None:
        e = _pop_valid(self._waiting.get((queue, cls), []), self._valid("waiting"))
        return self.conversations[e[3]] if e is not None else None

    async def dispatch_queue(self, queue: QueueId, now: float) -> Claim | None:
        q = self.queues.get(queue)
        if q is None:
            return None
        heads = [h for h in (self._head(queue, cls) for cls in CLASSES) if h is not None]
        heads.sort(key=lambda c: (c.score, str(c.id)))
        levels = q.levels
        for c in heads:
            minimums = levels[min(c.stage, len(levels) - 1)]
            heap, scores = self._ready[queue], self._ready_score[queue]
            popped: list[_Entry] = []
            seen: set[AgentId] = set()
            found: _Agent | None = None
            # An agent who declined this conversation gets it again only if no one else can take it, so a
            # declined head never blocks its queue.
            declined: _Agent | None = None
            while heap and len(seen) < SCAN_LIMIT:
                e = heapq.heappop(heap)
                if scores.get(e[3]) != e[0] or e[3] in seen:
                    continue
                popped.append(e)
                seen.add(e[3])
                a = self.agents[e[3]]
                if self._eligible(a, c, minimums, now):
                    if e[3] not in c.skip:
                        found = a
                        break
                    declined = declined or a
            for e in popped:
                heapq.heappush(heap, e)
            found = found or declined
            if found is not None:
                return self._claim(c, found, now)
        return None

    async def dispatch_agent(self, agent: AgentId, now: float) -> Claim | None:
        a = self.agents.get(agent)
        if a is None or a.presence is not Presence.AVAILABLE or now < a.wrapup_until:
            return None
        cfg = a.config
        heap = self._parked.get(agent, [])
        valid = self._valid("parked")
        popped: list[_Entry] = []
        found: _Conversation | None = None
        while heap and len(popped) < SCAN_LIMIT:
            e = heapq.heappop(heap)
            if not valid(e) or self.conversations[e[3]].agent != agent:
                continue
            popped.append(e)
            parked = self.conversations[e[3]]
            if can_take(parked.cls, cfg.capacity, a.load, cfg.exclusive):
                found = parked
                break
        for e in popped:
            heapq.heappush(heap, e)
        if found is not None:
            return self._claim(found, a, now)
        best: _Conversation | None = None
        for qid in cfg.queues:
            q = self.queues.get(qid)
            if q is None:
                continue
            levels = q.levels
            for cls in CLASSES:
                if not can_take(cls, cfg.capacity, a.load, cfg.exclusive):
                    continue
                c = self._head(qid, cls)
                if c is None or not self._eligible(a, c, levels[min(c.stage, len(levels) - 1)], now):
                    continue
                if best is None or (c.score, str(c.id)) < (best.score, str(best.id)):
                    best = c
        return self._claim(best, a, now) if best is not None else None

    async def accept(self, conversation: ConversationId, agent: AgentId, now: float) -> Claim | None:
        c = self.conversations.get(conversation)
        if c is None or c.state != "offered" or c.agent != agent:
            return None
        a = self.agents[agent]
        c.state, c.until, c.token = "assigned", 0.0, next(self._tokens)
        a.missed = 0
        a.counts["accepted"] += 1
        self._queue_counts[c.queue]["accepted"] += 1
        self._answered(c, a, now)
        return Claim(c.id, agent, c.queue, c.channel, False, None, c.enqueued_at)

    def _requeue(self, c: _Conversation, a: _Agent, now: float) -> None:
        self._free(a, c.cls)
        c.skip.add(a.config.id)
        self._put_waiting(c)
        self._reindex(a, now)

    async def reject(self, conversation: ConversationId, agent: AgentId, now: float) -> Claim | None:
        c = self.conversations.get(conversation)
        if c is None or c.state != "offered" or c.agent != agent:
            return None
        a = self.agents[agent]
        a.missed = 0
        a.counts["rejected"] += 1
        self._queue_counts[c.queue]["rejected"] += 1
        self._requeue(c, a, now)
        return Claim(c.id, agent, c.queue, c.channel, True, None, c.enqueued_at)

    async def expire_offers(self, now: float, missed_limit: int) -> list[Expiry]:
        out: list[Expiry] = []
        valid = self._valid("offered")
        while (e := _pop_valid(self._offers, valid)) is not None and e[0] <= now:
            heapq.heappop(self._offers)
            c = self.conversations[e[3]]
            assert c.agent is not None
            a = self.agents[c.agent]
            a.missed += 1
            a.counts["timed_out"] += 1
            self._queue_counts[c.queue]["timed_out"] += 1
            away = a.missed >= missed_limit and a.presence is Presence.AVAILABLE
            if away:
                a.presence = Presence.AWAY
            out.append(Expiry(c.id, a.config.id, c.queue, away))
            self._requeue(c, a, now)
        return out

    async def resolve(self, conversation: ConversationId, now: float) -> Release | None:
        c = self.conversations.pop(conversation, None)
        if c is None:
            return None
        if c.state in ("waiting", "parked"):
            self._take_out(c)
            self._queue_counts[c.queue]["abandoned"] += 1
            return Release(c.id, c.queue, None)
        assert c.agent is not None
        a = self.agents[c.agent]
        self._free(a, c.cls)
        until = None
        if c.state == "assigned" and a.config.wrapup > 0:
            until = a.wrapup_until = now + a.config.wrapup
            heapq.heappush(self._wrapups, (until, str(a.config.id), 0, a.config.id))
        self._reindex(a, now)
        return Release(c.id, c.queue, a.config.id, until)

    async def transfer(
        self,
        conversation: ConversationId,
        now: float,
        *,
        queue: QueueId | None = None,
        agent: AgentId | None = None,
        until: float = 0.0,
    ) -> Release | None:
        c = self.conversations.get(conversation)
        if c is None:
            return None
        if queue is not None and queue not in self.queues:
            raise KeyError(f"unknown queue {queue!r}")
        if agent is not None and agent not in self.agents:
            raise KeyError(f"unknown agent {agent}")
        release = Release(c.id, c.queue, c.agent if c.state in ("offered", "assigned") else None)
        if c.state in ("offered", "assigned"):
            assert c.agent is not None
            a = self.agents[c.agent]
            self._free(a, c.cls)
            c.token = next(self._tokens)
            self._reindex(a, now)
        else:
            self._take_out(c)
        if queue is not None and queue != c.queue:
            c.queue, c.stage, c.queued_at = queue, 0, now
        c.skip.clear()
        self._queue_counts[release.queue]["transferred"] += 1
        if agent is not None:
            self._park(c, agent, until)
        else:
            self._put_waiting(c)
        return release

    async def end_wrapups(self, now: float) -> list[AgentId]:
        out: list[AgentId] = []
        while self._wrapups and self._wrapups[0][0] <= now:
            until, _, _, aid = heapq.heappop(self._wrapups)
            a = self.agents.get(aid)
            if a is not None and a.wrapup_until == until:
                self._reindex(a, now)
                out.append(aid)
        return out

    async def release_parked(self, now: float) -> list[Waiting]:
        out: list[Waiting] = []
        valid = self._valid("parked")
        while (e := _pop_valid(self._parked_until, valid)) is not None and e[0] <= now:
            heapq.heappop(self._parked_until)
            c = self.conversations[e[3]]
            self._take_out(c)
            self._put_waiting(c)
            out.append(Waiting(c.id, c.queue, c.channel, c.priority, c.enqueued_at, c.customer))
        return out

    async def escalate(self, queue: QueueId, stage: int, older_than: float, now: float) -> list[Escalation]:
        q = self.queues[queue]
        step = q.stages[stage - 1]
        heap = self._age.get((queue, stage - 1), [])
        out: list[Escalation] = []

        def valid(e: _Entry) -> bool:
            c = self.conversations.get(e[3])
            return c is not None and c.token == e[2] and c.state == "waiting" and c.stage == stage - 1

        while (e := _pop_valid(heap, valid)) is not None and e[0] <= older_than:
            heapq.heappop(heap)
            c = self.conversations[e[3]]
            self._take_out(c)
            c.skip.clear()
            if step.overflow is not None:
                c.queue, c.stage, c.queued_at = step.overflow, 0, now
                self._put_waiting(c)
                out.append(Escalation(c.id, queue, stage, "overflow", step.overflow))
            elif step.callback and c.cls == "voice":
                del self.conversations[c.id]
                out.append(Escalation(c.id, queue, stage, "callback"))
            else:
                c.stage = stage
                self._put_waiting(c)
                out.append(Escalation(c.id, queue, stage, "widen"))
        return out

    # reading

    async def conversation(self, conversation: ConversationId) -> ConversationView | None:
        c = self.conversations.get(conversation)
        if c is None:
            return None
        return ConversationView(c.id, c.queue, c.channel, c.priority, c.enqueued_at, c.state, c.agent, c.stage)

    async def queue_stats(self, queue: QueueId, now: float) -> QueueStats:
        heap = self._oldest.get(queue, [])

        def valid(e: _Entry) -> bool:
            c = self.conversations.get(e[3])
            return c is not None and c.token == e[2] and c.state in ("waiting", "parked")

        oldest = _pop_valid(heap, valid)
        counts = self._queue_counts.get(queue, Counter())
        busy = sum(1 for aid in self._members.get(queue, ()) if any(self.agents[aid].load.values()))
        return QueueStats(
            queue=queue,
            waiting=self._waiting_count[queue],
            longest_wait=max(0.0, now - oldest[0]) if oldest is not None else 0.0,
            available_agents=len(self._ready_score.get(queue, {})),
            busy_agents=busy,
            offered=counts["offered"],
            accepted=counts["accepted"],
            rejected=counts["rejected"],
            timed_out=counts["timed_out"],
            answered=counts["answered"],
            answered_in_sla=counts["answered_in_sla"],
            abandoned=counts["abandoned"],
        )

    async def agent_stats(self, agent: AgentId) -> AgentStats | None:
        a = self.agents.get(agent)
        if a is None:
            return None
        return AgentStats(
            agent=agent,
            presence=a.presence,
            load={k: v for k, v in a.load.items() if v},
            capacity=dict(a.config.capacity),
            wrapup_until=a.wrapup_until,
            missed_in_row=a.missed,
            offered=a.counts["offered"],
            accepted=a.counts["accepted"],
            rejected=a.counts["rejected"],
            timed_out=a.counts["timed_out"],
        )
