"""What a segment is made of: criteria on each customer's facts (customer_stats, kept by the reports' roller and by
business events), compiled to one SQL condition; and RFM scoring, 1-5 each for recency, frequency and monetary value,
by quintiles of every customer the hub knows, with the standard groups."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from weakref import WeakKeyDictionary

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.history.db import Database, Tx
from hub.model import format_time, utcnow

log = logging.getLogger("hub.segments")

#: the standard RFM groups, tried in this order (the first that fits); everyone else is "other". Each rule is a list
#: of (score, at least / at most, value), all of which must hold.
GROUPS: dict[str, tuple[list[tuple[str, str, int]], str]] = {
    "champions": ([("r", ">=", 4), ("f", ">=", 4), ("m", ">=", 4)], "recent, frequent and high-value"),
    "loyal": ([("r", ">=", 3), ("f", ">=", 4)], "frequent, and still coming back"),
    "at_risk": ([("r", "<=", 2), ("f", ">=", 3)], "used to come often, not lately"),
    "lost": ([("r", "<=", 2), ("f", "<=", 2)], "long gone, and rarely came"),
}


def rule_text(group: str) -> str:
    return ", ".join(f"{score.upper()} {'≥' if op == '>=' else '≤'} {k}" for score, op, k in GROUPS[group][0])


Group = Literal["champions", "loyal", "at_risk", "lost", "other"]
ATTRIBUTE_OPS = ("is", "is_not", "contains", "present", "absent", "gt", "lt")


class Range(BaseModel):
    """Inclusive bounds; either may be left out."""

    model_config = ConfigDict(extra="forbid")

    min: float | None = Field(None, ge=0, le=1e15)
    max: float | None = Field(None, ge=0, le=1e15)

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is above max")
        return self


class Score(Range):
    min: float | None = Field(None, ge=1, le=5)
    max: float | None = Field(None, ge=1, le=5)


class AttributeTest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    op: Literal["is", "is_not", "contains", "present", "absent", "gt", "lt"]
    value: str | float | None = Field(None, description="text (is, is_not, contains) or a number (gt, lt)")

    @model_validator(mode="after")
    def _fits(self) -> AttributeTest:
        if self.op in ("present", "absent"):
            if self.value is not None:
                raise ValueError(f"{self.op} takes no value")
        elif self.value is None or self.value == "":
            raise ValueError(f"{self.op} needs a value")
        if self.op in ("gt", "lt") and not isinstance(self.value, int | float):
            raise ValueError(f"{self.op} compares with a number")
        if isinstance(self.value, str) and len(self.value) > 4000:
            raise ValueError("value is longer than 4000 characters")
        return self


class Criteria(BaseModel):
    """Every criterion given must hold. A customer is anyone the hub has had a contact or a business event from."""

    model_config = ConfigDict(extra="forbid")

    last_contact_days: Range | None = Field(None, description="recency: days since the last contact")
    contacts: Range | None = Field(None, description="frequency: conversations opened or reopened")
    orders: Range | None = Field(None, description="order.placed events")
    order_value: Range | None = Field(None, description="monetary: the sum of order.placed amounts")
    channels: list[str] = Field(default_factory=list, max_length=10, description="used any of these channels")
    labels: list[str] = Field(default_factory=list, max_length=20,
                              description="any of their conversations carries any of these labels")
    attributes: list[AttributeTest] = Field(default_factory=list, max_length=10)
    open_conversation: bool | None = Field(None, description="has (true) or has not (false) an open conversation")
    rfm_group: Group | None = None
    recency_score: Score | None = None
    frequency_score: Score | None = None
    monetary_score: Score | None = None
    csat: Score | None = Field(None, description="the average of the customer's satisfaction answers (1-5); "
                                                 "customers who never answered are left out")

    @model_validator(mode="after")
    def _fits(self) -> Criteria:
        for name in (*self.channels, *self.labels):
            if not name or len(name) > 64:
                raise ValueError("a channel or label is 1-64 characters")
        return self

    def uses_rfm(self) -> bool:
        return any(x is not None for x in (self.rfm_group, self.recency_score, self.frequency_score,
                                           self.monetary_score))


@dataclass(frozen=True)
class Cuts:
    """The four quintile boundaries of each RFM measure over every known customer (lowest first)."""

    recency: list[str]
    frequency: list[float]
    monetary: list[float]

    def to_json(self) -> dict[str, Any]:
        return {"recency": self.recency, "frequency": self.frequency, "monetary": self.monetary}


def _quintiles(tx: Tx, column: str, n: int) -> list[Any]:
    # Each boundary is one step down an index (customer_stats_recency, _frequency, _monetary): no sort of the table.
    out = []
    for i in range(1, 5):
        row = tx.one(f"SELECT {column} AS v FROM customer_stats WHERE {column} IS NOT NULL ORDER BY {column} "
                     "LIMIT 1 OFFSET ?", (max(0, n * i // 5 - 1),))
        if row is not None:
            out.append(row["v"])
    return out


def cuts(tx: Tx) -> Cuts:
    if tx.dialect == "postgresql":
        # One pass and three sorts: PostgreSQL reads an index by OFFSET slowly (each entry checked against the table).
        quintiles = "percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY {})"
        by_time = 'last_contact_at COLLATE "C"'  # byte order is time order; a locale's is slower to sort
        r, f, m = (quintiles.format(c) for c in (by_time, "contacts", "order_value"))
        pg = tx.one(f"SELECT {r} AS r, {f} AS f, {m} AS m FROM customer_stats")
        if pg is None or pg["f"] is None:
            return Cuts([], [], [])
        return Cuts([str(v) for v in pg["r"] or []], [float(v) for v in pg["f"]], [float(v) for v in pg["m"]])
    row = tx.one("SELECT COUNT(*) AS n, COUNT(last_contact_at) AS recent FROM customer_stats")
    n, recent = (int(row["n"]), int(row["recent"])) if row else (0, 0)
    return Cuts([str(v) for v in _quintiles(tx, "last_contact_at", recent)],
                [float(v) for v in _quintiles(tx, "contacts", n)],
                [float(v) for v in _quintiles(tx, "order_value", n)])


#: how long a process reuses the boundaries it computed (they move slowly; computing them reads every customer)
CUTS_SECONDS = 60.0
_recent: WeakKeyDictionary[Database, tuple[float, Cuts]] = WeakKeyDictionary()
_refreshing: WeakKeyDictionary[Database, asyncio.Task[None]] = WeakKeyDictionary()


async def current_cuts(db: Database) -> Cuts:
    """The boundaries: computed on the first ask in this process, then refreshed in the background once they are
    CUTS_SECONDS old (the ask that finds them old is answered with them, not kept waiting)."""
    hit = _recent.get(db)
    if hit is None:
        await _refresh(db)
        return _recent[db][1]
    if hit[0] <= time.monotonic() and db not in _refreshing:
        _refreshing[db] = asyncio.create_task(_refresh(db, background=True))
    return hit[1]


async def _refresh(db: Database, background: bool = False) -> None:
    try:
        fresh = await db.read(cuts)
        _recent[db] = (time.monotonic() + CUTS_SECONDS, fresh)
    except Exception:
        if not background:
            raise
        log.exception("segments: the RFM boundaries could not be refreshed; the last ones stay in use")
    finally:
        _refreshing.pop(db, None)


Sql = tuple[str, list[Any]]
_COLUMNS = {"r": "s.last_contact_at", "f": "s.contacts", "m": "s.order_value"}


class Scorer:
    """RFM scores as SQL over customer_stats `s`, from the boundaries. A score is 1 plus how many boundaries the value
    is above, so "score at least K" is "value above boundary K-1": a plain comparison on an indexed column, and a
    segment on scores or groups is a range query, not a score computed for every customer. Never NULL (a customer
    never in contact has the lowest recency)."""

    def __init__(self, cuts: Cuts, dialect: str = "sqlite") -> None:
        self.bounds: dict[str, list[Any]] = {"r": cuts.recency, "f": cuts.frequency, "m": cuts.monetary}
        # A score's range holds a fifth of the customers or more: reading them through an index costs ten times a
        # plain scan, and SQLite's planner would take the index. A unary + keeps it off (PostgreSQL's planner
        # weighs its statistics and chooses well by itself).
        self._plain = "+" if dialect == "sqlite" else ""

    def at_least(self, score: str, k: int) -> Sql:
        col, b = self._plain + _COLUMNS[score], self.bounds[score]
        if k <= 1:
            return "1 = 1", []
        if len(b) < k - 1:
            return "1 = 0", []
        return f"({col} IS NOT NULL AND {col} > ?)", [b[k - 2]]

    def at_most(self, score: str, k: int) -> Sql:
        col, b = self._plain + _COLUMNS[score], self.bounds[score]
        if k >= 5 or len(b) < k:
            return "1 = 1", []
        return f"({col} IS NULL OR {col} <= ?)", [b[k - 1]]

    def rule(self, group: str) -> Sql:
        parts = [self.at_least(s, k) if op == ">=" else self.at_most(s, k) for s, op, k in GROUPS[group][0]]
        return "(" + " AND ".join(sql for sql, _ in parts) + ")", [p for _, ps in parts for p in ps]

    def member(self, group: str) -> Sql:
        """In GROUP: its rule holds, and no earlier group's does."""
        names = list(GROUPS)
        own: Sql
        if group == "other":
            earlier, own = names, ("1 = 1", [])
        else:
            earlier, own = names[: names.index(group)], self.rule(group)
        sql, params = own[0], list(own[1])
        for g in earlier:
            r, ps = self.rule(g)
            sql += f" AND NOT {r}"
            params += ps
        return f"({sql})", params

    def score(self, score: str) -> Sql:
        """The score itself (for the customers listed)."""
        col, b = _COLUMNS[score], self.bounds[score]
        return "(1" + "".join(f" + CASE WHEN {col} > ? THEN 1 ELSE 0 END" for _ in b) + ")", list(b)

    def group(self) -> Sql:
        """The group's name (for the customers listed, and the groups' sizes)."""
        sql, params = "CASE", []
        for g in GROUPS:
            r, ps = self.rule(g)
            sql += f" WHEN {r} THEN '{g}'"
            params += ps
        return sql + " ELSE 'other' END", params


def _number(dialect: str, column: str) -> str:
    # An attribute is text; only one that reads as a number compares as one (PostgreSQL would fail the cast).
    if dialect == "postgresql":
        # ({0,1}, not ?: the driver would read a question mark as a parameter)
        return (f"CASE WHEN {column} ~ '^\\s*-{{0,1}}[0-9]+(\\.[0-9]+){{0,1}}\\s*$' "
                f"THEN CAST({column} AS DOUBLE PRECISION) END")
    return (f"CASE WHEN trim({column}) GLOB '[0-9]*' OR trim({column}) GLOB '-[0-9]*' "
            f"THEN CAST({column} AS REAL) END")


def _range(column: str, r: Range | None, where: list[str], params: list[Any]) -> None:
    if r is None:
        return
    if r.min is not None:
        where.append(f"{column} >= ?")
        params.append(r.min)
    if r.max is not None:
        where.append(f"{column} <= ?")
        params.append(r.max)


def compile_where(tx: Tx, c: Criteria, scorer: Scorer | None = None) -> tuple[str, list[Any]]:
    """One SQL condition over `s` (customer_stats) and, for the RFM criteria, its scored columns r, f, m."""
    where: list[str] = []
    params: list[Any] = []
    if c.last_contact_days is not None:
        now = utcnow()
        if c.last_contact_days.min is not None:  # at least MIN days ago
            where.append("s.last_contact_at <= ?")
            params.append(format_time(now - timedelta(days=c.last_contact_days.min)))
        if c.last_contact_days.max is not None:
            where.append("s.last_contact_at >= ?")
            params.append(format_time(now - timedelta(days=c.last_contact_days.max)))
    _range("s.contacts", c.contacts, where, params)
    _range("s.orders", c.orders, where, params)
    _range("s.order_value", c.order_value, where, params)
    if c.csat is not None:  # an average within bounds, without dividing: total between min and max times answers
        where.append("s.csat_answers > 0")
        if c.csat.min is not None:
            where.append("s.csat_total >= ? * s.csat_answers")
            params.append(c.csat.min)
        if c.csat.max is not None:
            where.append("s.csat_total <= ? * s.csat_answers")
            params.append(c.csat.max)
    if c.channels:
        marks = ", ".join("?" for _ in c.channels)
        where.append(f"EXISTS (SELECT 1 FROM customer_channels ch WHERE ch.customer_id = s.customer_id "
                     f"AND ch.channel IN ({marks}))")
        params.extend(c.channels)
    if c.labels:
        marks = ", ".join("?" for _ in c.labels)
        where.append(f"s.customer_id IN (SELECT cv.customer_id FROM conversation_labels l JOIN conversations cv "
                     f"ON cv.id = l.conversation_id WHERE l.label IN ({marks}))")
        params.extend(c.labels)
    for a in c.attributes:
        has = "EXISTS (SELECT 1 FROM customer_attributes ca WHERE ca.customer_id = s.customer_id AND ca.name = ?"
        params.append(a.name)
        if a.op == "present":
            where.append(has + ")")
        elif a.op == "absent":
            where.append("NOT " + has + ")")
        elif a.op == "is":
            where.append(has + " AND ca.value = ?)")
            params.append(str(a.value))
        elif a.op == "is_not":
            where.append("NOT " + has + " AND ca.value = ?)")
            params.append(str(a.value))
        elif a.op == "contains":
            where.append(has + " AND LOWER(ca.value) LIKE ? ESCAPE '!')")
            escaped = str(a.value).lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
            params.append(f"%{escaped}%")
        else:
            where.append(has + f" AND {_number(tx.dialect, 'ca.value')} {'>' if a.op == 'gt' else '<'} ?)")
            params.append(float(a.value))  # type: ignore[arg-type]
    if c.open_conversation is not None:
        where.append(("" if c.open_conversation else "NOT ") + "EXISTS (SELECT 1 FROM conversations oc "
                     "WHERE oc.customer_id = s.customer_id AND oc.status <> 'resolved')")
    if c.uses_rfm():
        scorer = scorer or Scorer(cuts(tx), tx.dialect)
        for score, r in (("r", c.recency_score), ("f", c.frequency_score), ("m", c.monetary_score)):
            if r is not None:
                for sql, ps in (scorer.at_least(score, int(r.min or 1)), scorer.at_most(score, int(r.max or 5))):
                    where.append(sql)
                    params.extend(ps)
        if c.rfm_group is not None:
            sql, ps = scorer.member(c.rfm_group)
            where.append(sql)
            params.extend(ps)
    return " AND ".join(where) or "1 = 1", params


