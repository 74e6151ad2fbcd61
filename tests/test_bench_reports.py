"""Tests of bench.reports itself: the history it folds holds what it says, and every case it measures answers."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.reports import history, parser
from hub.reports.rollup import RollRules


def test_the_generated_history_holds_what_it_says() -> None:
    args = parser().parse_args(["--conversations", "500", "--days", "14", "--customers", "50", "--queues", "3"])
    start = datetime(2026, 1, 5, tzinfo=UTC)
    deltas = history(args, RollRules(sla_wait={"q00": 60.0}), start, None)

    def total(metric: str, grain: str = "day") -> int:
        return sum(int(v[0]) for (g, dim, m, _b, _v), v in deltas.rows.items()
                   if g == grain and dim == "all" and m == metric)

    assert total("opened") == total("opened", "hour") == total("opened", "month") == 500
    assert total("messages_in") + total("messages_out") + total("abandoned") * 9 == 500 * 10
    assert total("wait") + total("abandoned") == 500
    assert 0 < total("repeat") < 500  # 50 customers: many come back within a week
    days = {b for (g, dim, m, b, _v) in deltas.rows if g == "day" and m == "opened"}
    assert min(days) >= start.strftime("%Y-%m-%d") and max(days) < (start + timedelta(days=14)).strftime("%Y-%m-%d")


async def test_every_case_is_timed_and_its_percentiles_ordered(aiohttp_client: object) -> None:
    from aiohttp import web

    from bench.reports import measure

    async def answer(request: web.Request) -> web.Response:
        # The saved segments the reports are sliced by (the RFM groups come with the hub).
        if request.path == "/api/v1/segments":
            return web.json_response({"items": [{"id": 1, "name": "Champions"}, {"id": 2, "name": "Loyal"}]})
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    client = await aiohttp_client(app)  # type: ignore[operator]
    results = await measure(str(client.make_url("")), "token", 5, datetime.now(UTC))
    assert results[0]["case"] == "healthz (baseline)" and len(results) == 1 + 3 * 9 + 2 + 3 * 2 * 3
    assert sum("&segment=1" in r["path"] for r in results) == sum("&segment=2" in r["path"] for r in results) == 9
    assert all(0 < r["p50"] <= r["p99"] for r in results)
    kept = await measure(str(client.make_url("")), "token", 2, datetime.now(UTC), skip="segment|365d")
    assert len(kept) == 1 + 2 * 9 + 2 and not any("segment" in r["case"] or "365d" in r["case"] for r in kept)
    only = await measure(str(client.make_url("")), "token", 2, datetime.now(UTC), skip=".")
    assert [r["case"] for r in only] == ["healthz (baseline)"]  # the baseline every ratio is read against stays


def test_the_customers_for_segments_match_the_folded_contacts() -> None:
    from bench.reports import customers

    args = parser().parse_args(["--conversations", "400", "--days", "14", "--customers", "100", "--queues", "2"])
    end = datetime(2026, 1, 19, tzinfo=UTC)
    deltas = history(args, RollRules(), end - timedelta(days=14), None)
    people = customers(args, deltas, end)
    stats = {row[0]: row for row in people.stats}
    assert sum(row[1] for row in people.stats) == 400  # every conversation opened is one contact
    assert {c for c, _ in people.channels} <= set(stats) and [c[0] for c in people.customers] == sorted(stats)
    buyers = [row for row in people.stats if row[3]]
    assert buyers and all(row[4] > 0 and row[5] is not None for row in buyers)
    # Survey answers: a quarter of the resolved conversations, each customer's count and sum of scores.
    assert sum(row[6] for row in people.stats) == sum(
        int(v[0]) for (g, dim, m, _b, _v), v in deltas.rows.items() if g == "month" and dim == "all" and m == "csat")
    assert all(row[6] <= row[7] <= 5 * row[6] for row in people.stats)
    assert sum(row[6] for row in people.stats) > 0


def test_the_hourly_fold_widened_equals_the_rollers_own() -> None:
    from hub.reports.rollup import _Deltas

    # A business time zone off UTC, so a day's hours are not the UTC day's (the widening must map them as the roller).
    rules = RollRules(time_zone="America/New_York", sla_wait={"q00": 60.0})
    args = parser().parse_args(["--conversations", "600", "--days", "40", "--customers", "80", "--queues", "3"])
    start = datetime(2026, 2, 20, tzinfo=UTC)
    fast = history(args, rules, start, None)
    plain = history(args, rules, start, None, _Deltas(rules))
    assert {g for g, *_ in plain.rows} == {"hour", "day", "month"}
    # The same rows and counts; the sums of seconds only as far as the order of float additions allows.
    assert fast.rows.keys() == plain.rows.keys()
    assert all(fast.rows[k][0] == n and math.isclose(fast.rows[k][1], total, rel_tol=1e-9, abs_tol=1e-9)
               for k, (n, total) in plain.rows.items())
    assert (fast.contacts, fast.ratings, fast.channels) == (plain.contacts, plain.ratings, plain.channels)
    assert {g for _, g, _ in plain.customers} == {"hour", "day"} and fast.customers.keys() == plain.customers.keys()
    assert all(fast.customers[k].keys() == sums.keys() and all(
        fast.customers[k][m][0] == n and math.isclose(fast.customers[k][m][1], total, rel_tol=1e-9, abs_tol=1e-9)
        for m, (n, total) in sums.items()) for k, sums in plain.customers.items())


def test_the_streamed_history_hands_out_every_row_once_and_complete() -> None:
    """Streamed a month at a time (memory at 1,000,000 conversations): the same rows the whole fold keeps, each
    handed out once, in a business time zone off UTC (a day's hours straddle two UTC days, a month's two flushes)."""
    from bench.reports import HourlyDeltas
    from hub.reports.rollup import customer_values

    rules = RollRules(time_zone="America/New_York", sla_wait={"q00": 60.0})
    args = parser().parse_args(["--conversations", "2000", "--days", "100", "--customers", "150", "--queues", "3"])
    start = datetime(2026, 1, 20, tzinfo=UTC)
    whole = history(args, rules, start, None)
    rollups: list[tuple[Any, ...]] = []
    mine: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []

    def flush(r: list[tuple[Any, ...]], m: list[tuple[Any, ...]], e: list[tuple[Any, ...]]) -> None:
        rollups.append(tuple(r))
        mine.extend(m)
        events.extend(e)

    streamed = history(args, rules, start, [], flush=flush)
    assert len(rollups) == 4 and all(rollups)  # as February, March and April begin, and the rest at the end
    rows = [r for chunk in rollups for r in chunk]
    assert len({r[:5] for r in rows}) == len(rows) == len(whole.rows)  # every row once
    expected = {(g, d, v, met, b): (n, total) for (g, d, met, b, v), (n, total) in whole.rows.items()}
    assert all(expected[r[:5]][0] == r[5] and math.isclose(expected[r[:5]][1], float(r[6]), abs_tol=1e-6)
               for r in rows)
    assert len({r[:3] for r in mine}) == len(mine) == len(whole.customers)
    assert {r[:3]: r[3:] for r in mine}.keys() == whole.customers.keys()
    assert all(all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(r[3:], customer_values(whole.customers[r[:3]]),
                                                                      strict=True)) for r in mine)
    assert len({e[0] for e in events}) == 2000  # every conversation's events
    assert (streamed.contacts, streamed.ratings, streamed.channels) == (whole.contacts, whole.ratings, whole.channels)
    assert not streamed.rows and not streamed.customers  # nothing kept once handed out

    # An event in an hour already handed out would be lost: it stops the seeding instead.
    from hub.reports.rollup import _Clock

    late = HourlyDeltas(rules)
    late.ripe("2026-03-01T00")
    with pytest.raises(RuntimeError, match="after its hour was written"):
        late.add("opened", "2026-02-28T23:59:00.000000Z", _Clock(1), None)
