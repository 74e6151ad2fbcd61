"""Campaigns in the store: what to send to whom (a saved segment or a list of identities), each recipient's outcome,
and the results, derived from the messages' statuses, the customers' replies and their opt-outs."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.campaigns.render import Missing, Profile, TemplateError, check, render
from hub.campaigns.templates import TemplateChoice
from hub.history import store
from hub.history.db import Row, Tx
from hub.history.store import NotFound
from hub.identities import IdentityError, parse
from hub.model import CHANNEL_IDENTITY_KIND, Identity, format_time, parse_time
from hub.outbox import outside_window
from hub.segments import segment_store
from hub.segments.criteria import cuts

log = logging.getLogger("hub.campaigns")

#: scheduled (waiting for its time), running (recipients being sent), done, cancelled
STATUSES = ("scheduled", "running", "done", "cancelled")
#: the channels a campaign can go out on (a call, web chat and the API channel have no way to reach someone first)
CHANNELS = ("sms", "whatsapp", "email", "telegram")
COLUMNS = ("id, name, channel, text, subject, segment_id, identities, rate_per_minute, status, scheduled_at, "
           "started_at, finished_at, created_by, created_at, updated_at")
MAX_LIST = 100_000
PAGE = 500


class CampaignBody(BaseModel):
    """A campaign as the API takes it: an audience (segment_id, or identities / csv), a channel and a text."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    channel: str = Field(min_length=1, max_length=32)
    text: str | None = Field(None, min_length=1, max_length=4000, description='with variables: {{name}}, '
                             '{{first_name}}, {{identity}}, {{attributes.<name>}}, each optionally '
                             '{{first_name | fallback: "there"}}; left out with a template (its body is the text)')
    template: TemplateChoice | None = Field(None, description="WhatsApp: the approved template to send")
    subject: str | None = Field(None, max_length=200, description="an email campaign's subject")
    segment_id: int | None = Field(None, ge=1, le=2**63 - 1)
    identities: list[str] | None = Field(None, max_length=MAX_LIST, description="kind:value, e.g. phone:+14155550100")
    csv: str | None = Field(None, max_length=8_000_000, description="a CSV file whose first column holds identities "
                            "(kind:value); a header row is skipped")
    rate_per_minute: int | None = Field(None, ge=1, le=100_000, description="default: campaigns.rate_per_minute")
    scheduled_at: str | None = Field(None, description="ISO 8601 UTC time to start; default now")

    @model_validator(mode="after")
    def _fits(self) -> CampaignBody:
        given = [x for x in (self.segment_id, self.identities, self.csv) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one audience: segment_id, identities or csv")
        if self.channel not in CHANNELS:
            raise ValueError(f"channel is one of {', '.join(CHANNELS)}")
        if self.template is not None and self.channel != "whatsapp":
            raise ValueError("a template is sent on whatsapp only")
        if self.template is not None and self.text is not None:
            raise ValueError("leave text out with a template: the template's body is the text")
        if self.template is None and self.text is None:
            raise ValueError("give a text (or, on whatsapp, a template)")
        try:
            if self.text is not None:
                check(self.text)
            if self.subject:
                check(self.subject)
        except TemplateError as e:
            raise ValueError(str(e)) from None
        if self.scheduled_at is not None:
            try:
                self.scheduled_at = format_time(parse_time(self.scheduled_at))
            except (ValueError, TypeError):
                raise ValueError("scheduled_at is an ISO 8601 time, e.g. 2026-12-24T09:00:00Z") from None
        return self

    def listed(self) -> list[str] | None:
        """The audience's identities as written (a CSV's first column, its header row left out)."""
        if self.csv is not None:
            rows = [r for r in csv.reader(io.StringIO(self.csv)) if r and r[0].strip()]
            if rows and ":" not in rows[0][0]:
                rows = rows[1:]  # a header: "identity", "phone"...
            return [r[0].strip() for r in rows]
        return self.identities


@dataclass
class Campaign:
    id: int
    name: str
    channel: str
    text: str
    subject: str | None
    segment_id: int | None
    identities: list[str] | None
    rate_per_minute: int
    status: str
    scheduled_at: str
    started_at: str | None
    finished_at: str | None
    created_by: int | None
    created_at: str
    updated_at: str
    #: WhatsApp: the approved template sent ({"sid", "name", "variables"}); None: the text is sent
    template: dict[str, Any] | None = None

    @classmethod
    def of(cls, row: Row, template: Row | None = None) -> Campaign:
        values = {k.strip(): row[k.strip()] for k in COLUMNS.split(",")}
        values["identities"] = json.loads(values["identities"]) if values["identities"] else None
        chosen = ({"sid": str(template["sid"]), "name": str(template["name"]),
                   "variables": json.loads(template["variables"])} if template is not None else None)
        return cls(**values, template=chosen)

    def to_json(self) -> dict[str, Any]:
        out = {k.strip(): getattr(self, k.strip()) for k in COLUMNS.split(",")}
        out["list_size"] = len(self.identities) if self.identities is not None else None
        out["template"] = self.template
        del out["identities"]
        return out


@dataclass(frozen=True)
class Candidate:
    """One entry of the audience: whom (a known customer, or None for a listed identity the hub does not know yet),
    the identity to send to, and why not, when they are left out."""

    customer_id: int | None
    identity: str
    name: str
    attributes: dict[str, str]
    reason: str | None = None

    def profile(self) -> Profile:
        return Profile(self.name, self.identity, self.attributes)


def _attributes(tx: Tx, ids: list[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    for i in range(0, len(ids), PAGE):
        part = ids[i:i + PAGE]
        marks = ", ".join("?" for _ in part)
        for r in tx.all(f"SELECT customer_id, name, value FROM customer_attributes WHERE customer_id IN ({marks})",
                        part):
            out.setdefault(int(r["customer_id"]), {})[str(r["name"])] = str(r["value"])
    return out


def _stopped(tx: Tx, identity: str, channel: str) -> str | None:
    stopped = store.opt_out(tx, identity, channel)
    return f"opted out by texting {stopped[0]} on {stopped[1][:10]}" if stopped else None


def _segment(tx: Tx, segment_id: int, channel: str, limit: int) -> Iterator[Candidate]:
    criteria = segment_store.get(tx, segment_id).criteria
    bounds, after, wanted, seen = cuts(tx), 0, CHANNEL_IDENTITY_KIND[channel], 0
    while True:
        page, nxt = segment_store.customers(tx, criteria, after, PAGE, bounds)
        attrs = _attributes(tx, [c["customer_id"] for c in page])
        for c in page:
            seen += 1
            if seen > limit:
                raise ValueError(f"the segment has more than {limit} customers (campaigns.max_recipients)")
            cid, name = int(c["customer_id"]), str(c["name"])
            fits = [i for i in c["identities"] if i.startswith(f"{wanted}:")]
            if not fits:
                yield Candidate(cid, "", name, {}, f"no {wanted} identity to reach them on {channel}")
                continue
            ident = fits[-1]  # the newest, as a reply would pick
            yield Candidate(cid, ident, name, attrs.get(cid, {}), _stopped(tx, ident, channel))
        if nxt is None:
            return
        after = nxt


def _list(tx: Tx, listed: list[str], channel: str, region: str) -> Iterator[Candidate]:
    wanted, seen = CHANNEL_IDENTITY_KIND[channel], set[str]()
    for raw in listed:
        try:
            ident = parse(raw, region)
        except IdentityError as e:
            yield Candidate(None, raw[:320], "", {}, str(e))
            continue
        key = str(ident)
        if ident.kind != wanted:
            article = "an" if ident.kind[0] in "aeiou" else "a"
            yield Candidate(None, key, "", {}, f"{article} {ident.kind} identity cannot be reached on {channel}")
            continue
        if key in seen:
            yield Candidate(None, key, "", {}, "listed twice (sent once)")
            continue
        seen.add(key)
        cid = store.customer_by_identity(tx, ident)
        if cid is None:
            yield Candidate(None, key, "", {}, _stopped(tx, key, channel))
            continue
        who = store.customer(tx, cid)
        yield Candidate(cid, key, who.name, _attributes(tx, [cid]).get(cid, {}), _stopped(tx, key, channel))


def audience(tx: Tx, segment_id: int | None, listed: list[str] | None, channel: str, region: str,
             limit: int) -> Iterator[Candidate]:
    """Everyone the campaign is for, in order, each with the reason they are left out (None: they get it)."""
    if segment_id is not None:
        yield from _segment(tx, segment_id, channel, limit)
        return
    assert listed is not None
    if len(listed) > limit:
        raise ValueError(f"the list has {len(listed)} identities, more than {limit} (campaigns.max_recipients)")
    yield from _list(tx, listed, channel, region)


def rendered(text: str, candidate: Candidate) -> tuple[str | None, str | None]:
    """(text, None) for CANDIDATE, or (None, why not)."""
    try:
        return render(text, candidate.profile()), None
    except Missing as e:
        return None, str(e)


def preview(tx: Tx, body: CampaignBody, region: str, limit: int, now: str, window_hours: float | None = None,
            shown: int = 5) -> dict[str, Any]:
    """What the campaign would send: the first SHOWN recipients with their text, who is skipped and why (the first
    fifty), and the counts. WINDOW_HOURS: a free-form message on a channel with a session window (WhatsApp), whose
    customers outside it are skipped with the reason the sender gives. Nothing is written."""
    recipients: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    total = sending = 0
    assert body.text is not None
    for c in audience(tx, body.segment_id, body.listed(), body.channel, region, limit):
        total += 1
        text, why = (None, c.reason) if c.reason else rendered(body.text, c)
        if why is None and window_hours is not None:
            why = outside_window(tx, c.customer_id, body.channel, window_hours, now)
        if why is not None:
            if len(skipped) < 50:
                skipped.append({"customer_id": c.customer_id, "identity": c.identity, "name": c.name, "reason": why})
            continue
        sending += 1
        if len(recipients) < shown:
            recipients.append({"customer_id": c.customer_id, "identity": c.identity, "name": c.name, "text": text})
    return {"total": total, "sending": sending, "skipped": total - sending, "recipients": recipients,
            "skipped_sample": skipped}


def create(tx: Tx, body: CampaignBody, rate: int, agent_id: int | None, now: str, limit: int,
           template_name: str = "") -> Campaign:
    """A new campaign; raises ValueError when its segment holds more than LIMIT customers. BODY's text is set (a
    template's body with its variables in place, hub.campaigns.templates)."""
    assert body.text is not None
    if body.segment_id is not None:
        seg = segment_store.get(tx, body.segment_id)  # a 404 now, not when it starts
        if segment_store.size(tx, seg.criteria, cuts(tx) if seg.criteria.uses_rfm() else None) > limit:
            raise ValueError(f"segment {seg.name!r} has more than {limit} customers (campaigns.max_recipients)")
    listed = body.listed()
    row = tx.one(
        "INSERT INTO campaigns (name, channel, text, subject, segment_id, identities, rate_per_minute, status, "
        "scheduled_at, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'scheduled', ?, ?, ?, ?) "
        "RETURNING id",
        (body.name, body.channel, body.text, body.subject, body.segment_id,
         json.dumps(listed) if listed is not None else None, body.rate_per_minute or rate,
         body.scheduled_at or now, agent_id, now, now))
    assert row is not None
    if body.template is not None:
        tx.exec("INSERT INTO campaign_templates (campaign_id, sid, name, variables) VALUES (?, ?, ?, ?)",
                (int(row["id"]), body.template.sid, template_name or body.template.sid,
                 json.dumps(body.template.variables)))
    return get(tx, int(row["id"]))


def get(tx: Tx, campaign_id: int, lock: bool = False) -> Campaign:
    row = tx.one(f"SELECT {COLUMNS} FROM campaigns WHERE id = ?" + (tx.for_update if lock else ""), (campaign_id,))
    if row is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    return Campaign.of(row, tx.one("SELECT sid, name, variables FROM campaign_templates WHERE campaign_id = ?",
                                   (campaign_id,)))


def listing(tx: Tx, limit: int = 200) -> list[Campaign]:
    rows = tx.all(f"SELECT {COLUMNS} FROM campaigns ORDER BY id DESC LIMIT ?", (limit,))
    ids = [int(r["id"]) for r in rows]
    marks = ", ".join("?" for _ in ids) or "NULL"
    chosen = {int(t["campaign_id"]): t for t in tx.all(
        f"SELECT campaign_id, sid, name, variables FROM campaign_templates WHERE campaign_id IN ({marks})", ids)}
    return [Campaign.of(r, chosen.get(int(r["id"]))) for r in rows]


def due(tx: Tx, now: str) -> list[int]:
    """Campaigns to work on now: running ones, and scheduled ones whose time has come."""
    return [int(r["id"]) for r in tx.all(
        "SELECT id FROM campaigns WHERE status = 'running' OR (status = 'scheduled' AND scheduled_at <= ?) "
        "ORDER BY id", (now,))]


def start(tx: Tx, campaign: Campaign, region: str, limit: int, now: str) -> None:
    """Write every recipient (or why they are left out) and mark CAMPAIGN running, in one transaction: the
    audience is what it was at the start, whatever happens to the segment later."""
    position = 0
    try:
        for c in audience(tx, campaign.segment_id, campaign.identities, campaign.channel, region, limit):
            position += 1
            tx.exec("INSERT INTO campaign_recipients (campaign_id, position, customer_id, identity, status, reason) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (campaign.id, position, c.customer_id, c.identity,
                                                  "skipped" if c.reason else "pending", c.reason))
    except NotFound:
        pass  # the segment was deleted: nobody to send to
    except ValueError:  # the segment grew past campaigns.max_recipients since the campaign was made
        log.warning("campaign %d: its audience is over campaigns.max_recipients; cancelled", campaign.id)
        tx.exec("DELETE FROM campaign_recipients WHERE campaign_id = ?", (campaign.id,))
        finish(tx, campaign.id, "cancelled", now)
        return
    tx.exec("UPDATE campaigns SET status = 'running', started_at = ?, updated_at = ? WHERE id = ?",
            (now, now, campaign.id))


def recent(tx: Tx, campaign_id: int, since: str) -> int:
    """How many of the campaign's messages were written since SINCE (its rate is held over the last minute)."""
    row = tx.one("SELECT COUNT(*) AS n FROM campaign_recipients WHERE campaign_id = ? AND queued_at > ?",
                 (campaign_id, since))
    return int(row["n"]) if row else 0


def pending(tx: Tx, campaign_id: int, limit: int) -> list[Row]:
    return tx.all("SELECT position, customer_id, identity FROM campaign_recipients WHERE campaign_id = ? "
                  "AND status = 'pending' ORDER BY position LIMIT ?", (campaign_id, limit))


def candidate(tx: Tx, customer_id: int, identity: str) -> Candidate:
    who = store.customer(tx, customer_id)
    return Candidate(customer_id, identity, who.name, _attributes(tx, [customer_id]).get(customer_id, {}))


def mark_queued(tx: Tx, campaign_id: int, position: int, customer_id: int, message_id: int, now: str,
                reply_hours: float) -> None:
    until = format_time(parse_time(now) + timedelta(hours=reply_hours))
    tx.exec("UPDATE campaign_recipients SET status = 'queued', customer_id = ?, message_id = ?, queued_at = ?, "
            "reply_until = ? WHERE campaign_id = ? AND position = ?",
            (customer_id, message_id, now, until, campaign_id, position))


def mark_skipped(tx: Tx, campaign_id: int, position: int, reason: str) -> None:
    tx.exec("UPDATE campaign_recipients SET status = 'skipped', reason = ? WHERE campaign_id = ? AND position = ?",
            (reason[:500], campaign_id, position))


def finish(tx: Tx, campaign_id: int, status: str, now: str) -> bool:
    """Mark the campaign done or cancelled; False when it already was."""
    return bool(tx.exec("UPDATE campaigns SET status = ?, finished_at = ?, updated_at = ? WHERE id = ? "
                        "AND status IN ('scheduled', 'running')", (status, now, now, campaign_id)))


#: the results, each a count of recipients
RESULTS = ("recipients", "pending", "skipped", "cancelled", "queued", "sent", "delivered", "failed", "replied",
           "opted_out")
#: a written message's stage, from its status: queued (in our outbox), sent (accepted by the provider: Twilio's
#: "sending" is accepted too, its callbacks say the rest), delivered (or read), failed
STAGE = {"queued": "queued", "sending": "sent", "sent": "sent", "delivered": "delivered", "read": "delivered",
         "failed": "failed", "undelivered": "failed"}
#: one recipient's outcome, the furthest they got: pending, cancelled, skipped; then their message's stage; then
#: replied or opted out (after it, which says more than its delivery)
OUTCOMES = ("pending", "cancelled", "skipped", "queued", "sent", "delivered", "failed", "replied", "opted_out")

_REPLIED = ("EXISTS (SELECT 1 FROM messages i WHERE i.customer_id = r.customer_id AND i.direction = 'in' "
            "AND i.created_at > r.queued_at AND i.created_at <= r.reply_until)")
_OPTED_OUT = ("EXISTS (SELECT 1 FROM opt_outs o WHERE o.identity = r.identity AND o.channel = ? "
              "AND o.opted_out_at >= r.queued_at)")


def outcome(campaign_status: str, status: str, message_status: str | None, replied: bool, opted_out: bool) -> str:
    """A recipient's outcome (OUTCOMES) from their row's status, their message's, and what they did after it."""
    if status == "pending":
        return "cancelled" if campaign_status == "cancelled" else "pending"
    if status == "skipped":
        return "skipped"
    if opted_out:
        return "opted_out"
    if replied:
        return "replied"
    return STAGE.get(message_status or "", "queued")


def results(tx: Tx, campaign: Campaign) -> dict[str, int]:
    """Counts by outcome: pending (not written yet; cancelled once the campaign is), skipped, and of the messages
    written, queued (in our outbox), sent (accepted by the provider; delivered ones included), delivered (or read),
    failed; replied (the customer wrote within campaigns.reply_window_hours after, and did not opt out) and opted
    out (STOP on that channel after it)."""
    rows = tx.all(
        "SELECT r.status AS rstatus, m.status AS mstatus, COUNT(*) AS n FROM campaign_recipients r "
        "LEFT JOIN messages m ON m.id = r.message_id WHERE r.campaign_id = ? GROUP BY r.status, m.status",
        (campaign.id,))
    out = dict.fromkeys(RESULTS, 0)
    for r in rows:
        n = int(r["n"])
        out["recipients"] += n
        out[outcome(campaign.status, str(r["rstatus"]), r["mstatus"], False, False)] += n
    out["sent"] += out["delivered"]  # delivered ones were sent too
    # A STOP is an inbound message too: who opted out counts as opted out, not as replied (as their outcome says).
    row = tx.one(f"SELECT COUNT(*) AS n FROM campaign_recipients r WHERE r.campaign_id = ? AND r.status = 'queued' "
                 f"AND {_REPLIED} AND NOT {_OPTED_OUT}", (campaign.id, campaign.channel))
    out["replied"] = int(row["n"]) if row else 0
    row = tx.one(f"SELECT COUNT(*) AS n FROM campaign_recipients r WHERE r.campaign_id = ? AND r.status = 'queued' "
                 f"AND {_OPTED_OUT}", (campaign.id, campaign.channel))
    out["opted_out"] = int(row["n"]) if row else 0
    return out


def recipients(tx: Tx, campaign: Campaign, after: int, limit: int) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the campaign's recipients in order, with each one's outcome (OUTCOMES)."""
    rows = tx.all(
        "SELECT r.position, r.customer_id, r.identity, r.status, r.reason, r.message_id, r.queued_at, "
        f"m.status AS message_status, m.status_reason, COALESCE(c.name, '') AS name, {_REPLIED} AS replied, "
        f"{_OPTED_OUT} AS opted_out FROM campaign_recipients r "
        "LEFT JOIN messages m ON m.id = r.message_id LEFT JOIN customers c ON c.id = r.customer_id "
        "WHERE r.campaign_id = ? AND r.position > ? ORDER BY r.position LIMIT ?",
        (campaign.channel, campaign.id, after, limit + 1))
    page = [{"position": int(r["position"]), "customer_id": r["customer_id"], "name": str(r["name"]),
             "identity": str(r["identity"]), "status": str(r["status"]),
             "outcome": outcome(campaign.status, str(r["status"]), r["message_status"], bool(r["replied"]),
                                bool(r["opted_out"])),
             "reason": r["reason"] or r["status_reason"],
             "message_id": r["message_id"], "message_status": r["message_status"], "queued_at": r["queued_at"]}
            for r in rows[:limit]]
    return page, (page[-1]["position"] if len(rows) > limit else None)


def identity_of(text: str) -> Identity:
    kind, _, value = text.partition(":")
    return Identity(kind, value)
