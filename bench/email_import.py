"""Email import benchmark: a real Dovecot mailbox seeded with thousands of varied emails, imported over IMAP by a real
`hub serve` into timelines (SQLite by default), beside two baselines measured in the same run on the same mailbox:
a bare aioimaplib FETCH of every email (the IMAP floor) and parsing alone (`parse_email`, in this process).

While the hub imports, an API request (GET /api/v1/conversations) is timed every 100 ms: the first import of a big
mailbox must not stall other work. The hub's log must show the import's progress.

    python -m bench.email_import [--quick] [--emails N] [--db sqlite|URL] [--profile]

Notes (issue 16, section 6; every run and its load in docs/email.md). py-spy (`--profile`) of `hub serve` during the
import of 5,000 emails, per email, microseconds of samples per thread (GIL waits included), before and after making
parsing cheaper:

    before (main at 2f0e77d; 233/s here, parse alone 334/s, load 9-10)
      parsing thread  1,542 us: parse_email 1,504, of which policy.default's header objects (_RememberingHeaders
                      __call__) 540, _header 297, _bounce 241, _addresses 234, sanitize 116, _walk 108, fingerprint 93
      event loop      1,463 us: aioimaplib reading FETCH responses ~440, ingest 261, publishing 78
      database writer 1,463 us: the ingest transaction 839 (insert_message 252, reading back the rows just
                      written 103, sanitize again 39), rules (automation runner) 106
    after (216/s here, parse alone 718/s, load 13-17)
      parsing thread  1,236 us: parse_email 1,218 (the email package's feed parser, sanitize 144, fingerprint 120,
                      _walk 93, trim_reply 72, _bounce 49); no header objects
      event loop      1,871 us: aioimaplib reading FETCH responses ~600, ingest 383 (JSON of the journal payload
                      111), publishing 65
      database writer 1,784 us: the ingest transaction 987 (insert_message 333, reading back the conversation and the
                      customer 164), rules 142

CPU per email (all threads): parse alone 1.16 -> 0.50 ms, the hub 2.6 -> 1.7 ms. The hub does not reach 0.8x of the
parse-only rate (0.30-0.36 after): in one process under one interpreter lock, the IMAP client and the write path
now cost about twice the parsing.

Second round: big batches parsed in a worker process (`--parse-processes`, default 1), the next batch read while one
is stored, and the hub's aioimaplib protocol fed in 16 KiB pieces. py-spy of 2,000 emails, us per email per thread:

    before (de9dcd9; load 9; 149/s here, parse alone 497/s)
      event loop      3,142 us: ingest 810, aioimaplib (_handle_responses, append_literal_data, data_received) ~680
      database writer 2,210 us: the ingest transaction 1,168, rules 292
      parsing thread  1,502 us: parse_email 1,465
    after (load 19; 151/s here, parse alone 393/s)
      event loop      3,145 us: ingest 1,370 (_finish 582, publishing 328), _Protocol.data_received 158
      database writer 2,478 us: the ingest transaction 1,135, rules 268
      parsing         none in the hub process; the worker process used 0.795 ms of CPU an email

CPU per email after: the hub process 1.445 ms, its worker 0.795, parse alone 0.562: on free cores the import is
bounded at 0.562 / 1.445 = 0.39x of the parse-only rate by the write path left in the hub process (the line "on free
cores at most" of the table). The 0.8x target is not reached (docs/performance.md, the email section).

Third round: each fetched batch stored in one write transaction (hub.ingest `ingest_batch`), the journal payload and
meta by orjson, no re-reads. py-spy with --profile-gil (only the thread holding the GIL sampled) of the full import,
us per email, load 5-7:

    before (bd69b92; 320/s, hub process 1.48 ms CPU an email)
      event loop      745: receive_batch's per-email keep 274 (ingest 169, thread look-up 33), IMAP 55
      database writer 396: the ingest transactions 184, reports roller commit 159
      database reader 215: reports roller plan 196
    after (4aab991; 271/s, hub process 1.29 ms)
      event loop      621: ingest_batch 160 (publishing 98), IMAP 66
      database writer 532: the batch transactions 188, reports roller commit 322
      database reader 334: reports roller plan 307

The reports roller (keyword counting of every message) is now the largest cost left in the hub process; the 0.8x
target is still missed (0.16-0.39x at the full size; every run in docs/email.md).

Fourth round: the roller's keyword counts written as one JSON upsert per slice instead of a statement per row, terms
found with one findall, and the parsing worker's start no longer importing the web server (hub.cli). py-spy with
--profile-gil of the full import, us per email, load 9:

    before (4aab991, third round above)
      event loop 621, database writer 532 (roller commit 322), database reader 334 (roller plan 307)
    after (445/s, parse alone 879/s; hub process 1.13 ms CPU an email, worker 0.53)
      event loop      654: ingest_batch 111, _Protocol.data_received 87, publishing 40, executor submits 39 on top
      database writer 210: the batch transactions 165, roller commit 31
      database reader 200: roller plan 185 (terms 117)

Three alternating pairs at load 9-15: the hub process 1.36-1.56 -> 1.07-1.19 ms CPU an email, the worker
0.63-0.70 -> 0.57-0.63. The 0.8x target is still missed (0.21-0.51x after; docs/email.md, "Fourth round").

Fifth round, after the reports roller began writing in slices of SLICE_ROWS: an email's keyword rows fill a slice
after one to three emails, and each slice read 500 events and their texts to fold them; a slice now reads a page at
a time. py-spy with --profile-gil, us per email, load 6-7:

    before (45eb151; 665/s, parse alone 2,354/s; hub process 0.91 ms CPU an email)
      database reader 1,060: roller plan 912 (reads 469, _texts 363, _load_clocks 307)
      event loop        677: roll_forever 162, IMAP session and ingest 76
      database writer   165: the batch transactions 73, roller commit 46
    after (2d7b113; 671/s, parse alone 1,058/s; hub process 0.90 ms)
      event loop 235 (IMAP session and ingest 54, roll_forever 26), database writer 185 (the batch transactions
      119, roller commit 35), database reader 68 (roller plan 39)

The import is no faster (two alternating pairs at load 9-11: hub process 1.11-1.28 ms before, 1.27-1.31 after):
the roller, always behind during an import, takes what share it gets; its commit (keyword rows, 1.44 ms an email
in bench.email_store) is now its cost. With the roller off the hub process is at 0.86 ms an email; 0.8x needs
0.40-0.50. Missed (docs/email.md, "Fifth round").

Sixth round: py-spy with --gil leaves out SQLite's own work (done without the lock), so the CPU of each thread was
read from /proc: at f4abee3 the roller was half of the hub process (writer 5.1 s with it on, 1.9 s off, 5,000
emails), its commit of keyword rows above all. A keyword count now weighs a quarter of a row in a slice's
SLICE_ROWS (rollup.KEYWORDS_A_ROW), so a slice folds about eight emails instead of one or two. The CPU to done
hides that (the roller, behind during the import, takes the same share and folds more), so this benchmark now also
prints the hub process's CPU until the roller has folded every email: 2.25-2.53 ms before, 1.34-1.91 after (four
alternating pairs, load 4-13). py-spy with --profile-gil after (load 4-5; 710/s, parse alone 1,085/s; hub process
0.85 ms an email to done, 1.46 until rolled, the roller caught up at done):

    event loop 371 (ingest_batch 76, _Protocol.data_received 52, roll_forever 26, executor submits 53 on top),
    db writer 186 (the batch transactions 135, roller commit 31)

Missed: the import at 0.18-0.69x of the parse-only rate (docs/email.md, "Sixth round").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import aioimaplib

from bench.database import fresh_database
from bench.load import percentile
from bench.mailgen import generate, write_maildir
from bench.processes import ROOT, Server, _running, create_token, free_port, hub_command, hub_env
from bench.profile import render, sampling, summarize
from hub.channels.email.imap import parse_fetch
from hub.channels.email.parse import parse_email
from hub.history.db import Database, open_database, redact

RESULTS = Path(__file__).resolve().parent / "results" / "email_import.json"
MAILBOX = "bench"
#: an API request during the import must be answered within this (p99), or the import blocks other work
TARGET_PROBE_P99_MS = 500.0
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def progress(line: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.email_import",
        description="Import a Dovecot mailbox of varied emails into a real `hub serve` over IMAP and report emails "
        "per second, beside a bare aioimaplib FETCH of the same mailbox and parsing alone, measured in the same run; "
        "and how quickly the hub answers an API request meanwhile.",
    )
    p.add_argument("--quick", action="store_true", help="500 emails from 100 senders instead of 5,000 from 400")
    p.add_argument("--emails", type=int, metavar="N", help="emails in the mailbox (default: 5,000; --quick: 500)")
    p.add_argument("--senders", type=int, metavar="N", help="distinct senders (default: 400; --quick: 100)")
    p.add_argument("--batch", type=int, default=50, metavar="N",
                   help="channels.email.fetch_batch for the hub and the bare FETCH (default: 50)")
    p.add_argument("--parse-processes", type=int, default=1, metavar="N",
                   help="channels.email.parse_processes for the hub: worker processes that parse big batches; 0 parses "
                        "in a thread of the hub process, as before issue 16 section 6 (default: 1)")
    p.add_argument("--db", default="sqlite", metavar="sqlite|URL",
                   help="sqlite (a fresh file in a temporary folder) or a postgresql:// server URL (a fresh database "
                        "is created there and dropped afterwards)")
    p.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default: {RESULTS.relative_to(ROOT)})")
    p.add_argument("--profile", action="store_true",
                   help="sample the hub with py-spy during the import and print where its time goes (needs py-spy; "
                        "the import figure is then not comparable)")
    p.add_argument("--profile-gil", action="store_true",
                   help="with --profile: sample only the thread holding the interpreter lock (py-spy --gil), so "
                        "each thread's figures are the Python work it did, without its waits for the lock")
    p.add_argument("--timeout", type=float, default=900.0, metavar="SECONDS", help="give up after (default: 900)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (maildir, database, logs)")
    return p


@dataclass
class Rate:
    emails: int
    seconds: float
    megabytes: float
    #: CPU time the work took (user + system, every thread of its process), when measured: on a shared machine the
    #: wall-clock rate moves with the other load, the CPU time per email much less
    cpu_seconds: float | None = None

    @property
    def per_second(self) -> float:
        return self.emails / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms(self) -> float | None:
        return self.cpu_seconds / self.emails * 1000 if self.cpu_seconds is not None and self.emails else None


def process_cpu(pid: int, children: bool = True) -> float:
    """CPU seconds (user + system) process PID, and unless told not to the processes it started (the hub's parsing
    worker), have used so far (Linux /proc). A process that has exited since is not counted: the hub's worker lives
    as long as the hub."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        kids = [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                for c in (task / "children").read_text().split()] if children else []
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") + sum(map(process_cpu, kids))


@dataclass
class Probe:
    """Latencies of one API request, in ms."""

    samples: list[float] = field(default_factory=list)
    failures: int = 0

    def summary(self) -> dict[str, float]:
        s = sorted(self.samples)
        return {"n": len(s), "p50_ms": percentile(s, 50), "p99_ms": percentile(s, 99), "max_ms": max(s, default=0.0),
                "failures": self.failures}


@dataclass
class Result:
    meta: dict[str, Any]
    fetch: Rate
    parse: Rate
    hub: Rate
    during: Probe
    idle: Probe
    stored: int
    #: of those stored, auto-replies (on the timeline, marked automatic: they open no work)
    automatic: int
    expected_automatic: int
    flagged: int
    progress_lines: list[str]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            **{k: {**asdict(v), "per_second": v.per_second} for k, v in
               (("bare_fetch", self.fetch), ("parse_only", self.parse), ("hub", self.hub))},
            "hub_over_fetch": _ratio(self.hub.per_second, self.fetch.per_second),
            "hub_over_parse": _ratio(self.hub.per_second, self.parse.per_second),
            "hub_over_parse_cpu": _ratio(self.parse.cpu_seconds or 0.0, self.hub.cpu_seconds or 0.0),
            "probe_during_import": self.during.summary(),
            "probe_idle": self.idle.summary(),
            "stored": self.stored,
            "automatic": self.automatic,
            "flagged": self.flagged,
            "progress_lines": self.progress_lines,
            "problems": self.problems,
            "ok": self.ok,
        }


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


# -- the baselines ----------------------------------------------------------------------------------------------


async def bare_fetch(host: str, port: int, user: str, password: str, batch: int) -> tuple[Rate, list[bytes]]:
    """Every email of INBOX with aioimaplib alone: UID SEARCH, then UID FETCH BODY.PEEK[] in batches, as the hub does.
    Timed from the start of the search (after log-in and SELECT, which the hub does once too)."""
    client = aioimaplib.IMAP4(host=host, port=port, timeout=60)
    await client.wait_hello_from_server()
    await client.login(user, password)
    await client.select("INBOX")
    started = time.perf_counter()
    resp = await client.uid_search("ALL")
    uids = sorted(int(u) for ln in resp.lines[:-1] if isinstance(ln, bytes) for u in ln.split() if u.isdigit())
    emails: list[bytes] = []
    for i in range(0, len(uids), batch):
        chunk = uids[i : i + batch]
        resp = await client.uid("fetch", ",".join(map(str, chunk)), "(UID BODY.PEEK[])")
        emails += [raw for _uid, raw in parse_fetch(resp.lines)]
    seconds = time.perf_counter() - started
    with contextlib.suppress(Exception):
        await client.logout()
    return Rate(len(emails), seconds, sum(map(len, emails)) / 1e6), emails


def parse_only(emails: list[bytes]) -> Rate:
    started, cpu = time.perf_counter(), time.process_time()
    for raw in emails:
        parse_email(raw)
    return Rate(len(emails), time.perf_counter() - started, sum(map(len, emails)) / 1e6, time.process_time() - cpu)


# -- the hub -----------------------------------------------------------------------------------------------------


async def probe(url: str, token: str, until: asyncio.Event, out: Probe, every: float = 0.1) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        while not until.is_set():
            started = time.perf_counter()
            try:
                async with http.get(f"{url}/api/v1/conversations?limit=20",
                                    timeout=aiohttp.ClientTimeout(total=30)) as resp:
                    await resp.read()
                    if resp.status != 200:
                        out.failures += 1
                        continue
            except (aiohttp.ClientError, TimeoutError):
                out.failures += 1
                continue
            out.samples.append((time.perf_counter() - started) * 1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), every)


async def unrolled(db: Database) -> int:
    """Conversation events the reports roller has not folded yet."""
    row = await db.read(lambda tx: tx.one("SELECT COUNT(*) AS n FROM conversation_events WHERE rolled = 0"))
    return int(row["n"]) if row is not None else 0


async def counts(db: Database) -> tuple[int, int]:
    """(emails on timelines, emails flagged) so far."""

    def load(tx: Any) -> tuple[int, int]:
        m = tx.one("SELECT COUNT(*) AS n FROM messages WHERE channel = 'email' AND direction = 'in'")
        f = tx.one("SELECT COUNT(*) AS n FROM journal WHERE channel = 'email' AND status = 'rejected'")
        return int(m["n"]), int(f["n"])

    result: tuple[int, int] = await db.read(load)
    return result


async def automatic_count(db: Database) -> int:
    """Emails on timelines marked automatic (auto-replies)."""
    rows = await db.read(lambda tx: tx.all("SELECT meta FROM messages WHERE channel = 'email' AND direction = 'in'"))
    return sum(1 for r in rows if json.loads(r["meta"] or "{}").get("automatic"))


def _log_time(line: str) -> float | None:
    m = _LOG_TIME.match(line)
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() if m else None


def _import_lines(log: Path) -> list[str]:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    return [ln for ln in text.splitlines() if f"mailbox {MAILBOX}: import" in ln]


def hub_with_mailbox(db_url: str, workdir: Path, imap_port: int, user: str, password: str,
                     batch: int, parse_processes: int) -> contextlib.AbstractContextManager[Server]:
    port = free_port()
    mailbox = {"name": MAILBOX, "host": "127.0.0.1", "port": imap_port, "security": "none", "username": user,
               "password": password}
    env = dict(
        hub_env(db_url), HUB_SERVER__LOG_LEVEL="info", HUB_CHANNELS__EMAIL__ENABLED="true",
        HUB_CHANNELS__EMAIL__ADDRESS="support@bench.test", HUB_CHANNELS__EMAIL__MAILBOXES=json.dumps([mailbox]),
        HUB_CHANNELS__EMAIL__FETCH_BATCH=str(batch), HUB_CHANNELS__EMAIL__PARSE_PROCESSES=str(parse_processes),
    )
    cmd = hub_command("serve", "--host", "127.0.0.1", "--port", str(port))
    return _running("hub", cmd, env, workdir, port, "/readyz")


async def run(args: argparse.Namespace) -> Result:
    from tests.channels.email.dovecot import Dovecot

    n = args.emails or (500 if args.quick else 5000)
    sender_count = args.senders or (100 if args.quick else 400)
    meta: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "emails": n, "senders": sender_count,
        "fetch_batch": args.batch, "parse_processes": args.parse_processes, "cpus": os.cpu_count(),
        "load_average_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    with contextlib.ExitStack() as stack:
        if args.keep:
            workdir = Path(tempfile.mkdtemp(prefix="hub-bench-email-"))
            progress(f"keeping {workdir}")
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hub-bench-email-")))
        (workdir / "imap").mkdir()
        os.chmod(workdir, 0o755)
        server = Dovecot(workdir / "imap", ["bench"])
        progress(f"generating {n:,} emails from {sender_count} senders")
        emails = generate(n, sender_count)
        expected_automatic = sum(b"Auto-Submitted: auto-replied" in e for e in emails)
        size = write_maildir(server.maildir("bench"), emails,
                             *((server.uid, server.gid) if os.geteuid() == 0 else (None, None)))
        meta["mailbox_megabytes"] = round(size / 1e6, 1)
        progress(f"maildir seeded: {size / 1e6:.1f} MB; starting dovecot on port {server.port}")
        server.start()
        stack.callback(server.stop)

        # Dovecot indexes a new maildir on first SELECT: a warm-up FETCH pays that, so no contender does.
        progress("warm-up: a first FETCH of the whole mailbox (dovecot builds its index)")
        await bare_fetch(server.host, server.port, "bench", server.password, args.batch)
        progress("baseline: bare aioimaplib UID FETCH of every email")
        fetched, raws = await bare_fetch(server.host, server.port, "bench", server.password, args.batch)
        progress(f"baseline: {fetched.per_second:,.0f} emails/s fetched ({fetched.emails:,} in {fetched.seconds:.2f}s)")
        parsed = parse_only(raws)
        progress(f"baseline: {parsed.per_second:,.0f} emails/s parsed in this process")

        url = stack.enter_context(fresh_database(args.db, workdir))
        meta["database"] = redact(url).split("://")[0]
        token = await asyncio.to_thread(create_token, url)
        db = open_database(url)
        try:
            done = asyncio.Event()
            during, idle = Probe(), Probe()
            progress("starting `hub serve` with the mailbox configured; the import starts with it")
            with hub_with_mailbox(url, workdir, server.port, "bench", server.password, args.batch,
                                  args.parse_processes) as hub:
                # From ready (the import has just begun) to done; the hub's start-up is left out.
                cpu_ready, own_ready = process_cpu(hub.proc.pid), process_cpu(hub.proc.pid, children=False)
                prober = asyncio.create_task(probe(hub.url, token, done, during))
                deadline = time.monotonic() + args.timeout
                prof_raw = workdir / "profile-email.txt"
                sampler = (sampling(hub.proc.pid, max(5.0, n / 150), prof_raw, args.profile_gil) if args.profile
                           else contextlib.nullcontext())
                last_report = 0.0
                with sampler:
                    while True:
                        stored, flagged = await counts(db)
                        if stored + flagged >= n:
                            finished = time.time()
                            hub_cpu = process_cpu(hub.proc.pid) - cpu_ready
                            own_cpu = process_cpu(hub.proc.pid, children=False) - own_ready
                            break
                        if time.monotonic() > deadline:
                            done.set()
                            raise RuntimeError(f"import incomplete after {args.timeout:.0f}s: {stored + flagged:,}/"
                                               f"{n:,}\n{hub.log_tail()}")
                        if time.monotonic() - last_report > 5:
                            progress(f"hub: {stored + flagged:,}/{n:,} emails imported")
                            last_report = time.monotonic()
                        await asyncio.sleep(0.05)
                done.set()
                await prober
                # The reports roller folds what was imported behind the import, taking the share of the process it
                # gets while behind: the process's CPU until it has caught up is what an email costs in all (a
                # cheaper roller folds more during the import at the same share, which the CPU to done hides).
                behind = left = await unrolled(db)
                while left and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                    left = await unrolled(db)
                rolled_cpu = process_cpu(hub.proc.pid, children=False) - own_ready
                # The same request on the idle hub: what "quick" means on this machine right now.
                idle_done = asyncio.Event()
                idle_task = asyncio.create_task(probe(hub.url, token, idle_done, idle, every=0.02))
                await asyncio.sleep(2.0)
                idle_done.set()
                await idle_task
                lines = _import_lines(hub.log)
                log_tail = hub.log_tail()
            meta["load_average_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
            first = next((t for t in map(_log_time, lines) if t is not None), None)
            problems: list[str] = []
            if first is None:
                problems.append("the hub's log shows no import progress")
                first = finished
            hub_rate = Rate(n, finished - first, size / 1e6, hub_cpu)
            # The process that is the bottleneck when cores are free: its CPU per email bounds the import's rate.
            meta["hub_process_cpu_ms"] = own_cpu / n * 1000
            meta["parse_worker_cpu_ms"] = (hub_cpu - own_cpu) / n * 1000
            meta["unrolled_at_done"] = behind
            meta["hub_process_rolled_cpu_ms"] = rolled_cpu / n * 1000
            stored, flagged = await counts(db)
            automatic = await automatic_count(db)
            # Every email reaches a timeline; the auto-replies among them are marked automatic.
            if (stored, automatic, flagged) != (n, expected_automatic, 0):
                problems.append(f"stored {stored} ({automatic} automatic) and flagged {flagged}; expected {n} "
                                f"({expected_automatic} automatic) and 0")
            dup = await db.read(lambda tx: tx.one(
                "SELECT COUNT(*) - COUNT(DISTINCT external_id) AS d FROM messages WHERE channel = 'email'"))
            if dup is not None and int(dup["d"]):
                problems.append(f"{int(dup['d'])} duplicate messages")
            if len(lines) < 2:
                problems.append(f"expected progress lines in the hub's log, found {len(lines)}:\n{log_tail}")
            p99 = during.summary()["p99_ms"]
            if p99 > TARGET_PROBE_P99_MS or during.failures or not during.samples:
                problems.append(f"API requests during the import: p99 {p99:.0f} ms (target < "
                                f"{TARGET_PROBE_P99_MS:g}), {during.failures} failed, {len(during.samples)} answered")
            if args.profile:
                meta["profile"] = render("hub serve during the email import", summarize(prof_raw.read_text()),
                                         hub_rate.seconds, n, args.profile_gil)
        finally:
            await db.close()
    return Result(meta, fetched, parsed, hub_rate, during, idle, stored, automatic, expected_automatic, flagged, lines,
                  problems)


def table(r: Result) -> str:
    m = r.meta
    lines = [
        "",
        f"Email import, {m['started']}: {m['emails']:,} emails ({m['mailbox_megabytes']} MB) from {m['senders']} "
        f"senders, Dovecot maildir over IMAP (fetch batch {m['fetch_batch']}), parse processes "
        f"{m['parse_processes']}, database {m['database']}, "
        f"{m['cpus']} CPUs, load average {m['load_average_start']} at start, {m['load_average_end']} at end",
        f"  {'':<46}{'emails/s':>10}{'seconds':>10}{'MB/s':>8}{'x fetch':>9}{'x parse':>9}{'CPU ms/email':>14}",
    ]

    def row(name: str, x: Rate) -> str:
        cpu = f"{x.cpu_ms:>14.3f}" if x.cpu_ms is not None else f"{'':>14}"
        return (f"  {name:<46}{x.per_second:>10,.0f}{x.seconds:>10.2f}{x.megabytes / max(x.seconds, 1e-9):>8.1f}"
                f"{_ratio(x.per_second, r.fetch.per_second):>9.3f}{_ratio(x.per_second, r.parse.per_second):>9.3f}"
                f"{cpu}")

    lines += [
        row("bare aioimaplib UID FETCH (baseline)", r.fetch),
        row("parse_email alone, one thread (baseline)", r.parse),
        row("hub serve: IMAP -> parsed -> on timelines", r.hub),
        f"  stored {r.stored:,} ({r.automatic:,} auto-replies, {r.expected_automatic:,} expected), flagged "
        f"{r.flagged:,}",
        f"  CPU per email, parse alone / hub (all its threads and its parsing worker, ready to done): "
        f"{_ratio(r.parse.cpu_seconds or 0.0, r.hub.cpu_seconds or 0.0):.3f}",
        f"  CPU per email in the hub process {m.get('hub_process_cpu_ms', 0.0):.3f} ms, in its parsing worker "
        f"{m.get('parse_worker_cpu_ms', 0.0):.3f} ms: on free cores at most "
        f"{_ratio(r.parse.cpu_ms or 0.0, max(m.get('hub_process_cpu_ms', 0.0), m.get('parse_worker_cpu_ms', 0.0))):.3f}"
        f" x the parse-only rate",
        f"  CPU per email in the hub process until the reports roller has folded it too "
        f"{m.get('hub_process_rolled_cpu_ms', 0.0):.3f} ms ({m.get('unrolled_at_done', 0):,} events left to fold at "
        f"done)",
        "",
        "API request GET /api/v1/conversations?limit=20 (ms)",
    ]
    for name, p in (("during the import", r.during), ("idle hub (baseline)", r.idle)):
        s = p.summary()
        lines.append(f"  {name:<24}n={s['n']:<5.0f} p50 {s['p50_ms']:7.1f}  p99 {s['p99_ms']:7.1f}  "
                     f"max {s['max_ms']:7.1f}  failures {s['failures']:.0f}")
    idle_p50 = r.idle.summary()["p50_ms"]
    lines.append(f"  p50 during / idle: {_ratio(r.during.summary()['p50_ms'], idle_p50):.1f}x; "
                 f"target p99 during < {TARGET_PROBE_P99_MS:g} ms")
    lines += ["", "Progress in the hub's log:"]
    shown = r.progress_lines if len(r.progress_lines) <= 6 else [*r.progress_lines[:3], "...",
                                                                 *r.progress_lines[-2:]]
    lines += [f"  {ln}" for ln in shown]
    lines += ["", f"check: {'ok' if r.ok else 'FAILED: ' + '; '.join(r.problems)}"]
    if "profile" in m:
        lines += ["", m["profile"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from tests.channels.email.dovecot import DOVECOT

    if not os.path.exists(DOVECOT):
        print("bench.email_import: dovecot is not installed (Debian: apt-get install dovecot-imapd)", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(run(args))
    except (RuntimeError, ValueError) as e:
        print(f"bench.email_import: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(table(result), end="", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    progress(f"results written to {args.output}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
