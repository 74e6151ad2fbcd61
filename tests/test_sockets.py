"""A SIGTERM with consoles connected: every socket hears 1001 going-away at once and `hub serve` exits within
shutdown_timeout_seconds (real subprocess, real WebSocket)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp

from tests.conftest import free_port, wait_for


async def _sigterm_with_consoles(proc: subprocess.Popen[str], port: int, token: str) -> float:
    """Three consoles connect, the hub is told to stop: seconds until every one heard going-away."""
    async with aiohttp.ClientSession() as http:
        consoles = [await http.ws_connect(f"http://127.0.0.1:{port}/api/v1/events",
                                          headers={"Authorization": f"Bearer {token}"}) for _ in range(3)]
        for ws in consoles:
            assert (await ws.receive_json(timeout=10))["type"] == "hello"
        signalled = time.monotonic()
        proc.terminate()
        for ws in consoles:
            msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE, msg
            assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
        return time.monotonic() - signalled


def test_sigterm_closes_sockets_with_going_away_and_exits_in_time(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_SERVER__SHUTDOWN_TIMEOUT_SECONDS"] = "5"
    created = subprocess.run([sys.executable, "-m", "hub.cli", "tokens", "create", "--role", "admin"], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=60, check=True)
    token = created.stdout.strip().splitlines()[-1]
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "serve", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def up() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                    return True
            except OSError:
                return False

        wait_for(up, timeout=30)
        closed_after = asyncio.run(_sigterm_with_consoles(proc, port, token))
        signalled = time.monotonic() - closed_after
        out, _ = proc.communicate(timeout=30)
        exited_after = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    # The sockets are closed first, not after the drain: well before the timeout; the process within it.
    assert closed_after < 2.5, (closed_after, out)
    assert exited_after < 5, (exited_after, out)
