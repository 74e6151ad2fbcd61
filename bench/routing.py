"""Routing benchmark: decisions per second and p99 latency, memory and Redis, as sizes grow.

A decision is one dispatch: an agent frees a slot and gets the best conversation of their queues. Sizes are
agents = waiting/10 and queues = waiting/100 (10k agents, 1k queues at 100k waiting). Each figure is also printed
as a ratio to a baseline timed in the same run (a dict operation; a bare Redis EVALSHA), since the machine is shared.

Redis is measured four ways: one sequential client (the latency of one decision: one EVALSHA), `--clients`
concurrent callers deciding at once (aggregate decisions/s; RedisState sends the calls made while one is in flight
together in its next script call, as it does for the engine's concurrent handlers), `--batch`
decisions per EVALSHA (drain_agents for that many agents who each freed a slot, as a tick that ends many wrap-ups or
offer timeouts does; its latencies are of the whole call), and `--processes` processes of `--clients` callers each
on one shared state (aggregate decisions/s, as several hub processes on one Redis). The bare EVALSHA baseline is
timed with one client and with the same number of concurrent clients, so "x baseline" compares like with like.

Only the decision is timed: the resolve and the new arrival that free each agent's slot are set-up, not counted.
On a shared machine time per decision also moves with the load of others and grows as the data outgrows the CPU
caches; `python -m bench.instructions` counts a decision's instructions, which do neither.

    python -m bench.routing [--quick] [--sizes 1000,10000] [--redis URL] [--no-redis | --no-memory] [--clients N]
                            [--batch N] [--processes N]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python bench/routing.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.routing.memory import MemoryState
from hub.routing.state import RoutingState
from hub.routing.types import AgentConfig, Presence, QueueConfig, Waiting


@dataclass
class Result:
    backend: str  # memory | redis (one sequential client) | redis xN (N concurrent clients)
    waiting: int
    agents: int
    queues: int
    decisions: int
    per_second: float
    p50_ms: float
    p99_ms: float
    setup_s: float
    server_us: float | None = None  # Redis: the server's CPU time per decision (INFO cpu), in microseconds


async def _gather_batched(coros: list, size: int = 500) -> None:  # type: ignore[type-arg]
    for i in range(0, len(coros), size):
        await asyncio.gather(*coros[i : i + size])


@dataclass
class Load:
    """A state filled to size: every agent holding conversations, `waiting` more in the queues."""

    state: RoutingState
    waiting: int
    agents: int
    queues: list[str]
    held: dict[int, list[int]]
    rng: random.Random
    now: float
    setup_s: float
    next_id: int

    def arrival(self, at: float) -> Waiting:
        self.next_id += 1
        rng = self.rng
        return Waiting(self.next_id, rng.choice(self.queues), "webchat", rng.choice((0, 0, 0, 1)), at)

    async def free_a_slot(self, agent: int) -> None:
        """The untimed part of a decision: the agent resolves one conversation and a new one arrives."""
        held = self.held[agent]
        await self.state.resolve(held.pop(self.rng.randrange(len(held))), self.now)
        await self.state.enqueue(self.arrival(self.now), self.now, 0)

    async def decide(self, agent: int, latencies: list[float]) -> None:
        start = time.perf_counter()
        claim = await self.state.dispatch_agent(agent, self.now)
        latencies.append(time.perf_counter() - start)
        if claim is not None:
            self.held[agent].append(claim.conversation)


async def load(state: RoutingState, waiting: int, concurrent: bool) -> Load:
    rng = random.Random(7)
    n_agents, n_queues = max(1, waiting // 10), max(1, waiting // 100)
    queues = [f"q{i}" for i in range(n_queues)]
    t0 = time.perf_counter()
    now = 1_000_000.0
    for q in queues:
        await state.put_queue(QueueConfig(q, direct=True), now)
    membership = {a: tuple(rng.sample(queues, min(3, n_queues))) for a in range(1, n_agents + 1)}
    ld = Load(state, waiting, n_agents, queues, {a: [] for a in membership}, rng, now, 0.0, 0)
    setup: list[Coroutine[Any, Any, object]] = [
        state.put_agent(AgentConfig(a, qs, capacity={"chat": 3}), now) for a, qs in membership.items()
    ]
    # Enough to fill every agent (3 chats each) and leave `waiting` conversations in the queues.
    setup += [state.enqueue(ld.arrival(now + i * 1e-3), now, 0) for i in range(waiting + 3 * n_agents)]
    if concurrent:
        await _gather_batched(setup)
    else:
        for c in setup:
            await c
    for a in membership:
        await state.set_presence(a, Presence.AVAILABLE, now)
        while (claim := await state.dispatch_agent(a, now)) is not None:
            ld.held[a].append(claim.conversation)
    ld.setup_s = time.perf_counter() - t0
    return ld


def _result(backend: str, ld: Load, latencies: list[float], seconds: float, server_s: float | None = None) -> Result:
    latencies.sort()
    return Result(
        backend,
        ld.waiting,
        ld.agents,
        len(ld.queues),
        len(latencies),
        len(latencies) / seconds,
        statistics.median(latencies) * 1e3,
        latencies[int(0.99 * (len(latencies) - 1))] * 1e3,
        ld.setup_s,
        None if server_s is None else server_s / len(latencies) * 1e6,
    )


async def server_cpu(state: RoutingState) -> float | None:
    """The Redis server's CPU seconds so far (user + system), or None for a state without a server. Read around
    rounds of many decisions, the INFO call's own share is negligible."""
    client = getattr(state, "client", None)
    if client is None:
        return None
    cpu = await client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


class ServerTime:
    """The Redis server's CPU seconds over the timed phases only (start() ... stop(), as often as there are
    rounds); `total` is None for a state without a server."""

    def __init__(self, state: RoutingState) -> None:
        self.state = state
        self.total: float | None = 0.0
        self._before: float | None = None

    async def start(self) -> None:
        self._before = await server_cpu(self.state)

    async def stop(self) -> None:
        after = await server_cpu(self.state)
        if self.total is None or self._before is None or after is None:
            self.total = None
        else:
            self.total += after - self._before


async def sequential(ld: Load, backend: str, decisions: int) -> Result:
    """One caller: decisions/s is 1 / the mean time of one decision."""
    agents = [a for a in ld.held if ld.held[a]]
    latencies: list[float] = []
    for _ in range(decisions):
        ld.now += 1e-3
        a = ld.rng.choice(agents)
        await ld.free_a_slot(a)
        await ld.decide(a, latencies)
    return _result(backend, ld, latencies, sum(latencies))


async def concurrent(ld: Load, backend: str, decisions: int, clients: int, per_client: int = 25) -> Result:
    """`clients` callers deciding at once, in rounds: free a slot for clients x per_client distinct agents (untimed),
    then time the wall clock while every client makes its decisions one after another on its own connection."""
    agents = [a for a in ld.held if ld.held[a]]
    latencies: list[float] = []
    wall = 0.0
    server = ServerTime(ld.state)
    for _ in range(max(1, decisions // (clients * per_client))):
        ld.now += 1e-3
        picked = ld.rng.sample(agents, min(len(agents), clients * per_client))
        await asyncio.gather(*(ld.free_a_slot(a) for a in picked))

        async def client(mine: list[int]) -> None:
            for a in mine:
                await ld.decide(a, latencies)

        await server.start()
        start = time.perf_counter()
        await asyncio.gather(*(client(picked[i::clients]) for i in range(clients)))
        wall += time.perf_counter() - start
        await server.stop()
    return _result(backend, ld, latencies, wall, server.total)


@dataclass
class Part:
    """What one process of processes() gets: its agents with what they hold, and where its new ids start."""

    held: dict[int, list[int]]
    queues: list[str]
    now: float
    next_id: int
    seed: int


def _worker(
    url: str, prefix: str, part: Part, clients: int, rounds: int, per_client: int, barrier: Any, out: Any
) -> None:
    """One of `processes` hub-like processes: its own event loop, connections and RedisState on the shared state."""

    async def work() -> list[float]:
        from redis.asyncio import BlockingConnectionPool, Redis

        from hub.routing.redis import RedisState

        client = Redis(connection_pool=BlockingConnectionPool.from_url(url, max_connections=max(32, clients)))
        state = RedisState(client, prefix=prefix)
        held, rng = part.held, random.Random(part.seed)
        ld = Load(state, 0, len(held), part.queues, held, rng, part.now, 0.0, part.next_id)
        agents = list(held)
        latencies: list[float] = []
        try:
            for _ in range(rounds):
                ld.now += 1e-3
                picked = ld.rng.sample(agents, min(len(agents), clients * per_client))
                await asyncio.gather(*(ld.free_a_slot(a) for a in picked))
                barrier.wait()  # every process has freed its slots: the parent reads the server's CPU time
                barrier.wait()  # and starts the clock

                async def client_(mine: list[int]) -> None:
                    for a in mine:
                        await ld.decide(a, latencies)

                await asyncio.gather(*(client_(picked[i::clients]) for i in range(clients)))
                barrier.wait()  # every process is done: the parent stops the clock
        finally:
            await client.aclose()
        return latencies

    out.put(asyncio.run(work()))


async def processes(
    ld: Load, url: str, prefix: str, backend: str, decisions: int, count: int, clients: int, per_client: int = 25
) -> Result:
    """`count` processes, each with `clients` concurrent callers, deciding on one shared Redis state at once, as
    several hub processes do. Each process gets its own agents (a freed slot is filled by its own process) and its
    own range of new conversation ids. Rounds as in concurrent(); the wall clock runs from the moment every
    process has freed its slots to the moment every process is done."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    agents = [a for a in ld.held if ld.held[a]]
    rounds = max(1, decisions // (count * clients * per_client))
    barrier, out = ctx.Barrier(count + 1), ctx.Queue()
    workers = []
    for k in range(count):
        mine = {a: ld.held[a] for a in agents[k::count]}
        part = Part(mine, ld.queues, ld.now, ld.next_id + (k + 1) * 1_000_000_000, k)
        workers.append(ctx.Process(target=_worker, args=(url, prefix, part, clients, rounds, per_client, barrier, out)))
    for w in workers:
        w.start()
    wall = 0.0
    server = ServerTime(ld.state)
    latencies: list[float] = []
    try:
        for _ in range(rounds):
            await asyncio.to_thread(barrier.wait, 120)
            await server.start()
            await asyncio.to_thread(barrier.wait, 120)
            start = time.perf_counter()
            await asyncio.to_thread(barrier.wait, 120)
            wall += time.perf_counter() - start
            await server.stop()
        for _ in workers:
            latencies += await asyncio.to_thread(out.get, True, 120)
    finally:
        for w in workers:
            w.join(10)
            if w.is_alive():
                w.kill()
    return _result(backend, ld, latencies, wall, server.total)


async def batched(ld: Load, backend: str, decisions: int, per_call: int) -> Result:
    """One caller, `per_call` decisions per call: free a slot for that many distinct agents (untimed), then time one
    drain_agents call that fills them all, as the engine does when a tick ends wrap-ups or timeouts for many agents.
    Latencies are of the whole call: a decision in it is known when the call returns."""
    agents = [a for a in ld.held if ld.held[a]]
    latencies: list[float] = []
    made = 0
    wall = 0.0
    server = ServerTime(ld.state)
    for _ in range(max(1, decisions // per_call)):
        ld.now += 1e-3
        picked = ld.rng.sample(agents, min(len(agents), per_call))
        await asyncio.gather(*(ld.free_a_slot(a) for a in picked))
        await server.start()
        start = time.perf_counter()
        claims = await ld.state.drain_agents(picked, ld.now, per_call)
        took = time.perf_counter() - start
        await server.stop()
        wall += took
        made += len(claims)
        latencies += [took] * len(claims)
        for c in claims:
            ld.held[c.agent].append(c.conversation)
    return _result(backend, ld, latencies, wall, server.total)


def memory_baseline(n: int = 200_000) -> float:
    """Seconds per trivial dict operation (set, get, pop): the unit memory decisions are compared with."""
    d: dict[int, int] = {}
    start = time.perf_counter()
    for i in range(n):
        d[i] = i
        d.get(i)
        d.pop(i)
    return (time.perf_counter() - start) / n


async def redis_baseline(url: str, n: int = 2000, clients: int = 1) -> float:
    """Seconds per bare EVALSHA of a no-op script (one round trip, the floor for any Redis decision), as an aggregate
    over `clients` connections calling at once: with clients=1, the latency of one call."""
    from redis.asyncio import BlockingConnectionPool, Redis

    client = Redis(connection_pool=BlockingConnectionPool.from_url(url, max_connections=max(32, clients)))
    script = client.register_script("return 1")
    await asyncio.gather(*(script() for _ in range(clients)))  # load the script, open the connections

    async def caller(calls: int) -> None:
        for _ in range(calls):
            await script()

    start = time.perf_counter()
    await asyncio.gather(*(caller(n // clients) for _ in range(clients)))
    took = (time.perf_counter() - start) / (n // clients * clients)
    await client.aclose()
    return took


async def redis_state(url: str, clients: int) -> tuple[RoutingState, object]:
    from redis.asyncio import BlockingConnectionPool, Redis

    from hub.routing.redis import RedisState

    client = Redis(connection_pool=BlockingConnectionPool.from_url(url, max_connections=max(32, clients)))
    await client.ping()
    return RedisState(client, prefix=f"bench:routing:{uuid.uuid4().hex}:"), client


def show(results: list[Result], baselines: dict[str, float]) -> None:
    print(
        "cost = 1 / decisions/s (for N clients: wall time per decision, all clients together); cost/base = that in"
        " units of the baseline call of the same kind; vs 1k = the same figure divided by the 1k row's: 1.00 is flat;"
        " srv us = the Redis server's CPU time per decision"
    )
    print(
        f"{'backend':11} {'waiting':>7} {'agents':>6} {'queues':>6} {'decisions/s':>11} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'cost/base':>9} {'cost vs 1k':>10} {'p50 vs 1k':>9} {'srv us':>6} {'setup s':>7}"
    )
    first: dict[str, Result] = {}
    for r in results:
        small = first.setdefault(r.backend, r)
        cost = 1 / r.per_second
        srv = "-" if r.server_us is None else f"{r.server_us:.0f}"
        print(
            f"{r.backend:11} {r.waiting:>7} {r.agents:>6} {r.queues:>6} {r.per_second:>11,.0f} {r.p50_ms:>7.3f}"
            f" {r.p99_ms:>7.3f} {cost / baselines[r.backend]:>8.1f}x {cost * small.per_second:>9.2f}x"
            f" {r.p50_ms / small.p50_ms:>8.2f}x {srv:>6} {r.setup_s:>7.1f}"
        )


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes 1k and 10k, fewer decisions (a smoke run)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis URL (default: %(default)s)")
    parser.add_argument("--no-redis", action="store_true", help="memory backend only")
    parser.add_argument("--no-memory", action="store_true", help="Redis backend only")
    parser.add_argument("--sizes", help="waiting counts to run, comma-separated (default: 1000,10000,100000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent Redis clients (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=50, help="decisions per call, batch row (default: %(default)s)")
    parser.add_argument(
        "--processes", type=int, default=2, help="processes of --clients callers each, last row (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    if args.sizes:
        sizes = [int(x) for x in args.sizes.split(",")]
    decisions = {"memory": 2_000 if args.quick else 20_000, "redis": 1_000 if args.quick else 5_000}
    many = f"redis x{args.clients}"
    batch = f"redis b{args.batch}"
    multi = f"redis {args.processes}p x{args.clients}"
    baselines = {"memory": memory_baseline()}
    print(f"baseline memory:   {baselines['memory'] * 1e9:.0f} ns per dict set+get+pop")
    use_redis = not args.no_redis
    if use_redis:
        try:
            baselines["redis"] = await redis_baseline(args.redis)
            baselines[many] = await redis_baseline(args.redis, n=8000, clients=args.clients)
            baselines[batch] = baselines["redis"]
            baselines[multi] = await redis_baseline(args.redis, n=8000, clients=args.processes * args.clients)
            print(f"baseline redis:    {baselines['redis'] * 1e6:.1f} us per bare EVALSHA round trip, one client")
            print(
                f"baseline {many}: {baselines[many] * 1e6:.1f} us per bare EVALSHA with {args.clients} clients at once"
                f" ({1 / baselines[many]:,.0f} calls/s in all)"
            )
        except Exception as e:  # any connection failure means: skip Redis, and say why
            print(f"redis: skipped ({e})")
            use_redis = False
    results: list[Result] = []
    for size in sizes:
        if not args.no_memory:
            results.append(await sequential(await load(MemoryState(), size, False), "memory", decisions["memory"]))
        if use_redis:
            state, client = await redis_state(args.redis, args.clients)
            try:
                ld = await load(state, size, concurrent=True)
                results.append(await sequential(ld, "redis", decisions["redis"]))
                results.append(await concurrent(ld, many, 2 * decisions["redis"], args.clients))
                results.append(await batched(ld, batch, 4 * decisions["redis"], args.batch))
                if args.processes > 0:
                    prefix = state.prefix  # type: ignore[attr-defined]
                    n = 2 * decisions["redis"]
                    results.append(await processes(ld, args.redis, prefix, multi, n, args.processes, args.clients))
            finally:
                await state.clear()  # type: ignore[attr-defined]
                await client.aclose()  # type: ignore[attr-defined]
    results.sort(key=lambda r: (r.backend, r.waiting))
    show(results, baselines)
    for backend, target in (("memory", 50_000), ("redis", 10_000), (many, 10_000), (batch, 10_000), (multi, 10_000)):
        rows = [r for r in results if r.backend == backend]
        if rows:
            big, small = rows[-1], rows[0]
            print(
                f"{backend}: {big.per_second:,.0f} decisions/s at {big.waiting} waiting (target >= {target:,}), "
                f"p99 {big.p99_ms:.3f} ms (target < 2), cost {small.waiting}->{big.waiting}:"
                f" x{small.per_second / big.per_second:.2f} (mean), x{big.p50_ms / small.p50_ms:.2f} (p50)"
            )
            if big.server_us:
                # What the shared server could sustain, whatever limits this one machine's clients.
                print(
                    f"{'':{len(backend)}}  the Redis server spent {big.server_us:.0f} us of CPU per decision: one"
                    f" Redis core decides up to {1e6 / big.server_us:,.0f}/s with enough hub processes"
                )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
