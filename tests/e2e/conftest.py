"""End-to-end fixtures: a real hub process on a free port (SQLite), agents and an admin token made before it starts,
and Debian's Chromium driven by Playwright. Screenshots go to $HUB_SCREENSHOTS (a scratch folder by default)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from hub.demo.twilio_simulator import TwilioSimulator
from tests.channels.twilio.fake import ACCOUNT, TOKEN

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).parents[2]
# Tests never write into tracked files: screenshots go to a scratch folder unless `make screenshots` points
# HUB_SCREENSHOTS at docs/screenshots/ to refresh the ones the docs show.
SHOTS = Path(os.environ.get("HUB_SCREENSHOTS") or Path(tempfile.gettempdir()) / "hub-screenshots")
PASSWORD = "correct horse battery"

AGENTS = [
    # name, email, role, queues
    ("Alex Rivera", "alex@example.com", "agent", ["support"]),
    ("Sam Patel", "sam@example.com", "agent", ["sales"]),
    ("Dana Kim", "dana@example.com", "supervisor", ["support", "sales"]),
    ("Ada Admin", "admin@example.com", "admin", ["support", "sales"]),
]


@dataclass
class Hub:
    url: str
    token: str
    agent_ids: dict[str, int] = field(default_factory=dict)

    def call(self, method: str, path: str, body: Any = None, token: str | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if token is not None or not headers:
            req.add_header("Authorization", f"Bearer {token or self.token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=20) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, json.loads(raw) if raw.startswith(b"{") else raw.decode()

    def inbound(self, identity: str, text: str = "", **extra: Any) -> dict[str, Any]:
        status, body = self.call("POST", "/api/v1/inbound", {"identity": identity, "text": text, **extra})
        assert status == 201, (status, body)
        return dict(body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prepare(db_url: str) -> tuple[str, dict[str, int]]:
    from hub.agents import add_agent, sync_queues
    from hub.api.auth import create_token
    from hub.config import load_settings
    from hub.history.db import open_database
    from hub.history.schema import migrate

    async def run() -> tuple[str, dict[str, int]]:
        settings = load_settings(None, environ=_env(db_url, 0))
        db = open_database(db_url)
        try:
            await migrate(db)
            await sync_queues(db, settings.routing.queues)
            ids = {}
            for name, email, role, queues in AGENTS:
                ids[email] = (await add_agent(db, name, email, PASSWORD, role, queues)).id
            return await create_token(db, "admin", label="e2e"), ids
        finally:
            await db.close()

    # Playwright's sync API keeps an event loop running in this thread: prepare the store in another one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def _env(db_url: str, port: int) -> dict[str, str]:
    return {
        "HUB_DATABASE__URL": db_url,
        "HUB_SERVER__PORT": str(port),
        "HUB_SERVER__LOG_LEVEL": "warning",
        "HUB_ROUTING__QUEUES": json.dumps({
            "support": {"title": "Support", "offer_timeout": 300},
            "sales": {"title": "Sales", "offer_timeout": 300},
        }),
        "HUB_ROUTING__RULES": json.dumps([{"name": "pricing", "queue": "sales", "keywords": ["pricing"]}]),
        "HUB_CONSOLE__SIGNIN_FREE_FAILURES": "3",
        "HUB_CONSOLE__SIGNIN_BACKOFF_SECONDS": "60",
    }


@contextlib.contextmanager
def run_hub(tmp_path: Path, port: int = 0, extra_env: dict[str, str] | None = None) -> Iterator[Hub]:
    """`hub serve` in a subprocess on PORT (0: a free one) with the e2e settings plus EXTRA_ENV."""
    db_url = f"sqlite:///{tmp_path / 'hub.db'}"
    token, ids = _prepare(db_url)
    port = port or free_port()
    env = {**os.environ, **_env(db_url, port), **(extra_env or {})}
    log = open(tmp_path / "hub.log", "wb")  # closed below, after the process
    proc = subprocess.Popen([sys.executable, "-m", "hub", "serve"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.close()
            raise AssertionError("hub did not start:\n" + (tmp_path / "hub.log").read_text())
        time.sleep(0.1)
    try:
        yield Hub(url, token, ids)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keeps each phase's report on the test, so fixtures can tell on teardown whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    report = getattr(request.node, "report_call", None)
    return bool(report is not None and report.failed)


@pytest.fixture
def hub(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Hub]:
    with run_hub(tmp_path) as running:
        yield running
    if _failed(request):  # what the hub said is part of the failure's story (shown as captured teardown output)
        print("--- hub.log (last 60 lines) ---")
        print("\n".join((tmp_path / "hub.log").read_text(errors="replace").splitlines()[-60:]))


# Module scope, not session: Playwright's sync API keeps an event loop running in the main thread while it is open,
# which would stop the async tests that run after this folder.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser: Any, hub: Hub, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Opens a fresh browser context (its own cookies) per call; all are closed after the test."""
    contexts: list[Any] = []

    def make(width: int = 1440, height: int = 900) -> Any:
        ctx = browser.new_context(viewport={"width": width, "height": height}, base_url=hub.url,
                                  device_scale_factor=1)
        ctx.set_default_timeout(20_000)
        contexts.append(ctx)
        page = ctx.new_page()
        page.errors = []
        page.on("pageerror", lambda err: page.errors.append(str(err)))
        return page

    yield make
    if _failed(request):  # what each page showed when the test failed: its text here, a screenshot in SHOTS
        SHOTS.mkdir(parents=True, exist_ok=True)
        for i, page in enumerate(p for ctx in contexts for p in ctx.pages):
            shot = SHOTS / f"failed-{request.node.name}-{i}.png"
            with contextlib.suppress(Exception):
                page.screenshot(path=str(shot))
                print(f"--- page {i}: {page.url} (screenshot {shot}) ---\n{page.inner_text('body')[:3000]}")
    for ctx in contexts:
        ctx.close()


def sign_in(page: Any, email: str, password: str = PASSWORD) -> None:
    page.goto("/console/")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#signin-btn")
    page.wait_for_selector("#live-status.s-live")


def go_available(page: Any) -> None:
    """The agent on PAGE switches to Available (the widget offers a chat only while someone can answer)."""
    page.click('.seg[data-presence="available"]')
    page.wait_for_selector('.seg.active[data-presence="available"]')


def customer_chats(new_page: Any, text: str) -> Any:
    """A customer on a phone opens the web chat, sends TEXT and sees it sent; returns their page."""
    customer = new_page(390, 844)
    customer.goto("/chat")
    customer.wait_for_selector(".hc-panel[data-state=online]")
    customer.fill(".hc-input", text)
    customer.keyboard.press("Enter")
    customer.wait_for_selector(".hc-mine:not(.hc-pending)")
    return customer


class SimulatorThread:
    """The Twilio REST simulator on its own event loop in a thread (Playwright's sync API holds this one)."""

    def __init__(self) -> None:
        self.sim = TwilioSimulator(ACCOUNT, TOKEN)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="twilio-simulator", daemon=True)
        self.runner = web.AppRunner(self.sim.app(), access_log=None)
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        self.run(self._serve())

    async def _serve(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def sent(self, resource: str) -> list[Any]:
        return [dict(form) for name, form in list(self.sim.requests) if name == resource]

    def hub_env(self, port: int, **settings: str) -> dict[str, str]:
        """The environment of an e2e hub on PORT whose Twilio channels talk to this simulator, which calls back
        signed to the hub's public URL; SETTINGS adds `HUB_CHANNELS__TWILIO__<NAME>` values (e.g. WHATSAPP_FROM)."""
        public = f"http://127.0.0.1:{port}"
        self.sim.hub_url = public
        return {"HUB_SERVER__PUBLIC_URL": public, "HUB_CHANNELS__TWILIO__ENABLED": "true",
                "HUB_CHANNELS__TWILIO__ACCOUNT_SID": ACCOUNT, "HUB_CHANNELS__TWILIO__AUTH_TOKEN": TOKEN,
                "HUB_CHANNELS__TWILIO__API_BASE_URL": self.url,
                **{f"HUB_CHANNELS__TWILIO__{name}": value for name, value in settings.items()}}


@pytest.fixture
def twilio() -> Iterator[SimulatorThread]:
    sim = SimulatorThread()
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()
