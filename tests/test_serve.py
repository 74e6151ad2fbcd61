"""hub.serve: what serving an app does around it."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from hub.serve import EventLoop, run, run_server
from tests.test_crash import HubProcess


class _Served(Exception):
    pass


async def test_what_the_started_app_holds_is_left_out_of_full_collections() -> None:
    """A full collection walks every tracked object while the event loop waits: with the started app's heap frozen
    it walks only what came after (the agents' p99 was these pauses: docs/performance.md)."""
    seen: list[tuple[int, int]] = []

    async def started(port: int) -> None:
        seen.append((gc.get_freeze_count(), len(gc.get_objects())))
        raise _Served

    with pytest.raises(_Served):
        await run_server(web.Application(), "127.0.0.1", 0, 1.0, started=started)
    frozen, walked = seen[0]
    assert frozen > 10 * walked, (frozen, walked)
    assert gc.get_freeze_count() == 0  # thawed once it stops serving (an app run in-process, as here)


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
def test_run_runs_on_the_event_loop_the_setting_names(event_loop: EventLoop) -> None:
    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__.partition(".")[0]

    assert run(which(), event_loop) == event_loop


def test_without_uvloop_installed_the_hub_serves_on_asyncios_loop_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """uvloop has no Windows build: there the default setting must still start the hub."""
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what `import uvloop` meets where it is not installed

    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__.partition(".")[0]

    with caplog.at_level(logging.WARNING, logger="hub"):
        assert run(which(), "uvloop") == "asyncio"
    assert "uvloop is not installed" in caplog.text


@pytest.mark.slow
@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
async def test_hub_serve_takes_a_message_and_drains_on_the_configured_event_loop(
    event_loop: EventLoop, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= {"HUB_DATABASE__URL": f"sqlite:///{tmp_path / 'hub.db'}", "HUB_SERVER__LOG_LEVEL": "info",
            "HUB_SERVER__EVENT_LOOP": event_loop}
    hub = HubProcess(env, tmp_path)
    token = hub.cli("tokens", "create", "--role", "admin", "--label", "serve test").strip().splitlines()[-1]
    try:
        async with aiohttp.ClientSession() as session:
            hub.start()
            await hub.wait_healthy(session)
            body = {"identity": "phone:+14155550100", "text": "hello", "external_id": "loop-1"}
            async with session.post(f"{hub.url}/api/v1/inbound", json=body,
                                    headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 201, await resp.text()
        hub.stop()  # SIGTERM: drains and exits cleanly on either loop
        assert hub.proc is not None and hub.proc.returncode == 0, hub.tail()
        assert f"(event loop: {event_loop})" in hub.log.read_text(), hub.tail()
    finally:
        hub.stop()
