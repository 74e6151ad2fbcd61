"""Saved segments: their criteria, their size now, the daily sizes recorded for their trend, and their customers
(a page at a time, or all of them for an export)."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hub.history.db import Database, Row, Tx
from hub.history.store import NotFound
from hub.model import format_time, utcnow
from hub.segments.criteria import Criteria, Cuts, Scorer, compile_where, cuts

log = logging.getLogger("hub.segments")

#: how many days of recorded sizes a segment's trend shows
TREND_DAYS = 90
COLUMNS = "id, name, description, criteria, created_at, updated_at"


class SegmentBody(BaseModel):
    """A segment as the API takes it (POST creates, PUT replaces)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    description: str = Field("", max_length=1000)
    criteria: Criteria


@dataclass
class Segment:
    id: int
    name: str
    description: str
    criteria: Criteria
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: Row) -> Segment:
        return cls(int(row["id"]), str(row["name"]), str(row["description"]),
                   Criteria.model_validate(json.loads(row["criteria"])), str(row["created_at"]),
                   str(row["updated_at"]))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description,
                "criteria": self.criteria.model_dump(exclude_none=True, exclude_defaults=True),
                "created_at": self.created_at, "updated_at": self.updated_at}


def listing(tx: Tx) -> list[tuple[Segment, int | None]]:
    """Every segment, with its last recorded size (None: not recorded yet)."""
    rows = tx.all(f"SELECT {COLUMNS} FROM segments ORDER BY name, id")
    last = {int(r["segment_id"]): int(r["size"]) for r in tx.all(
        "SELECT z.segment_id, z.size FROM segment_sizes z WHERE z.day = "
        "(SELECT MAX(day) FROM segment_sizes y WHERE y.segment_id = z.segment_id)")}
    return [(Segment.from_row(r), last.get(int(r["id"]))) for r in rows]


def get(tx: Tx, segment_id: int) -> Segment:
    row = tx.one(f"SELECT {COLUMNS} FROM segments WHERE id = ?", (segment_id,))
    if row is None:
        raise NotFound(f"segment {segment_id} does not exist")
    return Segment.from_row(row)


def create(tx: Tx, body: SegmentBody, now: str) -> Segment:
    row = tx.one("INSERT INTO segments (name, description, criteria, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
                 "RETURNING id", (body.name, body.description, body.criteria.model_dump_json(exclude_none=True),
                                  now, now))
    assert row is not None
    seg = get(tx, int(row["id"]))
    record_size(tx, seg, now)
    return seg


def replace(tx: Tx, segment_id: int, body: SegmentBody, now: str) -> Segment:
    get(tx, segment_id)
    tx.exec("UPDATE segments SET name = ?, description = ?, criteria = ?, updated_at = ? WHERE id = ?",
            (body.name, body.description, body.criteria.model_dump_json(exclude_none=True), now, segment_id))
    seg = get(tx, segment_id)
    record_size(tx, seg, now)  # today's size is the new criteria's
    return seg


def delete(tx: Tx, segment_id: int) -> None:
    get(tx, segment_id)
    tx.exec("DELETE FROM segment_sizes WHERE segment_id = ?", (segment_id,))
    # its report figures (an id may be given again: a new segment must not find the old one's members)
    tx.exec("DELETE FROM report_segment_members WHERE segment_id = ?", (segment_id,))
    tx.exec("DELETE FROM report_segment_rollups WHERE segment_id = ?", (segment_id,))
    tx.exec("DELETE FROM segments WHERE id = ?", (segment_id,))


def size(tx: Tx, criteria: Criteria, bounds: Cuts | None = None) -> int:
    where, params = compile_where(tx, criteria, Scorer(bounds, tx.dialect) if bounds else None)
    row = tx.one(f"SELECT COUNT(*) AS n FROM customer_stats s WHERE {where}", params)
    return int(row["n"]) if row else 0


def record_size(tx: Tx, seg: Segment, now: str) -> int:
    """Count SEG now and keep it as today's size (UTC day; a later count the same day replaces it)."""
    n = size(tx, seg.criteria)
    tx.exec("INSERT INTO segment_sizes (segment_id, day, size) VALUES (?, ?, ?) "
            "ON CONFLICT (segment_id, day) DO UPDATE SET size = excluded.size", (seg.id, now[:10], n))
    return n


def trend(tx: Tx, segment_id: int, now: str) -> list[dict[str, Any]]:
    since = format_time(utcnow() - timedelta(days=TREND_DAYS))[:10]
    rows = tx.all("SELECT day, size FROM segment_sizes WHERE segment_id = ? AND day >= ? AND day <= ? ORDER BY day",
                  (segment_id, since, now[:10]))
    return [{"day": str(r["day"]), "size": int(r["size"])} for r in rows]


#: a listed customer's columns, in the CSV's order
FIELDS = ("customer_id", "name", "contacts", "last_contact_at", "orders", "order_value", "last_order_at",
          "csat_average", "recency_score", "frequency_score", "monetary_score", "rfm_group")
def _customer(r: Row) -> dict[str, Any]:
    return {"customer_id": int(r["customer_id"]), "name": str(r["name"]), "contacts": int(r["contacts"]),
            "last_contact_at": r["last_contact_at"], "orders": int(r["orders"]),
            "order_value": float(r["order_value"]), "last_order_at": r["last_order_at"],
            "csat_average": round(float(r["csat_total"]) / int(r["csat_answers"]), 2) if r["csat_answers"] else None,
            "recency_score": int(r["r"]), "frequency_score": int(r["f"]), "monetary_score": int(r["m"]),
            "rfm_group": str(r["rfm_group"])}


def customers(tx: Tx, criteria: Criteria, after: int, limit: int, bounds: Cuts | None = None) -> \
        tuple[list[dict[str, Any]], int | None]:
    """A page of the segment's customers in id order, after customer AFTER; and the next page's `after`."""
    rows = _listed(tx, criteria, bounds, "s.customer_id > ?", [after], limit + 1)
    page = [_customer(r) for r in rows[:limit]]
    _with_identities(tx, page)
    return page, (page[-1]["customer_id"] if len(rows) > limit else None)


def customers_by_id(tx: Tx, criteria: Criteria, ids: list[int], bounds: Cuts | None = None) -> list[dict[str, Any]]:
    """Those of the customers IDS the segment holds, in id order, as `customers` lists them."""
    marks = ", ".join("?" for _ in ids)
    page = [_customer(r) for r in _listed(tx, criteria, bounds, f"s.customer_id IN ({marks})", ids, len(ids))]
    _with_identities(tx, page)
    return page


def _listed(tx: Tx, criteria: Criteria, bounds: Cuts | None, which: str, which_params: list[Any],
            limit: int) -> list[Row]:
    scorer = Scorer(bounds or cuts(tx), tx.dialect)
    shown = [scorer.score("r"), scorer.score("f"), scorer.score("m"), scorer.group()]
    where, params = compile_where(tx, criteria, scorer)
    return tx.all(
        "SELECT s.customer_id, s.contacts, s.last_contact_at, s.orders, s.order_value, s.last_order_at, "
        "s.csat_answers, s.csat_total, "
        f"COALESCE(cu.name, '') AS name, {shown[0][0]} AS r, {shown[1][0]} AS f, {shown[2][0]} AS m, "
        f"{shown[3][0]} AS rfm_group FROM customer_stats s LEFT JOIN customers cu ON cu.id = s.customer_id "
        f"WHERE {where} AND {which} ORDER BY s.customer_id LIMIT ?",
        [*(p for _, ps in shown for p in ps), *params, *which_params, limit],
    )


def _with_identities(tx: Tx, page: list[dict[str, Any]]) -> None:
    if not page:
        return
    marks = ", ".join("?" for _ in page)
    found: dict[int, list[str]] = {}
    for r in tx.all(f"SELECT customer_id, kind, value FROM identities WHERE customer_id IN ({marks}) ORDER BY id",
                    [c["customer_id"] for c in page]):
        found.setdefault(int(r["customer_id"]), []).append(f"{r['kind']}:{r['value']}")
    for c in page:
        c["identities"] = found.get(c["customer_id"], [])


def snapshot(tx: Tx, now: str) -> int:
    """Record today's size of every segment (the trend); returns how many segments."""
    segs = [s for s, _ in listing(tx)]
    for seg in segs:
        record_size(tx, seg, now)
    return len(segs)


#: how often every segment's size is recorded (a day's last count stands for the day)
SNAPSHOT_SECONDS = 3600.0


async def snapshot_forever(db: Database, interval: float = SNAPSHOT_SECONDS) -> None:
    """For the app's lifetime: record every segment's size every INTERVAL seconds (the first a few seconds after
    start, once the start-up's own writes are done)."""
    await asyncio.sleep(min(5.0, interval))
    while True:
        try:
            await db.write(lambda tx: snapshot(tx, format_time(utcnow())))
        except Exception:
            log.exception("segments: recording their sizes failed; retrying in %.0fs", interval)
        await asyncio.sleep(interval)

