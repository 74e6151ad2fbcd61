"""The Reports page in a real browser: a supervisor sees the figures of the day's conversations, the chart, the
breakdown by queue and by channel and the heatmap, and can export CSV; an agent sees only their own figures.
A screenshot of the page with a month of history lands in $HUB_SCREENSHOTS (`make screenshots`)."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.reports import history, parser
from hub.reports.rollup import RollRules
from tests.e2e.conftest import SHOTS, Hub, sign_in


def test_a_supervisor_reads_the_reports_and_an_agent_sees_their_own(hub: Hub, new_page: Any) -> None:
    for i, (identity, text) in enumerate([("phone:+14155550101", "Where is my parcel?"),
                                          ("email:lee@example.com", "pricing for teams"),
                                          ("phone:+14155550102", "Refund please")]):
        conv = hub.inbound(identity, text, name=f"Customer {i}")["conversation"]["id"]
        if i < 2:
            status, _ = hub.call("POST", f"/api/v1/conversations/{conv}/messages", {"text": "On it!"})
            assert status == 201
            status, _ = hub.call("POST", f"/api/v1/conversations/{conv}/resolve", {})
            assert status == 200

    dana = new_page()
    sign_in(dana, "dana@example.com")
    dana.click("#nav-reports")
    dana.locator('.kpi-card[data-figure="conversations_opened"] strong', has_text="3").wait_for(timeout=15_000)
    dana.locator('.kpi-card[data-figure="conversations_resolved"] strong', has_text="2").wait_for()
    # Answered and resolved from the API: not abandoned; the third one still waits.
    dana.locator('.kpi-card[data-figure="abandon_rate"] strong', has_text="—").wait_for()
    assert dana.locator(".report-chart rect.bar-opened").count() == 7  # one bar a day
    rows = dana.locator("#report-breakdown tbody tr")
    assert {rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())} == {"Support", "Sales"}
    assert sum(int(c.get_attribute("title").rsplit("— ", 1)[1]) for c in  # type: ignore[union-attr]
               dana.locator("#report-heatmap td").all()) == 3
    dana.select_option("#report-by", "channel")
    dana.locator("#report-breakdown tbody td", has_text="Integration").first.wait_for()  # the api channel
    dana.select_option("#report-filter", "queue:sales")
    dana.locator('.kpi-card[data-figure="conversations_opened"] strong', has_text="1").wait_for()
    with dana.expect_download() as got:
        dana.locator(".report-controls a", has_text="Export CSV").click()
    assert got.value.suggested_filename == "summary.csv"
    dana.select_option("#report-filter", "")
    dana.locator('.kpi-card[data-figure="conversations_opened"] strong', has_text="3").wait_for()

    alex = new_page()
    sign_in(alex, "alex@example.com")
    alex.click("#nav-reports")
    alex.locator("#reports .muted", has_text="Your own figures").wait_for()
    # Alex took none of these conversations: his figures are his own, not the center's.
    alex.locator('.kpi-card[data-figure="conversations_resolved"] strong', has_text="0").wait_for()
    assert alex.locator("#report-filter").count() == 0 and alex.locator("#report-by").count() == 0
    assert dana.errors == [] and alex.errors == []


def test_a_month_of_history_as_the_supervisor_sees_it(hub: Hub, new_page: Any, tmp_path: Path) -> None:
    """A month of conversation events (bench.reports' generator, mapped onto this hub's queues and agents), folded by
    the hub's own roller: the page a supervisor opens on a busy center, kept as docs/screenshots/reports.png."""
    # 29 whole days up to today's midnight (UTC, the browser's zone here): all in the past, so the roller folds
    # every one (it leaves the future alone: a history ending at tomorrow's midnight failed just after midnight),
    # and all inside the page's "Last 30 days", which runs to tomorrow.
    args = parser().parse_args(["--conversations", "1500", "--days", "29", "--customers", "600", "--queues", "2",
                                "--agents", "4"])
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    events: list[tuple[Any, ...]] = []
    history(args, RollRules(), end - timedelta(days=29), events)
    queues = {"q00": "support", "q01": "sales", "": ""}
    agents = sorted(hub.agent_ids.values())
    rows = [(cid + 1_000_000, cust, kind, at, ch, queues[q], None if who is None else agents[(who - 1) % len(agents)],
             secs) for cid, cust, kind, at, ch, q, who, secs in events]
    db = sqlite3.connect(tmp_path / "hub.db", timeout=30)
    with db:
        db.executemany("INSERT INTO conversation_events (conversation_id, customer_id, type, at, channel, queue, "
                       "agent_id, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.close()
    deadline = time.monotonic() + 60
    while True:  # the hub's roller folds them within a few seconds
        status, got = hub.call("GET", f"/api/v1/reports/summary?from={(end - timedelta(days=29)).date()}")
        assert status == 200, got
        if got["figures"]["conversations_opened"] == 1500:
            break
        assert time.monotonic() < deadline, got["figures"]
        time.sleep(0.2)
    dana = new_page(1440, 1500)
    sign_in(dana, "dana@example.com")
    dana.click("#nav-reports")
    dana.select_option("#report-range", "30")
    dana.locator('.kpi-card[data-figure="conversations_opened"] strong', has_text="1,500").wait_for(timeout=60_000)
    dana.select_option("#report-by", "agent")
    dana.locator("#report-breakdown td", has_text="Alex Rivera").wait_for()
    # Staffing next week, from these weeks: longer handle times need more agents.
    dana.wait_for_selector("#staffing-grid")
    agents = ("() => [...document.querySelectorAll('#staffing-grid td')]"
              ".reduce((sum, td) => sum + Number(td.dataset.agents || 0), 0)")
    before = dana.evaluate(agents)
    assert before > 0 and dana.locator("#staffing-grid tbody tr").count() == 7
    dana.fill("#staffing-handle_seconds", "1800")
    dana.press("#staffing-handle_seconds", "Tab")
    dana.wait_for_function(f"() => ({agents})() > {before}")
    SHOTS.mkdir(parents=True, exist_ok=True)
    dana.screenshot(path=str(SHOTS / "reports.png"), full_page=True)
    assert dana.errors == []


def test_a_supervisor_slices_by_segment_and_reads_the_trends_and_staffing(hub: Hub, new_page: Any) -> None:
    """The Show menu lists saved segments and slices every figure to their customers now; the channel trends and the
    staffing panel's last week (agents available against needed) are on the page."""
    for i, identity in enumerate(("phone:+14155550111", "phone:+14155550112", "email:kim@example.com")):
        conv = hub.inbound(identity, "Hello <b>there</b>", name=f"Customer {i}")["conversation"]["id"]
        if i < 2:
            assert hub.call("POST", f"/api/v1/conversations/{conv}/resolve", {})[0] == 200
    status, made = hub.call("POST", "/api/v1/segments", {"name": "Still waiting <i>now</i>",
                                                         "criteria": {"open_conversation": True}})
    assert status == 201

    dana = new_page()
    sign_in(dana, "dana@example.com")
    dana.click("#nav-reports")
    dana.locator('.kpi-card[data-figure="conversations_opened"] strong', has_text="3").wait_for(timeout=15_000)
    trend = dana.locator('#report-channel-trends tr[data-channel="api"]')
    trend.wait_for()
    assert trend.locator("td").nth(1).inner_text() == "3" and trend.locator("td").nth(2).inner_text() == "0"
    dana.select_option("#report-filter", f"segment:{made['id']}")
    dana.locator("#reports .muted", has_text="customers in this segment now").wait_for()
    dana.locator('.kpi-card[data-figure="conversations_opened"] strong', has_text="1").wait_for()
    dana.locator('.kpi-card[data-figure="conversations_resolved"] strong', has_text="0").wait_for()
    # The segment's name is text in the menu, never markup.
    assert dana.locator("#report-filter option", has_text="Still waiting <i>now</i>").count() == 1
    dana.locator("#staffing-last-week #staffing-short").wait_for()
    assert dana.locator("#staffing-last-week td[data-needed]").count() == 7 * 24
    assert dana.errors == []


def test_a_supervisor_reads_the_keywords_rising(hub: Hub, new_page: Any) -> None:
    """What customers write about, by week: five messages about a password reset this week rank it among the
    keywords rising (a word in two messages does not: under the minimum count); kept as reports-keywords.png."""
    texts = ["I need a password reset", "password reset link expired", "Password reset?? twice now",
             "help: password reset email never came", "password reset for ann@example.com",
             "invoice copy please", "Invoice copy again"]
    for i, text in enumerate(texts):
        hub.inbound(f"phone:+1415555013{i}", text)
    dana = new_page(1440, 1200)
    sign_in(dana, "dana@example.com")
    dana.click("#nav-reports")
    rising = dana.locator('#keywords-rising li[data-word="password reset"]')
    rising.wait_for(timeout=15_000)
    assert rising.inner_text().split() == ["password", "reset", "0", "→", "5"]
    words = dana.locator("#keywords-rising li").evaluate_all("(lis) => lis.map((li) => li.dataset.word)")
    assert words == ["password", "password reset", "reset"]  # "invoice" (2) is under the minimum of 5
    assert dana.locator("#keywords-falling", has_text="None counted 5 times or more").count() == 1
    assert "whole weeks" in dana.locator("#keywords-explain").inner_text()
    SHOTS.mkdir(parents=True, exist_ok=True)
    dana.locator("#report-trends").screenshot(path=str(SHOTS / "reports-keywords.png"))
    assert dana.errors == []
