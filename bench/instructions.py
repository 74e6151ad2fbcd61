"""Instructions per routing decision, counted by valgrind's callgrind: the same count for the same work whatever
else the machine is doing, so it shows whether a decision's work grows with the sizes while decisions/s on a shared
machine cannot (there, time also grows as the data outgrows the CPU caches).

memory: the Python process deciding (it runs under callgrind, counting only while it decides).
redis:  the redis-server deciding (a private one under callgrind on a free port, counting only during the scripts);
        the hub process's own work per call is not in this figure.

Empty blocks (counting switched on and off with nothing in between) are counted first, and their count is
subtracted from each counted block: what is left is the decisions' own.

    python -m bench.instructions [--quick] [--sizes 1000,10000] [--decisions N] [--no-redis | --no-memory]
    python -m bench.instructions memory-child SIZE DECISIONS   (run by the above under callgrind)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python bench/instructions.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.routing import load
from hub.routing.memory import MemoryState

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 1000  # decisions per counted block
EMPTY = 3  # empty blocks counted first: what switching counting on and off costs by itself


@dataclass
class Count:
    backend: str
    waiting: int
    decisions: int
    per_decision: float  # instructions


def available() -> str | None:
    """Why instructions cannot be counted here, or None when they can."""
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian package valgrind)"
    return None


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def _block_totals(out: Path) -> list[int]:
    """The count of every dump callgrind wrote to out.1, out.2, ..., in order."""
    totals = []
    dumps = sorted(out.parent.glob(out.name + ".*"), key=lambda p: int(p.suffix[1:]))
    for dump in dumps:
        # "totals:" is the dump's count ("summary:" can read 0 in a dump taken while counting was off)
        found = re.findall(r"^(?:summary|totals): (\d+)", dump.read_text(errors="replace"), re.M)
        totals.append(max((int(x) for x in found), default=0))
    return totals


def _per_decision(totals: list[int], decisions: int) -> float:
    """The first EMPTY dumps are empty blocks (counting switched on and off, nothing between); the rest are counted
    blocks, each less the empty blocks' median."""
    empty, counted = totals[:EMPTY], totals[EMPTY:]
    overhead = sorted(empty)[len(empty) // 2]
    return max(0, sum(counted) - overhead * len(counted)) / decisions


def _empty_blocks(pid: int) -> None:
    for _ in range(EMPTY):
        _control(pid, "-i", "on")
        _control(pid, "-i", "off")
        _control(pid, "-d")


async def memory_child(size: int, decisions: int) -> None:
    """Under callgrind (counting off at start): fill a state, then count blocks of decisions. Each block frees one
    slot of up to BLOCK agents (as the benchmark does: the agent is then full again after its decision), then decides
    them all."""
    pid = os.getpid()
    ld = await load(MemoryState(), size, False)
    agents = [a for a in ld.held if ld.held[a]]
    latencies: list[float] = []
    _empty_blocks(pid)
    made = 0
    while made < decisions:
        ld.now += 1e-3
        picked = ld.rng.sample(agents, min(len(agents), BLOCK, decisions - made))
        for a in picked:
            await ld.free_a_slot(a)
        _control(pid, "-i", "on")
        for a in picked:
            await ld.decide(a, latencies)
        _control(pid, "-i", "off")
        _control(pid, "-d")
        made += len(picked)


def count_memory(size: int, decisions: int) -> Count:
    with tempfile.TemporaryDirectory(prefix="hub-instr-") as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        cmd += [sys.executable, "-m", "bench.instructions", "memory-child", str(size), str(decisions)]
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        return Count("memory", size, decisions, _per_decision(_block_totals(out), decisions))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_under_callgrind(binary: str, port: int, workdir: str, out: Path) -> subprocess.Popen[bytes]:
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", binary]
    cmd += ["--port", str(port), "--bind", "127.0.0.1", "--dir", workdir, "--save", "", "--appendonly", "no"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def count_redis(size: int, decisions: int, per_call: int = 50) -> Count:
    """A private redis-server under callgrind; the state is filled with counting off, then blocks of drain_agents
    calls of `per_call` agents each (as the benchmark's batch row) are counted."""
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    from hub.routing.redis import RedisState

    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed")
    with tempfile.TemporaryDirectory(prefix="hub-instr-") as tmp:
        out = Path(tmp) / "callgrind.out"
        port = _free_port()
        server = _redis_under_callgrind(binary, port, tmp, out)
        # A bounded pool: a server under valgrind accepts connections slowly.
        client = Redis(connection_pool=BlockingConnectionPool(port=port, max_connections=16))
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    await client.ping()
                    break
                except RedisConnectionError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("redis-server under valgrind did not start") from None
                    await asyncio.sleep(0.2)
            state = RedisState(client, prefix="instructions:")
            ld = await load(state, size, concurrent=True)
            agents = [a for a in ld.held if ld.held[a]]
            _empty_blocks(server.pid)
            made = 0
            while made < decisions:
                ld.now += 1e-3
                picked = ld.rng.sample(agents, min(len(agents), BLOCK, decisions - made))
                await asyncio.gather(*(ld.free_a_slot(a) for a in picked))
                _control(server.pid, "-i", "on")
                for i in range(0, len(picked), per_call):
                    claims = await state.drain_agents(picked[i : i + per_call], ld.now, per_call)
                    made += len(claims)
                    for c in claims:
                        ld.held[c.agent].append(c.conversation)
                _control(server.pid, "-i", "off")
                _control(server.pid, "-d")
            return Count("redis", size, made, _per_decision(_block_totals(out), made))
        finally:
            await client.aclose()
            server.terminate()
            server.wait(60)


def show(counts: list[Count]) -> None:
    print("instructions per decision (callgrind); vs 1k = divided by the smallest size's: 1.00 is flat")
    print(f"{'backend':8} {'waiting':>7} {'decisions':>9} {'instructions':>12} {'vs 1k':>6}")
    first: dict[str, Count] = {}
    for c in counts:
        small = first.setdefault(c.backend, c)
        print(
            f"{c.backend:8} {c.waiting:>7} {c.decisions:>9} {c.per_decision:>12,.0f}"
            f" {c.per_decision / small.per_decision:>5.2f}x"
        )


async def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["memory-child"]:
        await memory_child(int(argv[1]), int(argv[2]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes 1k and 10k, 500 decisions each")
    parser.add_argument("--sizes", default="1000,10000,100000", help="waiting counts (default: %(default)s)")
    parser.add_argument("--decisions", type=int, default=2000, help="counted per size (default: %(default)s)")
    parser.add_argument("--no-redis", action="store_true", help="memory backend only")
    parser.add_argument("--no-memory", action="store_true", help="Redis backend only")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.decisions = "1000,10000", 500
    why = available()
    if why:
        print(f"instructions: skipped ({why})")
        return 0
    counts: list[Count] = []
    for size in (int(x) for x in args.sizes.split(",")):
        if not args.no_memory:
            print(f"counting memory at {size} waiting...", file=sys.stderr, flush=True)
            counts.append(count_memory(size, args.decisions))
        if not args.no_redis:
            print(f"counting redis at {size} waiting (filling it under valgrind takes a while)...", file=sys.stderr)
            counts.append(await count_redis(size, args.decisions))
    counts.sort(key=lambda c: (c.backend, c.waiting))
    show(counts)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
