"""The closing table (every figure beside its ratio to the baseline of the same run, and each target met or not)
and the same results as JSON."""

from __future__ import annotations

from typing import Any

from bench.inbound import REPORTS_OFF, TARGET_REPORTS_RATIO, InboundResult
from bench.latency import CUSTOMERS, FLOOR_SOURCE, LatencyResult
from bench.latency import TARGET_P99_MS as LATENCY_P99_MS
from bench.load import LoadResult
from bench.timeline import TARGET_P99_MS, TimelineResult, Timing

#: hub req/s over the durable floor's (bare + 1 commit per request), and its p99 at most this many times the floor's
TARGET_FLOOR_RATIO = 0.80
TARGET_FLOOR_P99 = 2.0
#: the embedded default's resident memory when idle
TARGET_IDLE_RSS_MB = 150.0


def _x(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base > 0 else "-"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def targets(
    inbound: InboundResult | None, timeline: TimelineResult | None, latency: list[LatencyResult] | None = None,
    database: str = "sqlite",
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if inbound is not None and "durable" in inbound.rounds[0]:
        ratio = inbound.floor_ratio
        out["inbound_floor_ratio"] = {"target": f">= {TARGET_FLOOR_RATIO:.2f} x the durable floor's req/s",
                                      "value": ratio, "met": ratio >= TARGET_FLOOR_RATIO}
        floor_p99 = inbound.total("durable").p99_ms
        p99 = inbound.hub.p99_ms / floor_p99 if floor_p99 else 0.0
        out["inbound_floor_p99"] = {"target": f"<= {TARGET_FLOOR_P99:g} x the durable floor's p99", "value": p99,
                                    "met": 0 < p99 <= TARGET_FLOOR_P99}
    if inbound is not None and database.startswith("sqlite") and "hub idle" in inbound.rss_mb:
        rss = inbound.rss_mb["hub idle"]
        out["hub_idle_rss_mb"] = {"target": f"< {TARGET_IDLE_RSS_MB:g} MB (SQLite)", "value": rss,
                                  "met": rss < TARGET_IDLE_RSS_MB}
    for r in latency or []:
        if r.source == FLOOR_SOURCE:
            continue  # the baseline: no target of its own
        key = "latency_p99_ms " + r.source
        out[key] = {"target": f"< {LATENCY_P99_MS:g} ms", "value": r.p99_ms,
                    "met": r.arrived == r.acked == r.sent and r.p99_ms < LATENCY_P99_MS}
    if inbound is not None and inbound.reports_ratio:
        ratio = inbound.reports_ratio
        out["inbound_reports_ratio"] = {"target": f">= {TARGET_REPORTS_RATIO:.2f} x the req/s with the reports "
                                                  "roller off", "value": ratio, "met": ratio >= TARGET_REPORTS_RATIO}
    if timeline is not None:
        worst = timeline.worst_p99_ms
        out["timeline_p99_ms"] = {"target": f"< {TARGET_P99_MS:g} ms", "value": worst, "met": worst < TARGET_P99_MS}
    return out


def _inbound(r: InboundResult, database: str) -> list[str]:
    base = r.bare
    floor = r.total("durable") if "durable" in r.rounds[0] else None
    head = (f"  {'':<44}{'req/s':>9}{'x bare':>8}{'x floor':>8}{'p50 ms':>9}{'p99 ms':>9}{'x floor':>8}"
            f"{'CPU ms/req':>11}{'x floor':>8}{'non-2xx':>9}{'errors':>8}")

    def row(name: str, x: LoadResult) -> str:
        ratio = x.rps / base.rps if base.rps else 0.0
        vs_floor = f"{x.rps / floor.rps:>8.3f}" if floor and floor.rps else f"{'-':>8}"
        p99_floor = _x(x.p99_ms, floor.p99_ms) if floor else "-"
        cpu_floor = _x(x.cpu_ms_per_response, floor.cpu_ms_per_response) if floor else "-"
        return (f"  {name:<44}{x.rps:>9,.0f}{ratio:>8.3f}{vs_floor}{x.p50_ms:>9.2f}{x.p99_ms:>9.2f}{p99_floor:>8}"
                f"{x.cpu_ms_per_response:>11.3f}{cpu_floor:>8}{x.non_2xx:>9,}{x.socket_errors:>8,}")

    engine = _engine(database)
    rows = [row("bare aiohttp handler (baseline)", base)]
    if floor is not None:
        rows.append(row(f"bare + 1 {engine} commit (durable floor)", floor))
    rows.append(row("hub serve (stored)", r.hub))
    rows += [row(title, r.total(name)) for name, title in r.others.items()]
    lines = [
        f"Inbound: POST /api/v1/inbound, {r.concurrency} connections, {r.hub.seconds:.0f} s per server in "
        f"{len(r.rounds)} alternating rounds after a warm-up, {r.identities:,} distinct customers, load generator "
        f"{r.tool}",
        head,
        *rows,
        f"  hub / bare req/s {r.ratio:.3f} (per round: {', '.join(f'{x:.3f}' for x in r.round_ratios)}); "
        f"hub / floor {r.floor_ratio:.3f}, target >= {TARGET_FLOOR_RATIO:.2f}: "
        f"{_verdict(r.floor_ratio >= TARGET_FLOOR_RATIO)}",
        "  p50, p99: median over rounds. The floor answers only after committing the raw body as one row (one",
        f"  transaction per request): the least a durable acknowledgement costs on {engine}.",
        "  CPU ms/req: the server process's CPU (all threads) per answered request; for the hub, per stored message.",
        f"  load generator CPU: {r.hub.loadgen_cpu / r.hub.seconds:.2f} s per second against the hub, "
        f"{base.loadgen_cpu / base.seconds:.2f} against bare (it shares the machine's cores with the server)",
    ]
    if r.reports_ratio:
        per_round = [x["hub"].rps / x[REPORTS_OFF].rps if x[REPORTS_OFF].rps else 0.0 for x in r.rounds]
        lines.append(f"  hub / hub with the reports roller off req/s {r.reports_ratio:.3f} (per round: "
                     f"{', '.join(f'{x:.3f}' for x in per_round)}), target >= {TARGET_REPORTS_RATIO:.2f}: "
                     f"{_verdict(r.reports_ratio >= TARGET_REPORTS_RATIO)}")
    if set(r.others) - {REPORTS_OFF}:
        lines += _others(r)
    if r.rss_mb:
        lines.append("  memory (RSS): " + ", ".join(f"{k} {v:,.0f} MB" for k, v in r.rss_mb.items()))
    lines.append(f"  check: {'ok' if r.check.ok else 'FAILED'}: {r.check.text}")
    return lines


def _others(r: InboundResult) -> list[str]:
    """The `hub serve --workers N` rows: each against the first of them, and what the load generator used."""
    names = [name for name in r.others if name != REPORTS_OFF]
    first = r.total(names[0])
    lines = [f"  {title}: req/s {r.total(name).rps / first.rps if first.rps else 0.0:.2f}x the "
             f"{r.others[names[0]]} row, load generator CPU {r.total(name).loadgen_cpu / r.total(name).seconds:.2f} "
             "s per second" for name, title in r.others.items() if name in names[1:]]
    lines += [
        f"  {r.others[names[0]]}: load generator CPU {first.loadgen_cpu / first.seconds:.2f} s per second",
        "  those rows: a database of their own each on the same PostgreSQL server, routing and events on Redis; CPU",
        "  ms/req counts the supervisor and all its workers. The machine's cores are shared by the workers, the load",
        "  generator, PostgreSQL and Redis: read the load generator's CPU beside the ratio.",
    ]
    return lines


def _engine(database: str) -> str:
    """The floor's database, by name, from the run's meta."""
    return "PostgreSQL" if database.startswith("postgres") else "SQLite"


def _latency(rs: list[LatencyResult], database: str) -> list[str]:
    lines = [
        "What an agent feels: the POST of a customer's message -> its message.created on the events WebSocket of an",
        "agent in that queue, open loop at half the hub's maximum inbound rate (from the run above)",
        f"  {'':<32}{'rate/s':>8}{'sent':>7}{'arrived':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'ack p50':>9}{'ack p99':>9}{'p99/floor':>10}   p99 < {LATENCY_P99_MS:g} ms",
    ]
    floor = next((r.p99_ms for r in rs if r.source == FLOOR_SOURCE), 0.0)
    for r in rs:
        ok = r.arrived == r.acked == r.sent and r.p99_ms < LATENCY_P99_MS
        ratio = f"{r.p99_ms / floor:>9.2f}x" if floor else f"{'-':>10}"
        verdict = "(baseline)" if r.source == FLOOR_SOURCE else _verdict(ok)
        lines.append(f"  {r.source:<32}{r.achieved:>8,.0f}{r.sent:>7,}{r.arrived:>9,}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
                     f"{r.max_ms:>9.2f}{r.ack_p50_ms:>9.2f}{r.ack_p99_ms:>9.2f}{ratio}   {verdict}"
                     + (f" (socket lagged {r.lagged}x)" if r.lagged else ""))
        if r.source != FLOOR_SOURCE:
            lines.append(f"    p99 of the first message of each of {CUSTOMERS} new customers {r.new_p99_ms:.2f} ms, "
                         f"of the known customers' {r.known_p99_ms:.2f} ms")
    lines.append(f"  ack: the POST's own answer, for comparison; floor: the bare handler with one {_engine(database)} "
                 "commit, posted")
    lines.append("  to the same way at the same rate just before (the least a durable answer took here then). A source")
    lines.append("  starts with its new customers: a burst costlier than the mix the maximum rate was measured with")
    return lines


def _timeline(r: TimelineResult) -> list[str]:
    head = (f"  {'':<34}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'p50/base':>10}{'p99/base':>10}"
            f"   p99 < {TARGET_P99_MS:g} ms")
    lines = [
        f"Timeline page: GET /api/v1/customers/{r.customer_id}/timeline?limit=50 over HTTP, "
        f"{r.messages:,} messages, one connection, load generator {r.tool}",
        head,
        f"  {'bare aiohttp GET (baseline)':<34}{r.bare.rps:>10,.0f}{r.bare.p50_ms:>10.2f}{r.bare.p99_ms:>10.2f}",
    ]
    for name, x in r.http.items():
        lines.append(
            f"  {name:<34}{x.rps:>10,.0f}{x.p50_ms:>10.2f}{x.p99_ms:>10.2f}{_x(x.p50_ms, r.bare.p50_ms):>10}"
            f"{_x(x.p99_ms, r.bare.p99_ms):>10}   {_verdict(x.p99_ms < TARGET_P99_MS)}"
        )
    lines += [
        "",
        f"Store call alone: store.timeline(limit=50) via db.read, in the benchmark process, "
        f"{r.store_baseline.calls:,} calls each",
        f"  {'':<34}{'':>10}{'p50 ms':>10}{'p99 ms':>10}{'p50/base':>10}{'p99/base':>10}",
    ]

    def row(name: str, t: Timing, base: Timing | None) -> str:
        ratios = f"{_x(t.p50_ms, base.p50_ms):>10}{_x(t.p99_ms, base.p99_ms):>10}" if base else ""
        return f"  {name:<34}{'':>10}{t.p50_ms:>10.3f}{t.p99_ms:>10.3f}{ratios}"

    lines.append(row("db.read(SELECT 1) (baseline)", r.store_baseline, None))
    lines += [row(name, t, r.store_baseline) for name, t in r.store.items()]
    return lines


def table(
    meta: dict[str, Any], inbound: InboundResult | None, timeline: TimelineResult | None,
    latency: list[LatencyResult] | None = None,
) -> str:
    lines = [
        "",
        f"hub benchmark, {meta['started']}: database {meta['database']}, {meta['cpus']} CPUs "
        f"(load average {meta['load_average']} at start), Python {meta['python']}, aiohttp {meta['aiohttp']}, "
        f"hub {meta['commit']}",
        "",
    ]
    database = str(meta["database"])
    if inbound is not None:
        lines += [*_inbound(inbound, database), ""]
    if latency:
        lines += [*_latency(latency, database), ""]
    if timeline is not None:
        lines += [*_timeline(timeline), ""]
    lines.append("Targets")
    names = {"inbound_floor_ratio": ("inbound req/s, hub / floor", "{:.3f}"),
             "inbound_floor_p99": ("inbound p99, hub / floor", "{:.2f}x"),
             "hub_idle_rss_mb": ("hub RSS idle", "{:.0f} MB"),
             "inbound_reports_ratio": ("inbound req/s, hub / reports roller off", "{:.3f}"),
             "timeline_p99_ms": ("timeline page p99 (worst case)", "{:.2f} ms")}
    for key, t in targets(inbound, timeline, latency, database).items():
        name, fmt = names.get(key, ("agent p99, " + key.removeprefix("latency_p99_ms "), "{:.2f} ms"))
        lines.append(f"  {name:<40}{fmt.format(t['value']):>10}   target {t['target']}: {_verdict(t['met'])}")
    return "\n".join(lines) + "\n"


def to_json(
    meta: dict[str, Any], inbound: InboundResult | None, timeline: TimelineResult | None,
    latency: list[LatencyResult] | None = None,
) -> dict[str, Any]:
    return {
        "meta": meta,
        "inbound": inbound.to_json() if inbound else None,
        "latency": [r.to_json() for r in latency or []],
        "timeline": timeline.to_json() if timeline else None,
        "targets": targets(inbound, timeline, latency, str(meta["database"])),
    }
