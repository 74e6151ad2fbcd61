"""What one reconciler pass costs grows with pages of open conversations, not with each one: the start-up rebuild
and a pass comparing everything make a few store queries and routing-state round trips per page
(hub.routing.reconciler.PAGE), counted here at N and 4N open conversations (counts, not timings). Seen: a few of each
per conversation, so 82 s to start at 100,000 open on SQLite, and a periodic pass busy reading every open
conversation one by one. A busy periodic pass (some conversations changed since the last) reads only those: the same
rows at N and 4N (it read every open row, 3.3 s at 100,000 on SQLite)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio.connection import AbstractConnection

from bench.reconcile import open_conversations
from hub.agents import add_agent
from hub.config import Settings
from hub.events import MemoryBus
from hub.history import db as history_db
from hub.history.db import Database
from hub.model import format_time, utcnow
from hub.routing import reconciler
from hub.routing.reconciler import SETTLE_SECONDS, Repairs, audit
from hub.routing.service import Router

PAGE = 50  # a small page, so that N and 4N below span several pages
N = 120
AGENTS = 4


@dataclass
class Cost:
    queries: int = 0  # statements sent to the store
    round_trips: int = 0  # commands (or pipelines) sent to Redis
    rows: int = 0  # rows the store returned


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cost]:
    """Counts every statement any store transaction runs and every send to Redis, from here on."""
    cost = Cost()
    def counting(real: Callable[..., Any]) -> Callable[..., Any]:
        def run(self: Any, sql: str, params: Any = ()) -> Any:
            cost.queries += 1
            result = real(self, sql, params)
            if isinstance(result, list):
                cost.rows += len(result)
            elif result is not None and not isinstance(result, int):
                cost.rows += 1
            return result
        return run

    for tx_class in (history_db._SqliteTx, history_db._PgTx):
        for name in ("one", "all", "exec"):
            monkeypatch.setattr(tx_class, name, counting(getattr(tx_class, name)))
    real_send = AbstractConnection.send_packed_command

    async def sending(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        cost.round_trips += 1
        await real_send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", sending)
    monkeypatch.setattr(reconciler, "PAGE", PAGE)
    yield cost


@pytest.fixture
def routing_settings(make_settings: Callable[..., Settings], db_url: str, backend: str, prefix: str) -> Settings:
    queues = json.dumps({"support": {"title": "Support", "offer_timeout": 3600, "first_response": 600}})
    return make_settings(db_url, HUB_ROUTING__QUEUES=queues, HUB_ROUTING__BACKEND=backend,
                         HUB_ROUTING__KEY_PREFIX=prefix,
                         HUB_ROUTING__DEFAULT_CAPACITY=json.dumps({"voice": 1, "chat": 1000, "email": 5}))


async def seed(db: Database, agents: list[int], start: int, count: int) -> None:
    """COUNT open conversations of new customers (bench.reconcile's seed): every 5th assigned, every 7th offered."""
    now = format_time(utcnow())
    await db.write(lambda tx: open_conversations(tx, agents, start, count, now))


async def router_at_start(db: Database, settings: Settings) -> Router:
    """A hub's routing as `hub serve` starts it, up to (not including) its first reconciler pass."""
    router = Router(db, settings, MemoryBus())
    if (clear := getattr(router.state, "clear", None)) is not None:
        await clear()  # a start on an empty Redis, as after a wipe: everything is rebuilt
    await router.reconciler.loading()
    await router.load_state()
    return router


async def pass_cost(router: Router, counted: Cost) -> tuple[Cost, Repairs]:
    before = Cost(counted.queries, counted.round_trips, counted.rows)
    repairs = await router.reconciler.run()
    assert repairs is not None
    return Cost(counted.queries - before.queries, counted.round_trips - before.round_trips,
                counted.rows - before.rows), repairs


CHANGED = 7  # conversations a busy pass finds changed since the last


async def change_both_sides(db: Database, router: Router, ids: list[int], priority: int) -> None:
    """A busy center between two passes: decisions change conversations in the store and in the state."""
    def write(tx: Any) -> None:
        for cid in ids:
            tx.exec("UPDATE conversations SET priority = ? WHERE id = ?", (priority, cid))

    await db.write(write)
    for cid in ids:
        assert await router.set_priority(cid, priority)


async def costs(db: Database, settings: Settings, counted: Cost) -> tuple[Cost, Cost, Cost, Cost]:
    """What the start-up rebuild costs, then a periodic pass that compares everything and finds nothing to repair,
    then one that finds neither side changed since, then one after CHANGED conversations changed on both sides."""
    router = await router_at_start(db, settings)
    try:
        start, rebuilt = await pass_cost(router, counted)
        assert rebuilt.held + rebuilt.requeued > 0, rebuilt
        assert await audit(db, router.state) == []
        await router.reconciler.run()  # the rebuild's own changes, named by the state's log
        router.reconciler._cursors = None  # as at a start, after a wipe or FULL_SECONDS
        full, repairs = await pass_cost(router, counted)
        assert repairs.total() == 0, repairs
        quiet, repairs = await pass_cost(router, counted)
        assert repairs.total() == 0, repairs
        ids = [int(r["id"]) for r in await db.read(lambda tx: tx.all(
            "SELECT id FROM conversations WHERE status = 'open' ORDER BY id DESC LIMIT ?", (CHANGED,)))]
        await change_both_sides(db, router, ids, 4)
        busy, repairs = await pass_cost(router, counted)
        assert repairs.total() == 0, repairs
        assert await audit(db, router.state) == []
        return start, full, quiet, busy
    finally:
        await router.close()


async def test_a_pass_costs_by_page_not_by_conversation(db: Database, routing_settings: Settings,
                                                        counted: Cost) -> None:
    await db.write(lambda tx: tx.exec("INSERT INTO queues (name, title) VALUES ('support', 'Support')"))
    agents = [(await add_agent(db, f"Agent {i}", f"agent{i}@example.com", "long password", "agent",
                               ["support"])).id for i in range(AGENTS)]
    await seed(db, agents, 0, N)
    start_n, full_n, quiet_n, busy_n = await costs(db, routing_settings, counted)
    await seed(db, agents, N, 3 * N)
    start_4n, full_4n, quiet_4n, busy_4n = await costs(db, routing_settings, counted)

    more_pages = -(-4 * N // PAGE) - -(-N // PAGE)  # 3 * N more conversations: this many more pages
    # The rebuild reads each page again, its replies and its outcomes, holds or queues it, and checks for a resolve
    # meanwhile: a few statements and round trips per page, whatever the page holds.
    assert start_4n.queries - start_n.queries <= 6 * more_pages, (start_n, start_4n)
    assert start_4n.round_trips - start_n.round_trips <= 6 * more_pages, (start_n, start_4n)
    # Nothing to repair: the open conversations in one query, the state read a page per round trip (and a SCAN
    # of the keyspace, in pages of its own, for what the state holds that the store closed).
    assert full_4n.queries == full_n.queries, (full_n, full_4n)
    assert full_4n.round_trips - full_n.round_trips <= 2 * more_pages, (full_n, full_4n)
    assert full_4n.rows >= 4 * N > full_n.rows >= N, (full_n, full_4n)
    # Neither side changed since: each side's change log (none named) and the agents, the same few statements,
    # round trips and rows at any size, and fewer than a comparison.
    assert quiet_4n == quiet_n, (quiet_n, quiet_4n)
    assert quiet_n.rows < N <= full_n.rows and quiet_n.round_trips <= full_n.round_trips, (quiet_n, full_n)
    # Busy: CHANGED conversations changed on both sides: those read and compared, the same cost at N and at 4N.
    assert busy_4n == busy_n, (busy_n, busy_4n)
    assert busy_n.rows <= quiet_n.rows + 2 * CHANGED + 2, (quiet_n, busy_n)


async def test_a_quiet_pass_still_sees_drift_on_either_side(db: Database, routing_settings: Settings,
                                                            counted: Cost, backend: str) -> None:
    """Skipping the comparison when nothing changed must not skip drift: a state write whose store write never
    came, a store write whose state write never came, and (Redis) the state wiped."""
    await db.write(lambda tx: tx.exec("INSERT INTO queues (name, title) VALUES ('support', 'Support')"))
    agents = [(await add_agent(db, "Ann", "ann@example.com", "long password", "agent", ["support"])).id]
    await seed(db, agents, 1, 10)  # 1..10: 5 and 10 assigned to Ann, 7 offered to her, the rest waiting
    router = await router_at_start(db, routing_settings)
    try:
        ids = [int(r["id"]) for r in await db.read(lambda tx: tx.all("SELECT id FROM conversations ORDER BY id"))]
        assert (await pass_cost(router, counted))[1].requeued > 0
        await pass_cost(router, counted)  # compares everything: clean
        quiet, _ = await pass_cost(router, counted)
        full_before = counted.queries

        async def two_passes() -> Repairs:
            """Drift is acted on when two passes, SETTLE_SECONDS apart, see it."""
            first = await router.reconciler.run()
            assert first is not None
            await asyncio.sleep(SETTLE_SECONDS)
            second = await router.reconciler.run()
            assert second is not None
            return second

        # The state alone changes (a process died before its store write): the state's version tells.
        cid = ids[0]
        assert await router.state.set_priority(cid, 9)
        assert (await two_passes()).priority == 1
        assert await audit(db, router.state) == []
        # The store alone changes (a resolve whose routing call never landed): the store's summary tells.
        await db.write(lambda tx: tx.exec("UPDATE conversations SET status = 'resolved' WHERE id = ?", (ids[1],)))
        assert (await two_passes()).released == 1
        assert await audit(db, router.state) == []
        if backend == "redis":
            await router.state.clear()  # type: ignore[attr-defined]
            wiped = await router.reconciler.run()
            assert wiped is not None and wiped.rebuilt and wiped.held + wiped.requeued > 0, wiped
            assert await audit(db, router.state) == []
        assert counted.queries - full_before > 3 * quiet.queries  # those passes compared, not just summed up
    finally:
        await router.close()


async def seeded_router(db: Database, settings: Settings, count: int) -> tuple[Router, int]:
    """Ann in queue support, COUNT open conversations (seed), a router past its rebuild and the pass after it (the
    rebuild's own changes): the next pass is a periodic one. Returns it and Ann's id."""
    await db.write(lambda tx: tx.exec("INSERT INTO queues (name, title) VALUES ('support', 'Support')"))
    ann = (await add_agent(db, "Ann", "ann@example.com", "long password", "agent", ["support"])).id
    await seed(db, [ann], 1, count)
    router = await router_at_start(db, settings)
    assert (await router.reconciler.run()) is not None
    assert (await router.reconciler.run()) is not None
    assert await audit(db, router.state) == []
    return router, ann


async def ids_where(db: Database, where: str) -> list[int]:
    return [int(r["id"]) for r in await db.read(lambda tx: tx.all(f"SELECT id FROM conversations WHERE {where} "
                                                                   "ORDER BY id"))]


OPEN = 300


async def test_a_busy_pass_repairs_each_kind_of_drift_reading_only_what_changed(
        db: Database, routing_settings: Settings, counted: Cost, backend: str) -> None:
    """Each kind of drift the reconciler repairs, made while other conversations change on both sides (a busy
    center, where every pass used to compare everything): repaired by passes that each read a few rows, not the
    OPEN conversations."""
    router, ann = await seeded_router(db, routing_settings, OPEN)
    try:
        waiting = await ids_where(db, "status = 'open' AND offered_to IS NULL")
        offered = await ids_where(db, "offered_to IS NOT NULL")
        busy = iter(range(10, 100))

        async def repaired(drift: Callable[[], Any]) -> Repairs:
            """DRIFT, then two passes SETTLE_SECONDS apart, with decisions landing before each."""
            await drift()
            most = 0
            for _ in range(2):
                await change_both_sides(db, router, waiting[-3:], next(busy))
                cost, repairs = await pass_cost(router, counted)
                most = max(most, cost.rows)
                await asyncio.sleep(SETTLE_SECONDS)
            assert most < 30, most  # the changed ones, not the OPEN open ones
            assert await audit(db, router.state) == []
            return repairs

        now = router.clock()
        # The state alone changed (a process died between its state write and its store write).
        assert (await repaired(lambda: router.state.set_priority(waiting[0], 9))).priority == 1
        assert (await repaired(lambda: router.state.accept(offered[0], ann, now))).forwarded == 1
        assert (await repaired(lambda: router.state.resolve(waiting[1], now))).requeued == 1
        # The store alone changed (its routing call never landed).
        assert (await repaired(lambda: db.write(lambda tx: tx.exec(
            "UPDATE conversations SET priority = 7 WHERE id = ?", (waiting[2],))))).priority == 1
        assert (await repaired(lambda: db.write(lambda tx: tx.exec(
            "UPDATE conversations SET status = 'resolved' WHERE id = ?", (waiting[3],))))).released == 1
        assert (await repaired(lambda: seed(db, [ann], OPEN + 2, 1))).requeued == 1  # waiting (not every 5th or 7th)
        if backend == "redis":  # wiped: the epoch key tells, and that pass compares everything
            await router.state.clear()  # type: ignore[attr-defined]
            wiped, repairs = await pass_cost(router, counted)
            assert repairs.rebuilt and repairs.held + repairs.requeued > OPEN // 2, repairs
            assert wiped.rows > OPEN
            assert await audit(db, router.state) == []
    finally:
        await router.close()


async def test_the_change_logs_are_trimmed_and_a_pass_behind_a_trim_compares_everything(
        db: Database, routing_settings: Settings, counted: Cost, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each pass trims both logs (here at once; KEEP_SECONDS after a pass read them in a hub): they hold what
    changed since, not everything since the start. A cursor from before a trim compares everything."""
    monkeypatch.setattr(reconciler, "KEEP_SECONDS", 0.0)
    monkeypatch.setattr(reconciler, "TRIM_SECONDS", 0.0)
    router, _ = await seeded_router(db, routing_settings, 40)
    try:
        before = router.reconciler._cursors
        assert before is not None
        waiting = await ids_where(db, "status = 'open' AND offered_to IS NULL")
        state: Any = router.state

        async def state_log() -> int:
            if backend == "redis":
                return int(await state.client.zcard(state.prefix + "chg"))
            return len(state._changed)

        for n in range(10):
            await change_both_sides(db, router, waiting[5 * n % 20:][:5], n + 1)
            assert (await router.reconciler.run()) is not None
            store_log = await db.read(lambda tx: tx.one(
                "SELECT COUNT(*) AS n FROM routing_changes WHERE conversation_id > 0"))
            assert store_log is not None and store_log["n"] <= 5 and await state_log() <= 5, (store_log, n)
        after = router.reconciler._cursors
        assert after is not None
        for behind in ((before[0], after[1]), (after[0], before[1])):  # the store's log trimmed past; the state's
            router.reconciler._cursors = behind
            cost, repairs = await pass_cost(router, counted)
            assert repairs.total() == 0 and cost.rows >= 40, (behind, cost)
        assert await audit(db, router.state) == []
    finally:
        await router.close()
