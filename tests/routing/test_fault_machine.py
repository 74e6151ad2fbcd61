"""Property-based state machine over a whole hub (its API, its store and its routing state) in which the faults are
transitions: a decision cut between its two writes at any named fail point, and the routing state lost (the hub
restarted: memory gone; on Redis, the keys wiped as well). Between a fault and its repair agents and customers go on
working (never a 500); after each repair, and after every step when no fault is pending, `audit()` holds: every open
conversation is with exactly one agent who can see it or waits in a queue, and every agent's load and presence are
what the store says. tests/routing/test_invariants.py is the same idea over the engine alone, without a store.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.app import build_app
from hub.config import load_settings
from hub.fail_points import ENV as FAIL_POINTS
from hub.history.db import Row
from hub.keys import DB, ROUTER
from hub.routing import reconciler
from hub.routing.reconciler import audit
from tests.waiting import eventually

T = TypeVar("T")
Client = TestClient[Any, Any]
QUEUES = json.dumps({"support": {"offer_timeout": 300}, "sales": {"offer_timeout": 300}})
AGENTS = (("Ann", ["support"]), ("Bob", ["support", "sales"]))
# Where a cut leaves store and state apart, and how the operation answers there (an inbound message is stored and
# acknowledged all the same: routing is not the inbound path's to fail).
CUTS = ("accept.after_state", "reject.after_state", "transfer.after_state", "resolve.after_store",
        "presence.after_store", "enqueue.before_state", "enqueue.after_state")
SETTINGS = settings(max_examples=8, stateful_step_count=16, deadline=None, suppress_health_check=list(HealthCheck))


class FaultMachine(RuleBasedStateMachine):
    template: Path  # a migrated SQLite file, copied for each example
    backend = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = Path(tempfile.mkdtemp(prefix="hub-fault-machine-"))
        shutil.copyfile(self.template, self.folder / "hub.db")
        self.prefix = f"hub-test:{uuid.uuid4().hex[:10]}:"
        self.env = {"HUB_DATABASE__URL": f"sqlite:///{self.folder / 'hub.db'}", "HUB_ROUTING__QUEUES": QUEUES,
                    "HUB_ROUTING__BACKEND": self.backend, "HUB_ROUTING__REDIS_URL": "redis://127.0.0.1:6379/0",
                    "HUB_ROUTING__KEY_PREFIX": self.prefix,
                    # Timers and passes are the machine's own steps, so a run is the same however busy the machine.
                    "HUB_ROUTING__TICK_SECONDS": "1000", "HUB_ROUTING__RECONCILE_SECONDS": "1000",
                    "HUB_ROUTING__DEFAULT_CAPACITY": json.dumps({"voice": 1, "chat": 2, "email": 5})}
        self.client: Client | None = None
        self.admin: dict[str, str] = {}
        self.agents: dict[int, dict[str, str]] = {}
        self.fault: str | None = None  # the fault whose repair is pending

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    async def _start(self) -> Client:
        client: Client = TestClient(TestServer(build_app(load_settings(None, environ=self.env))))
        await client.start_server()
        return client

    @property
    def hub(self) -> Client:
        assert self.client is not None
        return self.client

    def teardown(self) -> None:
        os.environ.pop(FAIL_POINTS, None)
        if self.client is not None:
            self.run(self.client.close())
        if self.backend == "redis":
            self.run(self._wipe())
        self.loop.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    async def _wipe(self) -> None:
        import redis.asyncio as redis

        r = redis.from_url("redis://127.0.0.1:6379/0")
        keys = [k async for k in r.scan_iter(f"{self.prefix}*")]
        if keys:
            await r.delete(*keys)
        await r.aclose()

    async def _call(self, method: str, path: str, headers: dict[str, str], body: Any = None, cut: bool = False) -> int:
        resp = await self.hub.request(method, path, json=body if body is not None else {}, headers=headers)
        text = await resp.text()
        # A cut operation answers 500 (a killed process would drop the connection); nothing else ever does.
        assert cut or resp.status < 500, f"{method} {path}: {resp.status} {text} (pending fault: {self.fault})"
        return resp.status

    def call(self, method: str, path: str, headers: dict[str, str], body: Any = None) -> int:
        status = self.run(self._call(method, path, headers, body))
        # With no fault pending, a choice read from the store is one the hub takes; with one, a refusal (409: the
        # state and the store disagree until the repair) is fine, a 500 never.
        assert status < 300 or self.fault is not None, f"{method} {path}: {status}"
        return status

    def rows(self, sql: str) -> list[Row]:
        return self.run(self.hub.app[DB].read(lambda tx: tx.all(sql)))

    def pick(self, status: str, i: int) -> Row | None:
        if status == "offered":
            found = self.rows("SELECT id, offered_to AS agent FROM conversations "
                              "WHERE status = 'open' AND offered_to IS NOT NULL ORDER BY id")
        else:
            found = self.rows("SELECT id, agent_id AS agent FROM conversations WHERE status = 'assigned' ORDER BY id")
        return found[i % len(found)] if found else None

    @initialize()
    def start(self) -> None:
        self.client = self.run(self._start())
        db = self.hub.app[DB]
        self.admin = {"Authorization": f"Bearer {self.run(create_token(db, 'admin'))}"}
        for name, queues in AGENTS:
            a = self.run(add_agent(db, name, f"{name.lower()}@example.com", "long password", "agent", queues))
            self.agents[a.id] = {"Authorization": f"Bearer {self.run(create_token(db, 'agent', a.id))}"}
            self.call("POST", "/api/v1/agents/me/presence", self.agents[a.id], {"presence": "available"})

    @rule(customer=st.integers(0, 5))
    def inbound(self, customer: int) -> None:
        body = {"identity": f"phone:+1415555{customer:04d}", "text": f"help from {customer}"}
        self.call("POST", "/api/v1/inbound", self.admin, body)

    def _decide(self, action: str, i: int) -> bool:
        row = self.pick("offered" if action in ("accept", "reject") else "assigned", i)
        if row is None:
            return False
        cid, agent = int(row["id"]), int(row["agent"])
        if action == "transfer":
            self.call("POST", f"/api/v1/conversations/{cid}/transfer", self.admin, {"queue": "sales"})
        else:
            self.call("POST", f"/api/v1/conversations/{cid}/{action}", self.agents[agent])
        return True

    @rule(action=st.sampled_from(["accept", "reject", "resolve", "transfer"]), i=st.integers(0, 20))
    def decide(self, action: str, i: int) -> None:
        self._decide(action, i)

    @rule(agent=st.integers(0, 1), presence=st.sampled_from(["available", "away", "offline"]))
    def presence(self, agent: int, presence: str) -> None:
        headers = list(self.agents.values())[agent]
        self.call("POST", "/api/v1/agents/me/presence", headers, {"presence": presence})

    @rule(point=st.sampled_from(CUTS), i=st.integers(0, 20), agent=st.integers(0, 1))
    def cut(self, point: str, i: int, agent: int) -> None:
        """The operation stops at the fail point, as a process killed there would (this one lives on)."""
        os.environ[FAIL_POINTS] = f"{point}:raise"
        try:
            op = point.split(".")[0]
            if op == "enqueue":
                self.run(self._call("POST", "/api/v1/inbound", self.admin,
                                    {"identity": f"phone:+1415556{i:04d}", "text": "cut"}, cut=True))
                done = True
            elif op == "presence":
                headers = list(self.agents.values())[agent]
                self.run(self._call("POST", "/api/v1/agents/me/presence", headers, {"presence": "away"}, cut=True))
                done = True
            else:
                action = {"accept": "accept", "reject": "reject", "transfer": "transfer", "resolve": "resolve"}[op]
                row = self.pick("offered" if action in ("accept", "reject") else "assigned", i)
                done = row is not None
                if row is not None:
                    cid, who = int(row["id"]), int(row["agent"])
                    if action == "transfer":
                        self.run(self._call("POST", f"/api/v1/conversations/{cid}/transfer", self.admin,
                                            {"queue": "sales"}, cut=True))
                    else:
                        self.run(self._call("POST", f"/api/v1/conversations/{cid}/{action}", self.agents[who],
                                            cut=True))
        finally:
            del os.environ[FAIL_POINTS]
        if done:
            self.fault = self.fault or point

    @rule(wipe=st.booleans())
    def restart(self, wipe: bool) -> None:
        """The hub process is gone and started again: its routing state in memory with it (on Redis, wiped too
        when WIPE: Redis restarted without persistence)."""
        self.run(self.hub.close())
        if wipe and self.backend == "redis":
            self.run(self._wipe())
        self.client = self.run(self._start())
        self.fault = self.fault or "restart"

    @precondition(lambda self: self.fault is not None)
    @rule()
    def repair(self) -> None:
        """Reconciler passes, as the hub runs them every routing.reconcile_seconds, until the invariants hold."""
        async def repaired() -> bool:
            await self.hub.app[ROUTER].reconciler.run()
            return not await audit(self.hub.app[DB], self.hub.app[ROUTER].state)

        self.run(eventually(repaired, within=20, what=f"store and routing agree again after {self.fault}"))
        self.fault = None

    @invariant()
    def store_and_routing_agree(self) -> None:
        if self.client is None or self.fault is not None:
            return

        async def agree() -> list[str]:
            return await audit(self.hub.app[DB], self.hub.app[ROUTER].state)

        problems = self.run(agree())
        if problems:  # work after the acknowledgement (routing an inbound message) may still be on its way
            self.run(eventually(lambda: _none(agree()), within=10, what=f"no fault pending, yet {problems}"))


async def _none(problems: Coroutine[Any, Any, list[str]]) -> bool:
    return not await problems


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_faults_as_transitions_are_repaired(
    backend: str, _sqlite_migrated_template: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    if backend == "redis" and redis_url != "redis://127.0.0.1:6379/0":
        pytest.skip("the machine's Redis on 127.0.0.1:6379 is needed for this one")
    # Drift is acted on when two passes SETTLE_SECONDS apart see it; the machine's passes come back to back.
    monkeypatch.setattr(reconciler, "SETTLE_SECONDS", 0.05)
    machine = type(f"FaultMachine_{backend}", (FaultMachine,), {"template": _sqlite_migrated_template,
                                                                "backend": backend})
    run_state_machine_as_test(machine, settings=SETTINGS)
