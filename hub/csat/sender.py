"""The survey sender: finds surveys whose delay has passed and writes each as an automatic message through the
outbox (the one outbound path), on the channel the customer last wrote on. Runs in every hub process; a survey is
locked while it is written, so it goes out once."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from hub.automatic_sender import AutomaticSender
from hub.csat import surveys
from hub.history import store
from hub.history.db import Tx
from hub.model import format_time, parse_time
from hub.outbox import ReplyError

log = logging.getLogger("hub.csat")

#: the channels a survey can go out on (a call has no text to answer on; the API channel has no customer device)
CHANNELS = ("sms", "whatsapp", "telegram", "email", "webchat")
SCALE = "1 (very unhappy) to 5 (very happy)"


def wording(channel: str, question: str, link: str | None) -> str:
    """The survey's text on CHANNEL; every channel also takes a plain numeric reply."""
    if channel == "telegram":
        return f"{question} Tap a score below, or reply with a number from {SCALE} and a comment if you like."
    if channel == "webchat":
        return f"{question} Pick a score below, or reply with a number from {SCALE}."
    if channel == "email":
        text = f"{question}\n\nReply to this email with a number from {SCALE}, and a comment after it if you like."
        return text + (f"\n\nOr answer on this page: {link}" if link else "")
    return f"{question} Reply with a number from {SCALE}; add a comment after it if you like."


class SurveySender(AutomaticSender):
    def _delay(self, queue: str) -> float | None:
        """Seconds after a resolve to survey QUEUE's customers, or None when the queue does not survey."""
        q = self.settings.routing.queues.get(queue)
        return q.csat_delay if q is not None and q.csat else None

    async def run_once(self, limit: int = 200) -> int:
        """Send (or skip, with the reason) every survey due now; returns how many were handled."""
        now = self.clock()
        rows = await self.db.read(lambda tx: tx.all(
            "SELECT s.id, s.queue, s.resolved_at FROM csat_surveys s JOIN conversations c ON c.id = s.conversation_id "
            "WHERE s.status = 'scheduled' AND c.status = 'resolved' AND s.resolved_at <= ? "
            "ORDER BY s.resolved_at, s.id LIMIT ?", (now, limit)))
        done = 0
        for r in rows:
            delay = self._delay(str(r["queue"]))
            if delay is not None and parse_time(str(r["resolved_at"])) + timedelta(seconds=delay) > parse_time(now):
                continue
            sent = await self.db.write(lambda tx, sid=int(r["id"]): self._send(tx, sid, now))  # type: ignore[misc]
            done += 1
            await self.announce([sent] if sent is not None else [])
        return done

    def _skip(self, tx: Tx, survey_id: int, reason: str) -> None:
        tx.exec("UPDATE csat_surveys SET status = 'skipped', reason = ? WHERE id = ?", (reason, survey_id))

    def _send(self, tx: Tx, survey_id: int, now: str) -> int | None:
        """Write survey SURVEY_ID's message (or skip it, saying why) inside TX; returns the message's id."""
        survey = surveys.load(tx, survey_id, lock=True)
        if survey is None or survey.status != "scheduled":
            return None  # another hub process got here first
        conv = store.conversation(tx, survey.conversation_id)
        if conv.status != "resolved":
            return None  # reopened meanwhile: its next resolve schedules it again
        if self._delay(survey.queue) is None:
            self._skip(tx, survey.id, f"queue {survey.queue or '(none)'} does not survey (its csat is off)")
            return None
        if store.open_conversation(tx, conv.customer_id) is not None:
            self._skip(tx, survey.id, "the customer is already in a new conversation")
            return None
        channel = conv.last_inbound_channel or conv.channel
        if channel not in CHANNELS:
            self._skip(tx, survey.id, f"no survey on the {channel} channel")
            return None
        if channel not in self.outbox.channels:
            self._skip(tx, survey.id, f"channel {channel} is not configured")
            return None
        s = self.settings
        link = None
        if channel == "email" and s.csat.link_secret and s.server.public_url:
            link = f"{s.server.public_url}/csat/{surveys.link_token(s.csat.link_secret, survey.id)}"
        text = wording(channel, s.csat.question, link)
        tx.exec("SAVEPOINT hub_csat")
        try:
            message_id = self.outbox.queue_reply(
                tx, conv.id, text, channel, meta={"automatic": True, "csat": {"survey": survey.id, "question": True}},
            )
        except ReplyError as e:  # opted out (STOP), or no identity to reach them on that channel
            tx.exec("ROLLBACK TO SAVEPOINT hub_csat")
            self._skip(tx, survey.id, str(e))
            return None
        tx.exec("RELEASE SAVEPOINT hub_csat")
        expires = format_time(parse_time(now) + timedelta(hours=s.csat.answer_window_hours))
        tx.exec(
            "UPDATE csat_surveys SET status = 'sent', channel = ?, identity = ?, message_id = ?, sent_at = ?, "
            "expires_at = ? WHERE id = ?",
            (channel, store.message(tx, message_id).identity, message_id, now, expires, survey.id),
        )
        return message_id

    async def run_forever(self) -> None:
        interval = self.settings.csat.poll_interval_seconds
        while True:
            try:
                while await self.run_once() >= 200:
                    pass
            except Exception:
                log.exception("csat: sending surveys failed; retrying in %.0fs", interval)
            await asyncio.sleep(interval)
