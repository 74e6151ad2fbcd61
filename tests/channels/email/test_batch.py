"""A fetched batch of emails is stored in one write transaction (hub.ingest `ingest_batch`), each email exactly as one
by one: a broken one rolls back to its savepoint and is flagged while the others are stored, a second copy in the
same batch is a duplicate, another email reusing a Message-ID is stored marked; and a hub killed between the batch's
commit and the IMAP \\Seen (fail point `email.before_seen`) fetches the batch again and neither loses nor doubles."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from hub.history.db import Tx
from tests.channels.email.dovecot import Dovecot, EmailWorld, email_world, running_dovecot
from tests.test_crash import HubProcess, query
from tests.waiting import eventually

T = TypeVar("T")
until = functools.partial(eventually, within=90.0)
CORPUS = Path(__file__).parent / "emails"


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    with running_dovecot(["support"]) as server:
        yield server


def mail(sender: str, mid: str, body: str, subject: str = "hello", **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = sender, "support@hub.test", subject, f"<{mid}>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()


def source(uid: int) -> dict[str, Any]:
    return {"mailbox": "support", "folder": "INBOX", "uidvalidity": 7, "uid": uid}


@contextlib.contextmanager
def counting_writes(w: EmailWorld) -> Iterator[list[int]]:
    """How many write transactions the store is asked for meanwhile (a spy: each still runs as it would)."""
    calls: list[int] = []
    write = w.db.write

    async def counted(fn: Callable[[Tx], T], background: bool = False, order: str = "") -> T:
        calls.append(1)
        result: T = await write(fn, background, order)
        return result

    w.db.write = counted
    try:
        yield calls
    finally:
        w.db.write = write


async def receive(w: EmailWorld, raws: list[bytes]) -> tuple[list[str], int]:
    """RAWS as one fetched batch: each email's outcome, and the write transactions it took."""
    with counting_writes(w) as writes:
        outcomes = await w.channel.receive_batch([(raw, source(uid)) for uid, raw in enumerate(raws, 1)])
    return outcomes, len(writes)


def poison(db_url: str) -> list[str]:
    """A trigger that fails the insert of any message whose text says POISON: one email's statements failing in
    the middle of the batch's transaction, as a constraint or a bug would."""
    if db_url.startswith("sqlite"):
        return ["CREATE TRIGGER poison BEFORE INSERT ON messages WHEN instr(NEW.text, 'POISON') > 0 "
                "BEGIN SELECT RAISE(ABORT, 'poisoned email'); END"]
    return ["CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF position('POISON' in NEW.text) > 0 THEN RAISE EXCEPTION 'poisoned email'; END IF; "
            "RETURN NEW; END $$",
            "CREATE TRIGGER poison BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION poison()"]


async def test_a_broken_email_in_a_batch_is_flagged_and_the_others_are_stored_in_one_write(
    db_url: str, tmp_path: Path
) -> None:
    async with email_world(db_url) as w:
        for statement in poison(db_url):
            await w.db.write(lambda tx, s=statement: tx.exec(s))  # type: ignore[misc]
        batch = [
            mail("ann@example.com", "a1@example.com", "Where is my order?"),
            mail("bob@example.com", "b1@example.com", "POISON: this one fails to store"),
            (CORPUS / "no_sender.eml").read_bytes(),
            mail("ann@example.com", "a2@example.com", "Any news?", subject="Re: hello",
                 In_Reply_To="<a1@example.com>"),
            (CORPUS / "boundary_mismatch.eml").read_bytes(),
            mail("carl@example.com", "c1@example.com", "Hello from Carl"),
        ]
        outcomes, writes = await receive(w, batch)
        assert outcomes == ["stored", "flagged", "flagged", "stored", "stored", "stored"]
        assert writes == 1
        journal = {str(r["dedupe_key"]): r for r in await w.journal()}
        assert len(journal) == 6
        assert journal["b1@example.com"]["status"] == "failed"
        assert "poisoned email" in str(journal["b1@example.com"]["error"])
        assert json.loads(journal["b1@example.com"]["payload"])["inbound"]["text"].startswith("POISON")
        assert [r["status"] for k, r in journal.items() if k != "b1@example.com"].count("done") == 4
        assert [r["reason"] for r in journal.values() if r["status"] == "rejected"] == ["no_sender"]
        messages = await w.messages()
        assert len(messages) == 4 and not [m for m in messages if "POISON" in m.text]
        by_id = {m.external_id: m for m in messages}
        # The reply found the email it answers earlier in the same transaction.
        assert by_id["a2@example.com"].conversation_id == by_id["a1@example.com"].conversation_id
        assert by_id["c1@example.com"].conversation_id != by_id["a1@example.com"].conversation_id
        # The rest of the one path ran for each stored email: the reports' and the automation's events.
        events = await w.db.read(lambda tx: tx.all("SELECT type FROM hub_events WHERE type = 'message.received'"))
        assert len(events) == 4


async def test_a_second_copy_in_the_same_batch_is_a_duplicate(db_url: str, tmp_path: Path) -> None:
    async with email_world(db_url) as w:
        first = mail("ann@example.com", "same@example.com", "Where is my order?")
        outcomes, writes = await receive(w, [first, mail("bob@example.com", "b@example.com", "Hi"), first])
        assert outcomes == ["stored", "stored", "duplicate"]
        assert writes == 1
        assert sorted(m.external_id for m in await w.messages()) == ["b@example.com", "same@example.com"]
        assert len(await w.journal()) == 2
        # And the whole batch fetched again (a crash before \Seen): all duplicates, nothing new.
        again, _ = await receive(w, [first, mail("bob@example.com", "b@example.com", "Hi"), first])
        assert again == ["duplicate"] * 3
        assert len(await w.messages()) == 2


async def test_a_reused_message_id_in_the_same_batch_is_stored_marked(db_url: str, tmp_path: Path) -> None:
    async with email_world(db_url) as w:
        one = mail("ann@example.com", "fixed@mailer.example", "My first question")
        other = mail("ann@example.com", "fixed@mailer.example", "Another question entirely")
        outcomes, writes = await receive(w, [one, other, other])
        assert outcomes == ["stored", "stored", "duplicate"]
        assert writes == 1
        messages = await w.messages()
        assert [(m.text, bool(m.meta.get("reused_external_id"))) for m in messages] == [
            ("My first question", False), ("Another question entirely", True)]
        assert sorted(str(r["dedupe_key"]) for r in await w.journal())[0] == "fixed@mailer.example"
        assert len(await w.journal()) == 2


def _hub_env(db_url: str, server: Dovecot, **extra: str) -> dict[str, str]:
    mailbox = {"name": "support", "host": server.host, "port": server.port, "security": "none",
               "username": "support", "password": server.password, "poll_interval_seconds": 1}
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return env | {
        "HUB_DATABASE__URL": db_url, "HUB_SERVER__SHUTDOWN_TIMEOUT_SECONDS": "5", "HUB_SERVER__LOG_LEVEL": "info",
        "HUB_CHANNELS__EMAIL__ENABLED": "true", "HUB_CHANNELS__EMAIL__ADDRESS": "support@hub.test",
        "HUB_CHANNELS__EMAIL__MAILBOXES": json.dumps([mailbox]), "HUB_CHANNELS__EMAIL__FETCH_BATCH": "10",
        "HUB_CHANNELS__EMAIL__PARSE_PROCESSES": "0", "HUB_CHANNELS__EMAIL__LEASE_SECONDS": "3",
    } | extra


def seen(server: Dovecot) -> int:
    cur = server.maildir("support") / "cur"
    return sum(1 for p in cur.glob("*") if ":2," in p.name and "S" in p.name.split(":2,")[1]) if cur.exists() else 0


async def _true(check: Callable[[], Awaitable[bool]] | Callable[[], bool]) -> bool:
    got = check()
    return bool(await got) if asyncio.iscoroutine(got) else bool(got)


@pytest.mark.slow
async def test_a_hub_killed_between_a_batch_and_seen_fetches_it_again_and_loses_or_doubles_nothing(
    db_url: str, dovecot: Dovecot, tmp_path: Path
) -> None:
    emails = 25
    for n in range(emails):
        who = f"customer{n % 7}@example.com"
        dovecot.deliver("support", mail(who, f"m{n}@example.com", f"question {n}", subject=f"q {n}"))
    hub = HubProcess(_hub_env(db_url, dovecot, HUB_FAIL_POINTS="email.before_seen:kill"), tmp_path)
    try:
        async with aiohttp.ClientSession() as session:
            hub.start()
            # Killed at its first batch: stored, the server not told, the progress not saved.
            assert await hub.wait_exit() == -9, hub.tail()
            assert query(db_url, "SELECT COUNT(*) FROM messages") == [(10,)]
            assert query(db_url, "SELECT COUNT(*) FROM journal") == [(10,)]
            assert query(db_url, "SELECT COUNT(*) FROM mailbox_sync WHERE last_uid > 0") == [(0,)]
            assert seen(dovecot) == 0

            del hub.env["HUB_FAIL_POINTS"]
            hub.start()
            await hub.wait_healthy(session)

            def all_in() -> bool:
                return query(db_url, "SELECT COUNT(*) FROM messages") == [(emails,)] and seen(dovecot) == emails

            await until(lambda: _true(all_in), what=f"all {emails} emails stored and \\Seen")
            await until(lambda: _true(lambda: query(
                db_url, "SELECT last_uid FROM mailbox_sync WHERE mailbox = 'support'") == [(emails,)]),
                what="the progress saved")
        # Nothing doubled: each email is one journal row and one message; the first batch was found again.
        assert query(db_url, "SELECT COUNT(*), COUNT(DISTINCT external_id) FROM messages") == [(emails, emails)]
        assert query(db_url, "SELECT COUNT(*) FROM journal WHERE status = 'done'") == [(emails,)]
        assert query(db_url, "SELECT COUNT(*) FROM journal") == [(emails,)]
        log = hub.log.read_text(errors="replace").split("---- start 2 ----")[1]
        assert log.count("is a duplicate (same_uid)") == 10, hub.tail()
    finally:
        hub.stop()
