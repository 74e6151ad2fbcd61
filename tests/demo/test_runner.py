"""`hub demo` (what `make run` starts) as a newcomer runs it: it starts, traffic flows, it stops cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import free_port


def _get(url: str, token: str) -> dict[str, object]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return dict(json.load(r))


def test_demo_runs_with_live_traffic_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "demo", "--port", str(port), "--data", str(tmp_path / "data")],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
        )
    try:
        token = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not token:
            assert proc.poll() is None, log.read_text()
            m = re.search(r"admin token:\s+(hub_\S+)", log.read_text())
            token = m.group(1) if m else ""
            time.sleep(0.2)
        assert token, log.read_text()
        channels: set[str] = set()
        while time.monotonic() < deadline and len(channels) < 3:
            items = _get(f"http://127.0.0.1:{port}/api/v1/conversations?limit=50", token)["items"]
            channels = {str(c["channel"]) for c in items}  # type: ignore[attr-defined, index]
            time.sleep(0.5)
        # Simulated customers reach the hub through the real webhook paths of several channels.
        assert len(channels) >= 3, (channels, log.read_text()[-3000:])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/console/", timeout=5) as r:
            assert r.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
