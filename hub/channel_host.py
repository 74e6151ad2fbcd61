"""The hub's side of the adapter contract: what an adapter is handed instead of the store (the inbound path, status
updates for the outbound path, and the few reads and writes each kind of channel needs), nothing else."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from hub import visibility
from hub.api.auth import Principal
from hub.channels.base import Arrival, Fact, FactResult, IngestResult, Outcome
from hub.csat import surveys as csat_surveys
from hub.events import Event, Subscription
from hub.history import store
from hub.history.db import Tx
from hub.history.merge import link_identity
from hub.ingest import Ingest
from hub.journal import write as journal_write
from hub.metrics import Metrics
from hub.model import Identity, Inbound, Message, format_time, utcnow
from hub.outbox import Outbox


class ChannelHost:
    """Implements `InboundSink` over the hub's one ingest and one outbox."""

    def __init__(self, ingest: Ingest, outbox: Outbox) -> None:
        self._ingest = ingest
        self._outbox = outbox

    async def ingest(self, inbound: Inbound, raw: Any = None, fingerprint: str | None = None) -> IngestResult:
        return await self._ingest.ingest(inbound, raw, fingerprint)

    async def ingest_batch(self, arrivals: list[Arrival]) -> list[Outcome]:
        return await self._ingest.ingest_batch(arrivals)

    async def flag(
        self, channel: str, dedupe_key: str | None, raw: Any, reason: str, code: str | None = None,
        fingerprint: str | None = None,
    ) -> int:
        return await self._ingest.flag(channel, dedupe_key, raw, reason, code, fingerprint)

    async def record_handled(
        self, channel: str, dedupe_key: str, raw: Any, outcome: str, about: str, fingerprint: str | None = None
    ) -> tuple[int | None, int | None]:
        return await self._ingest.record_handled(channel, dedupe_key, raw, outcome, about, fingerprint)

    async def journaled_raw(self, journal_id: int) -> Any:
        """The raw event as journaled (for an email: where it was fetched from)."""
        row = await self._ingest.db.read(lambda tx: tx.one("SELECT payload FROM journal WHERE id = ?", (journal_id,)))
        return json.loads(row["payload"]).get("raw") if row else None

    @property
    def metrics(self) -> Metrics:
        return self._ingest.metrics

    async def update_status(self, channel: str, external_id: str, status: str, reason: str | None = None) -> bool:
        return await self._outbox.update_status(channel, external_id, status, reason)

    async def record_fact(self, fact: Fact, raw: Any = None) -> FactResult:
        """Journal and apply a provider's later fact about a message (see hub.facts); RAW is the callback as sent."""
        return await self._ingest.facts.record(fact, raw)

    # -- what chat channels need beyond the contract: edits, background file fetches, the visitor's own history ----

    async def edit(
        self, channel: str, dedupe_key: str, external_id: str, text: str, edited_at: str, raw: Any = None
    ) -> Message | None:
        return await self._ingest.edit(channel, dedupe_key, external_id, text, edited_at, raw)

    async def pending_attachments(self, channel: str, limit: int = 20) -> list[tuple[int, str]]:
        now = format_time(utcnow())
        return await self._ingest.db.read(lambda tx: store.pending_attachments(tx, channel, now, limit))

    async def claim_attachments(self, channel: str, lease_seconds: float, limit: int = 20) -> list[tuple[int, str]]:
        """Due downloads, each leased to this process for LEASE_SECONDS (other hub processes skip it meanwhile)."""
        now = utcnow()
        until = format_time(now + timedelta(seconds=lease_seconds))
        return await self._ingest.db.write(
            lambda tx: store.claim_attachments(tx, channel, format_time(now), until, limit)
        )

    async def outgoing_attachments(self, message_id: int) -> list[tuple[int, str]]:
        """(id, filename) of the stored files on an outgoing message."""
        msg = await self._ingest.db.read(lambda tx: store.message(tx, message_id))
        if msg.direction != "out":
            return []
        return [(a.id, a.filename) for a in msg.attachments if a.status == "stored"]

    async def outgoing_file(self, attachment_id: int) -> tuple[str, str, bytes] | None:
        """(filename, content type, bytes) of a stored file on an outgoing message; None for anything else, so a
        customer's own files are never served this way."""

        def load(tx: Tx) -> tuple[str, str, bytes] | None:
            row = tx.one(
                "SELECT m.direction FROM attachments a JOIN messages m ON m.id = a.message_id WHERE a.id = ?",
                (attachment_id,),
            )
            if row is None or row["direction"] != "out":
                return None
            att, data, _customer = store.attachment_data(tx, attachment_id)
            return (att.filename, att.content_type, data) if att.status == "stored" else None

        return await self._ingest.db.read(load)

    async def customer_file(
        self, identity: Identity, channel: str, attachment_id: int
    ) -> tuple[str, str, bytes] | None:
        """(filename, content type, bytes) of a stored file on a CHANNEL message of the customer IDENTITY reaches
        (what that customer sees in the chat, either way); None for anyone else's, so an id cannot be probed."""

        def load(tx: Tx) -> tuple[str, str, bytes] | None:
            customer = store.customer_by_identity(tx, identity)
            row = tx.one(
                "SELECT m.customer_id, m.channel, m.kind FROM attachments a JOIN messages m ON m.id = a.message_id "
                "WHERE a.id = ?", (attachment_id,),
            )
            if customer is None or row is None or int(row["customer_id"]) != customer or row["channel"] != channel \
                    or row["kind"] == "note":
                return None
            att, data, _customer = store.attachment_data(tx, attachment_id)
            return (att.filename, att.content_type, data) if att.status == "stored" else None

        return await self._ingest.db.read(load)

    async def is_resolved(self, conversation_id: int) -> bool:
        conv = await self._ingest.db.read(lambda tx: store.conversation(tx, conversation_id))
        return conv.status == "resolved"

    async def attachment_attempts(self, attachment_id: int) -> int:
        return await self._ingest.db.read(lambda tx: store.attachment_attempts(tx, attachment_id))

    async def finish_attachment(
        self,
        attachment_id: int,
        *,
        data: bytes | None = None,
        content_type: str | None = None,
        error: str | None = None,
        retry_in: float | None = None,
    ) -> None:
        """Store a fetched file, or record why not (retried after RETRY_IN seconds, else failed for good)."""
        retry_at = format_time(utcnow() + timedelta(seconds=retry_in)) if retry_in is not None else None

        def write(tx: Tx) -> Message:
            mid = store.finish_attachment(
                tx, attachment_id, data=data, content_type=content_type, error=error, retry_at=retry_at
            )
            return store.message(tx, mid)

        msg = await self._ingest.db.write(write)
        if data is not None or retry_at is None:
            await self._ingest.bus.publish(Event("message.updated", {"message": msg.to_json()}))

    async def history(self, identity: Identity, channel: str, limit: int) -> list[tuple[Message, str | None]]:
        """What the customer owning IDENTITY sees again on CHANNEL: its messages there, with agents' names."""

        def load(tx: Tx) -> list[tuple[Message, str | None]]:
            customer_id = store.customer_by_identity(tx, identity)
            return [] if customer_id is None else store.channel_history(tx, customer_id, channel, limit)

        return await self._ingest.db.read(load)

    async def is_customer(self, identity: Identity) -> bool:
        """Whether IDENTITY already has a customer here (a returning visitor)."""
        return await self._ingest.db.read(lambda tx: store.customer_by_identity(tx, identity)) is not None

    async def typing_target(
        self, principal: Principal, conversation_id: int, channel: str
    ) -> tuple[str | None, str | None, int]:
        """Where PRINCIPAL's typing in CONVERSATION_ID shows: (the identity its last CHANNEL message came from, the
        agent's name, the customer id). NotFound when PRINCIPAL may not act on it, as if it did not exist."""

        def load(tx: Tx) -> tuple[str | None, str | None, int]:
            conv = store.conversation(tx, conversation_id)
            if not visibility.may_act(principal, conv.queue, conv.agent_id):
                raise store.NotFound(f"conversation {conversation_id} does not exist")
            ident = store.last_inbound_identity(tx, conversation_id, channel)
            names = store.agent_names(tx, {principal.agent_id}) if principal.agent_id is not None else {}
            return ident, names.get(principal.agent_id) if principal.agent_id is not None else None, conv.customer_id

        return await self._ingest.db.read(load)

    async def agent_name(self, message_id: int) -> str | None:
        def load(tx: Tx) -> str | None:
            agent_id = store.message(tx, message_id).agent_id
            return None if agent_id is None else store.agent_names(tx, {agent_id}).get(agent_id)

        return await self._ingest.db.read(load)

    async def customer_typing(self, channel: str, identity: Identity, typing: bool) -> None:
        """Tell the console the customer is (or stopped) typing in their open conversation."""

        def load(tx: Tx) -> tuple[int, int] | None:
            row = tx.one(
                "SELECT c.id, c.customer_id FROM conversations c JOIN identities i ON i.customer_id = c.customer_id "
                "WHERE i.kind = ? AND i.value = ? AND c.status <> 'resolved'",
                (identity.kind, identity.value),
            )
            return (int(row["id"]), int(row["customer_id"])) if row else None

        found = await self._ingest.db.read(load)
        if found is not None:
            await self._ingest.bus.publish(
                Event("typing", {"conversation_id": found[0], "customer_id": found[1], "channel": channel,
                                 "who": "customer", "typing": typing})
            )

    async def link_identity(
        self, channel: str, dedupe_key: str, old: Identity, new: Identity, raw: Any, *, text: str,
        meta: dict[str, Any], occurred_at: str | None = None,
    ) -> str:
        """The provider states that NEW now reaches whoever OLD reached (a Telegram group upgraded to a supergroup):
        journaled under DEDUPE_KEY, then NEW joins OLD's customer (see `hub.history.merge.link_identity`) with TEXT
        on the timeline. Returns "linked", "merged" (NEW was a customer of its own), "unchanged" (linked already),
        "duplicate" (a retry) or "ignored" (neither is a customer here)."""
        payload = json.dumps({"inbound": None, "raw": raw, "link": {"old": str(old), "new": str(new)}}, default=str)
        now = format_time(utcnow())

        def write(tx: Tx) -> tuple[str, int | None, int | None]:
            j = journal_write(tx, channel, dedupe_key, payload, now)
            if j.status != "pending":
                return "duplicate", None, None
            linked = link_identity(tx, old, new, now, channel=channel, text=text, meta=meta, occurred_at=occurred_at)
            if linked.customer_id is None:
                tx.exec("UPDATE journal SET status = 'rejected', error = ?, processed_at = ? WHERE id = ?",
                        (f"ignored: neither {old} nor {new} is a customer here", now, j.id))
                return "ignored", None, None
            tx.exec("UPDATE journal SET status = 'done', message_id = ?, processed_at = ?, attempts = attempts + 1 "
                    "WHERE id = ?", (linked.event_id, now, j.id))
            if linked.event_id is None:
                return "unchanged", None, None
            return ("merged" if linked.merged_customer_id else "linked"), linked.event_id, linked.merged_customer_id

        outcome, event_id, merged_id = await self._ingest.db.write(write)
        if event_id is not None:
            msg, conv, customer = await self._ingest.db.read(
                lambda tx: (m := store.message(tx, event_id), store.conversation(tx, m.conversation_id),
                            store.customer(tx, m.customer_id))
            )
            if merged_id is not None:
                await self._ingest.bus.publish(
                    Event("customer.merged", {"customer": customer.to_json(), "merged_customer_id": merged_id})
                )
            await self._ingest.bus.publish(
                Event("message.created", {"message": msg.to_json(), "conversation": conv.to_json(),
                                          "customer": customer.to_json()})
            )
        return outcome

    async def publish(self, event: Event) -> None:
        """Put EVENT on the event bus (seen by every hub process when the bus is Redis)."""
        await self._ingest.bus.publish(event)

    def subscribe(self) -> Subscription:
        return self._ingest.bus.subscribe()

    # -- what phone channels need beyond the contract: later facts about a message, opt-outs ---------------------

    async def amend(
        self, channel: str, external_id: str, *, text: str | None = None, meta: dict[str, Any] | None = None,
        summarize: Callable[[dict[str, Any]], str] | None = None,
    ) -> Message | None:
        """Add what the provider learned later about an inbound message (a call's outcome, a voicemail's
        transcript). Idempotent, so a retried callback changes nothing; None if no such message. SUMMARIZE makes
        the text from the merged meta in the same transaction, so no reader sees the facts without their text."""
        now = format_time(utcnow())

        def write(tx: Tx) -> Message | None:
            message_id = store.inbound_by_external_id(tx, channel, external_id)
            if message_id is None:
                return None
            store.amend_message(tx, message_id, text, meta or {}, now)
            msg = store.message(tx, message_id)
            if summarize is not None and (retext := summarize(msg.meta)) != msg.text:
                store.amend_message(tx, message_id, retext, {}, now)
                msg = store.message(tx, message_id)
            return msg

        msg = await self._ingest.db.write(write)
        if msg is not None:
            await self._ingest.bus.publish(Event("message.updated", {"message": msg.to_json()}))
        return msg

    async def set_opt_out(self, identity: Identity, channel: str, keyword: str | None) -> None:
        """IDENTITY opted out of CHANNEL with KEYWORD (STOP...), or back in with None (START)."""
        now = format_time(utcnow())
        await self._ingest.db.write(lambda tx: store.set_opt_out(tx, str(identity), channel, keyword, now))

    async def call_survey(self, call_sid: str) -> tuple[int, str] | None:
        """Open the satisfaction survey of the call CALL_SID, asked on the line (hub.csat): (survey id, question),
        or None when this call is not to be surveyed."""
        s = self._ingest.settings
        surveyed = {name for name, q in s.routing.queues.items() if q.csat}
        if not surveyed:
            return None
        now = utcnow()
        # The caller answers now or never: a short window, so a digit pressed later in another call is no answer.
        expires = format_time(now + timedelta(minutes=10))
        survey = await self._ingest.db.write(
            lambda tx: csat_surveys.open_for_call(tx, call_sid, surveyed, format_time(now), expires))
        return (survey, s.csat.question) if survey is not None else None

    async def opted_out(self, identity: Identity, channel: str) -> tuple[str, str] | None:
        """(keyword, when) if IDENTITY opted out of CHANNEL."""
        return await self._ingest.db.read(lambda tx: store.opt_out(tx, str(identity), channel))

    # -- what the email channel needs: thread look-ups, and per-mailbox sync state with a lease ------------------

    async def thread_messages(self, conversation_id: int, channel: str, limit: int = 50) -> list[Message]:
        return await self._ingest.db.read(
            lambda tx: store.recent_channel_messages(tx, conversation_id, channel, limit)
        )

    async def mailbox_state(self, mailbox: str) -> tuple[int, int] | None:
        return await self._ingest.db.read(lambda tx: store.mailbox_state(tx, mailbox))

    async def save_mailbox_state(self, mailbox: str, uidvalidity: int, last_uid: int) -> None:
        now = format_time(utcnow())
        await self._ingest.db.write(lambda tx: store.save_mailbox_state(tx, mailbox, uidvalidity, last_uid, now))

    async def lease_mailbox(self, mailbox: str, owner: str, seconds: float) -> bool:
        """Take or renew the right to poll MAILBOX; False while another process holds it."""
        now = utcnow()
        until = format_time(now + timedelta(seconds=seconds))
        return await self._ingest.db.write(lambda tx: store.lease_mailbox(tx, mailbox, owner, until, format_time(now)))

    async def release_mailbox(self, mailbox: str, owner: str) -> None:
        await self._ingest.db.write(lambda tx: store.release_mailbox(tx, mailbox, owner))

    async def outbound_files(self, message_id: int) -> list[tuple[str, str, bytes]]:
        """(filename, content type, bytes) of the stored files on an outgoing message, for channels that send media."""

        def load(tx: Tx) -> list[tuple[str, str, bytes]]:
            out = []
            for a in store.message(tx, message_id).attachments:
                if a.status == "stored":
                    _att, data, _customer = store.attachment_data(tx, a.id)
                    out.append((a.filename, a.content_type, data))
            return out

        return await self._ingest.db.read(load)
