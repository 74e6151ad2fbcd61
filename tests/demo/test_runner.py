"""`hub demo` (what `make run` starts) as a newcomer runs it: it starts where HUB_SERVER__PORT says, prints an admin
login that signs in, traffic flows through the real channels (no customer writes through the API channel), one
customer's timeline spans several channels, the output is the hub's own lines, and it stops cleanly."""

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


def _post(url: str, token: str, body: dict[str, object]) -> dict[str, object]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return dict(json.load(r))


def _sign_in(url: str, email: str, password: str) -> int:
    body = json.dumps({"email": email, "password": password}).encode()
    req = urllib.request.Request(url + "/console/session", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Origin": url})
    with urllib.request.urlopen(req, timeout=5) as r:
        return int(r.status)


def test_demo_runs_with_live_traffic_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_SERVER__PORT"] = str(port)  # like every other setting: no --port needed
    log = tmp_path / "demo.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "demo", "--data", str(tmp_path / "data")],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
        )
    try:
        token = ""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not token:
            assert proc.poll() is None, log.read_text()
            m = re.search(r"admin token:\s+(hub_\S+)", log.read_text())
            token = m.group(1) if m else ""
            time.sleep(0.2)
        assert token, log.read_text()
        printed = log.read_text()
        assert f"{url}/console/" in printed and f"{url}/api/docs" in printed, printed
        admin = re.search(r"(\S+@demo\.hub)\s+(\S+)\s+\(admin;", printed)
        assert admin, printed
        assert _sign_in(url, admin.group(1), admin.group(2)) == 200
        channels: set[str] = set()
        jordan: set[str] = set()
        while time.monotonic() < deadline and (len(channels) < 4 or "whatsapp" not in channels
                                               or not {"sms", "email", "webchat"} <= jordan):
            items = _get(f"{url}/api/v1/conversations?limit=50", token)["items"]
            channels = {str(c["channel"]) for c in items}  # type: ignore[attr-defined]
            found = _get(f"{url}/api/v1/customers?identity=email:jordan@example.com", token)["items"]
            if found:
                cid = found[0]["id"]  # type: ignore[index]
                timeline = _get(f"{url}/api/v1/customers/{cid}/timeline", token)["items"]
                jordan = {str(m["channel"]) for m in timeline}  # type: ignore[attr-defined]
            time.sleep(0.5)
        # Simulated customers reach the hub through the real webhook paths of several channels, never as "API".
        assert len(channels) >= 4 and "api" not in channels, (channels, log.read_text()[-3000:])
        # WhatsApp is in the demo too: its start-up line says where to see a closed window and send a template.
        assert "whatsapp" in channels and "Send a template" in printed, (channels, printed)
        # One customer, one timeline, several channels: the idea of the hub at first sight.
        assert {"sms", "email", "webchat"} <= jordan, (jordan, log.read_text()[-3000:])
        # A campaign to Jordan's phone goes out through the demo's Twilio and comes back delivered.
        phone = next(str(m["identity"]) for m in timeline if m["channel"] == "sms")  # type: ignore[index]
        made = _post(f"{url}/api/v1/campaigns", token, {"name": "Demo", "channel": "sms", "identities": [phone],
                                                         "text": 'Hi {{first_name | fallback: "there"}}!'})
        results: dict[str, int] = {}
        while time.monotonic() < deadline + 30 and not results.get("delivered"):
            results = dict(_get(f"{url}/api/v1/campaigns/{made['id']}", token)["results"])  # type: ignore[arg-type]
            time.sleep(0.5)
        assert results.get("delivered") == 1, (results, log.read_text()[-3000:])
        with urllib.request.urlopen(f"{url}/", timeout=5) as r:
            home = r.read().decode()
        assert "href='/console/'" in home and "href='/chat'" in home and "href='/api/docs'" in home
        with urllib.request.urlopen(f"{url}/console/", timeout=5) as r:
            assert r.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    # The hub's own lines: no library chatter (HTTP clients' request lines, the mail server's connections).
    chatter = [line for line in text.splitlines() if re.search(r" (httpx|httpcore|mail\.log|aiosmtpd)\b", line)]
    assert not chatter, chatter[:5]
