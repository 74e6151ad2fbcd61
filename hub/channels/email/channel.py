"""The email channel: IMAP mailboxes in (email_imap), SMTP out (aiosmtplib), threaded both ways by Message-ID.

Threading: every reply carries its own Message-ID (kept as the message's external id), In-Reply-To the email it
answers and References the thread. An inbound email joins the conversation that holds any Message-ID it refers to
(In-Reply-To first, then References newest first), else the sender's own conversation.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import logging
import random
import re
import secrets
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any, Protocol

import aiosmtplib

from hub import tasks as background
from hub.channels.base import (
    Arrival,
    Capabilities,
    Channel,
    Flagged,
    InboundSink,
    IngestFailed,
    Outcome,
    SendError,
    SendResult,
)
from hub.channels.email.imap import LeaseLock, MailboxLock, MailboxPoller, MailboxStateHost, client_tls
from hub.channels.email.parse import ParsedEmail, parse_email
from hub.channels.email.reader import Reader
from hub.config import EmailChannelSettings
from hub.html_safety import sanitize
from hub.metrics import Metrics
from hub.model import Inbound, Message, Outbound, utcnow

log = logging.getLogger("hub.channels.email")

_RE_PREFIX = re.compile(r"^\s*((re|aw|sv|antw|fwd?|wg)\s*(\[\d+\])?\s*:\s*)+", re.I)
#: References kept on a reply: the thread's first email and the latest ones (RFC 5322 suggests trimming the middle)
MAX_REFERENCES = 20


class EmailHost(InboundSink, MailboxStateHost, Protocol):
    """What the email channel needs from the hub beyond the inbound path: its threads, journaled emails (read-only)."""

    async def thread_messages(self, conversation_id: int, channel: str, limit: int = 50) -> list[Message]: ...
    async def record_handled(
        self, channel: str, dedupe_key: str, raw: Any, outcome: str, about: str, fingerprint: str | None = None
    ) -> tuple[int | None, int | None]: ...
    async def journaled_raw(self, journal_id: int) -> Any: ...
    @property
    def metrics(self) -> Metrics: ...


def reply_subject(subject: str) -> str:
    """"Re: " once, however many "Re:/AW:/Fwd:" the thread collected."""
    base = _RE_PREFIX.sub("", subject).strip()
    return f"Re: {base}" if base else "Re: your message"


_MIME_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")


def _mime_type(content_type: str) -> tuple[str, str]:
    """(maintype, subtype) of a file's content type. Anything unusable, and message/* (which must not be base64
    encoded, RFC 2046), is sent as application/octet-stream."""
    maintype, _, subtype = content_type.split(";")[0].strip().lower().partition("/")
    if _MIME_TOKEN.fullmatch(maintype) and _MIME_TOKEN.fullmatch(subtype) and maintype not in ("multipart", "message"):
        return maintype, subtype
    return "application", "octet-stream"


def _untrusted(e: BaseException) -> str | None:
    """The certificate problem behind E (aiosmtplib wraps it, or not, depending on the TLS mode), if any."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return str(seen.verify_message or seen.reason)
        seen = seen.__cause__ or seen.__context__
    return "certificate verify failed" if "CERTIFICATE_VERIFY_FAILED" in str(e) else None


def _where(source: dict[str, Any] | None) -> str:
    if not source:
        return "a direct delivery"
    return f"mailbox {source.get('mailbox')} uidvalidity {source.get('uidvalidity')} uid {source.get('uid')}"


def _envelope(parsed: ParsedEmail, raw: bytes, source: dict[str, Any]) -> dict[str, Any]:
    """What the journal keeps beside a stored email: where it was fetched from."""
    return {"source": source, "size": len(raw), "message_id": parsed.message_id}


def _whole(parsed: ParsedEmail, raw: bytes, source: dict[str, Any]) -> dict[str, Any]:
    """The email itself with its envelope, journaled when it is not stored on a timeline."""
    return {**_envelope(parsed, raw, source), "eml_base64": base64.b64encode(raw).decode()}


def text_to_html(text: str) -> str:
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


class EmailChannel(Channel):
    name = "email"
    capabilities = Capabilities(max_text_length=200_000, media=True, html=True)
    identity_kinds = ("email",)

    def __init__(
        self,
        sink: EmailHost,
        settings: EmailChannelSettings,
        lock: MailboxLock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(sink)
        self.host = sink
        self.settings = settings
        self.domain = settings.message_id_domain or settings.address.rpartition("@")[2] or "hub.invalid"
        own = {settings.address.lower()} | {m.username.lower() for m in settings.mailboxes if "@" in m.username}
        self.own_addresses = frozenset(a for a in own if a)
        self.lock = lock or LeaseLock(sink, settings.lease_seconds)
        self.reader = Reader(self.name, settings.allow_remote_images, self.own_addresses, settings.parse_processes)
        self.pollers = [
            MailboxPoller(m, settings, sink, self.receive_batch, self.lock, rng=rng, read=self.reader.read)
            for m in settings.mailboxes
        ]
        for p in self.pollers:
            p.on_health = self._mailbox_health
        self._tasks: list[asyncio.Task[None]] = []
        self._smtp_check: asyncio.Task[None] | None = None
        #: why the SMTP server refused us at start or on the last send, until a send goes through
        self.smtp_problem: str | None = None
        self.tls = client_tls(settings)
        if not settings.tls_verify:
            log.warning(
                "channels.email.tls_verify = false: the certificates of the SMTP and IMAP servers are NOT checked; "
                "anyone on the network path can read the mail and the passwords. Trust the server's CA with "
                "channels.email.tls_ca_file instead."
            )

    async def start(self) -> None:
        if not self.pollers:
            log.warning("the email channel is enabled with no mailboxes: no email will come in. Add one as "
                        "[[channels.email.mailboxes]] (name, host, username, password; see config/hub.example.toml)")
        # One task per mailbox: a mailbox that fails only retries itself.
        for p in self.pollers:
            self._tasks.append(asyncio.create_task(p.run_forever(), name=f"hub-email-{p.key}"))
        self._smtp_check = asyncio.create_task(self.check_smtp(), name="hub-email-smtp-check")

    async def check_smtp(self) -> None:
        """Log in to the SMTP server once at start, so a wrong host or password is a warning now, not at the
        first reply an agent sends."""
        s = self.settings
        smtp = aiosmtplib.SMTP(
            hostname=s.smtp_host, port=s.smtp_port, use_tls=s.smtp_security == "tls",
            start_tls=True if s.smtp_security == "starttls" else False, tls_context=self.tls,
            timeout=s.smtp_timeout_seconds,
        )
        try:
            await smtp.connect()
            if s.smtp_username:
                await smtp.login(s.smtp_username, s.smtp_password)
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            self.smtp_problem = f"SMTP {s.smtp_host}:{s.smtp_port}: {type(e).__name__}: {e}"[:300]
            log.warning("the email channel cannot send: %s. Check channels.email.smtp_host, smtp_port, "
                        "smtp_security, smtp_username and smtp_password", self.smtp_problem)
            with contextlib.suppress(Exception):
                smtp.close()

    def _mailbox_health(self, poller: MailboxPoller) -> None:
        self.host.metrics.mailbox_up.labels(poller.key).set(1 if poller.up else 0)

    def problems(self) -> list[str]:
        out = [f"mailbox {p.key}: {p.problem}" for p in self.pollers if p.up is False]
        if self.smtp_problem:
            out.append(self.smtp_problem)
        return out

    async def stop(self) -> None:
        await background.stop([*self._tasks, *([self._smtp_check] if self._smtp_check else [])])
        self._tasks.clear()
        self.reader.close()

    # -- inbound ------------------------------------------------------------------------------------------------

    def read(self, raw: bytes) -> ParsedEmail:
        return parse_email(
            raw, channel=self.name, allow_remote_images=self.settings.allow_remote_images,
            own_addresses=self.own_addresses,
        )

    def parse(self, payload: Any) -> Inbound:
        parsed = self.read(bytes(payload))
        if parsed.inbound is None:
            raise ValueError(parsed.reason or "not a message from a person")
        return parsed.inbound

    async def receive(self, raw: bytes, source: dict[str, Any] | None = None) -> str:
        """Store or flag one email; returns "stored", "duplicate" or "flagged". Raises only when the hub could
        not keep it (the database is down), so the caller fetches it again later."""
        return await self.keep(self.read(raw), raw, source)

    async def receive_batch(
        self, items: list[tuple[bytes, dict[str, Any]]], parsed: list[ParsedEmail] | None = None
    ) -> list[str]:
        """Store or flag a batch of fetched emails; their outcomes in order. PARSED: the emails already read (the
        poller reads the next batch while this one is stored); else they are read here, off the event loop (see
        `Reader`). The batch is stored in one write transaction, in order (hub.ingest `ingest_batch`): a reply
        finds the email it answers earlier in the batch and a second copy is a duplicate, exactly as one by one.
        Raises only when the hub could not keep them (the database is down), so the caller fetches them again."""
        if parsed is None:
            parsed = await self.reader.read([raw for raw, _source in items])
        return await self._keep(parsed, items)

    async def keep(self, parsed: ParsedEmail, raw: bytes, source: dict[str, Any] | None = None) -> str:
        """Store or flag one parsed email (see `receive`)."""
        (outcome,) = await self._keep([parsed], [(raw, source or {})])
        return outcome

    async def _keep(self, parsed: list[ParsedEmail], items: list[tuple[bytes, dict[str, Any]]]) -> list[str]:
        """Auto-replies are stored too, marked automatic (ingest neither routes them nor lets them open work);
        bounces mark the reply they return failed, one by one after the batch (they change our own messages)."""
        outcomes: list[str] = [""] * len(parsed)
        arrivals: list[Arrival] = []
        placed: list[int] = []
        bounces: list[int] = []
        for i, (p, (raw, source)) in enumerate(zip(parsed, items, strict=True)):
            if p.verdict == "bounce":
                bounces.append(i)
                continue
            arrivals.append(self._arrival(p, raw, source))
            placed.append(i)
        if arrivals:
            for i, outcome in zip(placed, await self.host.ingest_batch(arrivals), strict=True):
                outcomes[i] = await self._outcome(parsed[i], items[i][1], outcome)
        for i in bounces:
            outcomes[i] = await self._bounce(parsed[i], _whole(parsed[i], *items[i]))
        return outcomes

    def _arrival(self, parsed: ParsedEmail, raw: bytes, source: dict[str, Any]) -> Arrival:
        if parsed.inbound is None:
            # Machine mail never opens work and is never answered, so it cannot start a reply loop.
            code = "no_sender" if parsed.verdict == "unreadable" else "own_address"
            return Arrival(self.name, None, _whole(parsed, raw, source), parsed.fingerprint, parsed.message_id,
                           parsed.reason or parsed.verdict, code)
        inbound = parsed.inbound
        inbound.thread_refs = list(parsed.refs)
        # Journaled with the email, so a replay threads it too; the email itself is kept only when it is flagged.
        return Arrival(self.name, inbound, _envelope(parsed, raw, source), parsed.fingerprint, code="no_sender",
                       flag_raw=lambda: _whole(parsed, raw, source))

    async def _outcome(self, parsed: ParsedEmail, source: dict[str, Any], outcome: Outcome) -> str:
        if isinstance(outcome, Flagged | IngestFailed):
            return "flagged"  # journaled with the reason; `hub events replay` retries a failed one
        if outcome.duplicate:
            before = await self.host.journaled_raw(outcome.journal_id)
            seen = (before or {}).get("source") or {} if isinstance(before, dict) else {}
            where = ("mailbox", "uidvalidity", "uid")
            reason = "same_uid" if source and all(seen.get(k) == source.get(k) for k in where) else "same_content"
            self.host.metrics.email_dedupe.labels(reason).inc()
            log.info("email %s (fingerprint %s) from %s is a duplicate (%s) of journal event %d",
                     parsed.message_id, parsed.fingerprint, _where(source), reason, outcome.journal_id)
            return "duplicate"
        if outcome.message.meta.get("reused_external_id"):
            self.host.metrics.email_dedupe.labels("reused_message_id").inc()
            log.info("email %s (fingerprint %s) from %s reuses the Message-ID of another email with other content: "
                     "stored as message %d", parsed.message_id, parsed.fingerprint, _where(source), outcome.message.id)
        return "stored"

    async def _bounce(self, parsed: ParsedEmail, whole: dict[str, Any]) -> str:
        """A delivery failure: the reply it returns is marked failed with the server's reason, and the bounce is
        journaled linked to it. A bounce of nothing we sent is flagged for an operator."""
        reason = f"bounced: {parsed.bounce_reason}"[:500]
        for mid in parsed.bounced:
            if parsed.bounce_permanent:
                found = await self.host.update_status(self.name, mid, "failed", reason)
            else:  # "delayed": the server keeps trying; the reply stays as it is, the notice is kept with it
                found = True
            if found:
                outcome = ("failed: " if parsed.bounce_permanent else "delayed: ") + parsed.bounce_reason
                _jid, message_id = await self.host.record_handled(
                    self.name, parsed.message_id, whole, outcome[:500], mid, parsed.fingerprint
                )
                if message_id is not None:
                    log.info("email %s is a bounce of our message %d (%s)", parsed.message_id, message_id, outcome)
                    return "bounced"
        await self.host.flag(self.name, parsed.message_id, whole,
                             f"bounce of an email the hub did not send ({parsed.reason})"[:500], "unmatched_bounce",
                             parsed.fingerprint)
        return "flagged"

    # -- outbound -----------------------------------------------------------------------------------------------

    async def compose(self, out: Outbound) -> EmailMessage:
        """The reply as an email, threaded onto the conversation's earlier emails."""
        thread = await self.host.thread_messages(out.conversation_id, self.name)
        # The email a reply answers is the last one a person wrote: never an out-of-office that came after it.
        written = [m for m in thread if m.direction == "in" and not m.meta.get("automatic")] or [
            m for m in thread if m.direction == "in"]
        theirs = [m for m in written if m.identity == str(out.to)]
        answering = theirs[-1] if theirs else (written[-1] if written else None)
        subject = ""
        for m in reversed(thread):
            subject = str((m.meta.get("email") or {}).get("subject") or "")
            if subject:
                break
        chain = [m.external_id for m in thread if m.external_id and m.id != out.message_id]
        if answering is not None:
            earlier = list(reversed((answering.meta.get("email") or {}).get("refs") or []))
            chain = [*earlier, *chain]
        chain = list(dict.fromkeys(chain))
        if len(chain) > MAX_REFERENCES:
            chain = [chain[0], *chain[-(MAX_REFERENCES - 1) :]]

        msg = EmailMessage()
        message_id = f"hub.{out.message_id}.{secrets.token_hex(8)}@{self.domain}"
        msg["Message-ID"] = f"<{message_id}>"
        msg["Date"] = format_datetime(utcnow())
        msg["From"] = formataddr((self.settings.from_name, self.settings.address))
        reply_to = ((answering.meta.get("email") or {}).get("reply_to") or []) if answering is not None else []
        msg["To"] = ", ".join(reply_to) if reply_to else out.to.value
        own = next((m for m in thread if m.id == out.message_id), None)
        if own is not None and own.meta.get("reply_all") and answering is not None:
            mail = answering.meta.get("email") or {}
            taken = {a.lower() for a in [*reply_to, out.to.value]} | self.own_addresses
            everyone = dict.fromkeys([*(mail.get("to") or []), *(mail.get("cc") or [])])
            cc = [a for a in everyone if a.lower() not in taken]
            if cc:
                msg["Cc"] = ", ".join(cc)
        if self.settings.reply_to:
            msg["Reply-To"] = self.settings.reply_to
        campaign = (own.meta.get("email") or {}).get("subject") if own is not None and (
            own.meta.get("campaign") or own.meta.get("campaign_test")) else None
        # A campaign's email is not a reply: its own subject, as written.
        msg["Subject"] = str(campaign) if campaign else reply_subject(subject) if subject else "Your message to us"
        if answering is not None and answering.external_id:
            msg["In-Reply-To"] = f"<{answering.external_id}>"
        elif chain:
            msg["In-Reply-To"] = f"<{chain[-1]}>"
        if chain:
            msg["References"] = " ".join(f"<{c}>" for c in chain)
        msg.set_content(out.text)
        body_html = sanitize(out.html).html if out.html else text_to_html(out.text)
        msg.add_alternative(body_html, subtype="html")
        for filename, content_type, data in await self.host.outbound_files(out.message_id):
            maintype, subtype = _mime_type(content_type)
            # policy.default writes a non-ASCII filename as RFC 2231 (filename*=utf-8''...), which mail clients read.
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename or "attachment")
        return msg

    async def send(self, outbound: Outbound) -> SendResult:
        msg = await self.compose(outbound)
        s = self.settings
        try:
            await aiosmtplib.send(
                msg,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username or None,
                password=s.smtp_password or None,
                use_tls=s.smtp_security == "tls",
                start_tls=True if s.smtp_security == "starttls" else False,
                tls_context=self.tls,
                timeout=s.smtp_timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as e:
            codes = [r.code for r in e.recipients]
            why = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in e.recipients)
            raise SendError(f"recipient refused: {why}", permanent=all(c >= 500 for c in codes)) from None
        except aiosmtplib.SMTPResponseException as e:
            # 4xx: the server wants us to try later; 5xx: it will never take this message.
            raise SendError(f"mail server said {e.code} {e.message}", permanent=e.code >= 500) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            if _untrusted(e):
                # Retried: once the operator trusts the server's CA (tls_ca_file), the queued replies go out.
                raise SendError(f"the mail server's TLS certificate is not trusted ({_untrusted(e)}); trust its CA "
                                "with channels.email.tls_ca_file", permanent=False) from None
            raise SendError(f"mail server unreachable: {type(e).__name__}: {e}", permanent=False) from None
        self.smtp_problem = None
        return SendResult(external_id=str(msg["Message-ID"]).strip("<>"), status="sent")
