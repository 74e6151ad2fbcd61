"""The closing table (every figure beside its ratio to the baseline of the same run, and each target met or not)
and the same results as JSON."""

from __future__ import annotations

from typing import Any

from bench.inbound import InboundResult
from bench.load import LoadResult
from bench.timeline import TARGET_P99_MS, TimelineResult, Timing

TARGET_RATIO = 0.50


def _x(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base > 0 else "-"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def targets(inbound: InboundResult | None, timeline: TimelineResult | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if inbound is not None:
        met = inbound.ratio >= TARGET_RATIO
        out["inbound_ratio"] = {"target": f">= {TARGET_RATIO:.2f} x bare req/s", "value": inbound.ratio, "met": met}
    if timeline is not None:
        worst = timeline.worst_p99_ms
        out["timeline_p99_ms"] = {"target": f"< {TARGET_P99_MS:g} ms", "value": worst, "met": worst < TARGET_P99_MS}
    return out


def _inbound(r: InboundResult) -> list[str]:
    base = r.bare
    head = (f"  {'':<36}{'req/s':>9}{'x bare':>8}{'p50 ms':>9}{'x bare':>8}{'p99 ms':>9}{'x bare':>8}"
            f"{'non-2xx':>9}{'errors':>8}")

    def row(name: str, x: LoadResult) -> str:
        ratio = x.rps / base.rps if base.rps else 0.0
        return (f"  {name:<36}{x.rps:>9,.0f}{ratio:>8.3f}{x.p50_ms:>9.2f}{_x(x.p50_ms, base.p50_ms):>8}"
                f"{x.p99_ms:>9.2f}{_x(x.p99_ms, base.p99_ms):>8}{x.non_2xx:>9,}{x.socket_errors:>8,}")

    ok = r.ratio >= TARGET_RATIO
    rows = [row("bare aiohttp handler (baseline)", base)]
    if "durable" in r.rounds[0]:
        rows.append(row("bare + 1 SQLite commit (reference)", r.total("durable")))
    rows.append(row("hub serve (stored)", r.hub))
    return [
        f"Inbound: POST /api/v1/inbound, {r.concurrency} connections, {r.hub.seconds:.0f} s per server in "
        f"{len(r.rounds)} alternating rounds after a warm-up, {r.identities:,} distinct customers, load generator "
        f"{r.tool}",
        head,
        *rows,
        f"  hub / bare req/s {r.ratio:.3f}, target >= {TARGET_RATIO:.2f}: {_verdict(ok)} "
        f"(per round: {', '.join(f'{x:.3f}' for x in r.round_ratios)}; p50, p99: median over rounds)",
        "  the reference row answers only after committing the raw body as one SQLite row: the floor for a durable",
        "  acknowledgement, no target",
        f"  check: {'ok' if r.check.ok else 'FAILED'}: {r.check.text}",
    ]


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


def table(meta: dict[str, Any], inbound: InboundResult | None, timeline: TimelineResult | None) -> str:
    lines = [
        "",
        f"hub benchmark, {meta['started']}: database {meta['database']}, {meta['cpus']} CPUs "
        f"(load average {meta['load_average']} at start), Python {meta['python']}, aiohttp {meta['aiohttp']}, "
        f"hub {meta['commit']}",
        "",
    ]
    if inbound is not None:
        lines += [*_inbound(inbound), ""]
    if timeline is not None:
        lines += [*_timeline(timeline), ""]
    lines.append("Targets")
    names = {"inbound_ratio": "inbound req/s, hub / bare", "timeline_p99_ms": "timeline page p99 (worst case)"}
    for key, t in targets(inbound, timeline).items():
        value = f"{t['value']:.3f}" if key == "inbound_ratio" else f"{t['value']:.2f} ms"
        lines.append(f"  {names[key]:<34}{value:>10}   target {t['target']}: {_verdict(t['met'])}")
    return "\n".join(lines) + "\n"


def to_json(meta: dict[str, Any], inbound: InboundResult | None, timeline: TimelineResult | None) -> dict[str, Any]:
    return {
        "meta": meta,
        "inbound": inbound.to_json() if inbound else None,
        "timeline": timeline.to_json() if timeline else None,
        "targets": targets(inbound, timeline),
    }
