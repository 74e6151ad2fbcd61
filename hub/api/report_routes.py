"""GET /api/v1/reports/*: summary (with the previous period), timeseries, breakdown by channel, queue or agent, and
the hour-of-week heatmap; each as JSON or, with ?format=csv, as a CSV file. Admins and supervisors see every figure;
an agent sees only their own."""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from hub.api.auth import PRINCIPAL, Principal
from hub.business_hours import zone
from hub.history.db import Tx
from hub.keys import DB, SETTINGS
from hub.reports import forecast, presence, query
from hub.reports.query import BREAKDOWNS, FIGURES, GROUPS, HOURLY_DAYS, SLICES
from hub.segments.criteria import Cuts, current_cuts

MAX_DAYS = 400
#: roles that see every figure; anyone else sees their own
MANAGERS = ("admin", "supervisor")
#: count figures the heatmap can show, and the rollup metric each is
HEATMAP = {"conversations_opened": "opened", "messages_in": "messages_in", "messages_out": "messages_out",
           "conversations_resolved": "resolved", "abandoned": "abandoned", "after_hours": "after_hours"}


@dataclass(frozen=True)
class Ask:
    """What one report request asks for, checked."""

    lo: datetime
    hi: datetime
    tz: ZoneInfo
    business_tz: ZoneInfo
    dim: str
    value: str
    #: a segment's RFM boundaries: the ones the process keeps for a minute (hub.segments.criteria.current_cuts)
    cuts: Cuts | None = None


def _bad(message: str) -> web.HTTPUnprocessableEntity:
    return web.HTTPUnprocessableEntity(text=message)


def _when(raw: str, tz: ZoneInfo, name: str) -> datetime:
    try:
        if len(raw) == 10:
            return datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=tz)
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"{name} must be a date (2026-01-31) or a time with its offset (2026-01-31T09:00+01:00)") from None
    return t if t.tzinfo else t.replace(tzinfo=tz)


def _ask(request: web.Request) -> Ask:
    settings = request.app[SETTINGS]
    business_tz = zone(settings.reports.time_zone)
    q = request.query
    try:
        tz = zone(q.get("tz") or settings.reports.time_zone)
    except ValueError as e:
        raise _bad(f"tz: {e}") from None
    today = datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    hi = _when(q["to"], tz, "to") if q.get("to") else today + timedelta(days=1)
    lo = _when(q["from"], tz, "from") if q.get("from") else hi - timedelta(days=7)
    if lo >= hi:
        raise _bad("from must be before to")
    if hi - lo > timedelta(days=MAX_DAYS):
        raise _bad(f"a report covers at most {MAX_DAYS} days")
    slices = [(d, q[d]) for d in SLICES if q.get(d)]
    if len(slices) > 1:
        raise _bad(f"filter by one of {', '.join(SLICES)} at a time")
    dim, value = slices[0] if slices else ("all", "")
    if dim == "segment" and not (value.isdigit() and len(value) < 19):
        raise _bad("segment is a saved segment's id (GET /api/v1/segments)")
    p: Principal = request[PRINCIPAL]
    if p.role not in MANAGERS:
        if dim not in ("all", "agent") or (dim == "agent" and value != str(p.agent_id)):
            raise web.HTTPForbidden(text="an agent sees their own figures only (supervisors see every slice)")
        dim, value = "agent", str(p.agent_id)
    return Ask(lo, hi, tz, business_tz, dim, value)


async def _asked(request: web.Request) -> Ask:
    """_ask, and a segment asked for must exist (a 404 says so, rather than a report of zeros)."""
    a = _ask(request)
    if a.dim == "segment":
        row = await request.app[DB].read(lambda tx: tx.one("SELECT id FROM segments WHERE id = ?", (int(a.value),)))
        if row is None:
            raise web.HTTPNotFound(text=f"segment {a.value} does not exist")
        # Not computed again per report: that reads every customer, and the segment API's scores use these too.
        a = replace(a, cuts=await current_cuts(request.app[DB]))
    return a


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def _respond(request: web.Request, data: dict[str, Any], header: list[str], rows: list[list[Any]],
             name: str) -> web.Response:
    if request.query.get("format", "json") == "csv":
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(header)
        w.writerows(rows)
        return web.Response(text=out.getvalue(), content_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{name}.csv"'})
    if request.query.get("format", "json") != "json":
        raise _bad("format is json or csv")
    return web.json_response(data)


async def summary(request: web.Request) -> web.Response:
    a = await _asked(request)
    before = (a.lo - (a.hi - a.lo), a.lo)

    def read(tx: Tx) -> tuple[dict[str, Any], dict[str, Any], bool]:
        now = query.sums(tx, query.pieces(a.lo, a.hi, a.business_tz), a.dim, a.value, cuts=a.cuts).get(a.value, {})
        then = query.sums(tx, query.pieces(*before, a.business_tz), a.dim, a.value, cuts=a.cuts).get(a.value, {})
        # Read in the same snapshot as the figures (the partial index makes it one probe).
        waiting = tx.one("SELECT id FROM conversation_events WHERE rolled = 0 LIMIT 1") is not None
        return query.figures(now), query.figures(then), waiting

    current, previous, waiting = await request.app[DB].read(read)
    data = {"from": _iso(a.lo), "to": _iso(a.hi), "previous_from": _iso(before[0]),
            "slice": None if a.dim == "all" else {"by": a.dim, "value": a.value},
            "figures": current, "previous": previous, "units": FIGURES, "catching_up": waiting}
    rows = [[k, current[k], previous[k], FIGURES[k]] for k in FIGURES]
    return _respond(request, data, ["figure", "value", "previous", "unit"], rows, "summary")


def _steps(lo: datetime, hi: datetime, group: str) -> list[datetime]:
    """Every group start from LO's to before HI, in LO's time zone (wall clock: a day is a day across DST)."""
    out, t = [], query.group_start(lo, group)
    while t < hi:
        out.append(t)
        if group == "hour":
            t = (t.astimezone(UTC) + timedelta(hours=1)).astimezone(lo.tzinfo)
        elif group == "month":
            t = (t.replace(day=28) + timedelta(days=5)).replace(day=1)
        else:
            t = t + timedelta(days=7 if group == "week" else 1)
    return out


async def timeseries(request: web.Request) -> web.Response:
    a = await _asked(request)
    group = request.query.get("group", "day")
    if group not in GROUPS:
        raise _bad(f"group is one of {', '.join(GROUPS)}")
    span = a.hi - a.lo
    if group == "hour" and span > timedelta(days=HOURLY_DAYS):
        raise _bad(f"group=hour covers at most {HOURLY_DAYS} days")
    ps, hourly = query.series_pieces(a.lo, a.hi, a.business_tz, group)
    tz = a.tz if hourly else a.business_tz

    def read(tx: Tx) -> list[Any]:
        return query.series_rows(tx, ps, a.dim, a.value, cuts=a.cuts)

    rows = await request.app[DB].read(read)
    lo = a.lo.astimezone(tz)
    buckets: dict[datetime, query.Sums] = {t: {} for t in _steps(lo, a.hi.astimezone(tz), group)}
    starts: dict[tuple[str, str], datetime] = {}  # each bucket comes once per metric: placed once
    for r in rows:
        key = (str(r["grain"]), str(r["bucket"]))
        start = starts.get(key)
        if start is None:
            start = starts[key] = query.group_start(
                query.bucket_start(key[0], key[1], a.business_tz).astimezone(tz), group)
        s = buckets.setdefault(start, {}).setdefault(str(r["metric"]), [0, 0.0])
        s[0] += int(r["n"])
        s[1] += float(r["total"])
    series = [(_iso(t), query.figures(buckets[t])) for t in sorted(buckets)]
    data = {"from": _iso(a.lo), "to": _iso(a.hi), "group": group, "time_zone": str(tz),
            "slice": None if a.dim == "all" else {"by": a.dim, "value": a.value},
            "buckets": [{"start": start, "figures": f} for start, f in series],
            "units": FIGURES}
    csv_rows = [[start, *(f[k] for k in FIGURES)] for start, f in series]
    return _respond(request, data, ["start", *FIGURES], csv_rows, f"timeseries-{group}")


async def breakdown(request: web.Request) -> web.Response:
    a = await _asked(request)
    by = request.query.get("by", "queue")
    if by not in BREAKDOWNS:
        raise _bad(f"by is one of {', '.join(BREAKDOWNS)}")
    if a.dim not in ("all",) and not (a.dim == "agent" and by == "agent"):
        raise _bad("a breakdown covers every value of one slice: drop the filter")
    settings = request.app[SETTINGS]

    def read(tx: Tx) -> tuple[dict[str, query.Sums], dict[str, str]]:
        found = query.sums(tx, query.pieces(a.lo, a.hi, a.business_tz), by, a.value if a.dim == "agent" else None)
        labels: dict[str, str] = {}
        if by == "agent" and found:
            ids = [int(v) for v in found if v.isdigit()]
            marks = ", ".join("?" for _ in ids) or "NULL"
            labels = {str(r["id"]): str(r["name"]) for r in tx.all(
                f"SELECT id, name FROM agents WHERE id IN ({marks})", ids)}
        if by == "label":
            labels = {str(r["name"]): str(r["title"]) for r in tx.all("SELECT name, title FROM labels")}
        return found, labels

    found, labels = await request.app[DB].read(read)
    if by == "queue":
        labels = {n: q.title or n for n, q in settings.routing.queues.items()}
    table = [(v, labels.get(v, v), query.figures(s)) for v, s in sorted(found.items())]
    rows = [{"value": v, "label": label, "figures": f} for v, label, f in table]
    data = {"from": _iso(a.lo), "to": _iso(a.hi), "by": by, "rows": rows, "units": FIGURES}
    csv_rows = [[v, label, *(f[k] for k in FIGURES)] for v, label, f in table]
    return _respond(request, data, [by, "label", *FIGURES], csv_rows, f"breakdown-{by}")


async def heatmap(request: web.Request) -> web.Response:
    a = await _asked(request)
    figure = request.query.get("figure", "conversations_opened")
    if figure not in HEATMAP:
        raise _bad(f"figure is one of {', '.join(HEATMAP)}")
    ps = query.pieces(a.lo, a.hi, a.business_tz, hourly_only=True)

    def read(tx: Tx) -> list[Any]:
        return query.series_rows(tx, ps, a.dim, a.value, metrics=(HEATMAP[figure],), cuts=a.cuts)

    cells = [[0] * 24 for _ in range(7)]  # Monday first, hours 0-23 of the viewer's time zone
    for r in await request.app[DB].read(read):
        t = query.bucket_start("hour", str(r["bucket"]), a.business_tz).astimezone(a.tz)
        cells[t.weekday()][t.hour] += int(r["n"])
    data = {"from": _iso(a.lo), "to": _iso(a.hi), "figure": figure, "time_zone": str(a.tz), "cells": cells}
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return _respond(request, data, ["day", *(f"{h:02d}" for h in range(24))],
                    [[days[i], *row] for i, row in enumerate(cells)], f"heatmap-{figure}")


#: how many rising and how many falling topics the trends list
TOPICS_SHOWN = 5
#: how many rising and how many falling keywords, and the count a keyword needs in one period to rank by default
KEYWORDS_SHOWN = 10
KEYWORD_MIN_COUNT = 5


def _change(now: float | None, before: float | None) -> float | None:
    return round((now - before) / before, 4) if now is not None and before else None


async def trends(request: web.Request) -> web.Response:
    """Per channel, this period against the one before (volume and first response); the labels ("topics") whose
    volume rose or fell the most between them; and the keywords of customers' messages that did (by whole weeks,
    of one channel or queue with a filter)."""
    if request[PRINCIPAL].role not in MANAGERS:
        raise web.HTTPForbidden(text="trends are for supervisors and admins")
    a = await _asked(request)
    if a.dim not in ("all", "channel", "queue"):
        raise _bad("trends take a channel or a queue filter (for the keywords) or none")
    min_count = int(_number(request, "min_count", KEYWORD_MIN_COUNT, 1, 1_000_000))
    before = (a.lo - (a.hi - a.lo), a.lo)
    metrics = ("opened", "reopened", "first_response")
    weeks = query.keyword_weeks(a.lo, a.hi, a.business_tz)
    Moved = list[tuple[str, int, int]]

    def read(tx: Tx) -> tuple[dict[str, query.Sums], dict[str, query.Sums], dict[str, query.Sums],
                              dict[str, query.Sums], dict[str, str], tuple[Moved, Moved]]:
        now, then = query.pieces(a.lo, a.hi, a.business_tz), query.pieces(*before, a.business_tz)
        return (query.sums(tx, now, "channel", None, metrics), query.sums(tx, then, "channel", None, metrics),
                query.sums(tx, now, "label", None, ("opened",)), query.sums(tx, then, "label", None, ("opened",)),
                {str(r["name"]): str(r["title"]) for r in tx.all("SELECT name, title FROM labels")},
                query.keyword_changes(tx, a.dim, a.value, weeks, min_count, KEYWORDS_SHOWN))

    ch_now, ch_then, lb_now, lb_then, titles, (up, down) = await request.app[DB].read(read)
    channels: list[dict[str, Any]] = []
    for channel in sorted(set(ch_now) | set(ch_then)):
        f, g = query.figures(ch_now.get(channel, {})), query.figures(ch_then.get(channel, {}))
        volume = (int(f["conversations_opened"] or 0), int(g["conversations_opened"] or 0))
        response = (f["first_response_time"], g["first_response_time"])
        channels.append({"channel": channel,
                         "volume": {"now": volume[0], "previous": volume[1], "change": _change(*volume)},
                         "first_response": {"now": response[0], "previous": response[1],
                                            "change": _change(*response)}})
    topics: list[dict[str, Any]] = []
    for name in set(lb_now) | set(lb_then):
        n = int(lb_now.get(name, {}).get("opened", [0, 0.0])[0])
        p = int(lb_then.get(name, {}).get("opened", [0, 0.0])[0])
        if n != p:
            topics.append({"label": name, "title": titles.get(name, name), "now": n, "previous": p,
                           "change": _change(n, p)})
    topics.sort(key=lambda t: (-(t["now"] - t["previous"]), t["label"]))
    rising = [t for t in topics if t["now"] > t["previous"]][:TOPICS_SHOWN]
    falling = [t for t in reversed(topics) if t["now"] < t["previous"]][:TOPICS_SHOWN]
    moved = {kind: [{"word": w, "now": n, "previous": p, "change": _change(n, p)} for w, n, p in ws]
             for kind, ws in (("rising", up), ("falling", down))}
    keywords = {"slice": None if a.dim == "all" else {"by": a.dim, "value": a.value},
                "weeks_from": weeks.first, "weeks_to": weeks.end, "previous_from": weeks.previous,
                "weeks": weeks.weeks, "min_count": min_count, **moved}
    data: dict[str, Any] = {"from": _iso(a.lo), "to": _iso(a.hi), "previous_from": _iso(before[0]),
                            "channels": channels, "topics": {"rising": rising, "falling": falling},
                            "keywords": keywords}
    rows = [["channel", c["channel"], c["volume"]["now"], c["volume"]["previous"], c["first_response"]["now"],
             c["first_response"]["previous"]] for c in channels]
    rows += [[f"topic {kind}", t["label"], t["now"], t["previous"], "", ""]
             for kind, ts in (("rising", rising), ("falling", falling)) for t in ts]
    rows += [[f"keyword {kind}", k["word"], k["now"], k["previous"], "", ""]
             for kind, ks in moved.items() for k in ks]
    return _respond(request, data, ["kind", "name", "volume", "previous_volume", "first_response_time",
                                    "previous_first_response_time"], rows, "trends")


def _number(request: web.Request, name: str, default: float, lo: float, hi: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _bad(f"{name} must be a number from {lo:g} to {hi:g}") from None
    if not lo <= value <= hi:
        raise _bad(f"{name} must be a number from {lo:g} to {hi:g}")
    return value


async def staffing(request: web.Request) -> web.Response:
    """The next weeks' contacts per hour (hour-of-week profile x trending weekly total), the error of that model
    on held-out past weeks, and the agents each hour needs to answer GOAL of them within TARGET seconds: by Erlang C,
    and by Erlang A where abandonment is measured (or patience_seconds is given); last week's hours beside the
    agents who were available in them (the presence history)."""
    if request[PRINCIPAL].role not in MANAGERS:
        raise web.HTTPForbidden(text="the staffing forecast is for supervisors and admins")
    a = await _asked(request)
    history = int(_number(request, "history_weeks", 8, 1, 52))
    ahead = int(_number(request, "weeks", 2, 1, 8))
    handle = _number(request, "handle_seconds", 300, 1, 86_400)
    target = _number(request, "target_seconds", 60, 0, 86_400)
    goal = _number(request, "goal", 0.8, 0.01, 0.999)
    concurrency = int(_number(request, "concurrency", 1, 1, 20))
    now = datetime.now(a.tz)
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    start = monday - timedelta(weeks=history)  # whole weeks, the current one left out (it is not over)
    ps = query.pieces(start, monday, a.business_tz, hourly_only=True)

    past_week = monday - timedelta(weeks=1)
    now_utc = datetime.now(UTC)
    queue = a.value if a.dim == "queue" else None
    patience_asked = request.query.get("patience_seconds")
    patience_given = _number(request, "patience_seconds", 0, 1, 86_400) if patience_asked is not None else None

    def read(tx: Tx) -> tuple[list[Any], query.Sums, list[float]]:
        rows = query.series_rows(tx, ps, a.dim, a.value, metrics=("opened",), cuts=a.cuts)
        waited = query.sums(tx, ps, a.dim, a.value, metrics=("wait", "abandoned"), cuts=a.cuts).get(a.value, {})
        # Who was available: the last whole week and this one so far (presence history; docs/reports.md).
        available = presence.available_by_hour(tx, past_week.astimezone(UTC), 2 * forecast.HOURS_PER_WEEK, queue,
                                               until=now_utc)
        return rows, waited, available

    rows, waited, available = await request.app[DB].read(read)
    hourly = [0.0] * (history * forecast.HOURS_PER_WEEK)
    for r in rows:
        at = query.bucket_start("hour", str(r["bucket"]), a.business_tz)
        i = int((at - start).total_seconds() // 3600)
        if 0 <= i < len(hourly):
            hourly[i] += int(r["n"])
    # Patience, from the measured waits: with exponential patience its mean is the time every contact spent
    # waiting (answered or not) over the number who gave up (the maximum-likelihood estimate).
    answered_n, answered_s = waited.get("wait", [0, 0.0])
    abandoned_n, abandoned_s = waited.get("abandoned", [0, 0.0])
    patience = patience_given if patience_given is not None else (
        (answered_s + abandoned_s) / abandoned_n if abandoned_n else None)
    if patience is not None and patience <= 0:
        patience = None  # nobody waited at all: abandonment cannot be measured

    def needs(contacts: float, at: datetime) -> tuple[int, int | None]:
        try:
            c = forecast.agents_needed(contacts, handle, target, goal, concurrency)
            with_abandon = None if patience is None else forecast.agents_needed_a(
                contacts, handle, patience, target, goal, concurrency, at_most=c)
        except ValueError as e:
            raise _bad(f"{e} in the hour from {_iso(at)}: check handle_seconds and concurrency") from None
        return c, with_abandon

    model = forecast.fit(hourly)

    def size() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        hours = []
        for week in range(1, ahead + 1):
            for h, contacts in enumerate(model.week(week)):
                at = (monday + timedelta(weeks=week - 1, hours=h)).astimezone(a.tz)
                agents, agents_a = needs(contacts, at)
                i = forecast.HOURS_PER_WEEK + (week - 1) * forecast.HOURS_PER_WEEK + h
                passed = i < len(available) and at + timedelta(hours=1) <= now_utc
                hours.append({"start": _iso(at), "contacts": round(contacts, 2), "agents": agents,
                              "agents_erlang_a": agents_a, "available": available[i] if passed else None})
        # Last week as it happened: the agents its actual volume needed, beside those who were available.
        last_week = []
        for h in range(forecast.HOURS_PER_WEEK):
            at = (past_week + timedelta(hours=h)).astimezone(a.tz)
            contacts = hourly[-forecast.HOURS_PER_WEEK + h]
            agents, agents_a = needs(contacts, at)
            last_week.append({"start": _iso(at), "contacts": contacts, "agents": agents,
                              "agents_erlang_a": agents_a, "available": available[h]})
        return hours, last_week

    # Erlang A costs about a second per 500 hours at 400 contacts an hour (docs/reports.md): off the event loop.
    hours, last_week = await asyncio.to_thread(size)
    error = forecast.held_out_error(hourly)
    data = {
        "slice": {"dim": a.dim, "value": a.value}, "time_zone": str(a.tz),
        "history": {"from": _iso(start), "to": _iso(monday), "weeks": history, "contacts": int(sum(hourly))},
        "model": {"weekly_level": round(model.level, 2), "weekly_trend": round(model.trend, 2),
                  "held_out_wape": None if error is None else round(error, 3), "held_out_weeks": 2},
        "assumptions": {"handle_seconds": handle, "target_seconds": target, "goal": goal, "concurrency": concurrency,
                        "patience_seconds": None if patience is None else round(patience, 1),
                        "patience_measured": patience_given is None and patience is not None,
                        "abandoned": int(abandoned_n), "answered": int(answered_n)},
        "hours": hours,
        "last_week": last_week,
    }
    return _respond(request, data, ["start", "contacts", "agents", "agents_erlang_a", "available"],
                    [[h["start"], h["contacts"], h["agents"], h["agents_erlang_a"], h["available"]]
                     for h in [*last_week, *hours]], "staffing-forecast")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/reports/summary", summary),
        web.get("/api/v1/reports/timeseries", timeseries),
        web.get("/api/v1/reports/breakdown", breakdown),
        web.get("/api/v1/reports/heatmap", heatmap),
        web.get("/api/v1/reports/staffing", staffing),
        web.get("/api/v1/reports/trends", trends),
    ]
