"""The campaign sender: starts campaigns whose time has come and writes their messages through the outbox (the one
outbound path) at each campaign's rate. Runs in every hub process. Each recipient's message and the mark that it
was written are one transaction, so a hub killed mid-campaign resumes where it stopped and sends nobody twice; the
rate is counted from the store, so it holds across restarts and processes."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from datetime import timedelta

from hub import fail_points
from hub.automatic_sender import AutomaticSender
from hub.campaigns import campaign_store, templates
from hub.campaigns.campaign_store import Campaign, rendered
from hub.config import Settings
from hub.events import EventBus
from hub.history import store
from hub.history.db import Database, Tx
from hub.model import format_time, parse_time, utcnow
from hub.outbox import Outbox, ReplyError

log = logging.getLogger("hub.campaigns")

#: the most messages one transaction writes (a fast campaign is written in several)
BATCH = 100


class CampaignSender(AutomaticSender):
    def __init__(self, db: Database, settings: Settings, outbox: Outbox, bus: EventBus,
                 clock: Callable[[], str] = lambda: format_time(utcnow())) -> None:
        super().__init__(db, settings, outbox, bus, clock)
        #: set when a campaign is made, so one due now starts without waiting for the poll
        self.wake = asyncio.Event()

    async def run_once(self) -> int:
        """Start what is due and write what each running campaign's rate allows now; returns messages written."""
        now = self.clock()
        written = 0
        for cid in await self.db.read(lambda tx: campaign_store.due(tx, now)):
            try:
                ids = await self.db.write(lambda tx, c=cid: self._pass(tx, c, now))  # type: ignore[misc]
            except fail_points.FailPointHit:
                raise
            except Exception:
                log.exception("campaign %d: a pass failed; it is tried again", cid)
                continue
            written += len(ids)
            await self.announce(ids)
        return written

    def _allowed(self, tx: Tx, campaign: Campaign, now: str) -> int:
        """How many more messages the rate allows now: at most rate_per_minute over any minute, and spread over
        the minute (a pass writes its share of one poll interval, not the whole minute's at once)."""
        since = format_time(parse_time(now) - timedelta(seconds=60))
        left = campaign.rate_per_minute - campaign_store.recent(tx, campaign.id, since)
        share = math.ceil(campaign.rate_per_minute * self.settings.campaigns.poll_interval_seconds / 60)
        return max(0, min(left, share, BATCH))

    def _pass(self, tx: Tx, campaign_id: int, now: str) -> list[int]:
        campaign = campaign_store.get(tx, campaign_id, lock=True)  # one process at a time works on a campaign
        if campaign.status == "scheduled" and campaign.scheduled_at <= now:
            campaign_store.start(tx, campaign, self.settings.identities.default_region,
                                 self.settings.campaigns.max_recipients, now)
            campaign.status = "running"
        if campaign.status != "running":
            return []
        written = []
        for r in campaign_store.pending(tx, campaign.id, self._allowed(tx, campaign, now)):
            mid = self._send(tx, campaign, int(r["position"]), r["customer_id"], str(r["identity"]), now)
            if mid is not None:
                written.append(mid)
        if not campaign_store.pending(tx, campaign.id, 1):
            campaign_store.finish(tx, campaign.id, "done", now)
        return written

    def _send(self, tx: Tx, campaign: Campaign, position: int, customer_id: int | None, identity: str,
              now: str) -> int | None:
        """Write one recipient's message and mark it written (or skip them, with the reason), inside TX."""
        ident = campaign_store.identity_of(identity)
        if customer_id is None:  # a listed identity the hub did not know: they become a customer now
            customer_id, _ = store.resolve_identity(tx, ident, None, now)
        else:
            current = store.customer(tx, customer_id)
            if current.merged_into is not None:
                customer_id = int(current.merged_into)
        candidate = campaign_store.candidate(tx, customer_id, identity)
        text, why = rendered(campaign.text, candidate)
        subject, why_subject = rendered(campaign.subject, candidate) if campaign.subject else (None, None)
        if text is None or why_subject is not None:
            campaign_store.mark_skipped(tx, campaign.id, position, why or why_subject or "")
            return None
        meta: dict[str, object] = {"automatic": True, "campaign": campaign.id}
        if subject:
            meta["email"] = {"subject": subject}
        if campaign.template is not None:  # WhatsApp sends the approved template with this recipient's values
            values, why = templates.values(campaign.template["variables"], candidate.profile())
            if values is None:
                campaign_store.mark_skipped(tx, campaign.id, position, why or "")
                return None
            meta["template"] = {"sid": campaign.template["sid"], "variables": values}
        tx.exec("SAVEPOINT hub_campaign")
        try:
            conv, _ = store.record_without_routing(tx, customer_id, campaign.channel,
                                                   self.settings.routing.default_queue, None, now)
            message_id = self.outbox.queue_reply(tx, conv.id, text, campaign.channel, meta=meta, to=ident)
        except ReplyError as e:  # opted out since the start, a text too long for the channel, ...
            tx.exec("ROLLBACK TO SAVEPOINT hub_campaign")
            campaign_store.mark_skipped(tx, campaign.id, position, str(e))
            return None
        tx.exec("RELEASE SAVEPOINT hub_campaign")
        # The message and its outbox row are written, the recipient is not yet marked: one transaction, so a kill
        # here leaves neither, and the recipient is still pending at the next start.
        fail_points.hit("campaign.before_mark")
        campaign_store.mark_queued(tx, campaign.id, position, customer_id, message_id, now,
                                   self.settings.campaigns.reply_window_hours)
        return message_id

    async def run_forever(self) -> None:
        interval = self.settings.campaigns.poll_interval_seconds
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("campaigns: a pass failed; retrying in %.0fs", interval)
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), interval)
            except TimeoutError:
                pass
