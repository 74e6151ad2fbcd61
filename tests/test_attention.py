"""An operator's action on a flagged event against a real `hub serve` killed (SIGKILL) at the fail point between
what the action writes (the event stored on a timeline through ingest) and the record of who did it: one
transaction, so the kill leaves neither. The event is still open after the restart, and acting on it again stores
it once, with one record of the action."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from hub.history.db import Tx, open_database
from hub.journal import write as journal_write
from hub.model import Identity, Inbound, format_time, utcnow
from tests.test_crash import HubProcess, query

pytestmark = pytest.mark.slow

CORPUS = Path(__file__).parent / "channels" / "email" / "emails"


def _env(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return env | {"HUB_DATABASE__URL": db_url, "HUB_SERVER__SHUTDOWN_TIMEOUT_SECONDS": "5"} | extra


async def _seed(db_url: str) -> tuple[int, int]:
    """A rejected email with no usable sender (its raw kept), and an inbound event whose processing failed."""
    db = open_database(db_url)
    now = format_time(utcnow())
    eml = (CORPUS / "no_sender.eml").read_bytes()
    failed = Inbound(channel="sms", identity=Identity("phone", "+14155550123"), text="where is my refund?",
                     external_id="SM-crash-1")

    def write(tx: Tx) -> tuple[int, int]:
        rejected = journal_write(tx, "email", "no-sender@crash", json.dumps(
            {"inbound": None, "raw": {"eml_base64": base64.b64encode(eml).decode()}}), now)
        tx.exec("UPDATE journal SET status = 'rejected', reason = 'no_sender', error = 'no usable sender' "
                "WHERE id = ?", (rejected.id,))
        broken = journal_write(tx, "sms", "SM-crash-1", json.dumps(
            {"inbound": failed.to_json(), "raw": None}), now)
        tx.exec("UPDATE journal SET status = 'failed', error = 'RuntimeError: the database was away' "
                "WHERE id = ?", (broken.id,))
        return rejected.id, broken.id

    try:
        ids: tuple[int, int] = await db.write(write)
    finally:
        await db.close()
    return ids


@pytest.mark.parametrize("action", ["attach", "replay"])
async def test_a_kill_between_an_action_and_its_record_leaves_neither(tmp_path: Path, action: str) -> None:
    db_url = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = HubProcess(_env(db_url, HUB_FAIL_POINTS="attention.before_record:kill"), tmp_path)
    token = hub.cli("tokens", "create", "--role", "admin", "--label", "crash").strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    rejected, failed = await _seed(db_url)
    jid, body = ((rejected, {"identity": "email:olga@example.com", "name": "Olga", "note": "she phoned"})
                 if action == "attach" else (failed, {"note": "the database is back"}))
    url = f"{hub.url}/api/v1/attention/{jid}/{action}"
    async with aiohttp.ClientSession() as session:
        hub.start()
        try:
            await hub.wait_healthy(session)
            with contextlib.suppress(aiohttp.ClientError):  # killed mid-request: never answered
                async with session.post(url, json=body, headers=headers) as resp:
                    raise AssertionError(f"answered {resp.status} through a kill: {await resp.text()}")
            assert await hub.wait_exit() == -9
            # Neither the message nor the record: the event is still open, as it was.
            assert query(db_url, "SELECT COUNT(*) FROM messages") == [(0,)]
            assert query(db_url, "SELECT COUNT(*) FROM journal_actions") == [(0,)]
            assert query(db_url, f"SELECT status FROM journal WHERE id = {jid}") == [
                ("rejected" if action == "attach" else "failed",)]

            del hub.env["HUB_FAIL_POINTS"]
            hub.start()
            await hub.wait_healthy(session)
            async with session.get(f"{hub.url}/api/v1/attention", headers=headers) as resp:
                assert jid in [i["id"] for i in (await resp.json())["items"]]  # still waiting for an operator
            async with session.post(url, json=body, headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                done = await resp.json()
            assert done["status"] == "done" and done["message_id"]
            # And again: refused (it is done), nothing stored twice.
            async with session.post(url, json=body, headers=headers) as resp:
                assert resp.status == 409, await resp.text()
            async with session.get(f"{hub.url}/api/v1/attention/{jid}", headers=headers) as resp:
                shown = await resp.json()
            assert [(a["action"], a["note"], a["message_id"]) for a in shown["actions"]] == [
                (action, body["note"], done["message_id"])]
            assert query(db_url, "SELECT COUNT(*) FROM messages") == [(1,)]
            assert query(db_url, "SELECT COUNT(*) FROM journal_actions") == [(1,)]
            # Nor does the CLI's replay of it store it again.
            cli = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "hub.cli", "events", "replay", str(jid)], env=hub.env,
                cwd=tmp_path, capture_output=True, text=True, timeout=60)
            assert "not replayed" in cli.stdout, cli.stdout + cli.stderr
            assert query(db_url, "SELECT COUNT(*) FROM messages") == [(1,)]
            assert query(db_url, "SELECT COUNT(*) FROM journal_actions") == [(1,)]
        finally:
            hub.stop()
