"""Report queries: a time range is cut into whole months, days and hours of the rollups (so a year costs about
12 + 30 + 48 rows per figure and slice value, never a scan of messages), summed, and turned into the figures
docs/reports.md defines."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hub.history.db import Tx
from hub.reports.schema import CUSTOMER_TIMED
from hub.segments import segment_store
from hub.segments.criteria import Cuts, Scorer, compile_where

#: the rollup metrics (counts n, sums total in seconds) the figures are made of
METRICS = (
    "opened", "reopened", "after_hours", "repeat", "messages_in", "messages_out", "first_response",
    "first_response_bh", "first_response_targeted", "first_response_in_sla", "reply", "reply_bh", "resolved",
    "resolved_bh", "offered", "offers_accepted",
    "offers_rejected", "offers_timed_out", "wait", "answered_in_sla", "abandoned", "transfers", "csat",
    "csat_satisfied",
)

#: every figure a report shows, in order, with its unit
FIGURES: dict[str, str] = {
    "conversations_opened": "count",
    "conversations_reopened": "count",
    "conversations_resolved": "count",
    "messages_in": "count",
    "messages_out": "count",
    "first_response_time": "seconds",
    "first_response_time_business": "seconds",
    "first_response_attainment": "ratio",
    "reply_time": "seconds",
    "reply_time_business": "seconds",
    "resolution_time": "seconds",
    "resolution_time_business": "seconds",
    "wait_time": "seconds",
    "answered": "count",
    "sla_attainment": "ratio",
    "abandoned": "count",
    "abandon_rate": "ratio",
    "abandon_wait_time": "seconds",
    "transfers": "count",
    "offers": "count",
    "offers_accepted": "count",
    "offers_rejected": "count",
    "offers_timed_out": "count",
    "after_hours": "count",
    "repeat_contacts": "count",
    "first_contact_resolution": "ratio",
    "csat_responses": "count",
    "csat_score": "ratio",
    "csat_average": "score",
}

GROUPS = ("hour", "day", "week", "month")
#: what a report can be filtered by; a breakdown is by one of the first four (a segment is a filter only)
SLICES = ("channel", "queue", "agent", "label", "segment")
BREAKDOWNS = SLICES[:4]
# Up to this long, a range is read hour by hour, so days, weeks and months are exactly the viewer's.
HOURLY_DAYS = 35

Sums = dict[str, list[float]]  # metric -> [n, total]


@dataclass(frozen=True)
class Piece:
    grain: str
    lo: str  # first bucket
    hi: str  # bucket after the last


def _hour(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H")


def _midnight_on_or_after(t: datetime, tz: ZoneInfo) -> datetime:
    local = t.astimezone(tz)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1) if day < local else day


def _midnight_on_or_before(t: datetime, tz: ZoneInfo) -> datetime:
    return t.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)


def _month_on_or_after(day: datetime) -> datetime:
    if day.day == 1:
        return day
    first = day.replace(day=28) + timedelta(days=5)
    return first.replace(day=1)


def pieces(lo: datetime, hi: datetime, business_tz: ZoneInfo, hourly_only: bool = False) -> list[Piece]:
    """[LO, HI) as rollup bucket ranges: hours up to the business's first midnight, whole days, whole months, days,
    and hours after the last midnight. Hours are whole UTC hours (LO and HI are floored to the hour)."""
    lo = lo.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    hi = hi.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if hi <= lo:
        return []
    d0, d1 = _midnight_on_or_after(lo, business_tz), _midnight_on_or_before(hi, business_tz)
    if hourly_only or d0 >= d1:
        return [Piece("hour", _hour(lo), _hour(hi))]
    out = [Piece("hour", _hour(lo), _hour(d0)), Piece("hour", _hour(d1), _hour(hi))]
    m0, m1 = _month_on_or_after(d0), d1.replace(day=1)
    day = "%Y-%m-%d"
    if m0 < m1:
        out += [Piece("day", d0.strftime(day), m0.strftime(day)), Piece("month", m0.strftime("%Y-%m"),
                m1.strftime("%Y-%m")), Piece("day", m1.strftime(day), d1.strftime(day))]
    else:
        out.append(Piece("day", d0.strftime(day), d1.strftime(day)))
    return [p for p in out if p.lo < p.hi]


def series_pieces(lo: datetime, hi: datetime, business_tz: ZoneInfo, group: str) -> tuple[list[Piece], bool]:
    """The pieces a timeseries of [LO, HI) by GROUP reads, and whether they are hours only. Short ranges are read by
    the hour, so every bucket is exactly the viewer's; longer ones by the business's days (and months, by month)."""
    hourly = hi - lo <= timedelta(days=HOURLY_DAYS) or group == "hour"
    ps = pieces(lo, hi, business_tz, hourly_only=hourly)
    if group != "month":  # months of rollups would not split into days or weeks
        ps = [p for p in ps if p.grain != "month"] + [
            Piece("day", p.lo + "-01", p.hi + "-01") for p in ps if p.grain == "month"]
    return ps, hourly


def _where(ps: list[Piece]) -> tuple[str, list[Any]]:
    parts, params = [], []
    for p in ps:
        parts.append("(grain = ? AND bucket >= ? AND bucket < ?)")
        params += [p.grain, p.lo, p.hi]
    return "(" + " OR ".join(parts) + ")", params


def _customer_pieces(ps: list[Piece]) -> list[Piece]:
    """PS as report_customer_rollups keeps them: by hour and by day (a month is its days), ranges that meet joined
    (each range costs a probe per member)."""
    out: list[Piece] = []
    for p in sorted((Piece("day", p.lo + "-01", p.hi + "-01") if p.grain == "month" else p for p in ps),
                    key=lambda p: (p.grain, p.lo)):
        if out and out[-1].grain == p.grain and out[-1].hi == p.lo:
            out[-1] = Piece(p.grain, out[-1].lo, p.hi)
        else:
            out.append(p)
    return out


def _segment_rows(tx: Tx, ps: list[Piece], segment_id: str, metrics: Iterable[str], by_bucket: bool,
                  cuts: Cuts | None) -> list[Any]:
    """(grain, bucket, metric, n, total) of the customers in the segment now (BY_BUCKET false: summed over PS, bucket
    ''). One statement, so one snapshot on either database: the segment's own rows (report_segment_rollups, the sum
    of the members the roller last kept), plus the rows of the customers in it now and not kept, minus those of the
    customers kept and no longer in it (the members now are the segment's condition over customer_stats, RFM scores
    against the boundaries the process keeps for a minute). So it reads a row per bucket, and a row per bucket for
    each customer who joined or left since the roller's last look, never every member's (docs/reports.md, "Reports
    by segment")."""
    wanted = tuple(metrics)
    criteria = segment_store.get(tx, int(segment_id)).criteria
    members, params = compile_where(tx, criteria, Scorer(cuts, tx.dialect) if cuts is not None else None)
    names = [f"n_{m}" for m in wanted] + [f"t_{m}" for m in wanted if m in CUSTOMER_TIMED]
    arms: list[str] = []
    args: list[Any] = [*params, int(segment_id)]
    for p in _customer_pieces(ps):
        if p.grain not in ("hour", "day"):
            raise ValueError(f"no customer rollups by {p.grain}")
        arms.append(f"SELECT grain, bucket, {', '.join(names)} FROM report_segment_rollups "
                    "WHERE segment_id = ? AND grain = ? AND bucket >= ? AND bucket < ?")
        args += [int(segment_id), p.grain, p.lo, p.hi]
        moved = ", ".join(f"mv.sign * r.{c} AS {c}" for c in names)
        if tx.dialect == "postgresql":  # a nested loop over the few moved (OFFSET 0: not flattened to a hash join)
            source = ("moved mv CROSS JOIN LATERAL (SELECT * FROM report_customer_rollups x WHERE x.customer_id = "
                      "mv.customer_id AND x.grain = ? AND x.bucket >= ? AND x.bucket < ? OFFSET 0) r")
        else:  # SQLite keeps the order of a CROSS JOIN: the moved outside, a probe of the primary key each
            source = ("moved mv CROSS JOIN report_customer_rollups r WHERE r.customer_id = mv.customer_id "
                      "AND r.grain = ? AND r.bucket >= ? AND r.bucket < ?")
        arms.append(f"SELECT r.grain, r.bucket, {moved} FROM {source}")
        args += [p.grain, p.lo, p.hi]
    if not arms:
        return []
    bucket = "bucket" if by_bucket else "''"
    rows = tx.all(
        f"WITH members AS MATERIALIZED (SELECT s.customer_id FROM customer_stats s WHERE {members}), "
        "kept AS MATERIALIZED (SELECT customer_id FROM report_segment_members WHERE segment_id = ?), "
        "moved AS MATERIALIZED (SELECT customer_id, 1 AS sign FROM (SELECT customer_id FROM members EXCEPT "
        "SELECT customer_id FROM kept) j UNION ALL SELECT customer_id, -1 AS sign FROM (SELECT customer_id FROM kept "
        "EXCEPT SELECT customer_id FROM members) g) "
        f"SELECT grain, {bucket} AS bucket, {', '.join(f'SUM({c}) AS {c}' for c in names)} FROM ("
        + " UNION ALL ".join(arms) + f") u GROUP BY grain{', bucket' if by_bucket else ''}", args)
    out: list[dict[str, Any]] = []
    for r in rows:  # a row per bucket with a column per metric, as the rollups' row per bucket and metric
        for m in wanted:
            n = r[f"n_{m}"]
            if n:
                total = r[f"t_{m}"] if m in CUSTOMER_TIMED else 0.0
                out.append({"grain": r["grain"], "bucket": r["bucket"], "metric": m, "n": int(n),
                            "total": float(total or 0.0)})
    return out


def sums(tx: Tx, ps: list[Piece], dim: str, value: str | None, metrics: Iterable[str] = METRICS,
         cuts: Cuts | None = None) -> dict[str, Sums]:
    """Slice value -> metric -> [n, total] over PS (VALUE None: every value of DIM). CUTS: the RFM boundaries a
    segment's members are scored by (None: computed now, which reads every customer)."""
    out: dict[str, Sums] = {}
    if not ps:
        return out
    if dim == "segment" and value is not None:
        mine = out.setdefault(value, {})
        for r in _segment_rows(tx, ps, value, metrics, False, cuts):
            row = mine.setdefault(str(r["metric"]), [0, 0.0])
            row[0] += int(r["n"])
            row[1] += float(r["total"])
        return out
    marks = ", ".join("?" for _ in metrics)
    for p in ps:  # one range per query: each is a plain index range scan
        params: list[Any] = [p.grain, dim]
        sql = "SELECT value, metric, SUM(n) AS n, SUM(total) AS total FROM report_rollups WHERE grain = ? AND dim = ? "
        if value is not None:
            sql += "AND value = ? "
            params.append(value)
        sql += f"AND metric IN ({marks}) AND bucket >= ? AND bucket < ? GROUP BY value, metric"
        for r in tx.all(sql, (*params, *metrics, p.lo, p.hi)):
            row = out.setdefault(str(r["value"]), {}).setdefault(str(r["metric"]), [0, 0.0])
            row[0] += int(r["n"])
            row[1] += float(r["total"])
    return out


def series_rows(tx: Tx, ps: list[Piece], dim: str, value: str, metrics: Iterable[str] = METRICS,
                cuts: Cuts | None = None) -> list[Any]:
    """(grain, bucket, metric, n, total) rows of one slice value over PS (CUTS: as for sums)."""
    if dim == "segment":
        return _segment_rows(tx, ps, value, metrics, True, cuts)
    marks = ", ".join("?" for _ in metrics)
    rows: list[Any] = []
    for p in ps:
        rows += tx.all(
            f"SELECT grain, bucket, metric, n, total FROM report_rollups WHERE grain = ? AND dim = ? AND value = ? "
            f"AND metric IN ({marks}) AND bucket >= ? AND bucket < ?",
            (p.grain, dim, value, *metrics, p.lo, p.hi),
        )
    return rows


def _avg(s: Sums, metric: str) -> float | None:
    n, total = s.get(metric, [0, 0.0])
    return round(total / n, 1) if n else None


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def figures(s: Sums) -> dict[str, float | int | None]:
    """The figures of FIGURES from one set of sums (docs/reports.md: the definitions)."""

    def n(metric: str) -> int:
        return int(s.get(metric, [0, 0.0])[0])

    contacts = n("opened") + n("reopened")
    answered, abandoned = n("wait"), n("abandoned")
    return {
        "conversations_opened": n("opened"),
        "conversations_reopened": n("reopened"),
        "conversations_resolved": n("resolved"),
        "messages_in": n("messages_in"),
        "messages_out": n("messages_out"),
        "first_response_time": _avg(s, "first_response"),
        "first_response_time_business": _avg(s, "first_response_bh"),
        "first_response_attainment": _ratio(n("first_response_in_sla"), n("first_response_targeted")),
        "reply_time": _avg(s, "reply"),
        "reply_time_business": _avg(s, "reply_bh"),
        "resolution_time": _avg(s, "resolved"),
        "resolution_time_business": _avg(s, "resolved_bh"),
        "wait_time": _avg(s, "wait"),
        "answered": answered,
        "sla_attainment": _ratio(n("answered_in_sla"), answered),
        "abandoned": abandoned,
        "abandon_rate": _ratio(abandoned, answered + abandoned),
        "abandon_wait_time": _avg(s, "abandoned"),
        "transfers": n("transfers"),
        "offers": n("offered"),
        "offers_accepted": n("offers_accepted"),
        "offers_rejected": n("offers_rejected"),
        "offers_timed_out": n("offers_timed_out"),
        "after_hours": n("after_hours"),
        "repeat_contacts": n("repeat"),
        "first_contact_resolution": None if not contacts else round(1 - n("repeat") / contacts, 4),
        "csat_responses": n("csat"),
        "csat_score": _ratio(n("csat_satisfied"), n("csat")),
        "csat_average": None if not n("csat") else round(s["csat"][1] / n("csat"), 2),
    }


def group_start(t: datetime, group: str) -> datetime:
    """The start of T's hour, day, week (Monday) or month, in T's time zone."""
    t = t.replace(minute=0, second=0, microsecond=0)
    if group == "hour":
        return t
    t = t.replace(hour=0)
    if group == "week":
        return t - timedelta(days=t.weekday())
    if group == "month":
        return t.replace(day=1)
    return t


def bucket_start(grain: str, bucket: str, business_tz: ZoneInfo) -> datetime:
    # Sliced by hand: strptime costs more than the query for a year of hourly rows.
    year, month = int(bucket[0:4]), int(bucket[5:7])
    if grain == "hour":
        return datetime(year, month, int(bucket[8:10]), int(bucket[11:13]), tzinfo=UTC)
    return datetime(year, month, int(bucket[8:10]) if grain == "day" else 1, tzinfo=business_tz)


@dataclass(frozen=True)
class KeywordWeeks:
    """The whole weeks (Mondays of the business's time zone, "YYYY-MM-DD") a keyword trend compares: [first, end)
    and the same number of weeks just before, [previous, first)."""

    previous: str
    first: str
    end: str
    weeks: int


def keyword_weeks(lo: datetime, hi: datetime, business_tz: ZoneInfo) -> KeywordWeeks:
    """The weeks [LO, HI) touches, and as many before them: keywords are kept by week, so a range is widened to
    whole weeks rather than cut."""
    first = lo.astimezone(business_tz).date()
    first -= timedelta(days=first.weekday())
    last = (hi - timedelta(microseconds=1)).astimezone(business_tz).date()
    end = last - timedelta(days=last.weekday()) + timedelta(days=7)
    weeks = (end - first).days // 7
    return KeywordWeeks((first - timedelta(weeks=weeks)).isoformat(), first.isoformat(), end.isoformat(), weeks)


#: the rows of report_keywords_by_queue that make one slice's counts (its value the parameter)
_KEYWORD_SLICE = {"all": "", "channel": " AND channel = ?", "queue": " AND queue = ?"}


def keyword_counts(tx: Tx, dim: str, value: str, lo: str, hi: str, at_least: int | None,
                   words: Iterable[str] = ()) -> dict[str, int]:
    """Word -> messages that had it, in the weeks [LO, HI) of one slice (DIM "all", "channel" or "queue"): the words
    counted AT_LEAST times (None: none), and WORDS whatever their count. The counts are kept by week, channel and
    queue (migration 114) and summed here, with what report_keywords kept per slice before that."""
    cut = _KEYWORD_SLICE[dim]
    params: tuple[Any, ...] = (lo, hi, value) if cut else (lo, hi)
    kept = f"SELECT word, n FROM report_keywords_by_queue WHERE week >= ? AND week < ?{cut}"
    old = (dim, value, lo, hi)
    if tx.one("SELECT 1 AS one FROM report_keywords WHERE dim = ? AND value = ? AND week >= ? AND week < ? LIMIT 1",
              old) is not None:
        # Weeks counted before migration 114: their rows added to the new ones (a union the database cannot fold
        # into the sum, so only when there are such rows).
        kept = f"SELECT word, n FROM report_keywords WHERE dim = ? AND value = ? AND week >= ? AND week < ? " \
               f"UNION ALL {kept}"
        params = (*old, *params)

    def query(tail: str, chunk: Sequence[str] = ()) -> tuple[str, tuple[Any, ...]]:
        among = f"WHERE word IN ({', '.join('?' for _ in chunk)}) " if chunk else ""
        return f"SELECT word, SUM(n) AS n FROM ({kept}) AS k {among}GROUP BY word {tail}", (*params, *chunk)

    out: dict[str, int] = {}
    if at_least is not None:
        sql, args = query("HAVING SUM(n) >= ?")
        out = {str(r["word"]): int(r["n"]) for r in tx.all(sql, (*args, at_least))}
    rest = sorted(set(words) - set(out))
    for i in range(0, len(rest), 500):
        sql, args = query("", rest[i : i + 500])
        for r in tx.all(sql, args):
            out[str(r["word"])] = int(r["n"])
    return out


def keyword_changes(tx: Tx, dim: str, value: str, w: KeywordWeeks, min_count: int,
                    shown: int) -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]:
    """(word, now, previous) of the SHOWN words that rose most and the SHOWN that fell most from the previous weeks
    to these; a word ranks only when it was counted MIN_COUNT times in one of the two (fewer is noise)."""
    now = keyword_counts(tx, dim, value, w.first, w.end, min_count)
    before = keyword_counts(tx, dim, value, w.previous, w.first, min_count)
    # A word frequent in one period only: its count in the other, however small.
    now.update(keyword_counts(tx, dim, value, w.first, w.end, None, before))
    before.update(keyword_counts(tx, dim, value, w.previous, w.first, None, now))
    moved = [(word, now.get(word, 0), before.get(word, 0)) for word in set(now) | set(before)]
    rising = sorted((m for m in moved if m[1] > m[2]), key=lambda m: (m[2] - m[1], m[0]))[:shown]
    falling = sorted((m for m in moved if m[1] < m[2]), key=lambda m: (m[1] - m[2], m[0]))[:shown]
    return rising, falling
