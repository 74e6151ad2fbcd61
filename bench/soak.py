"""The routing soak: two `hub serve` processes on one fresh PostgreSQL database and a Redis of its own, agents
accepting and resolving a steady stream of conversations, and a random fault every few seconds (a process SIGKILLed,
a process killed at a named fail point of a decision, Redis restarted empty, PostgreSQL restarted). After each fault
the load pauses and the invariants are checked until they hold (hub.routing.reconciler.audit: every open
conversation with exactly one agent or waiting in a queue at the store's priority (one customer in five writes
"urgent", which a routing rule puts ahead), loads and presence as the store says, no agent over capacity); the
time they took is printed, with throughput.

    python -m bench.soak --minutes 60

PostgreSQL is a server of the soak's own (initdb, on a free port), so that it can be restarted; with
`--db postgresql://...` (a server others use) or `--db sqlite` there is no PostgreSQL restart among the faults.

Exit status 1 if the invariants did not hold again within --heal seconds after some fault. Not part of the suite
(tests/test_bench.py runs it for a few seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from bench.database import fresh_database
from bench.postgres import PostgresServer
from bench.processes import create_token, free_port, hub_command, hub_env
from hub.fail_points import POINTS
from hub.history.db import Database, open_database
from hub.routing.reconciler import audit
from hub.routing.redis import RedisState

PREFIX = "soak:routing:"
# Points a soak kills at: the ones an agent's or the ticker's work passes through all the time.
KILL_POINTS = sorted(p for p in POINTS if p.split(".")[0] in ("accept", "resolve", "timeout", "enqueue", "presence"))


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not on PATH")
        self.binary, self.port, self.dir = binary, free_port(), workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                             check=False).stdout.strip() != b"PONG":
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Hub:
    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name, self.env, self.port = name, env, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, fail_point: str | None = None) -> None:
        env = dict(self.env)
        if fail_point:
            env["HUB_FAIL_POINTS"] = f"{fail_point}:kill"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(hub_command("serve", "--host", "127.0.0.1", "--port", str(self.port)),
                                         env=env, stdout=out, stderr=subprocess.STDOUT)

    async def ready(self, session: aiohttp.ClientSession, within: float = 60) -> bool:
        """True once serving; False if the process ended first (a fail point may fire during its start)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(self.url + "/healthz") as resp:
                    if resp.status == 200:
                        return True
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready; see {self.log}")

    async def restart(self, session: aiohttp.ClientSession) -> None:
        self.stop()
        self.start()
        if not await self.ready(session):
            raise RuntimeError(f"{self.name} exited at start; see {self.log}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Tally:
    opened: int = 0
    accepted: int = 0
    resolved: int = 0
    refused: int = 0  # 409/503/connection errors: retried
    other: list[str] = field(default_factory=list)  # any other answer (a 500 is a finding)
    heals: list[tuple[str, float]] = field(default_factory=list)
    unhealed: list[tuple[str, list[str]]] = field(default_factory=list)


class Soak:
    def __init__(self, hubs: list[Hub], session: aiohttp.ClientSession, tally: Tally, rng: random.Random) -> None:
        self.hubs, self.session, self.tally, self.rng = hubs, session, tally, rng
        self.go = asyncio.Event()
        self.go.set()
        self.busy = 0
        #: how long each invariant check took: the same reads as a reconciler pass (every open conversation and
        #: every agent, looked up in the store and in Redis)
        self.audit_seconds: list[float] = []

    async def call(self, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        hub = self.rng.choice([h for h in self.hubs if h.alive()] or self.hubs)
        await self.go.wait()
        self.busy += 1
        try:
            async with self.session.request(method, hub.url + path, json=body,
                                            headers={"Authorization": f"Bearer {token}"}) as resp:
                data = await resp.json(content_type=None)
                if resp.status >= 500 and resp.status != 503:
                    self.tally.other.append(f"{method} {path}: {resp.status} {data}")
                return resp.status, data
        except (aiohttp.ClientError, TimeoutError):
            self.tally.refused += 1
            return 0, None
        finally:
            self.busy -= 1

    async def customers(self, admin: str, rate: float) -> None:
        n = 0
        while True:
            n += 1
            text = f"urgent soak {n}" if n % 5 == 0 else f"soak {n}"
            status, _ = await self.call("POST", "/api/v1/inbound", admin,
                                        {"identity": f"phone:+1415{n % 10_000_000:07d}", "text": text})
            if status in (200, 201):
                self.tally.opened += 1
            await asyncio.sleep(self.rng.expovariate(rate))

    async def agent(self, token: str, handle: float) -> None:
        await self.call("POST", "/api/v1/agents/me/presence", token, {"presence": "available"})
        back = time.monotonic()
        while True:
            status, offers = await self.call("GET", "/api/v1/offers", token)
            for o in (offers or {}).get("items", []) if status == 200 else []:
                cid = o["conversation_id"]
                status, _ = await self.call("POST", f"/api/v1/conversations/{cid}/accept", token)
                if status != 200:
                    self.tally.refused += 1
                    continue
                self.tally.accepted += 1
                await asyncio.sleep(self.rng.uniform(0, 2 * handle))
                while (await self.call("POST", f"/api/v1/conversations/{cid}/resolve", token))[0] not in (200, 409):
                    self.tally.refused += 1
                    await asyncio.sleep(0.5)
                self.tally.resolved += 1
            # Missed offers set an agent away (an offer shown by a process killed before the agent saw it); a real
            # agent notices and sets themself available again, now and then.
            if time.monotonic() - back > 5:
                back = time.monotonic()
                await self.call("POST", "/api/v1/agents/me/presence", token, {"presence": "available"})
            await asyncio.sleep(0.3)


async def settle(soak: Soak, check: Any, heal: float) -> tuple[float, list[str]]:
    """Pause the load, let requests in flight finish, and poll the invariants until they hold (or HEAL seconds)."""
    soak.go.clear()
    start = time.monotonic()
    for _ in range(600):  # at most 30 s
        if not soak.busy:
            break
        await asyncio.sleep(0.05)
    problems: list[str] = []
    while time.monotonic() - start < heal:
        began = time.monotonic()
        problems = await check()
        soak.audit_seconds.append(time.monotonic() - began)
        if not problems:
            break
        await asyncio.sleep(0.2)
    took = time.monotonic() - start
    soak.go.set()
    return took, problems


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="hub-soak-"))
    redis_server = RedisServer(workdir)
    redis_server.start()
    postgres = PostgresServer() if args.db == "private" else None
    if postgres is not None:
        postgres.start()
    tally = Tally()
    try:
        status = await _run(args, rng, workdir, redis_server, postgres, tally)
    finally:
        redis_server.stop()
        if postgres is not None:
            postgres.close()
    shutil.rmtree(workdir, ignore_errors=True)  # kept when the run failed: the hubs' logs are there
    return status


async def _run(args: argparse.Namespace, rng: random.Random, workdir: Path, redis_server: RedisServer,
               postgres: PostgresServer | None, tally: Tally) -> int:
    with fresh_database(postgres.url if postgres is not None else args.db, workdir) as db_url:
        env = hub_env(db_url) | {
            "HUB_ROUTING__BACKEND": "redis", "HUB_ROUTING__REDIS_URL": redis_server.url,
            "HUB_ROUTING__KEY_PREFIX": PREFIX, "HUB_EVENTS__BACKEND": "redis",
            "HUB_EVENTS__REDIS_URL": redis_server.url, "HUB_EVENTS__CHANNEL": PREFIX + "events",
            "HUB_ROUTING__QUEUES": json.dumps({"support": {"offer_timeout": 5}}),
            # Some customers write "urgent": a rule puts them ahead, so the audit checks priorities survive faults.
            "HUB_ROUTING__RULES": json.dumps([{"name": "urgent", "queue": "support", "priority": 5,
                                               "keywords": ["urgent"]}]),
            "HUB_ROUTING__DEFAULT_CAPACITY": json.dumps({"voice": 1, "chat": 2, "email": 5}),
            "HUB_ROUTING__RECONCILE_SECONDS": str(args.reconcile), "HUB_SERVER__SHUTDOWN_TIMEOUT_SECONDS": "3",
        }
        admin = create_token(db_url)
        hubs = [Hub(f"hub{i}", env, workdir) for i in range(2)]
        db = open_database(db_url)
        client = Redis.from_url(redis_server.url)
        state = RedisState(client, prefix=PREFIX)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
                for h in hubs:
                    await h.restart(session)
                soak = Soak(hubs, session, tally, rng)
                tokens = []
                for i in range(args.agents):
                    _, created = await soak.call("POST", "/api/v1/agents", admin, {
                        "name": f"Agent {i}", "email": f"agent{i}@soak.example", "password": "long password",
                        "queues": ["support"]})
                    _, token = await soak.call("POST", "/api/v1/tokens", admin,
                                               {"role": "agent", "agent_id": created["id"]})
                    tokens.append(token["token"])
                tasks = [asyncio.create_task(soak.customers(admin, args.rate))]
                tasks += [asyncio.create_task(soak.agent(t, args.handle)) for t in tokens]
                began = time.monotonic()
                print(f"soak: {args.agents} agents, ~{args.rate}/s arriving, a fault every ~{args.fault_every}s, "
                      f"{args.seconds:.0f}s; logs in {workdir}", flush=True)
                try:
                    while time.monotonic() - began < args.seconds:
                        await asyncio.sleep(rng.uniform(0.5, 1.5) * args.fault_every)
                        fault = await inject(rng, hubs, redis_server, postgres, session)
                        took, problems = await settle(soak, lambda: _audit(db, state), args.heal)
                        elapsed = time.monotonic() - began
                        verdict = f"held after {took:.1f}s" if not problems else f"NOT HELD after {took:.0f}s"
                        verdict += f" (check {soak.audit_seconds[-1] * 1000:.0f} ms)"
                        print(f"t={elapsed:6.0f}s {fault:<34} invariants {verdict}; opened {tally.opened}, "
                              f"resolved {tally.resolved} ({tally.resolved / elapsed:.1f}/s)", flush=True)
                        if problems:
                            tally.unhealed.append((fault, problems))
                            print("   " + "\n   ".join(problems[:10]), flush=True)
                        else:
                            tally.heals.append((fault, took))
                finally:
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for h in hubs:
                h.stop()
            await client.aclose()
            await db.close()
    heals = sorted(t for _, t in tally.heals)
    print(f"faults {len(tally.heals) + len(tally.unhealed)}, invariants held after every one: "
          f"{'yes' if not tally.unhealed else 'NO'}; time to hold p50 {heals[len(heals) // 2] if heals else 0:.1f}s, "
          f"max {heals[-1] if heals else 0:.1f}s; opened {tally.opened}, accepted {tally.accepted}, "
          f"resolved {tally.resolved}; refused-and-retried {tally.refused}; other errors {len(tally.other)}")
    for line in tally.other[:10]:
        print("  " + line)
    return 1 if tally.unhealed or tally.other else 0


async def _audit(db: Database, state: RedisState) -> list[str]:
    try:
        return await audit(db, state)
    except Exception as e:  # the checker's own connections were cut by a PostgreSQL restart: look again
        return [f"could not check: {e!r}"]


async def inject(rng: random.Random, hubs: list[Hub], redis_server: RedisServer, postgres: PostgresServer | None,
                 session: aiohttp.ClientSession) -> str:
    kind = rng.choice(["kill", "fail point", "redis restart"] + (["postgres restart"] if postgres else []))
    if kind == "redis restart":
        redis_server.stop()
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        redis_server.start()
        return "redis restarted empty"
    if kind == "postgres restart":
        assert postgres is not None
        down = rng.uniform(0.2, 1.5)
        await asyncio.to_thread(postgres.restart, down)
        return f"postgres restarted ({down:.1f}s down)"
    hub = rng.choice(hubs)
    if kind == "kill":
        hub.kill()
        await hub.restart(session)
        return f"{hub.name} SIGKILLed"
    point = rng.choice(KILL_POINTS)
    hub.stop()
    hub.start(point)
    if await hub.ready(session):
        assert hub.proc is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(hub.proc.wait, 10)  # the load passes the point soon
    fired = not hub.alive()
    await hub.restart(session)
    return f"{hub.name} at {point}" + ("" if fired else " (not reached)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    length = p.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, default=3600)
    length.add_argument("--minutes", type=float, help="the same in minutes")
    p.add_argument("--db", default="private",
                   help="private (a PostgreSQL server of the soak's own, restarted among the faults), a PostgreSQL "
                        "server's URL (a fresh database is created and dropped; never restarted), or sqlite")
    p.add_argument("--agents", type=int, default=20)
    p.add_argument("--rate", type=float, default=8.0, help="conversations arriving per second")
    p.add_argument("--handle", type=float, default=2.0, help="mean seconds an agent holds a conversation")
    p.add_argument("--fault-every", type=float, default=8.0, help="mean seconds between faults")
    p.add_argument("--heal", type=float, default=30.0, help="seconds the invariants may take to hold after a fault")
    p.add_argument("--reconcile", type=float, default=1.0, help="routing.reconcile_seconds of the hubs")
    p.add_argument("--seed", type=int, default=15)
    args = p.parse_args(argv)
    if args.minutes is not None:
        args.seconds = args.minutes * 60
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
