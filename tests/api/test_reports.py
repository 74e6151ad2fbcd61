"""Reports as a supervisor and an agent use them, on SQLite and PostgreSQL: conversations worked through the API
(inbound, accept, reply, resolve) show up in every report; CSV exports; an agent sees only their own figures; bad
parameters are 422 with a reason."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.app import build_app
from hub.config import Settings
from hub.history.db import Tx
from hub.keys import DB, ROUTER, SETTINGS
from hub.model import format_time, utcnow
from hub.reports.events import record
from hub.reports.rollup import RollRules, catch_up
from tests.api.client import Api, Client, inbound
from tests.waiting import eventually

S = "/api/v1/reports/summary"
T = "/api/v1/reports/timeseries"
B = "/api/v1/reports/breakdown"
H = "/api/v1/reports/heatmap"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    # The roller runs in the app too; tests fold what is there themselves, now, so they never wait on it.
    return make_settings(db_url, HUB_ROUTING__QUEUES='{"support": {"title": "Support"}, "sales": {}}',
                         HUB_REPORTS__ROLL_INTERVAL_SECONDS="3600")


async def roll(client: Client) -> None:
    s = client.app[SETTINGS]
    await catch_up(client.app[DB], RollRules.from_settings(s.reports, s.routing), cutoff=format_time(utcnow()))


async def agent(client: Client, name: str) -> tuple[int, dict[str, str]]:
    a = await add_agent(client.app[DB], name, f"{name.lower()}@example.com", "long password", "agent", ["support"])
    await client.app[ROUTER].set_presence(a.id, "available")
    return a.id, {"Authorization": f"Bearer {await create_token(client.app[DB], 'agent', a.id)}"}


async def work(api: Api, client: Client) -> tuple[int, dict[str, str], int, dict[str, str]]:
    """Ann takes and resolves one conversation; a second one is still waiting (both on the API channel)."""
    ann, ann_h = await agent(client, "Ann")
    conv = (await inbound(api, "phone:+14155550100", "my order is late"))["conversation"]["id"]
    await api.call("POST", "/api/v1/conversations/{id}/accept", f"/api/v1/conversations/{conv}/accept",
                   headers=ann_h)
    await api.call("POST", "/api/v1/conversations/{id}/messages", f"/api/v1/conversations/{conv}/messages",
                   {"text": "Sorry! It ships today."}, expect=201, headers=ann_h)
    await inbound(api, "phone:+14155550100", "thanks")
    await api.call("POST", "/api/v1/conversations/{id}/resolve", f"/api/v1/conversations/{conv}/resolve",
                   headers=ann_h)
    await client.app[ROUTER].set_presence(ann, "offline")
    await inbound(api, "email:bob@example.com", "hello?")
    bob, bob_h = await agent(client, "Bob")
    await client.app[ROUTER].set_presence(bob, "offline")
    await roll(client)
    return ann, ann_h, bob, bob_h


async def test_worked_conversations_fill_every_report(api: Api, client: Client) -> None:
    await work(api, client)
    s = await api.call("GET", S, S)
    f = s["figures"]
    assert f["conversations_opened"] == 2 and f["conversations_resolved"] == 1
    assert f["messages_in"] == 3 and f["messages_out"] == 1
    assert f["first_response_time"] is not None and f["first_response_time"] >= 0
    assert f["answered"] == 1 and f["offers_accepted"] == 1 and f["reply_time"] is not None
    assert s["previous"]["conversations_opened"] == 0

    by_channel = {r["value"]: r["figures"] for r in (await api.call("GET", B, B + "?by=channel"))["rows"]}
    assert list(by_channel) == ["api"] and by_channel["api"]["conversations_resolved"] == 1
    by_agent = {r["label"]: r["figures"] for r in (await api.call("GET", B, B + "?by=agent"))["rows"]}
    assert by_agent["Ann"]["conversations_resolved"] == 1 and by_agent["Ann"]["messages_out"] == 1
    by_queue = {r["label"]: r["figures"] for r in (await api.call("GET", B, B + "?by=queue"))["rows"]}
    assert by_queue["Support"]["conversations_opened"] == 2

    for group in ("hour", "day", "week", "month"):
        t = await api.call("GET", T, f"{T}?group={group}&tz=America/New_York")
        assert sum(b["figures"]["conversations_opened"] for b in t["buckets"]) == 2, group
        assert t["time_zone"] == "America/New_York"
    days = (await api.call("GET", T, T))["buckets"]
    assert len(days) == 7 and [b["figures"]["conversations_opened"] for b in days][-1] == 2  # today's, in UTC

    heat = await api.call("GET", H, H)
    assert sum(map(sum, heat["cells"])) == 2
    queue_only = await api.call("GET", S, S + "?queue=sales")
    assert queue_only["figures"]["conversations_opened"] == 0 and queue_only["slice"] == {"by": "queue",
                                                                                        "value": "sales"}


async def test_the_summary_says_when_figures_still_trail_new_events(api: Api, client: Client) -> None:
    # The roller here waits an hour: what just happened is not in the figures yet, and the summary says so (the
    # console then asks again within seconds instead of showing stale figures for half a minute).
    await inbound(api, "phone:+14155550100", "hello")
    before = await api.call("GET", S, S)
    assert before["catching_up"] is True and before["figures"]["conversations_opened"] == 0
    await roll(client)
    after = await api.call("GET", S, S)
    assert after["catching_up"] is False and after["figures"]["conversations_opened"] == 1


async def test_every_table_exports_as_csv(api: Api, client: Client) -> None:
    await work(api, client)
    for path, first in ((S + "?format=csv", "figure"), (B + "?by=agent&format=csv", "agent"),
                        (T + "?format=csv", "start"), (H + "?format=csv", "day")):
        resp = await client.get(path, headers=api.headers)
        assert resp.status == 200 and resp.content_type == "text/csv"
        assert "attachment" in resp.headers["Content-Disposition"]
        rows = list(csv.reader(io.StringIO(await resp.text())))
        assert rows[0][0] == first and len(rows) > 1
    rows = list(csv.reader(io.StringIO(await (await client.get(S + "?format=csv", headers=api.headers)).text())))
    assert ["conversations_opened", "2", "0", "count"] in rows


async def test_an_agent_sees_only_their_own_figures(api: Api, client: Client) -> None:
    ann, ann_h, _, bob_h = await work(api, client)
    own = await api.call("GET", S, S, headers=ann_h)
    assert own["slice"] == {"by": "agent", "value": str(ann)} and own["figures"]["conversations_resolved"] == 1
    assert (await api.call("GET", S, S, headers=bob_h))["figures"]["conversations_resolved"] == 0
    rows = (await api.call("GET", B, B + "?by=agent", headers=ann_h))["rows"]
    assert [r["value"] for r in rows] == [str(ann)]
    await api.call("GET", S, f"{S}?agent={ann}", headers=bob_h, expect=403)
    await api.call("GET", S, S + "?queue=support", headers=bob_h, expect=403)
    await api.call("GET", B, B + "?by=queue", headers=bob_h, expect=422)
    resp = await client.get(S)  # no token
    assert resp.status == 401


@pytest.mark.parametrize("query", [
    "from=yesterday", "from=2026-02-01&to=2026-01-01", "from=2024-01-01&to=2026-01-01", "tz=Mars/Olympus",
    "queue=support&channel=sms", "format=xml",
])
async def test_bad_parameters_are_422_with_a_reason(api: Api, query: str) -> None:
    got = await api.call("GET", S, f"{S}?{query}", expect=422)
    assert got["error"]["message"]


async def test_bad_group_by_and_figure_are_422(api: Api) -> None:
    assert (await api.call("GET", T, T + "?group=year", expect=422))["error"]["message"]
    assert "35 days" in (await api.call("GET", T, T + "?group=hour&from=2026-01-01&to=2026-03-01",
                                        expect=422))["error"]["message"]
    assert (await api.call("GET", B, B + "?by=tag", expect=422))["error"]["message"]
    assert (await api.call("GET", H, H + "?figure=nope", expect=422))["error"]["message"]


async def test_the_roller_in_the_app_folds_new_events(aiohttp_client: Any, make_settings: Callable[..., Settings],
                                                      tmp_path: Any) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'roll.db'}", HUB_REPORTS__ROLL_INTERVAL_SECONDS="0.05")
    client = await aiohttp_client(build_app(settings))
    token = await create_token(client.app[DB], "admin")
    headers = {"Authorization": f"Bearer {token}"}
    resp = await client.post("/api/v1/inbound", json={"identity": "email:cy@example.com", "text": "hi"},
                             headers=headers)
    assert resp.status == 201

    async def opened() -> bool:
        got = await (await client.get(S, headers=headers)).json()
        return bool(got["figures"]["conversations_opened"] == 1)

    await eventually(opened, what="the roller folded the new conversation")


@pytest.mark.parametrize("roller", ["true", "false"])
async def test_reports_roller_false_leaves_the_folding_to_another_process(
        aiohttp_client: Any, make_settings: Callable[..., Settings], tmp_path: Any, roller: str) -> None:
    """[reports] roller = false: this process records events but runs no roller (the benchmark's reports-off row)."""
    settings = make_settings(f"sqlite:///{tmp_path / 'roll.db'}", HUB_REPORTS__ROLLER=roller)
    await aiohttp_client(build_app(settings))
    running = {t.get_name() for t in asyncio.all_tasks()}
    assert "hub-outbox" in running  # the app's background tasks are up
    assert ("hub-reports-roller" in running) == (roller == "true")


async def segment(api: Api, name: str, criteria: dict[str, Any]) -> int:
    made = await api.call("POST", "/api/v1/segments", "/api/v1/segments", {"name": name, "criteria": criteria},
                          expect=201)
    return int(made["id"])


async def test_reports_sliced_by_segment_count_its_customers_now(api: Api, client: Client) -> None:
    _, ann_h, _, _ = await work(api, client)
    done = await segment(api, "Nothing open", {"open_conversation": False})  # the phone customer, resolved
    waiting = await segment(api, "Waiting", {"open_conversation": True})  # the email customer, still waiting
    f = (await api.call("GET", S, f"{S}?segment={done}"))["figures"]
    assert (f["conversations_opened"], f["conversations_resolved"], f["messages_in"], f["messages_out"]) == (1, 1, 2, 1)
    assert f["first_response_time"] is not None and f["answered"] == 1
    w = await api.call("GET", S, f"{S}?segment={waiting}")
    assert w["slice"] == {"by": "segment", "value": str(waiting)}
    assert (w["figures"]["conversations_opened"], w["figures"]["conversations_resolved"]) == (1, 0)
    assert w["previous"]["conversations_opened"] == 0
    for group in ("hour", "day", "week", "month"):
        t = await api.call("GET", T, f"{T}?group={group}&segment={done}&tz=Asia/Tokyo")
        assert sum(b["figures"]["messages_in"] for b in t["buckets"]) == 2, group
    assert sum(map(sum, (await api.call("GET", H, f"{H}?segment={waiting}"))["cells"])) == 1
    # Membership is read when the report is: once the email customer's conversation is resolved, it moves over.
    conv = (await inbound(api, "email:bob@example.com", "still there?"))["conversation"]["id"]
    await api.call("POST", "/api/v1/conversations/{id}/resolve", f"/api/v1/conversations/{conv}/resolve")
    await roll(client)
    moved = (await api.call("GET", S, f"{S}?segment={done}"))["figures"]
    assert (moved["conversations_opened"], moved["conversations_resolved"], moved["messages_in"]) == (2, 2, 4)
    assert (await api.call("GET", S, f"{S}?segment={waiting}"))["figures"]["conversations_opened"] == 0
    rows = list(csv.reader(io.StringIO(await (await client.get(f"{S}?segment={done}&format=csv",
                                                                headers=api.headers)).text())))
    assert ["conversations_opened", "2", "0", "count"] in rows
    # Unknown or malformed segments, a breakdown within one, and agents: refused with a reason.
    assert "does not exist" in (await api.call("GET", S, f"{S}?segment=999999", expect=404))["error"]["message"]
    assert (await api.call("GET", S, f"{S}?segment=abc", expect=422))["error"]["message"]
    assert (await api.call("GET", S, f"{S}?segment={done}&queue=support", expect=422))["error"]["message"]
    assert (await api.call("GET", B, f"{B}?by=segment", expect=422))["error"]["message"]
    await api.call("GET", S, f"{S}?segment={done}", headers=ann_h, expect=403)


async def test_a_report_by_rfm_segment_counts_the_customers_the_segment_lists(api: Api, client: Client) -> None:
    """A report sliced by a segment on RFM scores scores its members by the boundaries the segment's own pages use
    (the process's, at most a minute old), so the report counts exactly the customers the segment lists, even while
    new customers move the boundaries."""
    now = utcnow()
    conv = iter(range(1, 1000))

    def contacts(customers: range, each: Callable[[int], int]) -> Callable[[Tx], None]:
        def write(tx: Tx) -> None:
            for c in customers:
                for k in range(each(c)):
                    record(tx, "opened", next(conv), format_time(now - timedelta(minutes=k + 1)), customer_id=c,
                           channel="sms", queue="support")
        return write

    await client.app[DB].write(contacts(range(1, 11), lambda c: c))  # customer c opened c conversations
    await roll(client)
    top = await segment(api, "Most frequent", {"frequency_score": {"min": 5}})
    page = f"/api/v1/segments/{top}/customers"
    before = (await api.call("GET", "/api/v1/segments/{id}/customers", page))["items"]
    assert [c["customer_id"] for c in before] == [9, 10]
    # Ten customers with twenty contacts each: recomputed now, the boundaries would leave nobody scoring 5.
    await client.app[DB].write(contacts(range(11, 21), lambda c: 20))
    await roll(client)
    listed = (await api.call("GET", "/api/v1/segments/{id}/customers", page))["items"]
    assert [c["customer_id"] for c in listed] == [9, 10, *range(11, 21)]
    f = (await api.call("GET", S, f"{S}?segment={top}"))["figures"]
    assert f["conversations_opened"] == sum(c["contacts"] for c in listed) == 9 + 10 + 10 * 20


R = "/api/v1/reports/trends"


async def test_trends_compare_each_channel_and_topic_with_the_period_before(api: Api, client: Client) -> None:
    _, ann_h = await agent(client, "Ann")
    for name in ("billing", "shipping"):
        await api.call("POST", "/api/v1/labels", "/api/v1/labels", {"name": name, "title": name.title()},
                       expect=201)
    convs = []
    for n, label in enumerate(("billing", "billing", "shipping")):
        conv = (await inbound(api, f"phone:+1415555019{n}", "hello"))["conversation"]["id"]
        path = f"/api/v1/conversations/{conv}/labels/{label}"
        await api.call("PUT", "/api/v1/conversations/{id}/labels/{name}", path)
        convs.append(conv)
    await api.call("POST", "/api/v1/conversations/{id}/accept", f"/api/v1/conversations/{convs[2]}/accept",
                   headers=ann_h)
    await api.call("POST", "/api/v1/conversations/{id}/messages", f"/api/v1/conversations/{convs[2]}/messages",
                   {"text": "On it."}, expect=201, headers=ann_h)
    # The first two happened in the period before (eight days ago): their recorded events are moved back.
    eight_days = format_time(utcnow().replace(microsecond=0) - timedelta(days=8))

    def back(tx: Tx) -> None:
        tx.exec(f"UPDATE conversation_events SET at = ? WHERE conversation_id IN ({convs[0]}, {convs[1]})",
                (eight_days,))

    await client.app[DB].write(back)
    await roll(client)
    got = await api.call("GET", R, R)
    [api_channel] = got["channels"]
    assert api_channel["channel"] == "api"
    assert api_channel["volume"] == {"now": 1, "previous": 2, "change": -0.5}
    assert api_channel["first_response"]["now"] is not None and api_channel["first_response"]["previous"] is None
    assert got["topics"]["rising"] == [{"label": "shipping", "title": "Shipping", "now": 1, "previous": 0,
                                        "change": None}]
    assert got["topics"]["falling"] == [{"label": "billing", "title": "Billing", "now": 0, "previous": 2,
                                         "change": -1.0}]
    rows = list(csv.reader(io.StringIO(await (await client.get(R + "?format=csv", headers=api.headers)).text())))
    assert rows[0][:3] == ["kind", "name", "volume"] and ["topic falling", "billing", "0", "2", "", ""] in rows
    assert (await api.call("GET", R, R + "?label=billing", expect=422))["error"]["message"]
    await api.call("GET", R, R, headers=ann_h, expect=403)


async def test_trends_rank_the_keywords_of_customers_messages_by_whole_weeks(api: Api, client: Client) -> None:
    # This week (UTC Mondays: reports.time_zone) against the one before; messages of last week are moved back.
    today = utcnow().replace(hour=12, minute=0, second=0, microsecond=0)
    monday = today - timedelta(days=today.weekday())
    sent = [("+14155550190", "my parcel never arrived", True), ("+14155550191", "Parcel never arrived!", True),
            ("+14155550192", "where is my parcel, order 99812", True), ("+14155550193", "the parcel is late", False),
            ("+14155550194", "password reset email missing", False),
            ("+14155550195", "cannot log in: password reset", False),
            ("+14155550196", "password reset? https://example.com/reset", False)]
    last_week = []
    for sender, text, earlier in sent:
        conv = (await inbound(api, f"phone:{sender}", text))["conversation"]["id"]
        if earlier:
            last_week.append(conv)
    then = format_time(monday - timedelta(days=6))
    await client.app[DB].write(lambda tx: tx.exec(
        f"UPDATE conversation_events SET at = ? WHERE conversation_id IN ({', '.join(map(str, last_week))})",
        (then,)))
    await roll(client)
    week = f"?from={monday.date()}&to={(monday + timedelta(days=7)).date()}&tz=UTC"
    got = (await api.call("GET", R, R + week + "&min_count=3"))["keywords"]
    assert (got["weeks_from"], got["weeks_to"], got["weeks"], got["min_count"]) == (
        str(monday.date()), str((monday + timedelta(days=7)).date()), 1, 3)
    assert got["previous_from"] == str((monday - timedelta(days=7)).date())
    assert got["rising"] == [{"word": w, "now": 3, "previous": 0, "change": None}
                             for w in ("password", "password reset", "reset")]
    assert got["falling"] == [{"word": "parcel", "now": 1, "previous": 3, "change": -0.6667}]
    assert got["slice"] is None
    # The default minimum (5) leaves all of it as noise; a channel filter slices the keywords.
    assert (await api.call("GET", R, R + week))["keywords"]["rising"] == []
    sliced = (await api.call("GET", R, R + week + "&min_count=1&channel=sms"))["keywords"]
    assert sliced["slice"] == {"by": "channel", "value": "sms"} and sliced["rising"] == []
    on_api = (await api.call("GET", R, R + week + "&min_count=3&channel=api"))["keywords"]
    assert [k["word"] for k in on_api["rising"]] == ["password", "password reset", "reset"]
    rows = list(csv.reader(io.StringIO(await (await client.get(R + week + "&min_count=3&format=csv",
                                                               headers=api.headers)).text())))
    assert ["keyword falling", "parcel", "1", "3", "", ""] in rows
    assert (await api.call("GET", R, R + "?min_count=0", expect=422))["error"]["message"]
    assert (await api.call("GET", R, R + "?min_count=lots", expect=422))["error"]["message"]
