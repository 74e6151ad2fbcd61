"""The fallback load generator when wrk is missing: aiohttp clients in this process, one per connection.

Reads its spec as JSON on stdin and prints one result line. Unlike wrk it lets requests in flight finish when time is
up, so every request sent gets counted. It is slower than wrk: on a small machine it may saturate before the server.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from dataclasses import asdict

import aiohttp

from bench.load import RESULT_MARK, Load, LoadResult, inbound_body, percentile


async def _worker(
    session: aiohttp.ClientSession, load: Load, worker: int, deadline: float,
    latencies: list[float], statuses: dict[int, int], errors: list[int], sent: list[int],
) -> None:
    rng = random.Random(load.seed * 1000 + worker)
    headers = {"Authorization": f"Bearer {load.token}"} if load.token else {}
    counter = 0
    while time.perf_counter() < deadline:
        counter += 1
        sent[0] += 1
        start = time.perf_counter()
        try:
            if load.kind == "get":
                path = load.paths[(counter - 1) % len(load.paths)]
                async with session.get(load.base_url + path, headers=headers) as resp:
                    await resp.read()
            else:
                body = inbound_body(load.tag, worker, counter, rng.randint(1, load.identities))
                async with session.post(load.base_url + load.path, json=body, headers=headers) as resp:
                    await resp.read()
        except (aiohttp.ClientError, TimeoutError):
            errors[0] += 1
            continue
        latencies.append(time.perf_counter() - start)
        statuses[resp.status] = statuses.get(resp.status, 0) + 1


async def run(load: Load, concurrency: int, seconds: float) -> LoadResult:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors, sent = [0], [0]
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(
            *(_worker(session, load, w + 1, deadline, latencies, statuses, errors, sent) for w in range(concurrency))
        )
        elapsed = time.perf_counter() - start
    latencies.sort()
    return LoadResult(
        tool="python",
        seconds=elapsed,
        sent=sent[0],
        statuses=statuses,
        socket_errors=errors[0],
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        max_ms=(latencies[-1] if latencies else 0.0) * 1000,
    )


def main() -> None:
    spec = json.load(sys.stdin)
    raw = spec["load"]
    load = Load(**dict(raw, paths=tuple(raw["paths"])))
    result = asyncio.run(run(load, int(spec["concurrency"]), float(spec["seconds"])))
    print(RESULT_MARK + json.dumps(asdict(result)), flush=True)


if __name__ == "__main__":
    main()
