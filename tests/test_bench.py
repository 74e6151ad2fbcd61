"""Tests of the benchmark itself: what it counts and checks, never how fast anything is."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bench.database import Stored
from bench.inbound import InboundResult, verify
from bench.load import Load, LoadResult, Tool, combine, parse_wrk, percentile, run_load
from bench.processes import ROOT, python_env
from bench.profile import render, summarize
from bench.report import table, to_json


def result(tool: Tool = "wrk", ok: int = 100, sent: int = 100) -> LoadResult:
    return LoadResult(tool, 1.0, sent, {201: ok}, 0, 1.0, 2.0, 3.0)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) == 0.0


def test_wrk_result_line_sums_threads() -> None:
    out = (
        "Running 1s test\n"
        'BENCH_RESULT {"duration_us": 2000000, "sent": 40, "statuses": [{"201": 20, "500": 1}, {"201": 17}], '
        '"socket_errors": 2, "p50_us": 1500, "p99_us": 9000, "max_us": 12000}\n'
    )
    r = parse_wrk(out)
    assert r.statuses == {201: 37, 500: 1}
    assert (r.responses, r.ok, r.non_2xx, r.sent, r.socket_errors) == (38, 37, 1, 40, 2)
    assert r.rps == 19.0
    assert (r.p50_ms, r.p99_ms) == (1.5, 9.0)


def stored(messages: int, distinct: int | None = None, **journal: int) -> Stored:
    return Stored(messages, messages if distinct is None else distinct, journal or {"done": messages}, 10, 10)


def test_wrk_may_leave_one_request_per_connection_in_flight() -> None:
    runs = [result(ok=100, sent=104), result(ok=50, sent=52)]
    assert verify("wrk", 4, runs, stored(155)).ok
    assert verify("wrk", 4, runs, stored(150)).ok
    assert not verify("wrk", 4, runs, stored(149)).ok  # acknowledged but not stored
    assert not verify("wrk", 2, runs, stored(155)).ok  # more in flight than connections


def test_python_generator_must_match_exactly() -> None:
    assert verify("python", 4, [result("python", ok=10, sent=10)], stored(10)).ok
    assert not verify("python", 4, [result("python", ok=10, sent=10)], stored(11)).ok


def test_duplicates_and_unfinished_journal_events_fail_the_check() -> None:
    runs = [result(ok=10, sent=10)]
    assert not verify("wrk", 1, runs, stored(10, distinct=9)).ok
    check = verify("wrk", 1, runs, stored(10, done=10, failed=1))
    assert not check.ok and "1 failed" in check.text


def test_profile_summary_merges_pools_and_sets_waiting_apart() -> None:
    raw = "\n".join([
        "thread (1): MainThread;<module> (hub/cli.py:1);handle (hub/api/routes.py:10);dumps (json/__init__.py:2) 30",
        "thread (1): MainThread;<module> (hub/cli.py:1);EpollSelector.select (selectors.py:5) 70",
        "thread (2): hub-db-read_0;_worker (concurrent/futures/thread.py:83);q (hub/history/store.py:5) 20",
        "thread (3): hub-db-read_1;_worker (concurrent/futures/thread.py:83);q (hub/history/store.py:9) 20",
        "thread (3): hub-db-read_1;_worker (concurrent/futures/thread.py:81) 60",
    ])
    threads = {t.name: t for t in summarize(raw)}
    assert set(threads) == {"MainThread", "hub-db-read"}
    main, read = threads["MainThread"], threads["hub-db-read"]
    assert (main.samples, main.waiting, read.samples, read.waiting) == (30, 70, 40, 60)
    assert dict(read.inclusive) == {"q (hub/history/store.py)": 40}
    assert all("hub/cli.py" not in fn for fn, _ in main.inclusive)
    text = render("x", list(threads.values()), seconds=1.0, requests=10)
    assert "20,000  q (hub/history/store.py)" in text  # 40 samples at 200/s over 10 requests


def test_table_states_each_target() -> None:
    from bench.inbound import Check

    meta = {"started": "now", "database": "sqlite", "cpus": 2, "load_average": "0", "python": "3", "aiohttp": "3",
            "commit": "x"}
    rounds = [{"bare": result(ok=1000), "durable": result(ok=500), "hub": result(ok=200)}]
    inbound = InboundResult("wrk", 8, 1.0, 10, rounds, [result(ok=200)], stored(200), Check(True, "ok"),
                            {"hub idle": 90.0, "bare idle": 30.0, "hub after": 120.0})
    text = table(meta, inbound, None)
    assert "hub / floor 0.400" in text and "MISSED" in text
    assert "hub idle 90 MB" in text and "hub after 120 MB" in text
    inbound.rounds.append({"bare": result(ok=1000), "durable": result(ok=500), "hub": result(ok=600)})
    assert "MISSED" not in table(meta, inbound, None)  # (200 + 600) / (500 + 500) = 0.8
    targets = to_json(meta, inbound, None)["targets"]
    assert targets["inbound_floor_ratio"]["met"] is True and targets["hub_idle_rss_mb"]["met"] is True
    inbound.rss_mb["hub idle"] = 151.0
    assert "MISSED" in table(meta, inbound, None)


def test_the_latency_table_names_the_floors_database() -> None:
    from bench.latency import FLOOR_SOURCE, LatencyResult

    rows = [LatencyResult(FLOOR_SOURCE, 100, 100, 500, 500, 500, 5, 9, 12, 5, 9, 0),
            LatencyResult("POST /api/v1/inbound", 100, 100, 500, 500, 500, 8, 20, 30, 7, 15, 0, 40, 12)]
    for database, engine in (("postgresql", "PostgreSQL"), ("sqlite (fresh temporary file)", "SQLite")):
        meta = {"started": "now", "database": database, "cpus": 2, "load_average": "0", "python": "3",
                "aiohttp": "3", "commit": "x"}
        text = table(meta, None, None, rows)
        assert f"floor: the bare handler with one {engine} commit" in text
        assert ("SQLite" in text) == (engine == "SQLite")
        # the source's tail, split: its burst of new customers, then the known ones (not for the floor's row)
        assert text.count("p99 of the first message of each of 500 new customers") == 1
        assert "new customers 40.00 ms, of the known customers' 12.00 ms" in text


def test_table_states_what_reports_cost_against_the_hub_with_the_roller_off() -> None:
    from bench.inbound import REPORTS_OFF, Check

    meta = {"started": "now", "database": "sqlite", "cpus": 2, "load_average": "0", "python": "3", "aiohttp": "3",
            "commit": "x"}
    rounds = [{"bare": result(ok=1000), "hub": result(ok=180), REPORTS_OFF: result(ok=200)},
              {"bare": result(ok=1000), "hub": result(ok=190), REPORTS_OFF: result(ok=200)}]
    inbound = InboundResult("wrk", 8, 1.0, 10, rounds, [result(ok=180), result(ok=190)], stored(370),
                            Check(True, "ok"), others={REPORTS_OFF: "hub serve, reports roller off"})
    text = table(meta, inbound, None)
    assert "hub serve, reports roller off" in text
    assert "hub / hub with the reports roller off req/s 0.925 (per round: 0.900, 0.950), target >= 0.90: met" in text
    assert to_json(meta, inbound, None)["targets"]["inbound_reports_ratio"]["met"] is True
    rounds[1]["hub"] = result(ok=170)  # (180 + 170) / 400 = 0.875
    assert "target >= 0.90: MISSED" in table(meta, inbound, None)
    assert to_json(meta, inbound, None)["targets"]["inbound_reports_ratio"]["met"] is False


def test_cpu_per_message_is_the_servers_cpu_over_its_answers() -> None:
    r = result(ok=400)
    r.server_cpu = 0.2
    assert r.cpu_ms_per_response == 0.5
    both = combine([r, result(ok=100)])
    assert both.server_cpu == 0.2 and both.cpu_ms_per_response == 0.4
    assert result(ok=0).cpu_ms_per_response == 0.0


# -- the two load generators send the same requests -----------------------------------------------------------


async def capture(tool: Tool, aiohttp_server: Any) -> tuple[list[dict[str, Any]], LoadResult]:
    bodies: list[dict[str, Any]] = []

    async def inbound(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer t0k"
        bodies.append(await request.json())
        return web.json_response({}, status=201)

    app = web.Application()
    app.router.add_post("/api/v1/inbound", inbound)
    server = await aiohttp_server(app)
    load = Load(str(server.make_url("")).rstrip("/"), "inbound", token="t0k", tag="tst", identities=50)
    return bodies, await asyncio.to_thread(run_load, load, tool, 2, 1.0)


@pytest.mark.parametrize("tool", ["wrk", "python"])
async def test_inbound_requests_are_unique_and_well_formed(tool: Tool, aiohttp_server: Any) -> None:
    if tool == "wrk" and shutil.which("wrk") is None:
        pytest.skip("wrk is not installed")
    bodies, r = await capture(tool, aiohttp_server)
    assert bodies and r.ok <= len(bodies) <= r.sent
    assert r.statuses == {201: r.ok}
    assert len({b["external_id"] for b in bodies}) == len(bodies)
    for b in bodies:
        assert set(b) == {"identity", "text", "external_id", "name"}
        assert re.fullmatch(r"phone:\+1415\d{7}|email:customer\d+@example\.com", b["identity"])
        assert b["external_id"].startswith("tst-")
    assert len({b["identity"] for b in bodies}) <= 50


# -- the whole command ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_quick_run_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--duration", "1", "--rounds", "1", "--messages", "1000",
         "--concurrency", "4", "--output", str(out)],
        cwd=ROOT, env=python_env(), capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Targets" in proc.stdout
    for row in ("bare + 1 SQLite commit (durable floor)", "CPU ms/req", "memory (RSS): hub idle", "hub after",
                "load generator CPU", "POST /api/v1/inbound", "Twilio SMS (signed webhook)", "hub RSS idle",
                "hub serve, reports roller off", "hub / hub with the reports roller off req/s"):
        assert row in proc.stdout, row
    results = json.loads(out.read_text())
    assert results["inbound"]["check"]["ok"] is True
    assert all(results["inbound"][t]["ok"] > 0 for t in ("bare", "durable", "hub", "reports_off"))
    assert results["inbound"]["hub"]["server_cpu"] > 0 and results["inbound"]["rss_mb"]["hub idle"] > 0
    # Every message posted reached the agent's socket, from both sources, unless the socket said it dropped some
    # (the bus drops a slow subscriber's oldest events and says "lagged": a busy machine can do that).
    # The durable floor first (its baseline), then both sources.
    assert [r["source"] for r in results["latency"]] == [
        "floor: bare + 1 commit, answer", "POST /api/v1/inbound", "Twilio SMS (signed webhook)"]
    for r in results["latency"]:
        assert r["sent"] > 0 and r["acked"] == r["sent"] and 0 < r["arrived"] <= r["sent"], r
        assert r["arrived"] == r["sent"] or r["lagged"] > 0, r
        if r["source"] != "floor: bare + 1 commit, answer":  # a quick run's few messages are all new customers'
            assert r["new_p99_ms"] > 0, r
    assert set(results["timeline"]["http"]) == {"first page", "deep pages (cursor)", "newest first",
                                                "newest first, deep"}
    assert set(results["targets"]) == {
        "inbound_floor_ratio", "inbound_floor_p99", "hub_idle_rss_mb", "timeline_p99_ms", "inbound_reports_ratio",
        "latency_p99_ms POST /api/v1/inbound", "latency_p99_ms Twilio SMS (signed webhook)",
    }


@pytest.mark.slow
def test_postgres_run_has_its_own_floor(tmp_path: Path, pg_server: str, redis_url: str) -> None:
    out = tmp_path / "latest.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "inbound", "--quick", "--duration", "1", "--rounds", "1",
         "--concurrency", "4", "--no-latency", "--db", pg_server, "--redis", redis_url, "--output", str(out)],
        cwd=ROOT, env=python_env(), capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "bare + 1 PostgreSQL commit (durable floor)" in proc.stdout and "CPU ms/req" in proc.stdout
    results = json.loads(out.read_text())
    assert results["inbound"]["check"]["ok"] is True and results["inbound"]["durable"]["ok"] > 0
    assert "hub_idle_rss_mb" not in results["targets"]  # the 150 MB bound is the embedded default's
    # Beside it, `hub serve --workers 1` and `--workers 2` on PostgreSQL + Redis, each checked like the hub.
    assert "hub serve --workers 2, PG + Redis" in proc.stdout and "x the hub serve --workers 1" in proc.stdout
    assert results["inbound"]["w1"]["ok"] > 0 and results["inbound"]["w2"]["ok"] > 0
    assert results["inbound"]["w2"]["server_cpu"] > 0 and "--workers 2, PG + Redis: stored" in \
        results["inbound"]["check"]["text"]


# -- the email import benchmark --------------------------------------------------------------------------------


def test_generated_mailbox_is_varied_and_deterministic() -> None:
    from email import message_from_bytes, policy

    from bench.mailgen import generate
    from hub.channels.email.parse import parse_email

    emails = generate(300, 60, seed=7)
    assert emails == generate(300, 60, seed=7)
    parsed = [parse_email(e) for e in emails]
    verdicts = [p.verdict for p in parsed]
    assert set(verdicts) == {"message", "auto_reply"} and verdicts.count("auto_reply") < 15
    msgs = [message_from_bytes(e, policy=policy.default) for e in emails]
    types = {m.get_content_type() for m in msgs}
    assert {"text/plain", "multipart/alternative", "multipart/mixed"} <= types
    assert any(m.get_content_charset() == "iso-8859-1" for m in msgs)
    ids = {p.message_id for p in parsed}
    replies = [p for p in parsed if p.refs]
    assert len(ids) == 300 and len(replies) > 20 and all(set(p.refs) <= ids for p in replies)
    senders = {p.inbound.identity.value for p in parsed if p.inbound is not None}
    assert 40 <= len(senders) <= 60
    sizes = sorted(map(len, emails))
    assert sizes[0] > 300 and sizes[-1] > 20_000


@pytest.mark.slow
def test_email_import_quick_run_checks_itself(tmp_path: Path) -> None:
    from tests.channels.email.dovecot import DOVECOT

    if not Path(DOVECOT).exists():
        pytest.skip("dovecot is not installed (Debian: apt install dovecot-imapd)")
    out = tmp_path / "email.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.email_import", "--quick", "--emails", "300", "--senders", "40",
         "--batch", "25", "--output", str(out)],
        cwd=ROOT, env=python_env(), capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hub serve: IMAP -> parsed -> on timelines" in proc.stdout and "check: ok" in proc.stdout
    r = json.loads(out.read_text())
    assert r["ok"] is True and r["problems"] == []
    assert r["stored"] == 300 and r["automatic"] > 0 and r["flagged"] == 0
    assert all(r[k]["per_second"] > 0 for k in ("bare_fetch", "parse_only", "hub"))
    assert r["hub_over_fetch"] > 0 and r["hub_over_parse"] > 0
    assert len(r["progress_lines"]) >= 3, "the first import shows its progress in the hub's log"
    assert r["probe_during_import"]["n"] > 0 and r["probe_during_import"]["failures"] == 0


# -- the routing benchmark ------------------------------------------------------------------------------------


async def test_routing_bench_counts_decisions_not_setup() -> None:
    from bench.routing import batched, load, sequential
    from hub.routing.memory import MemoryState

    ld = await load(MemoryState(), 200, concurrent=False)
    assert (ld.agents, len(ld.queues)) == (20, 2) and all(len(h) == 3 for h in ld.held.values())
    one = await sequential(ld, "memory", 50)
    assert one.decisions == 50 and one.p50_ms <= one.p99_ms
    many = await batched(ld, "memory b10", 50, 10)
    assert many.decisions == 50  # every freed slot was filled again, 10 per call
    assert all(len(h) == 3 for h in ld.held.values())


async def test_routing_bench_processes_share_one_redis_state(redis_url: str) -> None:
    """The several-processes row: real processes, each freeing and refilling its own agents' slots on one state."""
    from bench.routing import load, processes, redis_state
    from hub.routing.redis import RedisState

    state, client = await redis_state(redis_url, 2)
    assert isinstance(state, RedisState)
    try:
        ld = await load(state, 400, concurrent=True)  # 40 agents with 3 chats each, 400 more waiting
        r = await processes(ld, redis_url, state.prefix, "redis 2p x2", 80, count=2, clients=2, per_client=5)
        # 4 rounds of 2 processes x 2 clients x 5 agents: every freed slot was filled again, once.
        assert r.decisions == 80 and r.per_second > 0 and r.p50_ms <= r.p99_ms
        loads = [await state.agent_stats(a) for a in ld.held]
        assert all(s is not None and s.load == {"chat": 3} for s in loads)
        waiting = sum([(await state.queue_stats(q, ld.now)).waiting for q in ld.queues])
        assert waiting == 400  # each process's new arrivals replaced exactly what it resolved
    finally:
        await state.clear()
        await client.aclose()  # type: ignore[attr-defined]


async def test_the_skip_locked_model_keeps_the_invariants_beside_the_hubs_design(
        pg_server: str, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """bench.skip_locked on a tiny load: both designs decide every freed slot (each run checks no agent is over
    capacity and each load is what they hold) and print their rows beside the same run's floor."""
    from bench import skip_locked

    assert await skip_locked.main(["--db", pg_server, "--redis", redis_url, "--sizes", "200", "--clients", "2",
                                   "--decisions", "100"]) == 0
    out = capsys.readouterr().out
    for row in ("skip locked x1", "skip locked x2", "redis lua x2", "redis + store x2"):
        assert re.search(rf"^{re.escape(row)} +200 ", out, re.M), row
    assert "committed INSERT" in out


@pytest.mark.skipif(shutil.which("callgrind_control") is None, reason="valgrind is not installed")
def test_a_memory_decision_costs_the_same_instructions_at_ten_times_the_size() -> None:
    """Counted by callgrind, so the same whatever the machine is doing: the work of a decision must not grow with
    the number waiting (a scan of a queue, of the agents or of the conversations would)."""
    from bench.instructions import count_memory

    small, large = count_memory(300, 300), count_memory(3000, 300)
    assert small.decisions == large.decisions == 300
    assert 10_000 < small.per_decision < 500_000, small
    assert 0.85 < large.per_decision / small.per_decision < 1.15, (small, large)


# -- the routing soak ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_routing_soak_runs_faults_and_checks_the_invariants(pg_server: str) -> None:
    """A few seconds of the hour-scale soak: faults are injected, and each is followed by an invariant check."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--seconds", "3", "--fault-every", "2", "--agents", "4", "--rate", "2",
         "--db", pg_server, "--seed", "7"],
        cwd=ROOT, env=python_env(), capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = re.findall(r"invariants held after [0-9.]+s", proc.stdout)
    assert checks, proc.stdout
    assert "invariants held after every one: yes" in proc.stdout


# -- the inbox and search at scale -----------------------------------------------------------------------------


def test_inbox_bench_signs_in_and_finds_what_it_seeded(capsys: pytest.CaptureFixture[str]) -> None:
    """bench.inbox, tiny: agents sign in to a real `hub serve`, and each case finds what was seeded (a fast answer
    with nothing in it would be no figure)."""
    from bench import inbox

    assert inbox.main(["--conversations", "60", "--messages", "2400", "--agents", "20", "--queues", "3",
                       "--requests", "2"]) == 0
    out = capsys.readouterr().out
    found = {m[1]: int(m[2]) for m in re.finditer(r"^(\S.*?) +(\d+) +[\d.]+ +[\d.]+ ", out, re.M)}
    assert found["inbox: a supervisor's whole inbox"] == 60  # every open conversation, a supervisor works every queue
    assert 0 < found["inbox: an agent's work list"] < 60  # two queues of three, and their own
    assert found["search (supervisor): a rare word"] == 20  # a page of the seeded rare messages
    assert found["search (supervisor): a whole phone"] == 1  # its customer
    assert found["customers (supervisor): a phone as typed"] == 1  # the whole phone, formatted: the same customer
    assert found["customers (agent): a word no customer has"] == 0


def _schema(tx: Any) -> list[str]:
    """Every index, trigger and foreign key of the store, as its definition."""
    if tx.dialect == "sqlite":
        return sorted(str(r["sql"]) for r in tx.all("SELECT sql FROM sqlite_master WHERE type IN ('index', 'trigger') "
                                                    "AND sql IS NOT NULL"))
    return sorted([str(r["d"]) for r in tx.all("SELECT indexdef AS d FROM pg_indexes WHERE schemaname = "
                                               "current_schema()")]
                  + [f"{r['t']} {r['d']}" for r in tx.all(
                      "SELECT conrelid::regclass::text AS t, pg_get_constraintdef(oid) AS d FROM pg_constraint "
                      "WHERE connamespace = current_schema()::regnamespace")])


async def test_inbox_bench_load_leaves_the_hubs_own_indexes_and_fills_them(db: Any, db_url: str) -> None:
    """bench.inbox's loader drops the loaded tables' indexes, triggers (SQLite) and foreign keys (PostgreSQL) and
    makes them again after the rows: the same definitions as the migrations made, the search indexes holding every
    message and customer (FTS5 filled by 'rebuild', GIN and trigram indexes built), the triggers back in step."""
    import argparse
    from datetime import UTC, datetime

    from bench.inbox import Shape, load
    from hub.history import store

    migrated = await db.read(_schema)
    shape = Shape.of(argparse.Namespace(conversations=30, messages=1200, agents=10, queues=3))
    load(db_url, shape, 7, datetime(2026, 6, 1, tzinfo=UTC))
    assert await db.read(_schema) == migrated

    def counts(tx: Any) -> tuple[int, int, int]:
        matches = len(store.search_messages(tx, "zanzibar", None, None, 1000))
        common = len(store.search_messages(tx, "order", None, None, 5000))
        by_phone = len(store.search_customers(tx, "+14150000007", 20, None, None))
        return matches, common, by_phone

    matches, common, by_phone = await db.read(counts)
    assert matches == 50  # bench.inbox's rare word, in RARE_HITS messages
    assert common > 200 and by_phone == 1
    # The triggers are back: a message stored now is found on SQLite too.
    await db.write(lambda tx: tx.exec("UPDATE messages SET text = 'quetzal' WHERE id = 1"))
    assert [m.id for m in await db.read(lambda tx: store.search_messages(tx, "quetzal", None, None, 5))] == [1]
