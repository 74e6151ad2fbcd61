"""Crash safety of the inbound path against a real `hub serve` process: a provider retry never duplicates a message,
and nothing acknowledged is ever lost, whatever moment kill -9 strikes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import free_port

SENDERS = 8
MESSAGES = 600
IDENTITIES = 240
KILLS = 3
TWIN_EVERY = 7
SEED = 20240229
#: generous on purpose: the suite must pass on a loaded 2-core machine; none of these is a performance claim
START_TIMEOUT = 60.0
REQUEST_TIMEOUT = 30.0
STREAM_TIMEOUT = 240.0

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Msg:
    external_id: str
    identity: str
    text: str
    #: sent twice at once, like a provider whose timeout fired while its first try was still in flight
    twin: bool

    def body(self) -> dict[str, str]:
        return {"identity": self.identity, "text": self.text, "external_id": self.external_id}


def make_stream(rng: random.Random) -> list[Msg]:
    phones = [f"phone:+1415555{n:04d}" for n in rng.sample(range(10_000), IDENTITIES)]
    # Every identity writes at least once, so each must end up as exactly one customer.
    owners = phones + [rng.choice(phones) for _ in range(MESSAGES - IDENTITIES)]
    rng.shuffle(owners)
    return [
        Msg(f"crash-{i:05d}", who, f"message {i} from {who}", twin=i % TWIN_EVERY == 0) for i, who in enumerate(owners)
    ]


def kill_points(rng: random.Random) -> list[int]:
    """One point in each of KILLS equal slices of the middle of the stream: spread out, never two at once."""
    lo, hi = MESSAGES // 10, MESSAGES * 9 // 10
    width = (hi - lo) // KILLS
    return [lo + i * width + rng.randrange(width // 4, width * 3 // 4) for i in range(KILLS)]


def query(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    """Read the hub's database directly, behind its back: the ground truth the API answers could hide."""
    if db_url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=30)) as conn:
            return conn.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(db_url, connect_timeout=10) as conn:
        return conn.execute(sql).fetchall()


class HubProcess:
    """`hub serve` as a child process on a fixed port, so a restarted hub answers at the same address."""

    def __init__(self, env: dict[str, str], cwd: Path, serve_args: tuple[str, ...] = ()) -> None:
        self.env = env
        self.cwd = cwd
        self.serve_args = serve_args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / "hub.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "hub.cli", *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )
        assert done.returncode == 0, f"hub {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"---- start {self.starts} ----\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 *self.serve_args],
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_healthy(self, session: aiohttp.ClientSession) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while loop.time() < deadline:
            assert self.proc is not None and self.proc.poll() is None, f"hub exited at start:\n{self.tail()}"
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{self.url}/healthz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.05)
        raise AssertionError(f"hub not healthy after {START_TIMEOUT:.0f}s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no drain, no cleanup, no flush; whatever was mid-transaction is cut off."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def wait_exit(self) -> int:
        assert self.proc is not None
        return await asyncio.to_thread(self.proc.wait, START_TIMEOUT)

    def stop(self) -> None:
        """The graceful way out (SIGTERM); a hub that will not drain is killed so the test never leaks it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""


@dataclass
class Run:
    """What the client saw: every acknowledgement, every surprise, and when to pull the plug."""

    hub: HubProcess
    points: list[int]
    #: closed while the hub is down (and, after some kills, until its recovery has run) so retries wait
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    killed: asyncio.Event = field(default_factory=asyncio.Event)
    #: external_id -> (status, message id) of every 200/201 answer
    acks: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    retries: int = 0
    ack_count: int = 0

    def acknowledged(self, msg: Msg, status: int, message_id: int) -> None:
        self.acks.setdefault(msg.external_id, []).append((status, message_id))
        self.ack_count += 1
        if self.points and self.ack_count >= self.points[0]:
            # Killed right here, synchronously, while the other senders' requests are somewhere inside the hub.
            self.points.pop(0)
            self.gate.clear()
            self.hub.kill()
            self.killed.set()


async def deliver(session: aiohttp.ClientSession, run: Run, headers: dict[str, str], msg: Msg) -> int:
    """Send MSG until the hub acknowledges it, as a provider does; returns the stored message id."""
    for _attempt in range(200):
        await run.gate.wait()
        try:
            async with session.post(f"{run.hub.url}/api/v1/inbound", json=msg.body(), headers=headers) as resp:
                status, body = resp.status, await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError):
            # Refused, reset or cut off mid-answer: not acknowledged, so it must be sent again.
            run.retries += 1
            await asyncio.sleep(0.02)
            continue
        if status in (200, 201):
            message_id = int(body["message"]["id"])
            assert body["message"]["external_id"] == msg.external_id, body
            run.acknowledged(msg, status, message_id)
            return message_id
        run.unexpected.append(f"{msg.external_id}: {status} {body}")
        await asyncio.sleep(0.2)
    raise AssertionError(f"{msg.external_id} never acknowledged; surprises: {run.unexpected[-5:]}")


async def sender(session: aiohttp.ClientSession, run: Run, headers: dict[str, str], work: asyncio.Queue[Msg]) -> None:
    while not work.empty():
        msg = work.get_nowait()
        if msg.twin:
            first, second = await asyncio.gather(
                deliver(session, run, headers, msg), deliver(session, run, headers, msg)
            )
            assert first == second, f"{msg.external_id}: twin requests stored messages {first} and {second}"
        else:
            await deliver(session, run, headers, msg)


async def crash_and_restart(session: aiohttp.ClientSession, run: Run, db_url: str, pending: list[int]) -> None:
    """After each kill: restart the hub. Every other time, let its recovery alone finish the journal before any
    retry arrives (proves recover_forever); otherwise retries race the recovery for the same rows."""
    for n in range(KILLS):
        await run.killed.wait()
        run.killed.clear()
        await run.hub.wait_exit()
        rows = await asyncio.to_thread(query, db_url, "SELECT COUNT(*) FROM journal WHERE status <> 'done'")
        pending.append(int(rows[0][0]))
        run.hub.start()
        await run.hub.wait_healthy(session)
        if n % 2 == 0:
            await wait_journal_done(db_url, run.hub)
        run.gate.set()


async def wait_journal_done(db_url: str, hub: HubProcess) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    left: list[tuple[Any, ...]] = []
    while loop.time() < deadline:
        left = await asyncio.to_thread(query, db_url, "SELECT id, status, error FROM journal WHERE status <> 'done'")
        if not left:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"journal rows not processed by recovery after restart: {left[:10]}\n{hub.tail()}")


async def timeline_external_ids(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], identity: str
) -> list[str]:
    async with session.get(f"{url}/api/v1/customers", params={"identity": identity}, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        found = (await resp.json())["items"]
    assert len(found) == 1, f"{identity}: {len(found)} customers"
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "200", **({"cursor": cursor} if cursor else {})}
        async with session.get(
            f"{url}/api/v1/customers/{found[0]['id']}/timeline", params=params, headers=headers
        ) as resp:
            assert resp.status == 200, await resp.text()
            page = await resp.json()
        seen += [m["external_id"] for m in page["items"]]
        cursor = page["next"]
        if not cursor:
            return seen


async def test_kill_9_mid_stream_loses_and_duplicates_nothing(db_url: str, tmp_path: Path) -> None:
    rng = random.Random(f"{SEED}-{db_url.split(':', 1)[0]}")
    stream = make_stream(rng)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= {"HUB_DATABASE__URL": db_url, "HUB_SERVER__LOG_LEVEL": "info", "HUB_SERVER__SHUTDOWN_TIMEOUT_SECONDS": "5"}
    hub = HubProcess(env, tmp_path)
    token = hub.cli("tokens", "create", "--role", "admin", "--label", "crash test").strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    run = Run(hub, kill_points(rng))
    planned = list(run.points)
    pending_at_kill: list[int] = []
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            hub.start()
            await hub.wait_healthy(session)
            run.gate.set()
            work: asyncio.Queue[Msg] = asyncio.Queue()
            for m in stream:
                work.put_nowait(m)
            tasks = [
                asyncio.create_task(crash_and_restart(session, run, db_url, pending_at_kill)),
                *(asyncio.create_task(sender(session, run, headers, work)) for _ in range(SENDERS)),
            ]
            try:
                # The first failure (a sender's or the crash loop's) ends the run at once instead of at the timeout.
                done, late = await asyncio.wait(tasks, timeout=STREAM_TIMEOUT, return_when=asyncio.FIRST_EXCEPTION)
                for t in done:
                    t.result()
                assert not late, f"stream unfinished after {STREAM_TIMEOUT:.0f}s: {run.ack_count} acks\n{hub.tail()}"
            finally:
                for t in tasks:
                    t.cancel()
            context = (
                f"seed {SEED}, kills after {planned} acks, journal rows unfinished at each kill "
                f"{pending_at_kill}, {run.retries} retries\n{hub.tail()}"
            )
            assert hub.starts == KILLS + 1, context
            assert not run.unexpected, f"answers other than 200/201: {run.unexpected[:10]}\n{context}"

            # Every id answered once with one message id, however many times it was retried.
            ids = {ext: {mid for _status, mid in answers} for ext, answers in run.acks.items()}
            assert set(ids) == {m.external_id for m in stream}, context
            split = {ext: mids for ext, mids in ids.items() if len(mids) != 1}
            assert not split, f"one external_id, several message ids: {split}\n{context}"
            stored = {ext: mids.pop() for ext, mids in ids.items()}
            # 201 means "stored just now": more than one for an id would be a second store, even if later hidden.
            fresh = {ext: n for ext, answers in run.acks.items() if (n := [s for s, _ in answers].count(201)) > 1}
            assert not fresh, f"several 201 answers for one external_id: {fresh}\n{context}"

            # A provider retrying an acknowledged event gets the same message back, marked duplicate.
            limit = asyncio.Semaphore(SENDERS)

            async def retry(m: Msg) -> tuple[Msg, int, Any]:
                async with (
                    limit,
                    session.post(f"{hub.url}/api/v1/inbound", json=m.body(), headers=headers) as resp,
                ):
                    return m, resp.status, await resp.json()

            for m, status, body in await asyncio.gather(*(retry(m) for m in stream)):
                assert status == 200 and body["duplicate"] is True, (m, status, body)
                assert body["message"]["id"] == stored[m.external_id], (m, body)

            # Each customer's timeline, as an agent reads it, has each of their messages exactly once.
            expected: dict[str, Counter[str]] = {}
            for m in stream:
                expected.setdefault(m.identity, Counter())[m.external_id] += 1
            for identity, want in expected.items():
                got = Counter(await timeline_external_ids(session, hub.url, headers, identity))
                assert got == want, f"{identity}: timeline {sorted(got)} != sent {sorted(want)}"
    finally:
        hub.stop()

    # A failure the client never saw (a recovery sweep that threw, an event flagged as failed) still shows in the log.
    errors = [
        line for line in hub.log.read_text(errors="replace").splitlines() if " ERROR " in line or "Traceback" in line
    ]
    assert not errors, "\n".join(errors[:20])

    # The database itself, read directly after a clean stop.
    rows = query(db_url, "SELECT external_id, id, text FROM messages WHERE channel = 'api'")
    counts = Counter(r[0] for r in rows)
    assert not [e for e, n in counts.items() if n > 1], f"stored twice: {[e for e, n in counts.items() if n > 1]}"
    assert {r[0]: r[1] for r in rows} == stored
    texts = {m.external_id: m.text for m in stream}
    assert all(texts[r[0]] == r[2] for r in rows)
    journal = dict(query(db_url, "SELECT status, COUNT(*) FROM journal GROUP BY status"))
    assert journal == {"done": MESSAGES}, journal
    # Crashes mid-transaction leave no half-made customer or a second conversation behind.
    assert query(db_url, "SELECT COUNT(*) FROM customers")[0][0] == IDENTITIES
    assert query(db_url, "SELECT COUNT(*) FROM identities")[0][0] == IDENTITIES
    assert query(db_url, "SELECT COUNT(*) FROM conversations")[0][0] == IDENTITIES
    print(
        f"\n{db_url.split(':', 1)[0]}: {MESSAGES} messages, kills after {planned} acks, "
        f"journal rows unfinished at each kill {pending_at_kill}, {run.retries} client retries"
    )
