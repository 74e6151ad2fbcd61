"""The IMAP side of the email channel: one poller per mailbox, IDLE when offered, incremental by UID.

Progress is `(UIDVALIDITY, last UID)` per mailbox, saved after each batch is durably ingested: a restart neither
re-imports nor skips, and anything fetched twice (a crash between ingest and save, a UIDVALIDITY change) is
deduplicated by Message-ID in the journal. One process polls a mailbox at a time (`MailboxLock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aioimaplib

from hub import fail_points
from hub.config import EmailChannelSettings, MailboxSettings

log = logging.getLogger("hub.channels.email")
_imap_log = logging.getLogger("aioimaplib.aioimaplib")

#: what the channel does with a batch of fetched emails (bytes, where each came from; and what `Read` made of them,
#: when it is given): stores or flags each durably and returns their outcomes in order ("stored"/"duplicate"/
#: "flagged"); raises only when it could not keep one (database down), and then the whole batch is fetched again
#: later and deduplicated
Deliver = Callable[[list[tuple[bytes, dict[str, Any]]], Any], Awaitable[list[str]]]
#: what the channel makes of a fetched batch before it delivers it (parses it, one result per email in order): run
#: while the batch before it is being stored
Read = Callable[[list[bytes]], Awaitable[list[Any]]]

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")
_FETCH_UID = re.compile(rb"\bUID (\d+)")
_LOST = "connection lost"


class MailboxStateHost(Protocol):
    """Where a poller keeps its progress and its lease (the hub's store; see ChannelHost)."""

    async def mailbox_state(self, mailbox: str) -> tuple[int, int] | None: ...
    async def save_mailbox_state(self, mailbox: str, uidvalidity: int, last_uid: int) -> None: ...
    async def lease_mailbox(self, mailbox: str, owner: str, seconds: float) -> bool: ...
    async def release_mailbox(self, mailbox: str, owner: str) -> None: ...


class MailboxLock(Protocol):
    """The right to poll one mailbox, held by one process at a time. Scale-out may swap in a Redis lock."""

    #: how often the holder renews (seconds)
    renew_every: float

    async def acquire(self, mailbox: str) -> bool:
        """Take or renew; False while another process holds it."""

    async def release(self, mailbox: str) -> None: ...


class LeaseLock:
    """A lease in the shared database: works across processes on PostgreSQL, and is cheap on SQLite."""

    def __init__(self, host: MailboxStateHost, seconds: float, owner: str | None = None) -> None:
        self.host = host
        self.seconds = seconds
        self.renew_every = seconds / 3
        self.owner = owner or f"{os.uname().nodename}:{os.getpid()}:{id(self):x}"

    async def acquire(self, mailbox: str) -> bool:
        return await self.host.lease_mailbox(mailbox, self.owner, self.seconds)

    async def release(self, mailbox: str) -> None:
        await self.host.release_mailbox(mailbox, self.owner)


class ImapError(Exception):
    """The server refused something we need (login, select); the session is retried with backoff."""


@dataclass
class SyncStats:
    fetched: int = 0
    stored: int = 0
    duplicate: int = 0
    flagged: int = 0
    #: delivery failures of our own replies (see EmailChannel._bounce)
    bounced: int = 0


def client_tls(settings: EmailChannelSettings) -> ssl.SSLContext:
    """How the hub checks the mail servers' certificates: the system's authorities plus `tls_ca_file`; with
    `tls_verify = false`, not at all (EmailChannel logs a warning about that at start)."""
    ctx = ssl.create_default_context()
    if settings.tls_ca_file:
        ctx.load_verify_locations(cafile=settings.tls_ca_file)
    if not settings.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def backoff_delay(attempt: int, cap: float, rng: random.Random, base: float = 1.0) -> float:
    """Capped exponential backoff with jitter, so many mailboxes failing together do not reconnect together."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return rng.uniform(ceiling / 2, ceiling)


def parse_fetch(lines: list[Any]) -> list[tuple[int, bytes]]:
    """(UID, message bytes) pairs from a UID FETCH response, whichever order the server put UID and BODY[] in."""
    out: list[tuple[int, bytes]] = []
    for i, item in enumerate(lines):
        if not isinstance(item, bytearray):  # aioimaplib hands literals (the message bodies) over as bytearray
            continue
        uid = None
        before = lines[i - 1] if i > 0 else b""
        after = lines[i + 1] if i + 1 < len(lines) else b""
        for around in (before, after):
            if isinstance(around, bytes) and (m := _FETCH_UID.search(around)):
                uid = int(m.group(1))
                break
        if uid is not None:
            out.append((uid, bytes(item)))
    return out


class _Protocol(aioimaplib.IMAP4ClientProtocol):  # type: ignore[misc]  # aioimaplib has no type hints
    """aioimaplib's protocol, fed what arrives in pieces of PIECE bytes. It copies the rest of what it was handed
    at every line and literal it reads, and formats all of it for a debug line, so a 256 KiB read of a FETCH
    response (what asyncio hands over when mail streams in) cost about 90 us an email, in pieces about 10 us
    (`bench.email_import`). The stream is the same whichever way it is cut."""

    PIECE = 16384
    incomplete_line: bytes
    current_command: Any

    def data_received(self, d: bytes) -> None:
        if _imap_log.isEnabledFor(logging.DEBUG):
            _imap_log.debug("Received : %s", d)
        for i in range(0, len(d), self.PIECE):
            # As aioimaplib's data_received, less its unconditional debug formatting.
            try:
                self._handle_responses(self.incomplete_line + d[i : i + self.PIECE], self._handle_line,
                                       self.current_command)
                self.incomplete_line = b""
                self.current_command = None
            except aioimaplib.IncompleteRead as incomplete:
                self.current_command = incomplete.cmd
                self.incomplete_line = incomplete.data


class _Client(aioimaplib.IMAP4):  # type: ignore[misc]
    """aioimaplib's client with `_Protocol`."""

    def create_client(self, host: str, port: int, loop: asyncio.AbstractEventLoop,
                      conn_lost_cb: Callable[[Exception | None], None] | None = None,
                      ssl_context: ssl.SSLContext | None = None) -> None:
        local_loop = loop if loop is not None else asyncio.get_running_loop()
        self.protocol = _Protocol(local_loop, conn_lost_cb)
        self._client_task = local_loop.create_task(
            local_loop.create_connection(lambda: self.protocol, host, port, ssl=ssl_context))


class MailboxPoller:
    """Reads one mailbox forever: sync, then IDLE (or sleep) until something new, then sync again."""

    def __init__(
        self,
        mailbox: MailboxSettings,
        settings: EmailChannelSettings,
        state: MailboxStateHost,
        deliver: Deliver,
        lock: MailboxLock,
        rng: random.Random | None = None,
        base_delay: float = 1.0,
        read: Read | None = None,
    ) -> None:
        self.mailbox = mailbox
        self.read = read
        self.settings = settings
        self.state = state
        self.deliver = deliver
        self.lock = lock
        self.rng = rng or random.Random()
        self.base_delay = base_delay
        self.key = mailbox.name
        self.stats = SyncStats()
        #: set after each completed sync pass (tests and the demo wait on it)
        self.synced = asyncio.Event()
        self.passes = 0
        self.sessions = 0
        self._healthy = False
        #: None until the first session connects or fails; then whether the last one is logged in, and why not
        self.up: bool | None = None
        self.problem: str | None = None
        self.on_health: Callable[[MailboxPoller], None] | None = None
        self._client: aioimaplib.IMAP4 | None = None
        self._lost = asyncio.Event()

    # -- the outer loop: lock, session, backoff ---------------------------------------------------------------

    async def run_forever(self) -> None:
        attempt = 0
        waiting_logged = False
        while True:
            try:
                if not await self.lock.acquire(self.key):
                    if not waiting_logged:
                        log.info("mailbox %s: another process polls it; standing by", self.key)
                        waiting_logged = True
                    await asyncio.sleep(self.lock.renew_every)
                    continue
                waiting_logged = False
                attempt = 0 if await self._hold_and_run() else attempt + 1
            except asyncio.CancelledError:
                raise
            except Exception as e:
                # A session that worked before dropping starts the backoff over; repeated failures grow it.
                attempt = 1 if self._healthy else attempt + 1
                self._healthy = False
                self._health(False, f"{type(e).__name__}: {e or 'dropped'}")
                delay = backoff_delay(attempt, self.settings.reconnect_max_delay_seconds, self.rng, self.base_delay)
                log.warning("mailbox %s: %s: %s; reconnecting in %.1fs (attempt %d)",
                            self.key, type(e).__name__, e or "dropped", delay, attempt)
                await asyncio.sleep(delay)
            finally:
                await self._disconnect()

    async def _hold_and_run(self) -> bool:
        """Run a session while renewing the lock; returns True if the session had connected before it ended."""
        self._lost = asyncio.Event()  # this session's connection dropped (set by _connect's callback)
        session = asyncio.create_task(self._session(), name=f"hub-imap-{self.key}")
        lost = asyncio.create_task(self._lost.wait())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {session, lost}, timeout=self.lock.renew_every, return_when=asyncio.FIRST_COMPLETED
                )
                if session in done:
                    session.result()
                    return True
                if lost in done:
                    # aioimaplib leaves a command (or the greeting) in flight when the socket drops, to wait out
                    # its 30s timeout: give the session a moment to notice by itself (IDLE does), then end it.
                    done, _ = await asyncio.wait({session}, timeout=1.0)
                    if done:
                        session.result()
                        return True
                    raise ConnectionError("connection lost while waiting for the server")
                if not await self.lock.acquire(self.key):
                    log.warning("mailbox %s: lost the polling lock to another process; standing by", self.key)
                    return True
        finally:
            lost.cancel()
            if not session.done():
                session.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await session
            with contextlib.suppress(Exception):
                await self.lock.release(self.key)

    async def stop(self) -> None:
        await self._disconnect()

    def _health(self, up: bool, problem: str | None) -> None:
        self.up, self.problem = up, problem
        if self.on_health is not None:
            self.on_health(self)

    # -- one session: connect, sync, wait, sync... --------------------------------------------------------------

    async def _connect(self) -> aioimaplib.IMAP4:
        mb = self.mailbox
        lost = self._lost

        def on_lost(exc: Exception | None) -> None:
            # aioimaplib does not wake an IDLE waiter when the socket drops: do it, so we reconnect at once.
            lost.set()
            if client.protocol is not None:
                client.protocol.idle_queue.put_nowait(_LOST)

        ctx = client_tls(self.settings) if mb.security == "tls" else None
        client = _Client(
            host=mb.host, port=mb.port, timeout=30, conn_lost_cb=on_lost, ssl_context=ctx,
        )
        self._client = client
        await client.wait_hello_from_server()
        if mb.security == "starttls":
            await self._starttls(client)
        resp = await client.login(mb.username, mb.password)
        if resp.result != "OK":
            raise ImapError(f"login as {mb.username} refused: {_text(resp.lines)}")
        return client

    async def _starttls(self, client: aioimaplib.IMAP4) -> None:
        """Upgrade the plain connection to TLS before logging in (RFC 3501 STARTTLS; aioimaplib has no call for it,
        so the command is sent through its protocol and the transport upgraded by asyncio)."""
        proto = client.protocol
        assert proto is not None and proto.transport is not None
        if "STARTTLS" not in proto.capabilities:
            await proto.capability()
        if "STARTTLS" not in proto.capabilities:
            raise ImapError(f"{self.mailbox.host}:{self.mailbox.port} does not offer STARTTLS; use security = "
                            '"tls" (port 993)')
        resp = await proto.execute(aioimaplib.Command("STARTTLS", proto.new_tag(), loop=proto.loop))
        if resp.result != "OK":
            raise ImapError(f"STARTTLS refused: {_text(resp.lines)}")
        transport = await asyncio.get_running_loop().start_tls(
            proto.transport, proto, client_tls(self.settings), server_hostname=self.mailbox.host
        )
        if transport is None:
            raise ImapError("STARTTLS: the connection closed during the TLS handshake")
        proto.transport = transport
        await proto.capability()  # what the server offers may change once the connection is private

    async def _select(self, client: aioimaplib.IMAP4) -> tuple[int, int | None]:
        """Open the folder: its UIDVALIDITY and UIDNEXT (None if the server leaves it out)."""
        resp = await client.select(self.mailbox.folder)
        if resp.result != "OK":
            raise ImapError(f"cannot open folder {self.mailbox.folder!r}: {_text(resp.lines)}")
        uidvalidity = _response_code(resp.lines, _UIDVALIDITY)
        if uidvalidity is None:
            raise ImapError("server did not report UIDVALIDITY on SELECT; cannot sync incrementally")
        return uidvalidity, _response_code(resp.lines, _UIDNEXT)

    async def _session(self) -> None:
        client = await self._connect()
        self.sessions += 1
        uidvalidity, uidnext = await self._select(client)
        self._healthy = True
        self._health(True, None)
        idle = self.mailbox.use_idle and client.has_capability("IDLE")
        log.info("mailbox %s: connected to %s:%d/%s (%s)", self.key, self.mailbox.host, self.mailbox.port,
                 self.mailbox.folder, "IDLE" if idle else f"polling every {self.mailbox.poll_interval_seconds:g}s")
        while True:
            highest = await self.sync(client, uidvalidity)
            self.passes += 1
            self.synced.set()
            if idle:
                # Mail that arrives during a pass is announced once, as an untagged EXISTS beside our SEARCH, FETCH
                # or STORE, which aioimaplib drops; IDLE would not announce it again. Selecting again shows it: a
                # UIDNEXT past what the pass saw, and changed since the last look (else the gap is mail deleted
                # before we saw it), means sync again now. What arrives after this SELECT, IDLE announces.
                uidvalidity, now_next = await self._select(client)
                arrived = now_next is not None and now_next > highest + 1 and now_next != uidnext
                uidnext = now_next
                if arrived:
                    continue
                await self._idle(client)
            else:
                await asyncio.sleep(self.mailbox.poll_interval_seconds)
                resp = await client.noop()
                if resp.result != "OK":
                    raise ImapError(f"NOOP failed: {_text(resp.lines)}")

    async def _idle(self, client: aioimaplib.IMAP4) -> None:
        """Wait in IDLE until the server reports new mail or it is time to re-issue IDLE (servers drop IDLE
        after 30 minutes, so we renew before 29)."""
        renew = self.settings.idle_renew_seconds
        waiter = await client.idle_start(timeout=renew)
        try:
            while client.has_pending_idle():
                push = await client.wait_server_push(timeout=renew + 60)
                if push == _LOST:
                    raise ConnectionError("connection dropped during IDLE")
                if push == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    return
                lines = [ln for ln in push if isinstance(ln, bytes)] if isinstance(push, list) else []
                if any(ln.startswith(b"BYE") or ln.endswith(b"BYE") or b" BYE " in ln for ln in lines):
                    self._lost.set()  # the socket closes next; DONE would go unanswered
                    raise ConnectionError("server closed the connection during IDLE")
                if any(ln.endswith(b"EXISTS") or ln.endswith(b"RECENT") for ln in lines):
                    return
        finally:
            if self._lost.is_set():
                waiter.cancel()  # nobody will ever answer DONE on a dead socket
            elif client.has_pending_idle():
                client.idle_done()
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(waiter, 30)

    async def sync(self, client: aioimaplib.IMAP4, uidvalidity: int) -> int:
        """Import everything after the last UID seen, in batches, saving progress after each. Returns the highest
        UID in the folder when it searched (0 if empty)."""
        saved = await self.state.mailbox_state(self.key)
        last_uid = 0
        if saved is not None and saved[0] == uidvalidity:
            last_uid = saved[1]
        elif saved is not None:
            log.warning("mailbox %s: UIDVALIDITY changed (%d -> %d): the server renumbered its mail; re-reading "
                        "all of it, deduplicated by Message-ID", self.key, saved[0], uidvalidity)
        resp = await client.uid_search(f"UID {last_uid + 1}:*")
        if resp.result != "OK":
            raise ImapError(f"UID SEARCH failed: {_text(resp.lines)}")
        uids = sorted(
            {int(u) for ln in resp.lines[:-1] if isinstance(ln, bytes) for u in ln.split() if u.isdigit()}
        )
        # "UID n:*" always answers the highest UID, even below n.
        highest = max(uids, default=0)
        uids = [u for u in uids if u > last_uid]
        if not uids:
            if saved is None or saved[0] != uidvalidity:
                await self.state.save_mailbox_state(self.key, uidvalidity, last_uid)
            return highest
        total, done, started = len(uids), 0, time.monotonic()
        big = total > self.settings.fetch_batch * 4
        if big:
            log.info("mailbox %s: importing %d emails", self.key, total)
        batches = [uids[i : i + self.settings.fetch_batch] for i in range(0, total, self.settings.fetch_batch)]
        # The next batch is on its way from the server, and read, while this one is stored.
        upcoming = asyncio.create_task(self._fetch(client, batches[0]))
        try:
            for n, batch in enumerate(batches):
                fetched = await upcoming
                if n + 1 < len(batches):
                    upcoming = asyncio.create_task(self._fetch(client, batches[n + 1]))
                await self._import_batch(client, uidvalidity, batch, fetched)
                done += len(batch)
                if big:
                    rate = done / max(1e-6, time.monotonic() - started)
                    log.info("mailbox %s: imported %d/%d emails (%.0f/s)", self.key, done, total, rate)
        finally:
            if not upcoming.done():
                upcoming.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await upcoming
        return highest

    async def _fetch(self, client: aioimaplib.IMAP4, batch: list[int]) -> tuple[dict[int, bytes], list[Any] | None]:
        """The batch's emails by UID, and what `read` made of them (in UID order), if it is given."""
        resp = await client.uid("fetch", ",".join(str(u) for u in batch), "(UID BODY.PEEK[])")
        if resp.result != "OK":
            raise ImapError(f"UID FETCH failed: {_text(resp.lines)}")
        fetched = dict(parse_fetch(resp.lines))
        if self.read is None:
            return fetched, None
        return fetched, await self.read([fetched[u] for u in batch if u in fetched])

    async def _import_batch(
        self, client: aioimaplib.IMAP4, uidvalidity: int, batch: list[int],
        fetched: tuple[dict[int, bytes], list[Any] | None],
    ) -> None:
        emails, read = fetched
        uid_set = ",".join(str(u) for u in batch)
        # A UID missing from FETCH was expunged between SEARCH and FETCH.
        present = [u for u in batch if u in emails]
        where = {"mailbox": self.key, "folder": self.mailbox.folder, "uidvalidity": uidvalidity}
        outcomes = await self.deliver([(emails[u], {**where, "uid": u}) for u in present], read)
        self.stats.fetched += len(present)
        for outcome in outcomes:
            setattr(self.stats, outcome, getattr(self.stats, outcome, 0) + 1)
        # Only now, with every email in the batch durable, does the server hear that we have it. A kill here
        # fetches the batch again after the restart: deduplicated, nothing lost (tests/channels/email/test_batch.py).
        fail_points.hit("email.before_seen")
        if self.mailbox.after_processing == "move":
            await self._move(client, uid_set)
        else:
            resp = await client.uid("store", uid_set, "+FLAGS.SILENT (\\Seen)")
            if resp.result != "OK":
                log.warning("mailbox %s: could not flag %s \\Seen: %s", self.key, uid_set, _text(resp.lines))
        await self.state.save_mailbox_state(self.key, uidvalidity, batch[-1])

    async def _move(self, client: aioimaplib.IMAP4, uid_set: str) -> None:
        target = self.mailbox.move_to
        if client.has_capability("MOVE"):
            resp = await client.uid("move", uid_set, target)
        else:
            resp = await client.uid("copy", uid_set, target)
            if resp.result == "OK":
                await client.uid("store", uid_set, "+FLAGS.SILENT (\\Deleted)")
                resp = await client.expunge()
        if resp.result != "OK" and "TRYCREATE" in _text(resp.lines):
            await client.create(target)
            return await self._move(client, uid_set)
        if resp.result != "OK":
            log.warning("mailbox %s: could not move %s to %s: %s", self.key, uid_set, target, _text(resp.lines))
        return None

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            if not self._lost.is_set():
                if client.has_pending_idle():
                    client.idle_done()
                await asyncio.wait_for(client.logout(), 5)
        with contextlib.suppress(Exception):
            if client.protocol is not None and client.protocol.transport is not None:
                client.protocol.transport.close()


def _response_code(lines: list[Any], code: re.Pattern[bytes]) -> int | None:
    """The number of a response code such as [UIDVALIDITY n] in a command's answer, or None."""
    for line in lines:
        if isinstance(line, bytes) and (m := code.search(line)):
            return int(m.group(1))
    return None


def _text(lines: list[Any]) -> str:
    return " ".join(ln.decode(errors="replace") for ln in lines if isinstance(ln, bytes))[:300]
