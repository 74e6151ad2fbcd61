"""Replies through the outbox to a real SMTP server (aiosmtpd), and threading both ways."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, Session

from hub.history import store
from hub.model import AttachmentIn, Identity
from tests.channels.email.dovecot import EmailWorld, _free_port, email_world
from tests.channels.email.tls import Certs, make_certs


class MailServer:
    """The customer's side of SMTP: answers RCPT from a script and keeps what it accepted."""

    def __init__(self) -> None:
        self.script: list[str] = []
        self.received: list[EmailMessage] = []
        self.logins: list[str] = []
        #: per accepted email: the envelope's recipients
        self.rcpts: list[list[str]] = []
        #: per accepted email: whether it came over TLS
        self.tls: list[bool] = []

    async def handle_RCPT(self, server: Any, session: Session, envelope: Envelope, address: str, options: Any) -> str:
        if self.script:
            return self.script.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        content = envelope.content or b""
        msg = message_from_bytes(content if isinstance(content, bytes) else content.encode(), policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.received.append(msg)
        self.rcpts.append(list(envelope.rcpt_tos))
        self.tls.append(server.transport.get_extra_info("ssl_object") is not None)
        return "250 Message accepted"

    def authenticate(self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        ok = data.login == b"hub" and data.password == b"smtp-secret"
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok)


@pytest.fixture
def smtp() -> Iterator[tuple[MailServer, int]]:
    server = MailServer()
    port = _free_port()
    controller = Controller(
        server, hostname="127.0.0.1", port=port, authenticator=server.authenticate, auth_require_tls=False,
    )
    controller.start()
    try:
        yield server, port
    finally:
        controller.stop()


def email(
    frm: str, subject: str, body: str, mid: str, in_reply_to: str = "", references: str = "", **headers: str
) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = frm, "support@hub.test", subject, f"<{mid}>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    msg.set_content(body)
    return msg.as_bytes()


async def deliver_all(w: EmailWorld, rounds: int = 20) -> None:
    for _ in range(rounds):
        await w.outbox.drain()
        if not await w.outbox.pending():
            return
        await asyncio.sleep(0.1)


async def conversation_of(w: EmailWorld, external_id: str) -> int:
    row = await w.db.read(lambda tx: tx.one("SELECT conversation_id FROM messages WHERE external_id = ?",
                                            (external_id,)))
    assert row is not None
    return int(row["conversation_id"])


@pytest.fixture
def smtp_conf(smtp: tuple[MailServer, int]) -> dict[str, Any]:
    return {"smtp_host": "127.0.0.1", "smtp_port": smtp[1], "smtp_security": "none",
            "smtp_username": "hub", "smtp_password": "smtp-secret"}


async def test_reply_is_threaded_multipart_and_customer_answer_joins(
    tmp_path: Path, smtp: tuple[MailServer, int], smtp_conf: dict[str, Any]
) -> None:
    server, _ = smtp
    async with email_world(f"sqlite:///{tmp_path / 'hub.db'}", **smtp_conf) as w:
        first = email("Ann Lee <ann@example.com>", "Order #1042 missing", "Where is it?", "ann.1@example.com")
        assert await w.channel.receive(first) == "stored"
        conv = await conversation_of(w, "ann.1@example.com")
        reply = await w.outbox.reply(conv, "It ships tomorrow.\n\nBest, Alice")
        await deliver_all(w)
        sent = await w.db.read(lambda tx: store.message(tx, reply.id))
        assert sent.status == "sent", sent.status_reason
        (out,) = server.received
        assert server.logins == ["hub"]
        assert out["To"] == "ann@example.com"
        assert out["From"] == "Hub Support <support@hub.test>"
        assert out["Subject"] == "Re: Order #1042 missing"
        assert out["In-Reply-To"] == "<ann.1@example.com>"
        assert "<ann.1@example.com>" in out["References"]
        assert out["Message-ID"] == f"<{sent.external_id}>"
        assert out.get_content_type() == "multipart/alternative"
        plain, html = out.get_body(("plain",)), out.get_body(("html",))
        assert isinstance(plain, EmailMessage) and isinstance(html, EmailMessage)
        assert plain.get_content().strip().startswith("It ships tomorrow.")
        assert "<p>It ships tomorrow.</p>" in html.get_content()

        # The customer answers our reply: it joins the same conversation through In-Reply-To.
        answer = email("ann@example.com", "Re: Re: Order #1042 missing", "Thanks!", "ann.2@example.com",
                       out["Message-ID"], f"<ann.1@example.com> {out['Message-ID']}")
        assert await w.channel.receive(answer) == "stored"
        assert await conversation_of(w, "ann.2@example.com") == conv

        # A second reply references the whole thread, and says "Re:" once.
        await w.outbox.reply(conv, "Glad to help.")
        await deliver_all(w)
        second = server.received[-1]
        assert second["Subject"] == "Re: Order #1042 missing"
        assert second["In-Reply-To"] == "<ann.2@example.com>"
        refs = second["References"].split()
        assert refs[0] == "<ann.1@example.com>" and out["Message-ID"] in refs and refs[-1] == "<ann.2@example.com>"


async def test_rewritten_in_reply_to_still_threads_through_references(tmp_path: Path) -> None:
    async with email_world(f"sqlite:///{tmp_path / 'hub.db'}") as w:
        await w.channel.receive(email("ann@example.com", "Help", "first", "t.1@example.com"))
        conv = await conversation_of(w, "t.1@example.com")
        # From her other address, so only the thread (References) can explain joining CONV.
        other = email("ann.private@mail.example", "Re: Help", "more", "t.2@example.com",
                      "<rewritten-by-client@mail.example>", "<t.1@example.com>")
        assert await w.channel.receive(other) == "stored"
        assert await conversation_of(w, "t.2@example.com") == conv


async def test_new_address_in_a_known_thread_joins_without_merging(tmp_path: Path) -> None:
    async with email_world(f"sqlite:///{tmp_path / 'hub.db'}") as w:
        await w.channel.receive(email("ann@corp.example", "Invoice", "send invoice", "i.1@corp.example"))
        conv = await conversation_of(w, "i.1@corp.example")
        colleague = email("Bob <bob@corp.example>", "Re: Invoice", "Also to me please", "i.2@corp.example",
                          "<i.1@corp.example>", "<i.1@corp.example>")
        assert await w.channel.receive(colleague) == "stored"
        assert await conversation_of(w, "i.2@corp.example") == conv

        def check(tx: Any) -> tuple[int, int, int | None, int]:
            ann = store.customer_by_identity(tx, Identity("email", "ann@corp.example"))
            bob = store.customer_by_identity(tx, Identity("email", "bob@corp.example"))
            assert ann is not None and bob is not None
            open_for_bob = store.open_conversation(tx, bob)
            n = tx.one("SELECT COUNT(*) AS n FROM conversations")
            return ann, bob, open_for_bob.id if open_for_bob else None, int(n["n"]) if n else 0

        ann, bob, bobs_open, conversations = await w.db.read(check)
        assert ann != bob, "a colleague in the thread is not merged into the customer"
        assert bobs_open is None and conversations == 1, "and no second conversation is opened for them"
        msg = (await w.messages())[-1]
        assert msg.customer_id == bob and msg.identity == "email:bob@corp.example" and msg.conversation_id == conv


async def test_thread_of_a_resolved_conversation_falls_back_to_the_sender(tmp_path: Path) -> None:
    async with email_world(f"sqlite:///{tmp_path / 'hub.db'}") as w:
        await w.channel.receive(email("ann@example.com", "Q", "q", "r.1@example.com"))
        conv = await conversation_of(w, "r.1@example.com")
        await w.db.write(lambda tx: store.set_conversation_status(tx, conv, "resolved", "2030-01-01T00:00:00.000000Z"))
        await w.channel.receive(email("ann@example.com", "Re: Q", "again", "r.2@example.com", "<r.1@example.com>"))
        assert await conversation_of(w, "r.2@example.com") != conv


async def test_4xx_is_retried_and_5xx_fails_with_the_servers_reason(
    tmp_path: Path, smtp: tuple[MailServer, int], smtp_conf: dict[str, Any]
) -> None:
    server, _ = smtp
    async with email_world(f"sqlite:///{tmp_path / 'hub.db'}", **smtp_conf) as w:
        await w.channel.receive(email("ann@example.com", "Q", "q", "s.1@example.com"))
        conv = await conversation_of(w, "s.1@example.com")
        server.script = ["451 4.7.1 Greylisted, try again later"]
        retried = await w.outbox.reply(conv, "first answer")
        await w.outbox.drain()
        pending = await w.db.read(lambda tx: store.message(tx, retried.id))
        assert pending.status == "queued" and "451" in (pending.status_reason or "")
        await deliver_all(w)
        assert (await w.db.read(lambda tx: store.message(tx, retried.id))).status == "sent"
        assert len(server.received) == 1

        server.script = ["550 5.1.1 <ann@example.com>: mailbox does not exist"]
        failed = await w.outbox.reply(conv, "second answer")
        await deliver_all(w)
        msg = await w.db.read(lambda tx: store.message(tx, failed.id))
        assert msg.status == "failed"
        assert "550" in (msg.status_reason or "") and "mailbox does not exist" in (msg.status_reason or "")
        assert len(server.received) == 1, "a permanent failure is not retried"


async def test_unreachable_server_is_a_transient_failure(tmp_path: Path) -> None:
    async with email_world(f"sqlite:///{tmp_path / 'hub.db'}", smtp_host="127.0.0.1", smtp_port=_free_port(),
                           smtp_security="none", smtp_timeout_seconds=5) as w:
        await w.channel.receive(email("ann@example.com", "Q", "q", "u.1@example.com"))
        conv = await conversation_of(w, "u.1@example.com")
        msg = await w.outbox.reply(conv, "hello?")
        await w.outbox.drain()
        pending = await w.db.read(lambda tx: store.message(tx, msg.id))
        assert pending.status == "queued" and "unreachable" in (pending.status_reason or "")


async def test_bounce_marks_our_reply_failed_and_opens_no_work(
    tmp_path: Path, smtp: tuple[MailServer, int], smtp_conf: dict[str, Any]
) -> None:
    server, _ = smtp
    async with email_world(f"sqlite:///{tmp_path / 'hub.db'}", **smtp_conf) as w:
        await w.channel.receive(email("gone@example.com", "Q", "q", "b.1@example.com"))
        conv = await conversation_of(w, "b.1@example.com")
        reply = await w.outbox.reply(conv, "answer")
        await deliver_all(w)
        ours = server.received[0]["Message-ID"]
        dsn = (Path(__file__).parent / "emails" / "dsn_bounce.eml").read_bytes()
        dsn = dsn.replace(b"<hub.42.deadbeef@hub.test>", ours.encode())
        assert await w.channel.receive(dsn) == "bounced"
        msg = await w.db.read(lambda tx: store.message(tx, reply.id))
        assert msg.status == "failed" and "User unknown" in (msg.status_reason or "")
        (row,) = [j for j in await w.journal() if j["dedupe_key"] == "bounce.1@mx.hub.test"]
        assert row["status"] == "done" and row["message_id"] == reply.id, "the bounce is linked to our reply"
        auto = email("gone@example.com", "Out of office", "away", "b.2@example.com", ours,
                     Auto_Submitted="auto-replied")
        assert await w.channel.receive(auto) == "stored"
        stored = await w.messages()
        assert len(stored) == 3, "the auto-reply is on the timeline; the bounce is not a message"
        assert stored[-1].meta["automatic"] and stored[-1].conversation_id == conv
        assert len(server.received) == 1, "and nothing answered them"


def test_thread_conversation_survives_the_journal_round_trip() -> None:
    """Replay (`hub events replay`, crash recovery) rebuilds the Inbound from the journal: the thread must stay."""
    from hub.model import Inbound

    inbound = Inbound(channel="email", identity=Identity("email", "a@b.example"), text="x", thread_conversation_id=7)
    assert Inbound.from_json(inbound.to_json()).thread_conversation_id == 7
    assert Inbound.from_json({"channel": "api", "identity": "email:a@b.example"}).thread_conversation_id is None


async def test_files_an_agent_attached_arrive_as_attachments_with_the_same_bytes(
    tmp_path: Path, smtp: tuple[MailServer, int], smtp_conf: dict[str, Any]
) -> None:
    server, _ = smtp
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    photo = b"\x89PNG\r\n\x1a\n" + bytes(reversed(range(256))) * 9
    files = [
        AttachmentIn("Facture n°1042 été.pdf", "application/pdf", pdf),
        AttachmentIn("写真.png", "image/png", photo),
        AttachmentIn("notes.txt", "text/plain; charset=utf-8", b"ligne 1\r\nligne 2\r\n"),
        AttachmentIn("weird", "not a type", b"\x00\x01\x02"),
    ]
    async with email_world(f"sqlite:///{tmp_path / 'hub.db'}", **smtp_conf) as w:
        await w.channel.receive(email("ann@example.com", "Invoice", "please send it", "f.1@example.com"))
        conv = await conversation_of(w, "f.1@example.com")
        reply = await w.outbox.reply(conv, "Here it is.", attachments=files)
        await deliver_all(w)
        assert (await w.db.read(lambda tx: store.message(tx, reply.id))).status == "sent"
        (out,) = server.received
    assert out.get_content_type() == "multipart/mixed"
    body = out.get_body(("plain",))
    assert isinstance(body, EmailMessage) and body.get_content().strip() == "Here it is."
    got = [(a.get_filename(), a.get_content_type(), a.get_payload(decode=True)) for a in out.iter_attachments()]
    assert got == [
        ("Facture n°1042 été.pdf", "application/pdf", pdf),
        ("写真.png", "image/png", photo),
        ("notes.txt", "text/plain", b"ligne 1\r\nligne 2\r\n"),
        ("weird", "application/octet-stream", b"\x00\x01\x02"),
    ]
    # Non-ASCII names travel RFC 2231-encoded (filename*=utf-8''...), so the whole email stays 7-bit.
    raw = out.as_bytes()
    assert b"filename*" in raw and raw.isascii()


# -- TLS: implicit (SMTPS, port 465 style) and STARTTLS, with auth, verified against a CA the test makes ---------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("tls"))


@contextlib.contextmanager
def tls_server(certs: Certs, mode: str) -> Iterator[tuple[MailServer, int]]:
    server = MailServer()
    port = _free_port()
    # STARTTLS: aiosmtpd refuses MAIL and AUTH before the upgrade. Implicit TLS: the whole connection is TLS, which
    # aiosmtpd's auth_require_tls does not recognize, so it is off there.
    tls: dict[str, Any] = (
        {"ssl_context": certs.server_context(), "auth_require_tls": False} if mode == "tls"
        else {"tls_context": certs.server_context(), "require_starttls": True}
    )
    controller = Controller(server, hostname="127.0.0.1", port=port, authenticator=server.authenticate,
                            server_hostname="localhost", **tls)
    controller.start()
    try:
        yield server, port
    finally:
        controller.stop()


@pytest.mark.parametrize("mode", ["tls", "starttls"])
async def test_tls_and_starttls_with_auth_verified_against_the_configured_ca(
    tmp_path: Path, certs: Certs, mode: str
) -> None:
    with tls_server(certs, mode) as (server, port):
        conf = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": mode, "smtp_username": "hub",
                "smtp_password": "smtp-secret", "tls_ca_file": str(certs.ca), "smtp_timeout_seconds": 10}
        async with email_world(f"sqlite:///{tmp_path / 'hub.db'}", **conf) as w:
            await w.channel.receive(email("ann@example.com", "Q", "q", f"tls.{mode}@example.com"))
            conv = await conversation_of(w, f"tls.{mode}@example.com")
            reply = await w.outbox.reply(conv, "over TLS")
            await deliver_all(w)
            sent = await w.db.read(lambda tx: store.message(tx, reply.id))
            assert sent.status == "sent", sent.status_reason
    assert server.logins == ["hub"] and server.tls == [True]
    assert server.received[0]["Subject"] == "Re: Q"


@pytest.mark.parametrize("mode", ["tls", "starttls"])
async def test_an_untrusted_certificate_is_refused_and_the_reply_waits(
    tmp_path: Path, certs: Certs, mode: str
) -> None:
    with tls_server(certs, mode) as (server, port):
        conf = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": mode, "smtp_username": "hub",
                "smtp_password": "smtp-secret", "smtp_timeout_seconds": 10}
        async with email_world(f"sqlite:///{tmp_path / 'hub.db'}", **conf) as w:
            await w.channel.receive(email("ann@example.com", "Q", "q", "untrusted@example.com"))
            conv = await conversation_of(w, "untrusted@example.com")
            reply = await w.outbox.reply(conv, "secret answer")
            await w.outbox.drain()
            msg = await w.db.read(lambda tx: store.message(tx, reply.id))
    assert msg.status == "queued", "retried: trusting the CA later sends it"
    assert "certificate is not trusted" in (msg.status_reason or "") and "tls_ca_file" in (msg.status_reason or "")
    assert server.received == [] and server.logins == [], "no mail and no password went to an unverified server"


async def test_turning_verification_off_works_but_is_never_silent(
    tmp_path: Path, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "hub.channels.email")
    with tls_server(certs, "tls") as (server, port):
        conf = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "tls", "smtp_username": "hub",
                "smtp_password": "smtp-secret", "tls_verify": False, "smtp_timeout_seconds": 10}
        async with email_world(f"sqlite:///{tmp_path / 'hub.db'}", **conf) as w:
            assert "NOT checked" in caplog.text
            await w.channel.receive(email("ann@example.com", "Q", "q", "noverify@example.com"))
            conv = await conversation_of(w, "noverify@example.com")
            reply = await w.outbox.reply(conv, "answer")
            await deliver_all(w)
            assert (await w.db.read(lambda tx: store.message(tx, reply.id))).status == "sent"
    assert server.logins == ["hub"]


def test_a_missing_ca_file_is_a_configuration_error(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from hub.config import EmailChannelSettings

    with pytest.raises(ValidationError, match="tls_ca_file: no such file"):
        EmailChannelSettings.model_validate({"tls_ca_file": str(tmp_path / "nope.pem")})


async def test_reply_all_copies_everyone_else_the_customer_wrote_to(
    tmp_path: Path, smtp: tuple[MailServer, int], smtp_conf: dict[str, Any]
) -> None:
    server, _ = smtp
    async with email_world(f"sqlite:///{tmp_path / 'hub.db'}", **smtp_conf) as w:
        first = email("Ann <ann@corp.example>", "Renewal", "Can you quote?", "r.1@corp.example",
                      Cc="Bob <bob@corp.example>, support@hub.test, carol@corp.example")
        assert await w.channel.receive(first) == "stored"
        (stored,) = await w.messages()
        assert stored.meta["email"]["cc"] == ["bob@corp.example", "support@hub.test", "carol@corp.example"]
        assert stored.meta["email"]["others"] == ["bob@corp.example", "carol@corp.example"], "whom reply all copies"
        conv = stored.conversation_id
        # Her out-of-office arrives after it: a reply still answers (and copies) what she wrote.
        ooo = email("ann@corp.example", "Out of office", "Away.", "r.2@corp.example", Auto_Submitted="auto-replied")
        assert await w.channel.receive(ooo) == "stored"
        await w.outbox.reply(conv, "Only to Ann.")
        await w.outbox.reply(conv, "To all of you.", reply_all=True)
        await deliver_all(w)
        just_ann, everyone = server.received
        assert just_ann["Cc"] is None and server.rcpts[0] == ["ann@corp.example"]
        assert everyone["To"] == "ann@corp.example"
        assert everyone["Cc"] == "bob@corp.example, carol@corp.example", "never our own address"
        assert everyone["In-Reply-To"] == just_ann["In-Reply-To"] == "<r.1@corp.example>"
        assert sorted(server.rcpts[1]) == ["ann@corp.example", "bob@corp.example", "carol@corp.example"]
