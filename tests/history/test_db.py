"""The database layer against real servers: dialect translation, transactions, and surviving a lost connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient

from hub.history.db import Database, open_database, redact


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = open_database(db_url, pool_size=2)
    yield database
    await database.close()


async def test_write_rolls_back_on_error(db: Database) -> None:
    await db.write(lambda tx: tx.exec("CREATE TABLE t (v INTEGER)"))

    def boom(tx: Any) -> None:
        tx.exec("INSERT INTO t (v) VALUES (?)", (1,))
        raise RuntimeError("halfway")

    with pytest.raises(RuntimeError):
        await db.write(boom)
    assert await db.read(lambda tx: tx.all("SELECT v FROM t")) == []
    await db.write(lambda tx: tx.exec("INSERT INTO t (v) VALUES (?)", (2,)))
    assert [r["v"] for r in await db.read(lambda tx: tx.all("SELECT v FROM t"))] == [2]


async def test_percent_signs_are_data_not_placeholders(db: Database) -> None:
    await db.write(lambda tx: tx.exec("CREATE TABLE t (v TEXT)"))
    await db.write(lambda tx: tx.exec("INSERT INTO t (v) VALUES (?)", ("100% sure?",)))
    rows = await db.read(lambda tx: tx.all("SELECT v FROM t WHERE v LIKE ?", ("%sure%",)))
    assert [r["v"] for r in rows] == ["100% sure?"]


async def test_ping(db: Database) -> None:
    assert await db.ping()


def test_redact_hides_passwords() -> None:
    assert redact("postgresql://hub:s3cret@db:5432/hub") == "postgresql://hub:***@db:5432/hub"
    assert redact("postgresql://hub@db/hub") == "postgresql://hub@db/hub"
    assert redact("sqlite:///hub-data/hub.db") == "sqlite:///hub-data/hub.db"


def _kill_other_connections(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


async def test_lost_postgres_connections_give_503_then_recover(
    aiohttp_client: Any, make_settings: Any, pg_url: str
) -> None:
    from hub.api.auth import create_token
    from hub.app import build_app
    from hub.keys import DB

    client: TestClient[Any, Any] = await aiohttp_client(build_app(make_settings(
        # Only this test's writes use the pool: background passes would meet the dropped connections first.
        pg_url, HUB_DATABASE__POOL_SIZE="2", HUB_AUTOMATION__ENABLED="false", HUB_WEBHOOKS__ENABLED="false",
        HUB_AUTOMATION__POLL_INTERVAL_SECONDS="3600", HUB_WEBHOOKS__POLL_INTERVAL_SECONDS="3600",
        HUB_REPORTS__ROLL_INTERVAL_SECONDS="3600", HUB_ROUTING__RECONCILE_SECONDS="3600")))
    headers = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    body = {"identity": "phone:+14155550100", "text": "before"}
    assert (await client.post("/api/v1/inbound", json=body, headers=headers)).status == 201
    assert _kill_other_connections(pg_url) >= 1
    statuses = []
    for i in range(6):
        resp = await client.post("/api/v1/inbound", json={**body, "text": f"after {i}", "external_id": f"x{i}"},
                                 headers=headers)
        statuses.append(resp.status)
        if resp.status == 503:
            data = await resp.json()
            assert "retry" in data["error"]["message"] and resp.headers["Retry-After"] == "5"
    assert 500 not in statuses
    assert 503 in statuses, "a write on a dropped connection must say retry (not silently succeed or 500)"
    assert statuses[-1] == 201, statuses
    ready = await client.get("/readyz")
    assert ready.status == 200
