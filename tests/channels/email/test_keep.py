"""What the email channel keeps, end to end through a real Dovecot: nothing a customer sent is lost or hidden.

A reused Message-ID with other content is stored (a true re-delivery is not), list posts and auto-replies reach the
timeline (auto-replies open no work), a mail with a broken structure keeps its raw bytes beside its text."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from hub.history import store
from tests.channels.email.dovecot import Dovecot, EmailWorld, email_world, running_dovecot
from tests.waiting import eventually

until = functools.partial(eventually, within=60.0)
CORPUS = Path(__file__).parent / "emails"


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    with running_dovecot(["support", "sales"]) as server:
        yield server


def mailbox(server: Dovecot, user: str = "support") -> dict[str, Any]:
    return {"name": user, "host": server.host, "port": server.port, "security": "none", "username": user,
            "password": server.password, "poll_interval_seconds": 60}


def mail(sender: str, mid: str, body: str, subject: str = "hello", trace: str = "", **headers: str) -> bytes:
    msg = EmailMessage()
    if trace:
        msg["Received"] = trace
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = sender, "support@hub.test", subject, f"<{mid}>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()


async def stored(w: EmailWorld, n: int) -> bool:
    return len(await w.messages()) >= n


def seen(server: Dovecot, user: str) -> int:
    cur = server.maildir(user) / "cur"
    return sum(1 for p in cur.glob("*") if ":2," in p.name and "S" in p.name.split(":2,")[1]) if cur.exists() else 0


async def test_a_reused_message_id_with_other_content_is_stored_and_a_true_copy_is_not(
    dovecot: Dovecot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "hub.channels.email")
    # A mailer that sends every email with the same Message-ID, and one of them also copied to a second mailbox
    # (its own Received line): two emails, three deliveries.
    dovecot.deliver("support", mail("ann@example.com", "fixed@mailer.example", "My first question."))
    dovecot.deliver("support", mail("ann@example.com", "fixed@mailer.example", "My second, different question."))
    dovecot.deliver("sales", mail("ann@example.com", "fixed@mailer.example", "My first question.",
                                  trace="from mx.example.com by sales.hub.test; Thu, 13 Jun 2024 10:00:00 +0000"))
    async with email_world(f"sqlite:///{tmp_path / 'hub.db'}",
                           mailboxes=[mailbox(dovecot), mailbox(dovecot, "sales")]) as w:
        await w.channel.start()
        await until(lambda: stored(w, 2), what="both emails")
        support, sales = w.channel.pollers
        await until(lambda: _true(support.stats.fetched == 2 and sales.stats.fetched == 1), what="all delivered")
        messages = await w.messages()
        assert sorted(m.text for m in messages) == ["My first question.", "My second, different question."]
        assert len(await w.messages()) == 2, "the copy in the second mailbox is the same email"
        first, second = messages
        assert first.external_id == second.external_id == "fixed@mailer.example"
        assert "reused_external_id" not in first.meta and second.meta["reused_external_id"]
        assert first.conversation_id == second.conversation_id
        # Which mailbox's copy of the first email is stored first is a race; either way one copy is a duplicate.
        assert support.stats.stored + sales.stats.stored == 2
        assert support.stats.duplicate + sales.stats.duplicate == 1
        metrics = w.host.metrics.render().decode()
        assert 'hub_email_dedupe_total{reason="same_content"} 1.0' in metrics
        assert 'hub_email_dedupe_total{reason="reused_message_id"} 1.0' in metrics
        await until(lambda: _true(seen(dovecot, "support") == 2 and seen(dovecot, "sales") == 1), what="\\Seen")
    assert "reuses the Message-ID" in caplog.text
    assert "is a duplicate (same_content)" in caplog.text and "fingerprint" in caplog.text


async def test_the_same_uid_delivered_again_is_a_duplicate_counted_by_reason(tmp_path: Path) -> None:
    raw = mail("bo@example.com", "b.1@example.com", "Once.")
    source = {"mailbox": "support", "folder": "INBOX", "uidvalidity": 7, "uid": 3}
    async with email_world(f"sqlite:///{tmp_path / 'hub.db'}") as w:
        assert await w.channel.receive_batch([(raw, source)]) == ["stored"]
        assert await w.channel.receive_batch([(raw, source)]) == ["duplicate"]
        assert 'hub_email_dedupe_total{reason="same_uid"} 1.0' in w.host.metrics.render().decode()
        assert len(await w.messages()) == 1


async def test_list_posts_and_auto_replies_reach_the_timeline_and_auto_replies_open_no_work(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    dovecot.deliver("support", (CORPUS / "list_post.eml").read_bytes())
    dovecot.deliver("support", mail("carl@example.com", "ooo.1@example.com", "I am away until Monday.",
                                    "Out of office", Auto_Submitted="auto-replied"))
    async with email_world(f"sqlite:///{tmp_path / 'hub.db'}", mailboxes=[mailbox(dovecot)]) as w:
        await w.channel.start()
        await until(lambda: stored(w, 2), what="the list post and the auto-reply")
        post, ooo = await w.messages()
        assert "drops the last row" in post.text and "automatic" not in post.meta
        assert post.meta["email"]["list_id"].startswith("Product users")
        assert ooo.text == "I am away until Monday." and ooo.meta["automatic"].startswith("auto-reply")
        conv_post = await w.db.read(lambda tx: store.conversation(tx, post.conversation_id))
        conv_ooo = await w.db.read(lambda tx: store.conversation(tx, ooo.conversation_id))
        assert conv_post.status == "open", "a person's list post is work"
        assert conv_ooo.status == "resolved", "an auto-reply is history, not work"
        # An auto-reply to a customer with a resolved conversation goes on it and leaves it resolved.
        await w.db.write(lambda tx: tx.exec("UPDATE conversations SET status = 'resolved', resolved_at = updated_at"))
        dovecot.deliver("support", mail("priya@lists.example.org", "ooo.2@example.com", "Back on the 20th.",
                                        "Automatic reply", X_Autoreply="yes"))
        await until(lambda: stored(w, 3), within=30, what="IDLE push")
        third = (await w.messages())[-1]
        assert third.conversation_id == post.conversation_id and third.meta["automatic"]
        again = await w.db.read(lambda tx: store.conversation(tx, post.conversation_id))
        assert again.status == "resolved"


async def test_a_broken_mail_keeps_its_text_and_the_whole_raw_email(dovecot: Dovecot, tmp_path: Path) -> None:
    raw = (CORPUS / "boundary_mismatch.eml").read_bytes()
    dovecot.deliver("support", raw)
    async with email_world(f"sqlite:///{tmp_path / 'hub.db'}", mailboxes=[mailbox(dovecot)]) as w:
        await w.channel.start()
        await until(lambda: stored(w, 1), what="the broken email")
        (msg,) = await w.messages()
        assert "charges the shipping twice" in msg.text
        files = await w.db.read(lambda tx: tx.all("SELECT filename, content_type, data FROM attachments"))
        (eml,) = [f for f in files if f["filename"] == "original.eml"]
        assert bytes(eml["data"]).replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
        assert not [f for f in files if str(f["filename"]).startswith("part-")]


async def _true(value: bool) -> bool:
    return value
