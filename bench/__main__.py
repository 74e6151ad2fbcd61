"""`python -m bench`: inbound throughput and timeline latency of a real `hub serve`, each beside a bare aiohttp
baseline measured in the same run; a table on stdout, progress on stderr, JSON in bench/results/latest.json."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bare import DURABLE_PATH
from bench.database import fresh_database
from bench.inbound import REPORTS_OFF, InboundResult, OtherHub, run_inbound
from bench.latency import LatencyResult, run_latency, twilio_env
from bench.load import Load, Tool, available_tool, run_load
from bench.processes import ROOT, Server, bare_server, create_token, free_port, hub_server
from bench.profile import render, sampling, summarize
from bench.report import table, targets, to_json
from bench.seed import deep_cursors, seed_customer
from bench.timeline import TimelineResult, cases, run_timeline
from hub.agents import add_agent
from hub.api.auth import create_token as create_api_token
from hub.config import load_settings
from hub.history.db import Database, open_database, redact

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def progress(line: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark a real `hub serve` process: inbound messages per second through HTTP into the store, "
        "the hub's CPU per message and memory, the latency from a customer's POST to an agent's WebSocket, and "
        "timeline pages of a customer with a long history; each figure beside a baseline measured in the same run "
        "(a bare aiohttp handler, and that handler with one database commit per request: the durable floor). "
        "Targets: inbound >= 0.80 x the floor's req/s with p99 <= 2 x the floor's; agent latency p99 < 25 ms; "
        "hub RSS idle < 150 MB on SQLite; timeline page p99 < 5 ms.",
    )
    p.add_argument("--quick", action="store_true",
                   help="a short run to try things out (2 s runs, 10,000-message timeline); figures are noisier")
    p.add_argument("--only", choices=["inbound", "timeline"], help="run one benchmark (default: both)")
    p.add_argument("--duration", type=float, metavar="SECONDS",
                   help="inbound: load time per server, split into rounds (default: 10); timeline: per case "
                        "(default: 5); --quick: 2 for both")
    p.add_argument("--rounds", type=int, default=3, metavar="N",
                   help="inbound: split each server's time into N rounds that take bare, the SQLite reference and "
                        "hub in turn, so a change in other load on the machine hits all alike (default: 3)")
    p.add_argument("--concurrency", type=int, default=32, metavar="N",
                   help="connections for the inbound load (default: 32); timeline pages use one")
    p.add_argument("--db", default="sqlite", metavar="sqlite|URL",
                   help="sqlite (default: a fresh file in a temporary folder) or a postgresql:// URL "
                        "(a fresh database is created on that server and dropped afterwards)")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0", metavar="URL|none",
                   help="inbound with a postgresql:// --db: the Redis that the rows of `hub serve --workers 1` and "
                        "`--workers 2` (PostgreSQL + Redis, a fresh database each) use, under key prefixes of the "
                        "run's own, deleted afterwards (default: %(default)s; none: no such rows)")
    p.add_argument("--no-latency", action="store_true",
                   help="inbound: skip the POST -> agent WebSocket latency runs that follow the throughput rounds")
    p.add_argument("--messages", type=int, metavar="N", help="timeline length (default: 100,000; --quick: 10,000)")
    p.add_argument("--identities", type=int, default=5000, metavar="N",
                   help="distinct customers the inbound messages come from (default: 5,000)")
    p.add_argument("--loadgen", choices=["wrk", "python"], help="default: wrk when installed, else Python")
    p.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default: {RESULTS.relative_to(ROOT)})")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--profile", action="store_true",
                   help="after measuring, sample `hub serve` with py-spy during one more inbound run and one more "
                        "deep-page run, and print where its time goes (needs py-spy; figures are not affected)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (database, server logs)")
    return p


def _meta(args: argparse.Namespace, db_url: str, tool: Tool) -> dict[str, Any]:
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip()
    wrk = ""
    if tool == "wrk":
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
        wrk = (out.stdout or out.stderr).split(" Copyright")[0].strip()
    return {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "database": redact(db_url).split("://")[0] + (" (fresh temporary file)" if args.db == "sqlite" else ""),
        "cpus": os.cpu_count(),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "aiohttp": importlib.metadata.version("aiohttp"),
        "commit": commit or "unknown",
        "loadgen": wrk or tool,
        "quick": args.quick,
        "args": {k: str(v) for k, v in vars(args).items()},
    }


async def _profile(
    args: argparse.Namespace, hub: Server, token: str, tool: Tool, seconds: float, paths: list[str], run_id: str,
) -> list[str]:
    """Summaries of py-spy samples of the hub during one more run of each benchmark."""
    runs: list[tuple[str, str, Load, int]] = []
    if args.only != "timeline":
        inbound = Load(hub.url, "inbound", token=token, tag=f"{run_id}-prof", identities=args.identities)
        runs.append(("inbound", f"inbound, {args.concurrency} connections", inbound, args.concurrency))
    if paths:
        deep = Load(hub.url, "get", token=token, paths=tuple(paths))
        runs.append(("timeline", "timeline deep pages, one connection", deep, 1))
    out = []
    for name, title, load, concurrency in runs:
        raw = args.output.parent / f"profile-{name}.txt"
        raw.parent.mkdir(parents=True, exist_ok=True)
        progress(f"profiling: {title}, {seconds:g}s; collapsed stacks in {raw}")
        with sampling(hub.proc.pid, seconds, raw):
            result = await asyncio.to_thread(run_load, load, tool, concurrency, seconds)
        out.append(render(title, summarize(raw.read_text()), result.seconds, result.responses))
    return out


async def _agent_token(db: Database, queue: str) -> str:
    """A token of an agent who works QUEUE: their events socket gets the queue's events by the visibility rule."""
    agent = await add_agent(db, "Bench Agent", "bench-agent@example.com", secrets.token_urlsafe(16), "agent", [queue])
    return await create_api_token(db, "agent", agent.id, "bench latency")


#: the hubs measured beside `hub serve` on PostgreSQL: target name -> worker processes
WORKER_ROWS = {"w1": 1, "w2": 2}


async def _worker_hubs(
    args: argparse.Namespace, stack: contextlib.ExitStack, workdir: Path, run_id: str
) -> dict[str, OtherHub]:
    """With a postgresql:// --db and a Redis: `hub serve --workers 1` and `--workers 2` on PostgreSQL + Redis, each
    with a fresh database and Redis keys of its own (so neither does the other's background work)."""
    if not args.db.startswith(("postgresql://", "postgres://")) or args.redis == "none":
        return {}
    import redis

    client = redis.Redis.from_url(args.redis, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as e:
        progress(f"note: no Redis at {args.redis} ({e}): no `hub serve --workers` rows (--redis URL)")
        return {}
    stack.callback(client.close)
    others = {}
    for name, workers in WORKER_ROWS.items():
        url = stack.enter_context(fresh_database(args.db, workdir))
        prefix = f"hub-bench:{run_id}:{name}:"
        stack.callback(_forget_keys, client, prefix)
        env = {"HUB_ROUTING__BACKEND": "redis", "HUB_ROUTING__REDIS_URL": args.redis, "HUB_ROUTING__KEY_PREFIX": prefix,
               "HUB_EVENTS__BACKEND": "redis", "HUB_EVENTS__REDIS_URL": args.redis,
               "HUB_EVENTS__CHANNEL": prefix + "events"}
        token = await asyncio.to_thread(create_token, url)
        server = stack.enter_context(hub_server(url, workdir, env, workers=workers, name=f"hub-{name}"))
        db = open_database(url)
        others[name] = OtherHub(server, db, token, f"hub serve --workers {workers}, PG + Redis")
        progress(f"{others[name].title} on {server.url} (pid {server.proc.pid})")
    return others


async def _reports_off_hub(args: argparse.Namespace, stack: contextlib.ExitStack, workdir: Path) -> OtherHub:
    """The same `hub serve` with the reports roller off, on a fresh database of its own: what ingest costs without
    reports (conversation events are still recorded: one INSERT in the message's transaction)."""
    if args.db.startswith("sqlite"):
        url = f"sqlite:///{workdir / 'hub-reports-off.db'}"
    else:
        url = stack.enter_context(fresh_database(args.db, workdir))
    token = await asyncio.to_thread(create_token, url)
    server = stack.enter_context(hub_server(url, workdir, {"HUB_REPORTS__ROLLER": "false"}, name="hub-reports-off"))
    progress(f"hub with the reports roller off on {server.url} (pid {server.proc.pid})")
    return OtherHub(server, open_database(url), token, "hub serve, reports roller off")


def _forget_keys(client: Any, prefix: str) -> None:
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)


Results = tuple[dict[str, Any], InboundResult | None, TimelineResult | None, list[LatencyResult]]


async def run(args: argparse.Namespace) -> Results:
    tool = available_tool(args.loadgen)
    quick = args.quick
    inbound_secs = args.duration or (2.0 if quick else 10.0)
    timeline_secs = args.duration or (2.0 if quick else 5.0)
    warmup = 1.0 if quick else 2.0
    messages = args.messages or (10_000 if quick else 100_000)
    store_calls = 200 if quick else 1000
    run_id = "b" + secrets.token_hex(3)
    inbound: InboundResult | None = None
    timeline: TimelineResult | None = None
    latency: list[LatencyResult] = []
    progress(f"load generator: {tool}" + ("" if tool == "wrk" else " (wrk not installed: apt-get install -y wrk)"))
    busy, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if busy > cpus / 2:
        progress(f"note: load average {busy:.1f} on {cpus} CPUs: other work competes, figures will be noisy")

    with contextlib.ExitStack() as stack:
        if args.keep:
            workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
            progress(f"keeping {workdir}")
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hub-bench-")))
        url = stack.enter_context(fresh_database(args.db, workdir))
        meta = _meta(args, url, tool)
        settings = load_settings(None, environ=dict(os.environ, HUB_DATABASE__URL=url))
        progress(f"database {redact(url)}; creating an admin token (migrates the schema)")
        token = await asyncio.to_thread(create_token, url)
        db = open_database(url, settings.database.pool_size, settings.database.sqlite_synchronous)
        others: dict[str, OtherHub] = {}
        try:
            cursors: list[str] = []
            customer_id = 0
            if args.only != "inbound":
                progress(f"timeline: seeding one customer with {messages:,} messages (set-up, not timed)")
                customer_id = await seed_customer(db, messages, settings.routing.default_queue, progress)
                cursors = await deep_cursors(db, customer_id, messages)
            progress("starting `hub serve` and the bare aiohttp server")
            bare = stack.enter_context(bare_server(workdir, url))
            port = free_port()  # known before start: the Twilio channel checks signatures against its public URL
            hub = stack.enter_context(hub_server(url, workdir, twilio_env(f"http://127.0.0.1:{port}"), port))
            progress(f"hub on {hub.url} (pid {hub.proc.pid}), bare on {bare.url} (pid {bare.proc.pid})")
            if args.only != "timeline":
                others[REPORTS_OFF] = await _reports_off_hub(args, stack, workdir)
                others.update(await _worker_hubs(args, stack, workdir, run_id))
                inbound = await run_inbound(
                    bare, hub, token, db, tool, args.concurrency, inbound_secs, args.rounds, warmup, args.identities,
                    run_id, progress, others,
                )
                if not args.no_latency:
                    agent = await _agent_token(db, settings.routing.default_queue)
                    rate = max(1.0, inbound.hub.rps / 2)
                    latency = await run_latency(hub.url, token, agent, rate, max(2.0, inbound_secs / 2), run_id,
                                                progress, floor_url=bare.url + DURABLE_PATH)
            if args.only != "inbound":
                timeline = await run_timeline(
                    bare, hub, token, db, customer_id, messages, cursors, tool, timeline_secs, store_calls, progress
                )
            if args.profile:
                deep = cases(customer_id, cursors)[1].paths if cursors else []
                meta["profiles"] = await _profile(args, hub, token, tool, inbound_secs, deep, run_id)
            progress("stopping the servers")
        finally:
            await db.close()
            for other in others.values():
                await other.db.close()
    return meta, inbound, timeline, latency


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # SIGTERM (`timeout`, a CI's cancel) unwinds like Ctrl-C: servers stopped, databases dropped, Redis keys deleted.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        meta, inbound, timeline, latency = asyncio.run(run(args))
    except (RuntimeError, ValueError) as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(table(meta, inbound, timeline, latency), end="", flush=True)
    for summary in meta.get("profiles", []):
        print("\n" + summary, flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(to_json(meta, inbound, timeline, latency), indent=2) + "\n")
    progress(f"results written to {args.output}")
    if inbound is not None and not inbound.check.ok:
        return 1
    if args.check and not all(t["met"] for t in targets(inbound, timeline, latency, meta["database"]).values()):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
