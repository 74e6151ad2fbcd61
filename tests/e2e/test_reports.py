"""The Reports page in a real browser: a supervisor sees the figures of the day's conversations, the chart, the
breakdown by queue and by channel and the heatmap, and can export CSV; an agent sees only their own figures.
A screenshot of the page lands in $HUB_SCREENSHOTS (`make screenshots`)."""

from __future__ import annotations

from typing import Any

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
    dana.locator("#report-breakdown tbody td", has_text="api").first.wait_for()
    dana.select_option("#report-filter", "queue:sales")
    dana.locator('.kpi-card[data-figure="conversations_opened"] strong', has_text="1").wait_for()
    with dana.expect_download() as got:
        dana.locator(".report-controls a", has_text="Export CSV").click()
    assert got.value.suggested_filename == "summary.csv"
    dana.select_option("#report-filter", "")
    dana.locator('.kpi-card[data-figure="conversations_opened"] strong', has_text="3").wait_for()
    SHOTS.mkdir(parents=True, exist_ok=True)
    dana.screenshot(path=str(SHOTS / "reports.png"), full_page=True)

    alex = new_page()
    sign_in(alex, "alex@example.com")
    alex.click("#nav-reports")
    alex.locator("#reports .muted", has_text="Your own figures").wait_for()
    # Alex took none of these conversations: his figures are his own, not the center's.
    alex.locator('.kpi-card[data-figure="conversations_resolved"] strong', has_text="0").wait_for()
    assert alex.locator("#report-filter").count() == 0 and alex.locator("#report-by").count() == 0
    assert dana.errors == [] and alex.errors == []
