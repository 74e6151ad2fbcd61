"""Segments as a supervisor uses them, on SQLite and PostgreSQL: customers who wrote on several channels and placed
orders, scored 1-5 for recency, frequency and monetary value by quintiles, grouped as the docs say; saved segments
on every criterion, their size, trend, customers a page at a time and as CSV; only admins and supervisors."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.config import Settings
from hub.history.db import Database, Tx
from hub.keys import DB, SETTINGS
from hub.model import format_time, utcnow
from hub.reports import events as conversation_events
from hub.reports.rollup import RollRules, catch_up, rebuild
from hub.segments import criteria, segment_store
from tests.api.client import Api, inbound

SEG = "/api/v1/segments"
ONE = "/api/v1/segments/{id}"
CUSTOMERS = "/api/v1/segments/{id}/customers"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url, HUB_ROUTING__QUEUES='{"support": {}}', HUB_REPORTS__ROLL_INTERVAL_SECONDS="3600")


async def roll(api: Api) -> None:
    s = api.client.app[SETTINGS]
    await catch_up(api.client.app[DB], RollRules.from_settings(s.reports, s.routing), cutoff=format_time(utcnow()))


async def rebuild_now(api: Api) -> None:
    """`hub reports rebuild`, and the events of the last seconds it leaves for the roller on PostgreSQL."""
    s = api.client.app[SETTINGS]
    await rebuild(api.client.app[DB], RollRules.from_settings(s.reports, s.routing))
    await roll(api)


async def order(api: Api, identity: str, ext: str, amount: float) -> int:
    got = await api.call("POST", "/api/v1/events", "/api/v1/events",
                         {"external_id": ext, "type": "order.placed", "identity": identity, "amount": amount,
                          "currency": "EUR"}, expect=201)
    return int(got["event"]["customer_id"])


async def resolve(api: Api, conv: int) -> None:
    await api.call("POST", "/api/v1/conversations/{id}/resolve", f"/api/v1/conversations/{conv}/resolve")


async def shop(api: Api) -> dict[str, int]:
    """Ann: 3 contacts (api, then email) and 900 in orders, one open conversation labelled vip. Bob: 1 contact, 50 in
    orders. Cid: 2 contacts, no orders, plan=gold. Dee: an order only, never wrote."""
    ids: dict[str, int] = {}
    for i in range(3):
        got = await inbound(api, "email:ann@example.com", f"hello {i}", f"ann{i}")
        ids["ann"] = got["customer"]["id"]
        if i < 2:
            await resolve(api, got["conversation"]["id"])
    ann_open = got["conversation"]["id"]
    await api.client.app[DB].write(lambda tx: tx.exec(
        "INSERT INTO conversation_labels (conversation_id, label) VALUES (?, 'vip')", (ann_open,)))
    await order(api, "email:ann@example.com", "a1", 400)
    await order(api, "email:ann@example.com", "a2", 500)
    bob = await inbound(api, "phone:+14155550101", "hi", "bob0")
    ids["bob"] = bob["customer"]["id"]
    await resolve(api, bob["conversation"]["id"])
    await order(api, "phone:+14155550101", "b1", 50)
    for i in range(2):
        got = await inbound(api, "phone:+14155550102", f"cid {i}", f"cid{i}")
        await resolve(api, got["conversation"]["id"])
    ids["cid"] = got["customer"]["id"]
    await api.client.app[DB].write(lambda tx: tx.exec(
        "INSERT INTO customer_attributes (customer_id, name, value) VALUES (?, 'plan', 'gold'), (?, 'seats', '12')",
        (ids["cid"], ids["cid"])))
    ids["dee"] = await order(api, "email:dee@example.com", "d1", 75)
    await roll(api)
    return ids


async def preview(api: Api, criteria: dict[str, Any]) -> int:
    p = "/api/v1/segments/preview"
    return int((await api.call("POST", p, p, criteria))["size"])


async def members(api: Api, seg: int, **query: Any) -> list[dict[str, Any]]:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return list((await api.call("GET", CUSTOMERS, f"{SEG}/{seg}/customers?{q}"))["items"])


async def test_every_criterion_picks_the_customers_it_names(api: Api) -> None:
    ids = await shop(api)
    assert await preview(api, {}) == 4
    assert await preview(api, {"contacts": {"min": 2}}) == 2  # Ann, Cid
    assert await preview(api, {"order_value": {"min": 100}}) == 1  # Ann
    assert await preview(api, {"orders": {"min": 1, "max": 1}}) == 2  # Bob, Dee
    assert await preview(api, {"last_contact_days": {"max": 1}}) == 3  # everyone who wrote, today
    assert await preview(api, {"last_contact_days": {"min": 1}}) == 0
    assert await preview(api, {"channels": ["api"]}) == 3
    assert await preview(api, {"channels": ["sms", "voice"]}) == 0
    assert await preview(api, {"labels": ["vip"]}) == 1
    assert await preview(api, {"open_conversation": True}) == 1
    assert await preview(api, {"open_conversation": False}) == 3
    assert await preview(api, {"attributes": [{"name": "plan", "op": "is", "value": "gold"}]}) == 1
    assert await preview(api, {"attributes": [{"name": "plan", "op": "is_not", "value": "gold"}]}) == 3
    assert await preview(api, {"attributes": [{"name": "plan", "op": "contains", "value": "OL"}]}) == 1
    assert await preview(api, {"attributes": [{"name": "plan", "op": "absent"}]}) == 3
    assert await preview(api, {"attributes": [{"name": "seats", "op": "gt", "value": 10}]}) == 1
    assert await preview(api, {"attributes": [{"name": "plan", "op": "gt", "value": 1}]}) == 0  # text: no number
    assert await preview(api, {"contacts": {"min": 2}, "order_value": {"min": 1}}) == 1  # all must hold

    # Satisfaction, from the reports' facts: Ann answered 5 and 2 (average 3.5), Cid 1; Bob and Dee never answered.
    def answers(tx: Tx) -> None:
        for customer, conv, score in ((ids["ann"], 1, 5.0), (ids["ann"], 2, 2.0), (ids["cid"], 3, 1.0)):
            conversation_events.record(tx, "csat", conv, format_time(utcnow()), customer_id=customer, seconds=score)

    await api.client.app[DB].write(answers)
    await roll(api)
    assert await preview(api, {"csat": {"max": 2}}) == 1  # Cid
    assert await preview(api, {"csat": {"min": 3.5, "max": 3.5}}) == 1  # Ann
    assert await preview(api, {"csat": {"min": 1}}) == 2  # nobody who never answered
    assert ids


async def test_rfm_scores_and_groups_follow_the_documented_rules(api: Api) -> None:
    """Twenty customers with known facts: the quintiles put four in each score, the groups follow docs/reports.md."""
    now = utcnow()

    def seed(tx: Tx) -> None:
        for i in range(1, 21):
            stamp = format_time(now)
            tx.exec("INSERT INTO customers (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
                    (1000 + i, f"c{i}", stamp, stamp))
            # customer i: last contact i days ago (1 is the most recent), i contacts, 10*i in orders
            tx.exec("INSERT INTO customer_stats (customer_id, contacts, last_contact_at, orders, order_value) "
                    "VALUES (?, ?, ?, 1, ?)", (1000 + i, i, format_time(now - timedelta(days=i)), 10.0 * i))

    await api.client.app[DB].write(seed)
    rfm = await api.call("GET", "/api/v1/segments/rfm", "/api/v1/segments/rfm")
    assert rfm["customers"] == 20
    sizes = {g["group"]: g["size"] for g in rfm["groups"]}
    # recent customers have few contacts here: R and F run opposite, so nobody is a champion or loyal; the
    # oldest eight (R 1-2) have the most contacts (F 4-5): at risk; none has R <= 2 and F <= 2: nobody is lost.
    assert sizes == {"champions": 0, "loyal": 0, "at_risk": 8, "lost": 0, "other": 12}
    seg = await api.call("POST", SEG, SEG, {"name": "Everyone", "criteria": {}}, expect=201)
    rows = {c["customer_id"] - 1000: c for c in await members(api, seg["id"], limit=200)}
    for i, c in rows.items():
        assert c["recency_score"] == 5 - (i - 1) // 4  # 1-4 days ago: 5 ... 17-20 days ago: 1
        assert c["frequency_score"] == 1 + (i - 1) // 4
        assert c["monetary_score"] == 1 + (i - 1) // 4
    assert await preview(api, {"recency_score": {"min": 5}}) == 4
    assert await preview(api, {"rfm_group": "at_risk"}) == 8

    # Now make the four most recent also the most frequent and valuable: champions.
    await api.client.app[DB].write(lambda tx: tx.exec(
        "UPDATE customer_stats SET contacts = contacts + 100, order_value = order_value + 1000 "
        "WHERE customer_id <= 1004 AND customer_id > 1000"))
    assert await preview(api, {"rfm_group": "champions"}) == 4


async def test_a_saved_segment_has_a_size_a_trend_its_customers_and_a_csv(api: Api) -> None:
    ids = await shop(api)
    seg = await api.call("POST", SEG, SEG, {"name": "Repeat buyers", "description": "came back",
                                            "criteria": {"contacts": {"min": 2}}}, expect=201)
    got = await api.call("GET", ONE, f"{SEG}/{seg['id']}")
    today = format_time(utcnow())[:10]
    assert got["size"] == 2 and got["trend"] == [{"day": today, "size": 2}]
    listed = {s["name"]: s for s in (await api.call("GET", SEG, SEG))["items"]}
    assert {"Champions", "Loyal", "At risk", "Lost", "Repeat buyers"} <= set(listed)  # the RFM groups out of the box
    assert listed["Repeat buyers"]["size"] == 2

    page1 = await api.call("GET", CUSTOMERS, f"{SEG}/{seg['id']}/customers?limit=1")
    page2 = await api.call("GET", CUSTOMERS, f"{SEG}/{seg['id']}/customers?limit=1&after={page1['next']}")
    assert [c["customer_id"] for c in page1["items"] + page2["items"]] == sorted([ids["ann"], ids["cid"]])
    assert page2["next"] is None
    assert page1["items"][0]["identities"] == ["email:ann@example.com"]

    resp = await api.client.get(f"{SEG}/{seg['id']}/customers?format=csv", headers=api.headers)
    assert resp.status == 200 and resp.content_type == "text/csv"
    table = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [int(r["customer_id"]) for r in table] == sorted([ids["ann"], ids["cid"]])
    assert float(table[0]["order_value"]) == 900.0 and table[1]["identities"] == "phone:+14155550102"
    assert table[0]["csat_average"] == ""  # never answered a survey

    # A new day's count is kept beside the old one; replacing the criteria recounts today.
    db = api.client.app[DB]
    await db.write(lambda tx: tx.exec("UPDATE segment_sizes SET day = '2026-01-01' WHERE segment_id = ?",
                                      (seg["id"],)))
    await api.call("PUT", ONE, f"{SEG}/{seg['id']}", {"name": "Buyers", "criteria": {"orders": {"min": 1}}})
    assert await db.write(lambda tx: segment_store.snapshot(tx, format_time(utcnow()))) == 5
    got = await api.call("GET", ONE, f"{SEG}/{seg['id']}")
    assert got["name"] == "Buyers" and got["size"] == 3 and got["trend"][-1] == {"day": today, "size": 3}
    await api.call("DELETE", ONE, f"{SEG}/{seg['id']}")
    await api.call("GET", ONE, f"{SEG}/{seg['id']}", expect=404)


async def test_a_merged_customers_facts_become_the_survivors(api: Api) -> None:
    ids = await shop(api)
    merge = "/api/v1/customers/{id}/merge"
    await api.call("POST", merge, f"/api/v1/customers/{ids['ann']}/merge", {"customer_id": ids["bob"]})
    assert await preview(api, {}) == 3  # Bob is Ann now
    ann = {"contacts": {"min": 4, "max": 4}, "orders": {"min": 3, "max": 3}, "order_value": {"min": 950, "max": 950},
           "channels": ["api"]}
    assert await preview(api, ann) == 1
    # Rebuilt from the events, which still name Bob: the same.
    await rebuild_now(api)
    assert await preview(api, {}) == 3 and await preview(api, ann) == 1


@pytest.mark.parametrize(("criteria", "reason"), [
    ({"csat": {"min": 6}}, "less than or equal to 5"),
    ({"contacts": {"min": 5, "max": 1}}, "min is above max"),
    ({"contacts": {}}, "give min, max or both"),
    ({"rfm_group": "whales"}, "champions"),
    ({"attributes": [{"name": "plan", "op": "gt", "value": "gold"}]}, "compares with a number"),
    ({"attributes": [{"name": "plan", "op": "present", "value": "x"}]}, "takes no value"),
    ({"recency_score": {"min": 6}}, "less than or equal to 5"),
    ({"colour": "blue"}, "unknown field"),
])
async def test_bad_criteria_get_reasons(api: Api, criteria: dict[str, Any], reason: str) -> None:
    bad = await api.call("POST", SEG, SEG, {"name": "x", "criteria": criteria}, expect=422)
    assert reason in str(bad["error"])


async def test_agents_do_not_see_segments(api: Api) -> None:
    a = await add_agent(api.client.app[DB], "Ann", "agent@example.com", "long password", "agent", ["support"])
    agent = {"Authorization": f"Bearer {await create_token(api.client.app[DB], 'agent', a.id)}"}
    await api.call("GET", SEG, SEG, expect=403, headers=agent)
    await api.call("GET", "/api/v1/segments/rfm", "/api/v1/segments/rfm", expect=403, headers=agent)
    await api.call("GET", CUSTOMERS, f"{SEG}/1/customers", expect=403, headers=agent)


async def test_rebuild_gives_the_customers_facts_the_roller_kept(api: Api) -> None:
    ids = await shop(api)
    db = api.client.app[DB]
    await db.write(lambda tx: conversation_events.record(tx, "csat", 1, format_time(utcnow()),
                                                         customer_id=ids["bob"], seconds=4.0))
    await roll(api)

    def facts(tx: Tx) -> list[tuple[Any, ...]]:
        rows = tx.all("SELECT customer_id, contacts, last_contact_at, orders, order_value, csat_answers, csat_total "
                      "FROM customer_stats ORDER BY customer_id")
        chans = tx.all("SELECT customer_id, channel FROM customer_channels ORDER BY customer_id, channel")
        return [(r["customer_id"], r["contacts"], r["last_contact_at"], r["orders"], r["order_value"],
                 r["csat_answers"], r["csat_total"]) for r in rows] \
            + [(r["customer_id"], r["channel"]) for r in chans]

    before = await db.read(facts)
    assert len(before) == 4 + 3 and before[0][1:4] == (3, before[0][2], 2)  # Ann: 3 contacts, 2 orders; 3 channels
    assert (before[1][5], before[1][6]) == (1, 4.0)  # Bob's answer
    await db.write(lambda tx: tx.exec("UPDATE customer_stats SET contacts = contacts + 7, orders = 0, "
                                      "csat_answers = 0"))
    await rebuild_now(api)
    assert await db.read(facts) == before


async def test_boundaries_are_reused_then_refreshed_behind_the_asker(db: Database) -> None:
    def seed(tx: Tx) -> None:
        for i in range(1, 11):
            tx.exec("INSERT INTO customer_stats (customer_id, contacts) VALUES (?, ?)", (i, i))

    await db.write(seed)
    first = await criteria.current_cuts(db)
    assert first.frequency == [2.0, 4.0, 6.0, 8.0]
    await db.write(lambda tx: tx.exec("UPDATE customer_stats SET contacts = contacts * 10"))
    assert await criteria.current_cuts(db) == first  # within the minute: the same
    criteria._recent[db] = (0.0, first)  # a minute later
    assert await criteria.current_cuts(db) == first  # answered at once, refreshed behind
    refreshing = criteria._refreshing.get(db)
    if refreshing is not None:
        await refreshing
    assert (await criteria.current_cuts(db)).frequency == [20.0, 40.0, 60.0, 80.0]
