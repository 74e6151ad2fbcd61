"""Inbound throughput: the same POST /api/v1/inbound load against the bare handler and against `hub serve`, in
alternating rounds so a change in what else the machine runs hits both alike; then a check that the hub stored
exactly what it acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from bench.bare import DURABLE_PATH
from bench.database import Stored, stored
from bench.load import Load, LoadResult, Tool, combine, run_load
from bench.processes import Server, rss_mb
from hub.history.db import Database


@dataclass
class Check:
    ok: bool
    text: str


@dataclass
class InboundResult:
    tool: Tool
    concurrency: int
    seconds: float
    identities: int
    #: per round, a result for each of TARGETS
    rounds: list[dict[str, LoadResult]]
    #: every run against the hub, warm-up included: they all stored messages
    hub_runs: list[LoadResult]
    stored: Stored
    check: Check
    #: resident set sizes in MB: "hub idle" (started, before any load), "hub after" (after the run), "bare idle"
    rss_mb: dict[str, float] = field(default_factory=dict)

    def total(self, target: str) -> LoadResult:
        return combine([r[target] for r in self.rounds])

    @property
    def bare(self) -> LoadResult:
        return self.total("bare")

    @property
    def hub(self) -> LoadResult:
        return self.total("hub")

    @property
    def ratio(self) -> float:
        return self.hub.rps / self.bare.rps if self.bare.rps else 0.0

    @property
    def floor_ratio(self) -> float:
        """hub req/s over the durable floor's (0.0 when the floor was not measured)."""
        floor = self.total("durable").rps if "durable" in self.rounds[0] else 0.0
        return self.hub.rps / floor if floor else 0.0

    @property
    def round_ratios(self) -> list[float]:
        return [r["hub"].rps / r["bare"].rps if r["bare"].rps else 0.0 for r in self.rounds]

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "concurrency": self.concurrency,
            "seconds": self.seconds,
            "identities": self.identities,
            **{target: self.total(target).to_json() for target in self.rounds[0]},
            "ratio": self.ratio,
            "floor_ratio": self.floor_ratio,
            "rss_mb": self.rss_mb,
            "round_ratios": self.round_ratios,
            "rounds": [{k: v.to_json() for k, v in r.items()} for r in self.rounds],
            "stored": vars(self.stored),
            "responses_2xx": sum(r.ok for r in self.hub_runs),
            "check": vars(self.check),
        }


def verify(tool: Tool, concurrency: int, runs: list[LoadResult], s: Stored) -> Check:
    """Stored messages against 2xx answers. wrk drops its connections when time is up, so up to one request per
    connection per run may be stored without its answer being counted; the Python generator lets them finish."""
    ok = sum(r.ok for r in runs)
    sent = sum(r.sent for r in runs)
    problems = []
    if s.distinct_external_ids != s.messages:
        problems.append(f"{s.messages - s.distinct_external_ids} duplicate messages")
    unfinished = {k: v for k, v in s.journal.items() if k != "done"}
    if unfinished:
        problems.append("journal events not done: " + ", ".join(f"{v} {k}" for k, v in unfinished.items()))
    if s.journal.get("done", 0) != s.messages:
        problems.append(f"{s.journal.get('done', 0)} journal events done but {s.messages} messages stored")
    if tool == "python":
        if s.messages != ok:
            problems.append(f"{s.messages:,} stored but {ok:,} 2xx answers")
        summary = f"stored {s.messages:,} messages = {ok:,} 2xx answers"
    else:
        in_flight = s.messages - ok
        bound = concurrency * len(runs)
        if not 0 <= in_flight <= bound or s.messages > sent:
            problems.append(f"{s.messages:,} stored for {ok:,} 2xx answers and {sent:,} sent")
        summary = (
            f"stored {s.messages:,} messages = {ok:,} 2xx answers + {in_flight} in flight when wrk stopped "
            f"(at most {bound}: {concurrency} connections x {len(runs)} runs)"
        )
    summary += f"; {s.customers:,} customers, {s.conversations:,} conversations"
    if problems:
        return Check(False, summary + "; PROBLEMS: " + "; ".join(problems))
    return Check(True, summary + "; no duplicates, every journal event done")


async def _quiet(db: Database, prefix: str) -> Stored:
    """The store's count once the hub has finished the requests still in flight when the generator stopped."""
    last = await stored(db, prefix)
    for _ in range(50):
        await asyncio.sleep(0.2)
        now = await stored(db, prefix)
        if now.messages == last.messages and now.journal == last.journal:
            return now
        last = now
    return last


async def run_inbound(
    bare: Server, hub: Server, token: str, db: Database, tool: Tool, concurrency: int, seconds: float,
    rounds: int, warmup: float, identities: int, run_id: str, progress: Callable[[str], None],
) -> InboundResult:
    """SECONDS of load on each target, split into ROUNDS that take the targets in turn: bare, durable, hub, bare..."""
    targets = {
        "bare": Load(bare.url, "inbound", token=token, identities=identities),
        "durable": Load(bare.url, "inbound", token=token, identities=identities, path=DURABLE_PATH),
        "hub": Load(hub.url, "inbound", token=token, identities=identities),
    }

    async def load(target: str, n: int | str, secs: float) -> LoadResult:
        what = "warming up" if n == "w" else f"round {n}/{rounds}:"
        progress(f"inbound: {what} {target}, {secs:.3g}s at {concurrency} connections ({tool})")
        spec = replace(targets[target], tag=f"{run_id}-{target}-{n}")
        pid = hub.proc.pid if target == "hub" else bare.proc.pid
        result = await asyncio.to_thread(run_load, spec, tool, concurrency, secs, pid)
        if n != "w":
            progress(f"inbound: {target} {result.rps:,.0f} req/s, p50 {result.p50_ms:.1f} ms, "
                     f"p99 {result.p99_ms:.1f} ms, non-2xx {result.non_2xx}, socket errors {result.socket_errors}")
        return result

    rss = {"hub idle": rss_mb(hub.proc.pid), "bare idle": rss_mb(bare.proc.pid)}
    per_round = max(1.0, seconds / rounds)
    runs: list[LoadResult] = []
    for target in targets:
        result = await load(target, "w", warmup)
        if target == "hub":
            runs.append(result)
    results: list[dict[str, LoadResult]] = []
    for n in range(1, rounds + 1):
        results.append({target: await load(target, n, per_round) for target in targets})
        runs.append(results[-1]["hub"])
    s = await _quiet(db, f"{run_id}-hub-")
    rss["hub after"] = rss_mb(hub.proc.pid)
    check = verify(tool, concurrency, runs, s)
    progress(f"inbound: {'ok' if check.ok else 'FAILED'}: {check.text}")
    return InboundResult(tool, concurrency, per_round * rounds, identities, results, runs, s, check, rss)
