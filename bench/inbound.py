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

#: the target name of the same hub with the reports roller off ([reports] roller = false), measured in the same rounds
REPORTS_OFF = "reports_off"
#: reports (the roller folding events and counting keywords) may cost at most 10% of the hub's inbound req/s
TARGET_REPORTS_RATIO = 0.90


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
    #: the other hubs measured in the same rounds (their target name -> what it is), e.g. `hub serve --workers 2`
    others: dict[str, str] = field(default_factory=dict)

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
    def reports_ratio(self) -> float:
        """hub req/s with reports on over the same hub's with the roller off (0.0 when that row was not measured)."""
        off = self.total(REPORTS_OFF).rps if REPORTS_OFF in self.rounds[0] else 0.0
        return self.hub.rps / off if off else 0.0

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
            "reports_ratio": self.reports_ratio,
            "rss_mb": self.rss_mb,
            "others": self.others,
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


@dataclass
class OtherHub:
    """One more hub under the same load, on a database of its own: `hub serve --workers N` on PostgreSQL + Redis."""

    server: Server
    db: Database
    token: str
    title: str


async def run_inbound(
    bare: Server, hub: Server, token: str, db: Database, tool: Tool, concurrency: int, seconds: float,
    rounds: int, warmup: float, identities: int, run_id: str, progress: Callable[[str], None],
    others: dict[str, OtherHub] | None = None,
) -> InboundResult:
    """SECONDS of load on each target, split into ROUNDS that take the targets in turn: bare, durable, hub, (each
    of OTHERS,) bare..."""
    others = others or {}
    targets = {
        "bare": Load(bare.url, "inbound", token=token, identities=identities),
        "durable": Load(bare.url, "inbound", token=token, identities=identities, path=DURABLE_PATH),
        "hub": Load(hub.url, "inbound", token=token, identities=identities),
        **{name: Load(o.server.url, "inbound", token=o.token, identities=identities) for name, o in others.items()},
    }
    pids = {"bare": bare.proc.pid, "durable": bare.proc.pid, "hub": hub.proc.pid,
            **{name: o.server.proc.pid for name, o in others.items()}}

    async def load(target: str, n: int | str, secs: float) -> LoadResult:
        what = "warming up" if n == "w" else f"round {n}/{rounds}:"
        progress(f"inbound: {what} {target}, {secs:.3g}s at {concurrency} connections ({tool})")
        spec = replace(targets[target], tag=f"{run_id}-{target}-{n}")
        result = await asyncio.to_thread(run_load, spec, tool, concurrency, secs, pids[target])
        if n != "w":
            progress(f"inbound: {target} {result.rps:,.0f} req/s, p50 {result.p50_ms:.1f} ms, "
                     f"p99 {result.p99_ms:.1f} ms, non-2xx {result.non_2xx}, socket errors {result.socket_errors}")
        return result

    rss = {"hub idle": rss_mb(hub.proc.pid), "bare idle": rss_mb(bare.proc.pid)}
    per_round = max(1.0, seconds / rounds)
    hubs = ["hub", *others]
    runs: dict[str, list[LoadResult]] = {name: [] for name in hubs}
    for target in targets:
        result = await load(target, "w", warmup)
        if target in runs:
            runs[target].append(result)
    results: list[dict[str, LoadResult]] = []
    for n in range(1, rounds + 1):
        results.append({target: await load(target, n, per_round) for target in targets})
        for name in hubs:
            runs[name].append(results[-1][name])
    s = await _quiet(db, f"{run_id}-hub-")
    rss["hub after"] = rss_mb(hub.proc.pid)
    check = verify(tool, concurrency, runs["hub"], s)
    progress(f"inbound: {'ok' if check.ok else 'FAILED'}: {check.text}")
    for name, other in others.items():  # each stored exactly what it acknowledged too
        theirs = verify(tool, concurrency, runs[name], await _quiet(other.db, f"{run_id}-{name}-"))
        progress(f"inbound: {other.title}: {'ok' if theirs.ok else 'FAILED'}: {theirs.text}")
        check = Check(check.ok and theirs.ok, f"{check.text} | {other.title}: {theirs.text}")
    return InboundResult(tool, concurrency, per_round * rounds, identities, results, runs["hub"], s, check, rss,
                         {name: o.title for name, o in others.items()})
