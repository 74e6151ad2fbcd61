"""Satisfaction surveys in the store: scheduled at a resolve, sent by hub.csat.sender, answered through the inbound
path (hub.ingest asks `answer_for` which survey a customer's message answers). One survey per conversation at most."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from hub.history.db import Row, Tx
from hub.model import ANSWER_META, Conversation, Inbound

#: what a survey can be: waiting for its delay, out with the customer, answered, or never sent (reason says why)
STATUSES = ("scheduled", "sent", "answered", "skipped")
COLUMNS = ("id, conversation_id, customer_id, queue, agent_id, status, resolved_at, channel, identity, message_id, "
           "sent_at, expires_at, score, comment, answered_at, answer_message_id, reason")
# A reply that is a score: "4", " 5/5", "3 - slow but fine", "2, nobody called back". The rest is the comment.
_SCORE = re.compile(r"\s*([1-5])(?:\s*/\s*5)?(?:\s*[.,;:!)\-\u2013\u2014]*\s*(.*))?", re.S)
COMMENT_LIMIT = 2000


@dataclass(frozen=True)
class Survey:
    id: int
    conversation_id: int
    customer_id: int
    queue: str
    agent_id: int | None
    status: str
    resolved_at: str
    channel: str | None
    identity: str | None
    message_id: int | None
    sent_at: str | None
    expires_at: str | None
    score: int | None
    comment: str | None
    answered_at: str | None
    answer_message_id: int | None
    reason: str | None

    @classmethod
    def of(cls, row: Row) -> Survey:
        return cls(**{k.strip(): row[k.strip()] for k in COLUMNS.split(",")})

    def to_json(self) -> dict[str, Any]:
        return {k.strip(): getattr(self, k.strip()) for k in COLUMNS.split(",")}

    def summary(self) -> dict[str, Any]:
        """What the API shows with its conversation."""
        return {"status": self.status, "channel": self.channel, "score": self.score, "comment": self.comment,
                "sent_at": self.sent_at, "answered_at": self.answered_at, "reason": self.reason}

    def open_at(self, now: str) -> bool:
        """Takes answers at NOW: sent (or answered, for a second answer) and not expired."""
        return self.status in ("sent", "answered") and self.expires_at is not None and now < self.expires_at


def parse_score(text: str) -> tuple[int, str] | None:
    """(score, comment) when TEXT is a score from 1 to 5, optionally followed by a comment; else None."""
    m = _SCORE.fullmatch(text)
    if m is None:
        return None
    rest = (m.group(2) or "").strip()
    if rest[:1].isdigit():  # "3 items missing" or "12": a number, not a score with a comment
        return None
    return int(m.group(1)), rest[:COMMENT_LIMIT]


def schedule(tx: Tx, conv: Conversation, agent_id: int | None, now: str) -> None:
    """At a resolve: the conversation's survey is due once its queue's delay has passed. A conversation resolved
    again before its survey went out moves the due time; one already sent, answered or skipped stays as it is."""
    tx.exec(
        "INSERT INTO csat_surveys (conversation_id, customer_id, queue, agent_id, status, resolved_at, created_at) "
        "VALUES (?, ?, ?, ?, 'scheduled', ?, ?) ON CONFLICT (conversation_id) DO UPDATE SET "
        "resolved_at = excluded.resolved_at, queue = excluded.queue, agent_id = excluded.agent_id "
        "WHERE csat_surveys.status = 'scheduled'",
        (conv.id, conv.customer_id, conv.queue or "", agent_id, now, now),
    )


def open_for_call(tx: Tx, call_sid: str, surveyed_queues: set[str], now: str, expires_at: str) -> int | None:
    """A call's survey, asked on the line when the agent hangs up (the IVR question): opened now, before any
    resolve, for the call's conversation. None when its queue does not survey, the caller opted out of texts
    (STOP: we do not ask them anything either), or the conversation had its survey already."""
    row = tx.one("SELECT conversation_id, identity FROM messages WHERE channel = 'voice' AND external_id = ? "
                 "AND direction = 'in' ORDER BY id LIMIT 1", (call_sid,))
    if row is None:
        return None
    conv = tx.one("SELECT id, customer_id, queue, agent_id FROM conversations WHERE id = ?", (row["conversation_id"],))
    if conv is None or (conv["queue"] or "") not in surveyed_queues:
        return None
    if row["identity"] and tx.one("SELECT 1 AS stopped FROM opt_outs WHERE identity = ?", (row["identity"],)):
        return None
    made = tx.one(
        "INSERT INTO csat_surveys (conversation_id, customer_id, queue, agent_id, status, resolved_at, channel, "
        "identity, sent_at, expires_at, created_at) VALUES (?, ?, ?, ?, 'sent', ?, 'voice', ?, ?, ?, ?) "
        "ON CONFLICT (conversation_id) DO NOTHING RETURNING id",
        (conv["id"], conv["customer_id"], conv["queue"] or "", conv["agent_id"], now, row["identity"], now,
         expires_at, now),
    )
    return int(made["id"]) if made else None


def load(tx: Tx, survey_id: int, lock: bool = False) -> Survey | None:
    row = tx.one(f"SELECT {COLUMNS} FROM csat_surveys WHERE id = ?" + (tx.for_update if lock else ""), (survey_id,))
    return Survey.of(row) if row else None


def of_conversation(tx: Tx, conversation_id: int) -> Survey | None:
    row = tx.one(f"SELECT {COLUMNS} FROM csat_surveys WHERE conversation_id = ?", (conversation_id,))
    return Survey.of(row) if row else None


def answer_for(tx: Tx, customer_id: int, inbound: Inbound, now: str) -> tuple[Survey, int, str] | None:
    """The survey INBOUND answers, with its score and comment, or None when it is an ordinary message: an explicit
    answer (ANSWER_META) to this customer's survey on this channel, or a reply that is only a score while a survey
    is open for the customer on the channel it was sent on."""
    explicit = inbound.meta.get(ANSWER_META)
    if isinstance(explicit, dict):
        survey = load(tx, int(explicit.get("survey") or 0))
        score = explicit.get("score")
        # A press on an old survey's button is still an answer to that survey: kept on its conversation, marked
        # late (hub.csat.answers), never an ordinary message that would open work.
        if (survey is None or survey.customer_id != customer_id or survey.channel != inbound.channel
                or survey.status not in ("sent", "answered") or isinstance(score, bool) or not isinstance(score, int)
                or not 1 <= score <= 5):
            return None
        return survey, score, str(explicit.get("comment") or "").strip()[:COMMENT_LIMIT]
    if inbound.attachments or inbound.kind != "text":
        return None
    parsed = parse_score(inbound.text)
    if parsed is None:
        return None
    row = tx.one(
        f"SELECT {COLUMNS} FROM csat_surveys WHERE customer_id = ? AND channel = ? AND status IN ('sent', 'answered') "
        "AND expires_at > ? ORDER BY sent_at DESC, id DESC LIMIT 1",
        (customer_id, inbound.channel, now),
    )
    return (Survey.of(row), *parsed) if row else None


def close_open(tx: Tx, customer_id: int, now: str) -> None:
    """The customer started something new: a number they send from now on is an ordinary message (it would be
    ambiguous), so their open surveys stop taking answers."""
    tx.exec("UPDATE csat_surveys SET expires_at = ? WHERE customer_id = ? AND status IN ('sent', 'answered') "
            "AND expires_at > ?", (now, customer_id, now))


def link_token(secret: str, survey_id: int) -> str:
    """The signed part of an email survey's link: the survey id and an HMAC of it."""
    mac = hmac.new(secret.encode(), f"csat:{survey_id}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{survey_id}.{mac}"


def verify_token(secret: str, token: str) -> int | None:
    """The survey id of a link TOKEN signed with SECRET, or None."""
    head, _, _mac = token.partition(".")
    if not secret or not head.isdigit() or len(head) > 18:
        return None
    return int(head) if hmac.compare_digest(link_token(secret, int(head)).encode(), token.encode()) else None
