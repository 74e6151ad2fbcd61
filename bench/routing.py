"""Routing benchmark: decisions per second and p99 latency, memory and Redis, as sizes grow.

A decision is one dispatch: an agent frees a slot and gets the best conversation of their queues. Sizes are
agents = waiting/10 and queues = waiting/100 (10k agents, 1k queues at 100k waiting). Each figure is also printed
as a ratio to a baseline timed in the same run (a dict operation; a bare Redis EVAL), since the machine is shared.

    python -m bench.routing [--quick] [--redis URL] [--no-redis]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python bench/routing.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.routing.memory import MemoryState
from hub.routing.state import RoutingState
from hub.routing.types import AgentConfig, Presence, QueueConfig, Waiting


@dataclass
class Result:
    backend: str
    waiting: int
    agents: int
    queues: int
    decisions: int
    per_second: float
    p50_ms: float
    p99_ms: float
    setup_s: float


async def _gather_batched(coros: list, size: int = 500) -> None:  # type: ignore[type-arg]
    for i in range(0, len(coros), size):
        await asyncio.gather(*coros[i : i + size])


async def measure(state: RoutingState, backend: str, waiting: int, decisions: int, concurrent: bool) -> Result:
    rng = random.Random(7)
    n_agents, n_queues = max(1, waiting // 10), max(1, waiting // 100)
    queues = [f"q{i}" for i in range(n_queues)]
    t0 = time.perf_counter()
    now = 1_000_000.0
    for q in queues:
        await state.put_queue(QueueConfig(q, direct=True), now)
    membership = {a: tuple(rng.sample(queues, min(3, n_queues))) for a in range(1, n_agents + 1)}
    setup = [state.put_agent(AgentConfig(a, qs, capacity={"chat": 3}), now) for a, qs in membership.items()]
    ids = iter(range(1, 10**9))

    def arrival(at: float) -> Waiting:
        return Waiting(next(ids), rng.choice(queues), "webchat", rng.choice((0, 0, 0, 1)), at)

    # Enough to fill every agent (3 chats each) and leave `waiting` conversations in the queues.
    setup += [state.enqueue(arrival(now + i * 1e-3), now, 0) for i in range(waiting + 3 * n_agents)]
    if concurrent:
        await _gather_batched(setup)
    else:
        for c in setup:
            await c
    held: dict[int, list[int]] = {a: [] for a in membership}
    for a in membership:
        await state.set_presence(a, Presence.AVAILABLE, now)
        while (claim := await state.dispatch_agent(a, now)) is not None:
            held[a].append(claim.conversation)
    setup_s = time.perf_counter() - t0
    agents = [a for a in membership if held[a]]
    latencies: list[float] = []
    for i in range(decisions):
        now += 1e-3
        a = rng.choice(agents)
        done = held[a].pop(rng.randrange(len(held[a])))
        await state.resolve(done, now)
        await state.enqueue(arrival(now + i * 1e-6), now, 0)
        start = time.perf_counter()
        claim = await state.dispatch_agent(a, now)
        latencies.append(time.perf_counter() - start)
        if claim is not None:
            held[a].append(claim.conversation)
    latencies.sort()
    return Result(
        backend,
        waiting,
        n_agents,
        n_queues,
        decisions,
        decisions / sum(latencies),
        statistics.median(latencies) * 1e3,
        latencies[int(0.99 * (len(latencies) - 1))] * 1e3,
        setup_s,
    )


def memory_baseline(n: int = 200_000) -> float:
    """Seconds per trivial dict operation (set, get, pop): the unit memory decisions are compared with."""
    d: dict[int, int] = {}
    start = time.perf_counter()
    for i in range(n):
        d[i] = i
        d.get(i)
        d.pop(i)
    return (time.perf_counter() - start) / n


async def redis_baseline(url: str, n: int = 2000) -> float:
    """Seconds per bare EVALSHA of a no-op script: one round trip, the floor for any Redis decision."""
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    script = client.register_script("return 1")
    await script()
    start = time.perf_counter()
    for _ in range(n):
        await script()
    took = (time.perf_counter() - start) / n
    await client.aclose()
    return took


async def redis_state(url: str) -> tuple[RoutingState, object]:
    from redis.asyncio import BlockingConnectionPool, Redis

    from hub.routing.redis import RedisState

    client = Redis(connection_pool=BlockingConnectionPool.from_url(url, max_connections=32))
    await client.ping()
    return RedisState(client, prefix=f"bench:routing:{uuid.uuid4().hex}:"), client


def show(results: list[Result], baselines: dict[str, float]) -> None:
    print(
        f"{'backend':7} {'waiting':>8} {'agents':>7} {'queues':>6} {'decisions/s':>12} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'p50/baseline':>12} {'p99/baseline':>12} {'setup s':>8}"
    )
    for r in results:
        base = baselines[r.backend]
        print(
            f"{r.backend:7} {r.waiting:>8} {r.agents:>7} {r.queues:>6} {r.per_second:>12,.0f} {r.p50_ms:>7.3f}"
            f" {r.p99_ms:>7.3f} {r.p50_ms / 1e3 / base:>11.1f}x {r.p99_ms / 1e3 / base:>11.1f}x {r.setup_s:>8.1f}"
        )


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes 1k and 10k, fewer decisions (a smoke run)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis URL (default: %(default)s)")
    parser.add_argument("--no-redis", action="store_true", help="memory backend only")
    args = parser.parse_args(argv)
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    decisions = {"memory": 2_000 if args.quick else 20_000, "redis": 1_000 if args.quick else 5_000}
    baselines = {"memory": memory_baseline()}
    print(f"baseline memory: {baselines['memory'] * 1e9:.0f} ns per dict set+get+pop")
    use_redis = not args.no_redis
    if use_redis:
        try:
            baselines["redis"] = await redis_baseline(args.redis)
            print(f"baseline redis:  {baselines['redis'] * 1e6:.1f} us per bare EVALSHA round trip")
        except Exception as e:  # any connection failure means: skip Redis, and say why
            print(f"redis: skipped ({e})")
            use_redis = False
    results: list[Result] = []
    for size in sizes:
        results.append(await measure(MemoryState(), "memory", size, decisions["memory"], concurrent=False))
        if use_redis:
            state, client = await redis_state(args.redis)
            try:
                results.append(await measure(state, "redis", size, decisions["redis"], concurrent=True))
            finally:
                await state.clear()  # type: ignore[attr-defined]
                await client.aclose()  # type: ignore[attr-defined]
    show(results, baselines)
    for backend, target in (("memory", 50_000), ("redis", 10_000)):
        rows = [r for r in results if r.backend == backend]
        if rows:
            big, small = rows[-1], rows[0]
            print(
                f"{backend}: {big.per_second:,.0f} decisions/s at {big.waiting} waiting (target >= {target:,}), "
                f"p99 {big.p99_ms:.3f} ms (target < 2), cost growth {small.waiting}->{big.waiting}: "
                f"x{big.p50_ms / small.p50_ms:.2f} at p50"
            )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
