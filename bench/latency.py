"""What an agent feels: the time from the POST that brings a customer's message (`POST /api/v1/inbound`, or a signed
Twilio SMS webhook) to its `message.created` event on the console WebSocket (`GET /api/v1/events`) of an agent who
works that queue. Open loop at a fixed rate (half of the hub's maximum from the inbound run), so a slow answer does
not slow the sender down and queueing shows in the figures.

Runs in the benchmark process (aiohttp client), not in a separate generator: the rate is low, and the socket and the
senders must share one clock.

The baseline of the same run: the durable floor (the bare handler that answers after one commit to the run's
database, SQLite or PostgreSQL) posted to the same way, at the same rate, just before: its answer time is the least
any durable path takes on this machine at that moment (on a shared machine, the load average moves it by tens of ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from bench.load import INBOUND_PATH, percentile
from hub.channels.twilio.signature import sign

TARGET_P99_MS = 25.0
#: how many customers each source's messages come from, in turn: the first message of each is a new customer's
CUSTOMERS = 500
TWILIO_SMS_PATH = "/webhooks/twilio/sms"
#: the Twilio account the benchmark's hub is configured with (no request leaves the machine)
TWILIO_ACCOUNT = "AC" + "b" * 32
TWILIO_TOKEN = "bench-auth-token"
TWILIO_NUMBER = "+14155550199"
#: the baseline's source: no socket, timed to its answer
FLOOR_SOURCE = "floor: bare + 1 commit, answer"


@dataclass
class LatencyResult:
    source: str
    #: messages per second asked for, and what the sender managed
    rate: float
    achieved: float
    sent: int
    #: POSTs answered 2xx, and their events seen on the socket
    acked: int
    arrived: int
    #: POST -> event on the socket
    p50_ms: float
    p99_ms: float
    max_ms: float
    #: POST -> its answer, for comparison
    ack_p50_ms: float
    ack_p99_ms: float
    #: the socket said it dropped events ("lagged")
    lagged: int
    #: POST -> event p99 of the messages from a new customer (each source's first CUSTOMERS messages: a customer, a
    #: conversation and its routing written, and routing's events on the socket) and of the rest (known customers,
    #: joining their open conversation): the run starts with a burst of the first kind, costlier than the mix the
    #: maximum rate was measured with, so the overall p99 is read beside them
    new_p99_ms: float = 0.0
    known_p99_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def twilio_env(public_url: str) -> dict[str, str]:
    """The hub settings that enable its Twilio channel for signed SMS webhooks from the benchmark."""
    return {
        "HUB_SERVER__PUBLIC_URL": public_url,
        "HUB_CHANNELS__TWILIO__ENABLED": "true",
        "HUB_CHANNELS__TWILIO__ACCOUNT_SID": TWILIO_ACCOUNT,
        "HUB_CHANNELS__TWILIO__AUTH_TOKEN": TWILIO_TOKEN,
        # Replies are never sent in the benchmark; a closed local port keeps any attempt on this machine.
        "HUB_CHANNELS__TWILIO__API_BASE_URL": "http://127.0.0.1:9",
    }


def _api_request(base: str, token: str, tag: str, i: int) -> tuple[str, dict[str, Any]]:
    ext = f"{tag}-{i}"
    body = {"identity": f"phone:+1{4160000000 + i % CUSTOMERS}", "text": f"latency {i}", "external_id": ext}
    return ext, {"url": base + INBOUND_PATH, "json": body, "headers": {"Authorization": f"Bearer {token}"}}


def _twilio_request(base: str, _token: str, tag: str, i: int) -> tuple[str, dict[str, Any]]:
    sid = f"SM{tag}{i:08d}"
    url = base + TWILIO_SMS_PATH
    params = {"AccountSid": TWILIO_ACCOUNT, "ApiVersion": "2010-04-01", "Body": f"latency {i}",
              "From": f"+1{4170000000 + i % CUSTOMERS}", "To": TWILIO_NUMBER, "MessageSid": sid, "SmsMessageSid": sid,
              "SmsSid": sid, "SmsStatus": "received", "NumMedia": "0", "NumSegments": "1"}
    return sid, {"url": url, "data": params, "headers": {"X-Twilio-Signature": sign(TWILIO_TOKEN, url, params)}}


SOURCES: dict[str, Callable[[str, str, str, int], tuple[str, dict[str, Any]]]] = {
    "POST /api/v1/inbound": _api_request,
    "Twilio SMS (signed webhook)": _twilio_request,
}


async def open_loop(rate: float, seconds: float, post: Callable[[int], Coroutine[Any, Any, None]]) -> tuple[int, float]:
    """POST(i) started RATE times a second for SECONDS on schedule, whatever the answers (an open loop: a slow
    server does not slow the sender), all awaited; returns how many and the seconds the sending took."""
    total = max(1, round(rate * seconds))
    start = time.perf_counter()
    posts = []
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        posts.append(asyncio.create_task(post(i)))
    await asyncio.gather(*posts, return_exceptions=True)
    return total, time.perf_counter() - start


async def measure(
    base: str, admin_token: str, agent_token: str, source: str, rate: float, seconds: float, tag: str,
) -> LatencyResult:
    """RATE messages per second for SECONDS from SOURCE, each timed until its event reaches AGENT_TOKEN's socket."""
    build = SOURCES[source]
    sent_at: dict[str, tuple[float, int]] = {}
    seen: list[float] = []
    new: list[float] = []
    known: list[float] = []
    acks: list[float] = []
    acked = lagged = 0
    posted = asyncio.Event()
    caught_up = asyncio.Event()  # every acknowledged message's event arrived, once all are posted
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http, http.ws_connect(
        base + "/api/v1/events", headers={"Authorization": f"Bearer {agent_token}"}
    ) as ws:
        hello = await ws.receive_json(timeout=10)
        if hello.get("type") != "hello":
            raise RuntimeError(f"the events socket said {hello!r} first, not hello")

        async def read() -> None:
            nonlocal lagged
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                now = time.perf_counter()
                event = json.loads(msg.data)
                if event["type"] == "lagged":
                    lagged += 1
                elif event["type"] == "message.created":
                    sent = sent_at.pop(str(event["data"]["message"].get("external_id")), None)
                    if sent is not None:
                        seen.append(now - sent[0])
                        (new if sent[1] < CUSTOMERS else known).append(now - sent[0])
                if posted.is_set() and len(seen) >= acked:
                    caught_up.set()

        async def post(i: int) -> None:
            nonlocal acked
            key, request = build(base, admin_token, tag, i)
            t0 = time.perf_counter()
            sent_at[key] = (t0, i)
            async with http.post(**request) as resp:
                await resp.read()
                if 200 <= resp.status < 300:
                    acked += 1
                    acks.append(time.perf_counter() - t0)

        reader = asyncio.create_task(read())
        total, elapsed = await open_loop(rate, seconds, post)
        posted.set()
        if len(seen) < acked:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(caught_up.wait(), 5)
        reader.cancel()
    for times in (seen, acks, new, known):
        times.sort()
    return LatencyResult(
        source=source, rate=rate, achieved=total / elapsed, sent=total, acked=acked, arrived=len(seen),
        p50_ms=1000 * percentile(seen, 50), p99_ms=1000 * percentile(seen, 99),
        max_ms=1000 * (seen[-1] if seen else 0.0), ack_p50_ms=1000 * percentile(acks, 50),
        ack_p99_ms=1000 * percentile(acks, 99), lagged=lagged, new_p99_ms=1000 * percentile(new, 99),
        known_p99_ms=1000 * percentile(known, 99),
    )


async def measure_floor(url: str, rate: float, seconds: float, tag: str) -> LatencyResult:
    """RATE POSTs per second for SECONDS to the durable floor at URL, each timed to its answer (its "event")."""
    answers: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def post(i: int) -> None:
            body = {"identity": f"phone:+1{4180000000 + i % 500}", "text": f"latency {i}", "external_id": f"{tag}-{i}"}
            t0 = time.perf_counter()
            async with http.post(url, json=body) as resp:
                await resp.read()
                if 200 <= resp.status < 300:
                    answers.append(time.perf_counter() - t0)

        total, elapsed = await open_loop(rate, seconds, post)
    answers.sort()
    p50, p99 = 1000 * percentile(answers, 50), 1000 * percentile(answers, 99)
    return LatencyResult(
        source=FLOOR_SOURCE, rate=rate, achieved=total / elapsed, sent=total, acked=len(answers),
        arrived=len(answers), p50_ms=p50, p99_ms=p99, max_ms=1000 * (answers[-1] if answers else 0.0),
        ack_p50_ms=p50, ack_p99_ms=p99, lagged=0,
    )


async def run_latency(
    base: str, admin_token: str, agent_token: str, rate: float, seconds: float, run_id: str,
    progress: Callable[[str], None], floor_url: str | None = None,
) -> list[LatencyResult]:
    out = []
    if floor_url is not None:
        progress(f"latency: the durable floor at {rate:,.0f}/s for {seconds:g}s, to its answer (the baseline)")
        floor = await measure_floor(floor_url, rate, seconds, f"{run_id}lf")
        progress(f"latency: the durable floor: p50 {floor.p50_ms:.1f} ms, p99 {floor.p99_ms:.1f} ms")
        out.append(floor)
    for n, source in enumerate(SOURCES):
        progress(f"latency: {source} at {rate:,.0f}/s for {seconds:g}s, to an agent's events socket")
        r = await measure(base, admin_token, agent_token, source, rate, seconds, f"{run_id}l{n}")
        progress(f"latency: {source}: p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms (new customers' "
                 f"{r.new_p99_ms:.1f}, known {r.known_p99_ms:.1f}), {r.arrived:,}/{r.acked:,} events arrived "
                 f"(sent at {r.achieved:,.0f}/s)")
        out.append(r)
    return out
