"""The wall across a restart of the hub, in a real browser: its counted figures come from the store and say their
window ("today", "last 60 min"); an agent working on a conversation is not shown idle; the supervisor's console
reconnects by itself to the new process. Screenshot: wall-after-restart.png."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO

from tests.e2e.conftest import ROOT, SHOTS, _env, free_port, run_hub, sign_in


def _start_again(tmp_path: Path, port: int, log: BinaryIO) -> subprocess.Popen[bytes]:
    """`hub serve` again over the same store and port: a restart."""
    env = {**os.environ, **_env(f"sqlite:///{tmp_path / 'hub.db'}", port)}
    proc = subprocess.Popen([sys.executable, "-m", "hub", "serve"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError((tmp_path / "hub-2.log").read_text())


def test_the_wall_keeps_its_figures_across_a_restart(tmp_path: Path, browser: Any) -> None:
    port = free_port()
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=f"http://127.0.0.1:{port}")
    ctx.set_default_timeout(20_000)
    try:
        with run_hub(tmp_path, port) as hub:
            alex, dana = ctx.new_page(), ctx.browser.new_context(
                viewport={"width": 1440, "height": 900}, base_url=hub.url).new_page()
            dana.context.set_default_timeout(20_000)
            sign_in(alex, "alex@example.com")
            alex.click('.seg[data-presence="available"]')
            alex.wait_for_selector('.seg.active[data-presence="available"]')
            conv = hub.inbound("phone:+14155550160", "My parcel is late", name="Ron Hale")["conversation"]["id"]
            alex.locator(f'.offer[data-offer="{conv}"] >> text=Accept').click()
            alex.wait_for_selector(".conv-header .status-assigned")
            sign_in(dana, "dana@example.com")
            dana.click("#nav-wall")
            card = dana.locator('.queue-card[data-queue="support"]')
            card.locator(".kpi", has_text="within SLA · today").locator("strong", has_text="100%").wait_for()
            row = dana.locator(f'tr[data-agent="{hub.agent_ids["alex@example.com"]}"]')
            row.locator(".chip.load").wait_for()
        # The hub is gone (SIGTERM): the consoles see it at once and try again.
        dana.wait_for_selector("#live-status.s-reconnecting", timeout=5_000)
        log = open(tmp_path / "hub-2.log", "wb")  # closed below, after the process
        proc = _start_again(tmp_path, port, log)
        try:
            dana.wait_for_selector("#live-status.s-live", timeout=30_000)
            # Counted from the store, not from the new process's empty routing state; each figure says its window.
            card.locator(".kpi", has_text="within SLA · today").locator("strong", has_text="100%").wait_for()
            card.locator("dd", has_text="1").first.wait_for()
            assert "today since 00:00" in card.inner_text().lower()
            assert "idle" not in row.inner_text() and row.locator(".chip.load").count() == 1
            dana.wait_for_timeout(300)
            SHOTS.mkdir(parents=True, exist_ok=True)
            dana.screenshot(path=str(SHOTS / "wall-after-restart.png"))
            dana.click('[data-window="hour"]')
            card.locator(".kpi", has_text="within SLA · last 60 min").locator("strong", has_text="100%").wait_for()
            assert "last 60 minutes" in card.inner_text().lower()
        finally:
            proc.terminate()
            proc.wait(20)
            log.close()
        dana.context.close()
    finally:
        ctx.close()
