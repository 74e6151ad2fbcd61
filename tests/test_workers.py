"""`hub serve --workers 2` as a real process on PostgreSQL and Redis: both workers answer on the one port, a message
lands once whichever worker takes it, a console socket on one worker sees what was caused through the other, a worker
SIGKILLed is started again while the port keeps answering, SIGTERM stops them all; and what cannot be shared is
refused before anything starts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.api.auth import create_token
from hub.config import Settings
from hub.history.db import open_database
from hub.history.schema import migrate
from hub.workers import refusal, worker_count
from tests.test_crash import START_TIMEOUT, HubProcess
from tests.waiting import eventually


def children(pid: int) -> set[int]:
    """The live processes whose parent is PID (a reaped worker is gone from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def socket_owner(server_port: int, client_port: int, candidates: set[int]) -> int | None:
    """Which of CANDIDATES holds the server end of the TCP connection 127.0.0.1:CLIENT_PORT -> SERVER_PORT:
    the inode /proc/net/tcp gives that connection, found among each process's open files."""
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    inode = next((line.split()[9] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                  if line.split()[1:3] == [local, remote]), None)
    if inode is None:
        return None
    for pid in candidates:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


async def through(port: int, workers: set[int], pid: int, request: bytes) -> tuple[int, bytes]:
    """Send REQUEST (raw HTTP/1.1, Connection: close) on a connection that worker PID accepted (fresh connections
    until one is its): the status and the body."""
    for _ in range(100):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            client_port = writer.get_extra_info("sockname")[1]

            async def accepted(client_port: int = client_port) -> int | None:
                return socket_owner(port, client_port, workers)

            if await eventually(accepted, within=10, what="the connection accepted") != pid:
                continue
            writer.write(request)
            head, _, answer = (await reader.read()).partition(b"\r\n\r\n")
            return int(head.split()[1]), answer
        finally:
            writer.close()
    raise AssertionError(f"no connection to worker {pid} in 100 tries")


def sample(text: str, name: str, labels: dict[str, str]) -> float:
    """The value of NAME with LABELS in a Prometheus text exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


async def answering(session: aiohttp.ClientSession, url: str, want: int, tries: int = 300) -> set[int]:
    """The PIDs that answer /healthz on fresh connections (the kernel spreads them over the workers' listeners),
    until WANT distinct ones have answered; every one of those requests must succeed."""
    seen: set[int] = set()
    for _ in range(tries):
        async with session.get(url + "/healthz", headers={"Connection": "close"}) as resp:
            assert resp.status == 200
            seen.add(int((await resp.json())["pid"]))
        if len(seen) >= want:
            break
    return seen


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        yield s


ROOT = Path(__file__).resolve().parent.parent


def clean_env() -> dict[str, str]:
    """This environment without HUB_ settings, importing this checkout's hub (not another one installed)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HUB_")} | {"PYTHONPATH": str(ROOT)}


def workers_env(pg_url: str, redis_url: str, prefix: str) -> dict[str, str]:
    return clean_env() | {
        "HUB_DATABASE__URL": pg_url,
        "HUB_ROUTING__BACKEND": "redis", "HUB_ROUTING__REDIS_URL": redis_url, "HUB_ROUTING__KEY_PREFIX": prefix,
        "HUB_EVENTS__BACKEND": "redis", "HUB_EVENTS__REDIS_URL": redis_url, "HUB_EVENTS__CHANNEL": prefix + "events",
        "HUB_SERVER__SHUTDOWN_TIMEOUT_SECONDS": "3",
    }


@pytest.mark.slow
async def test_two_workers_one_port(
    pg_url: str, redis_url: str, prefix: str, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    db = open_database(pg_url)
    await migrate(db)  # here, so the token is made while the workers start (they find the schema done)
    hub = HubProcess(workers_env(pg_url, redis_url, prefix), tmp_path, serve_args=("--workers", "2"))
    hub.start()
    assert hub.proc is not None
    try:
        token = await create_token(db, "admin", None, "workers")
        await hub.wait_healthy(session)
        auth = {"Authorization": f"Bearer {token}"}
        supervisor = hub.proc.pid

        async def workers_now(without: int = 0) -> set[int] | None:
            found = children(supervisor)
            return found if len(found) == 2 and without not in found else None

        workers = await eventually(workers_now, what="two workers")

        # Both processes exist before both serve (a worker imports for seconds on a loaded machine): until then the
        # kernel sends every connection to the one listening.
        async def both_serving() -> bool:
            return await answering(session, hub.url, 2, tries=40) == workers

        await eventually(both_serving, within=60, what=f"both workers answering: {hub.tail()}")

        # A console socket held by one worker; the message goes in through the other.
        ws = await session.ws_connect(hub.url + "/api/v1/events", headers=auth)
        assert (await ws.receive_json(timeout=10))["type"] == "hello"
        watcher = socket_owner(hub.port, ws.get_extra_info("sockname")[1], workers)
        assert watcher in workers
        other = (workers - {watcher}).pop()

        async def post_through(pid: int) -> tuple[int, dict[str, Any]]:
            body = json.dumps({"identity": "phone:+14155550123", "text": "hello from one worker",
                               "external_id": "workers-1"}).encode()
            status, answer = await through(hub.port, workers, pid, (
                f"POST /api/v1/inbound HTTP/1.1\r\nHost: 127.0.0.1:{hub.port}\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body)
            return status, json.loads(answer)

        status, sent = await post_through(other)
        assert status == 201, sent
        while True:  # the event caused by the other worker reaches the socket this one holds
            event = await ws.receive_json(timeout=15)
            if event["type"] == "message.created" and event["data"]["message"]["id"] == sent["message"]["id"]:
                break
        await ws.close()
        status, again = await post_through(watcher)  # the provider's retry, through the other worker: stored once
        assert (status, again["message"]["id"], again["duplicate"]) == (200, sent["message"]["id"], True)
        stored = await db.read(lambda tx: tx.one(
            "SELECT (SELECT COUNT(*) FROM messages WHERE external_id = 'workers-1') AS messages, "
            "(SELECT COUNT(*) FROM journal WHERE dedupe_key LIKE '%workers-1%') AS journaled"))
        assert stored is not None and (int(stored["messages"]), int(stored["journaled"])) == (1, 1)

        # /metrics on either worker answers for both: HEAD /healthz (a route nothing else here calls with HEAD)
        # sent three times through each worker is counted six times by a scrape of either.
        head = f"HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1:{hub.port}\r\nConnection: close\r\n\r\n".encode()
        scrape = f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{hub.port}\r\nConnection: close\r\n\r\n".encode()
        heads = {"route": "/healthz", "method": "HEAD", "status": "200"}
        for pid in sorted(workers) * 3:
            assert (await through(hub.port, workers, pid, head))[0] == 200
        for pid in sorted(workers):
            status, text = await through(hub.port, workers, pid, scrape)
            assert status == 200
            assert sample(text.decode(), "hub_http_requests_total", heads) == 6, (pid, text.decode())

        # SIGKILL a worker: the port keeps answering (the survivor's listener), and the supervisor starts another.
        os.kill(watcher, signal.SIGKILL)

        async def reaped() -> bool:
            return watcher not in children(supervisor)

        await eventually(reaped, what="the killed worker reaped")
        assert await answering(session, hub.url, 2, tries=20) <= workers - {watcher}
        restarted = await eventually(lambda: workers_now(without=watcher), within=60,
                                     what="a worker started in place of the killed one")

        async def both_answer() -> bool:
            return await answering(session, hub.url, 2, tries=40) == restarted

        await eventually(both_answer, within=60, what=f"both workers answering: {hub.tail()}")
        assert f"(pid {watcher}) exited with code -9; starting it again" in hub.tail(200)
        for pid in sorted(restarted):  # the killed worker's counts stay in the sum: a counter never goes back
            status, text = await through(hub.port, restarted, pid, scrape)
            assert status == 200 and sample(text.decode(), "hub_http_requests_total", heads) == 6, text.decode()

        # SIGTERM the supervisor: every worker drains and stops, and so does it, with 0.
        hub.proc.send_signal(signal.SIGTERM)
        assert await hub.wait_exit() == 0, hub.tail()
        assert not any(alive(pid) for pid in restarted)
        log = hub.tail(400)
        assert "all workers stopped" in log and "Traceback" not in log, log
        metrics_dir = log.split("their metrics in ", 1)[1].split(")", 1)[0]
        # the supervisor removes the run's metrics files
        assert metrics_dir and not await asyncio.to_thread(os.path.exists, metrics_dir)
    finally:
        hub.stop()
        await db.close()


@pytest.mark.slow
@pytest.mark.parametrize(("store", "routing", "missing"), [
    ("sqlite", "memory", ["database.url", "routing.backend", "events.backend"]),
    ("postgresql", "memory", ["routing.backend", "events.backend"]),
])
def test_workers_refused_without_shared_state(
    store: str, routing: str, missing: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}" if store == "sqlite" else str(request.getfixturevalue("pg_url"))
    env = clean_env() | {"HUB_DATABASE__URL": url, "HUB_ROUTING__BACKEND": routing}
    done = subprocess.run([sys.executable, "-m", "hub.cli", "serve", "--port", "0", "--workers", "2"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    for key in missing:
        assert key in done.stderr, done.stderr
    assert ("database.url" in done.stderr) == (store == "sqlite")
    assert "serving" not in done.stderr and not (tmp_path / "hub.db").exists()  # refused before anything started


@pytest.mark.slow
async def test_workers_that_keep_failing_at_start_stop_the_supervisor(
    pg_url: str, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    missing = pg_url.split("?")[0].rsplit("/", 1)[0] + f"/no_such_db_{uuid.uuid4().hex[:8]}"
    hub = HubProcess(workers_env(missing, redis_url, prefix), tmp_path, serve_args=("--workers", "2"))
    hub.start()
    try:
        assert hub.proc is not None
        # Three starts one after the other, each paying the hub's imports: a minute and more on a loaded machine.
        code = await asyncio.to_thread(hub.proc.wait, 3 * START_TIMEOUT)
        assert code == 1, hub.tail()
        log = hub.tail(400)
        assert "times in a row before serving" in log and "giving up" in log, log
    finally:
        hub.stop()


def test_what_cannot_be_shared_is_named(make_settings: Callable[..., Settings]) -> None:
    shared = {"HUB_ROUTING__BACKEND": "redis", "HUB_EVENTS__BACKEND": "redis"}
    pg = "postgresql://hub@127.0.0.1/hub"
    assert refusal(make_settings(pg, **shared), 2) is None
    assert refusal(make_settings(None), 1) is None  # one process: SQLite and memory are the default
    why = refusal(make_settings(pg, **shared, HUB_METRICS__LISTEN="127.0.0.1:9100",
                                HUB_CHANNELS__TELEGRAM__ENABLED="true", HUB_CHANNELS__TELEGRAM__MODE="polling",
                                HUB_CHANNELS__TELEGRAM__BOT_TOKEN="1:" + "a" * 30), 3)
    assert why is not None and "metrics.listen" in why and "polling" in why and "database.url" not in why
    assert worker_count(4) == 4 and worker_count("auto") == worker_count(0) >= 1
