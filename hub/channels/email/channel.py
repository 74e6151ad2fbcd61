"""The email channel: IMAP mailboxes in (email_imap), SMTP out (aiosmtplib), threaded both ways by Message-ID.

Threading: every reply carries its own Message-ID (kept as the message's external id), In-Reply-To the email it
answers and References the thread. An inbound email joins the conversation that holds any Message-ID it refers to
(In-Reply-To first, then References newest first), else the sender's own conversation.
"""

from __future__ import annotations

import asyncio
import base64
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
from hub.channels.base import Capabilities, Channel, InboundSink, SendError, SendResult
from hub.channels.email.imap import LeaseLock, MailboxLock, MailboxPoller, MailboxStateHost, client_tls
from hub.channels.email.parse import ParsedEmail, parse_email
from hub.config import EmailChannelSettings
from hub.history.identities import IdentityError
from hub.html_safety import sanitize
from hub.ingest import IngestFailed
from hub.model import Inbound, Message, Outbound, utcnow

log = logging.getLogger("hub.channels.email")

_RE_PREFIX = re.compile(r"^\s*((re|aw|sv|antw|fwd?|wg)\s*(\[\d+\])?\s*:\s*)+", re.I)
#: References kept on a reply: the thread's first email and the latest ones (RFC 5322 suggests trimming the middle)
MAX_REFERENCES = 20


class EmailHost(InboundSink, MailboxStateHost, Protocol):
    """What the email channel needs from the hub beyond the inbound path: thread look-ups (read-only)."""

    async def thread_conversation(self, channel: str, external_ids: list[str]) -> int | None: ...
    async def thread_messages(self, conversation_id: int, channel: str, limit: int = 50) -> list[Message]: ...


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


def text_to_html(text: str) -> str:
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


class EmailChannel(Channel):
    name = "email"
    capabilities = Capabilities(max_text_length=200_000, media=True, html=True)
    identity_kinds = ("email",)
    #: emails of one fetched batch being stored at once
    STORE_CONCURRENCY = 16

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
        self.pollers = [
            MailboxPoller(m, settings, sink, self.receive_batch, self.lock, rng=rng) for m in settings.mailboxes
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self.tls = client_tls(settings)
        if not settings.tls_verify:
            log.warning(
                "channels.email.tls_verify = false: the certificates of the SMTP and IMAP servers are NOT checked; "
                "anyone on the network path can read the mail and the passwords. Trust the server's CA with "
                "channels.email.tls_ca_file instead."
            )

    async def start(self) -> None:
        # One task per mailbox: a mailbox that fails only retries itself.
        for p in self.pollers:
            self._tasks.append(asyncio.create_task(p.run_forever(), name=f"hub-email-{p.key}"))

    async def stop(self) -> None:
        await background.stop(self._tasks)
        self._tasks.clear()

    # -- inbound ------------------------------------------------------------------------------------------------

    def read(self, raw: bytes) -> ParsedEmail:
        return parse_email(
            raw, channel=self.name, allow_remote_images=self.settings.allow_remote_images,
            own_addresses=self.own_addresses,
        )

    def parse(self, payload: Any) -> Inbound:
        parsed = self.read(bytes(payload))
        if parsed.inbound is None or parsed.verdict != "message":
            raise ValueError(parsed.reason or "not a message from a person")
        return parsed.inbound

    async def receive(self, raw: bytes, source: dict[str, Any] | None = None) -> str:
        """Store or flag one email; returns "stored", "duplicate" or "flagged". Raises only when the hub could
        not keep it (the database is down), so the caller fetches it again later."""
        return await self.keep(self.read(raw), raw, source)

    async def receive_batch(self, items: list[tuple[bytes, dict[str, Any]]]) -> list[str]:
        """Store or flag a batch of fetched emails; their outcomes in order. Parsing runs in a worker thread so the
        event loop keeps serving while a big mailbox is imported. Emails are stored concurrently (so the database
        commits many at once), except that an email waits for the earlier ones of the batch it depends on: the
        previous one from the same sender, any it replies to and any with its Message-ID, so threads join and
        duplicates are found exactly as one by one."""
        parsed = await asyncio.to_thread(lambda: [self.read(raw) for raw, _source in items])
        room = asyncio.Semaphore(self.STORE_CONCURRENCY)
        tasks: list[asyncio.Task[str]] = []
        by_message_id: dict[str, int] = {}
        by_sender: dict[str, int] = {}

        async def keep(p: ParsedEmail, raw: bytes, source: dict[str, Any], after: list[asyncio.Task[str]]) -> str:
            if after:
                await asyncio.wait(after)
            async with room:
                return await self.keep(p, raw, source)

        for i, (p, (raw, source)) in enumerate(zip(parsed, items, strict=True)):
            deps = {by_message_id[r] for r in [p.message_id, *p.refs] if r in by_message_id}
            sender = str(p.inbound.identity) if p.inbound is not None else None
            if sender is not None and sender in by_sender:
                deps.add(by_sender[sender])
            tasks.append(asyncio.create_task(keep(p, raw, source, [tasks[j] for j in sorted(deps)])))
            by_message_id.setdefault(p.message_id, i)
            if sender is not None:
                by_sender[sender] = i
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return [str(r) for r in results]

    async def keep(self, parsed: ParsedEmail, raw: bytes, source: dict[str, Any] | None = None) -> str:
        """Store or flag one parsed email (see `receive`)."""
        envelope: dict[str, Any] = {"source": source or {}, "size": len(raw), "message_id": parsed.message_id}
        if parsed.inbound is None or parsed.verdict != "message":
            if parsed.verdict == "bounce" and parsed.bounce_permanent:
                for mid in parsed.bounced:
                    await self.host.update_status(self.name, mid, "failed", f"bounced: {parsed.bounce_reason}"[:500])
            # Machine mail never opens work and is never answered, so it cannot start a reply loop.
            await self.host.flag(
                self.name, parsed.message_id, {**envelope, "eml_base64": base64.b64encode(raw).decode()},
                parsed.reason or parsed.verdict,
            )
            return "flagged"
        inbound = parsed.inbound
        if parsed.refs:
            inbound.thread_conversation_id = await self.host.thread_conversation(self.name, parsed.refs)
        try:
            result = await self.host.ingest(inbound, raw=envelope)
        except IngestFailed:
            return "flagged"  # journaled with the reason; `hub events replay` retries it
        except IdentityError as e:
            await self.host.flag(
                self.name, parsed.message_id, {**envelope, "eml_base64": base64.b64encode(raw).decode()}, str(e)
            )
            return "flagged"
        return "duplicate" if result.duplicate else "stored"

    # -- outbound -----------------------------------------------------------------------------------------------

    async def compose(self, out: Outbound) -> EmailMessage:
        """The reply as an email, threaded onto the conversation's earlier emails."""
        thread = await self.host.thread_messages(out.conversation_id, self.name)
        theirs = [m for m in thread if m.direction == "in" and m.identity == str(out.to)]
        answering = theirs[-1] if theirs else next((m for m in reversed(thread) if m.direction == "in"), None)
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
        if self.settings.reply_to:
            msg["Reply-To"] = self.settings.reply_to
        msg["Subject"] = reply_subject(subject) if subject else "Your message to us"
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
        return SendResult(external_id=str(msg["Message-ID"]).strip("<>"), status="sent")
