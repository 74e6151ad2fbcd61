"""Timeline pages of a customer with a long history: over HTTP against `hub serve` (one connection, so the figures
are latencies, not queueing), against the bare handler's GET as the baseline, and the store call alone."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.load import Load, LoadResult, Tool, percentile, run_load
from bench.processes import Server
from hub.history import store
from hub.history.db import Database, Tx

PAGE = 50
TARGET_P99_MS = 5.0


@dataclass
class Timing:
    calls: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class TimelineCase:
    name: str
    paths: list[str]
    newest_first: bool
    cursors: list[str | None]


@dataclass
class TimelineResult:
    tool: Tool
    messages: int
    customer_id: int
    bare: LoadResult
    http: dict[str, LoadResult]
    store_baseline: Timing
    store: dict[str, Timing]

    @property
    def worst_p99_ms(self) -> float:
        return max(r.p99_ms for r in self.http.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "messages": self.messages,
            "customer_id": self.customer_id,
            "page": PAGE,
            "bare": self.bare.to_json(),
            "http": {k: v.to_json() for k, v in self.http.items()},
            "store_baseline": vars(self.store_baseline),
            "store": {k: vars(v) for k, v in self.store.items()},
            "worst_p99_ms": self.worst_p99_ms,
            "target_p99_ms": TARGET_P99_MS,
        }


def cases(customer_id: int, cursors: list[str]) -> list[TimelineCase]:
    base = f"/api/v1/customers/{customer_id}/timeline?limit={PAGE}"
    deep: list[str | None] = list(cursors)
    return [
        TimelineCase("first page", [base], False, [None]),
        TimelineCase("deep pages (cursor)", [f"{base}&cursor={c}" for c in cursors], False, deep),
        TimelineCase("newest first", [f"{base}&order=desc"], True, [None]),
        TimelineCase("newest first, deep", [f"{base}&order=desc&cursor={c}" for c in cursors], True, deep),
    ]


def _check_page(server: Server, token: str, path: str) -> None:
    """The hub answers the path with a full page and a next cursor: a fast answer to a wrong question is no figure."""
    req = urllib.request.Request(server.url + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = json.loads(resp.read())
    if len(body["items"]) != PAGE or not body["next"]:
        raise RuntimeError(f"{path}: expected a page of {PAGE} with a next cursor, got {len(body['items'])} items")


async def _time_store(db: Database, calls: int, fn: Callable[[int], Callable[[Tx], object]]) -> Timing:
    samples: list[float] = []
    for i in range(calls):
        work = fn(i)
        start = time.perf_counter()
        await db.read(work)
        samples.append(time.perf_counter() - start)
    samples.sort()
    return Timing(calls, percentile(samples, 50) * 1000, percentile(samples, 99) * 1000, samples[-1] * 1000)


async def run_timeline(
    bare: Server, hub: Server, token: str, db: Database, customer_id: int, messages: int, cursors: list[str],
    tool: Tool, seconds: float, store_calls: int, progress: Callable[[str], None],
) -> TimelineResult:
    all_cases = cases(customer_id, cursors)
    for case in all_cases:
        await asyncio.to_thread(_check_page, hub, token, case.paths[0])

    async def load(server: Server, paths: list[str], secs: float, what: str) -> LoadResult:
        progress(f"timeline: {what} on {server.name}, {secs:g}s on one connection ({tool})")
        spec = Load(server.url, "get", token=token, paths=tuple(paths))
        result = await asyncio.to_thread(run_load, spec, tool, 1, secs)
        if result.non_2xx or result.socket_errors:
            raise RuntimeError(f"timeline {what}: {result.non_2xx} non-2xx answers, {result.socket_errors} errors")
        return result

    every_path = [p for c in all_cases for p in c.paths]
    await load(bare, every_path, 1, "warming up")
    bare_result = await load(bare, all_cases[1].paths, seconds, "GET baseline")
    await load(hub, every_path, 1, "warming up")
    http: dict[str, LoadResult] = {}
    for case in all_cases:
        r = await load(hub, case.paths, seconds, case.name)
        progress(f"timeline: {case.name}: p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms")
        http[case.name] = r

    progress(f"timeline: store.timeline via db.read, {store_calls} calls per case")
    await _time_store(db, 50, lambda i: lambda tx: tx.one("SELECT 1"))
    baseline = await _time_store(db, store_calls, lambda i: lambda tx: tx.one("SELECT 1 AS one"))
    timings: dict[str, Timing] = {}
    for case in all_cases:

        def call(i: int, case: TimelineCase = case) -> Callable[[Tx], object]:
            cursor = case.cursors[i % len(case.cursors)]
            return lambda tx: store.timeline(tx, customer_id, PAGE, cursor, newest_first=case.newest_first)

        timings[case.name] = await _time_store(db, store_calls, call)
    return TimelineResult(tool, messages, customer_id, bare_result, http, baseline, timings)
