"""Shared fixtures: settings, a running hub app, and real databases (SQLite files and a real PostgreSQL server)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.config import Settings, load_settings
from hub.history.db import Database, open_database
from hub.history.schema import migrate
from tests.api.client import Api, start_api

SHARED_PG = os.environ.get("HUB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_answers(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _private_postgres() -> Iterator[str]:
    """A throw-away PostgreSQL server from the binaries on this machine (for machines without a running one)."""
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432 and no initdb/pg_ctl on PATH to start one")
    base = Path(tempfile.mkdtemp(prefix="hub-pg-"))
    port = free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(base, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data = base / "data"
    subprocess.run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"], check=True,
                   capture_output=True)
    subprocess.run(
        [*prefix, pg_ctl, "-D", str(data), "-l", str(base / "log"), "-w", "-o",
         f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
        check=True, capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A database of our own on a real PostgreSQL server: the shared one if it answers, else a private one."""
    import psycopg

    with contextlib.ExitStack() as stack:
        admin = SHARED_PG if _pg_answers(SHARED_PG) else stack.enter_context(_private_postgres())
        name = f"hub_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield admin.rsplit("/", 1)[0] + "/" + name
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh schema per test inside the run's database: isolated and cheap."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{pg_server}?options=-csearch_path%3D{schema}"
    finally:
        # A hub app can outlive this fixture (aiohttp_client set up before it is torn down after it), and its
        # background readers then meet DROP SCHEMA's locks table by table and index by index: PostgreSQL breaks
        # such a deadlock by failing one side, so the drop is tried again.
        for attempt in range(5):
            try:
                with psycopg.connect(pg_server, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")
                break
            except psycopg.errors.DeadlockDetected:
                if attempt == 4:
                    raise
                time.sleep(0.2)


def _migrate_new(url: str) -> None:
    """Creates and migrates the store at URL, on a thread of its own (a fixture may be set up inside a running loop)."""

    async def run() -> None:
        database = open_database(url)
        try:
            await migrate(database)
        finally:
            await database.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture(scope="session")
def _sqlite_migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per run, copied by each test that wants a migrated store."""
    path = tmp_path_factory.mktemp("sqlite-template") / "hub.db"
    _migrate_new(f"sqlite:///{path}")
    return path


# A test that uses these fixtures runs on a migrated store (the `db` fixture migrates it; a hub started with
# `client` or `aiohttp_client` migrates it on start-up), so its SQLite `db_url` starts as a copy of a file migrated
# once per run: migrating it again finds nothing to do. Any other test gets an empty store, as a test of the
# migrations themselves needs (tests/segments/test_migration.py). PostgreSQL keeps an empty schema per test: a
# per-test copy of a migrated database (CREATE DATABASE ... TEMPLATE) is cheap, but dropping it waits for a
# checkpoint of the whole shared server, 2-20 s under load, more than the migrations it saves (docs/testing.md).
_MIGRATED_FOR = ("db", "client", "aiohttp_client")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs against SQLite and against a real PostgreSQL: a store of the test's own."""
    if request.param == "sqlite":
        path = tmp_path / "hub.db"
        if any(name in request.fixturenames for name in _MIGRATED_FOR):
            shutil.copyfile(request.getfixturevalue("_sqlite_migrated_template"), path)
        return f"sqlite:///{path}"
    return str(request.getfixturevalue("pg_url"))


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """127.0.0.1:6379 if it answers, else a private redis-server for this session, else skip."""
    if _redis_answers("redis://127.0.0.1:6379/0"):
        yield "redis://127.0.0.1:6379/0"
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no Redis on 127.0.0.1:6379 and no redis-server on PATH to start one")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while not _redis_answers(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.skip(f"could not start redis-server on port {port}")
                time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    """The routing backend a hub test runs with: each such test runs in memory and on the Redis at 127.0.0.1:6379."""
    if request.param == "redis":
        import redis

        try:
            redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=2).ping()
        except redis.RedisError:
            pytest.skip("no Redis on 127.0.0.1:6379 (tests/routing covers a private server)")
    return str(request.param)


#: every key prefix this session handed out (see _sweep_prefixes)
_PREFIXES: set[str] = set()


@pytest.fixture(scope="session", autouse=True)
def _sweep_prefixes() -> Iterator[None]:
    """At the end of the run, deletes what is left under this session's prefixes: a hub a test started may write
    once more after the test's own clean-up (a reconciler pass's epoch key, a last offer) while it shuts down."""
    yield
    if not _PREFIXES:
        return
    import redis

    r = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=2)
    try:
        left = [k for k in r.scan_iter("hub-test:*", count=1000) if k.decode()[: len("hub-test:") + 11] in _PREFIXES]
        if left:
            r.delete(*left)
    except redis.RedisError:
        pass  # no Redis here: nothing was written
    finally:
        r.close()


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A Redis key prefix of this test's own; whatever it wrote under it is deleted afterwards (and at the end of
    the run, what a hub still shutting down wrote after that)."""
    prefix = f"hub-test:{uuid.uuid4().hex[:10]}:"
    _PREFIXES.add(prefix)
    yield prefix
    import redis.asyncio as redis

    r = redis.from_url("redis://127.0.0.1:6379/0")
    try:
        keys = [k async for k in r.scan_iter(f"{prefix}*")]
        if keys:
            await r.delete(*keys)
    except redis.RedisError:
        pass  # no Redis here: nothing was written
    await r.aclose()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A migrated store on each database of `db_url`, closed after the test."""
    database = open_database(db_url)
    await migrate(database)
    yield database
    await database.close()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(db_url: str | None = None, **env: str) -> Settings:
        environ = {"HUB_DATABASE__URL": db_url or f"sqlite:///{tmp_path / 'hub.db'}", **env}
        return load_settings(None, environ=environ)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url)


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    from hub.app import build_app

    c: TestClient[Any, Any] = await aiohttp_client(build_app(settings))
    yield c


@pytest.fixture
async def admin_headers(client: TestClient[Any, Any]) -> dict[str, str]:
    from hub.api.auth import create_token
    from hub.keys import DB

    token = await create_token(client.app[DB], "admin", label="tests")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def spec(client: TestClient[Any, Any]) -> dict[str, Any]:
    """The hub's OpenAPI document (public: no token needed), which the checked client validates answers against."""
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    return dict(await resp.json())


@pytest.fixture
async def api(client: TestClient[Any, Any], admin_headers: dict[str, str], spec: dict[str, Any]) -> Api:
    """An admin's client that checks every answer against the OpenAPI document."""
    return Api(client, admin_headers, spec)


@pytest.fixture
def admin_token_api(aiohttp_client: Any) -> Callable[[Settings], Awaitable[Api]]:
    """Builds a hub from chosen settings and returns an admin's checked client for it."""

    async def make(settings: Settings) -> Api:
        return await start_api(aiohttp_client, settings)

    return make


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")
