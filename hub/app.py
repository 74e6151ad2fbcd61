"""Builds the hub's aiohttp application from settings: services under typed AppKeys, every long-lived task
started and stopped by a cleanup_ctx (closed in reverse order)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web

from hub import metrics_http, pages, security_headers
from hub import tasks as background
from hub.agents import sync_queues
from hub.api import (
    accounts,
    attention_routes,
    canned_routes,
    label_routes,
    macro_routes,
    mention_routes,
    openapi,
    ownership,
    profile_routes,
    search_routes,
    snooze_routes,
    view_routes,
    wall_routes,
)
from hub.api import docs as api_docs
from hub.api.auth import TokenAuth, auth_middleware
from hub.api.business_event_routes import routes as business_event_routes
from hub.api.call_routes import routes as call_routes
from hub.api.errors import error_middleware
from hub.api.events_ws import routes as events_routes
from hub.api.report_routes import routes as report_routes
from hub.api.request_guard import request_guard
from hub.api.routes import routes as api_routes
from hub.api.routing_routes import routes as routing_routes
from hub.api.template_routes import routes as template_routes
from hub.automation import api as automation_api
from hub.automation.hours import HoursCache
from hub.automation.runner import Runner
from hub.bots import api as bots_api
from hub.bots.turns import BotTurns
from hub.campaigns import api as campaigns_api
from hub.campaigns.sender import CampaignSender
from hub.channel_host import ChannelHost
from hub.channels.api import ApiChannel
from hub.channels.base import Channel
from hub.channels.registry import CHANNEL_RULES
from hub.channels.telegram.channel import TelegramChannel
from hub.channels.webchat.channel import WebchatChannel
from hub.config import Settings
from hub.console.handlers import routes as console_routes
from hub.console.sessions import SESSIONS, Sessions
from hub.csat import page as csat_page
from hub.csat.sender import SurveySender
from hub.events import open_bus
from hub.history.db import open_database, redact
from hub.history.schema import migrate
from hub.inbox.snooze import Waker
from hub.ingest import Ingest
from hub.keys import (
    AUTH,
    AUTOMATION,
    BUS,
    BUSINESS_HOURS,
    CAMPAIGNS,
    CHANNELS,
    CSAT,
    DB,
    INGEST,
    METRICS,
    OUTBOX,
    ROUTER,
    SETTINGS,
    WEBHOOKS,
)
from hub.metrics import Metrics
from hub.outbox import Outbox
from hub.reports.rollup import RollRules, roll_forever
from hub.routing import availability as webchat_availability
from hub.routing.service import Router
from hub.segments.api import routes as segment_routes
from hub.segments.segment_store import snapshot_forever
from hub.sockets import OPEN_SOCKETS, OpenSockets
from hub.webhooks import api as webhooks_api
from hub.webhooks.deliveries import Deliverer

log = logging.getLogger("hub.app")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


#: labelled series remembered by the metrics middleware: routes are few, but a method is whatever a client sends
_SERIES_REMEMBERED = 1000


def _metrics_middleware(metrics: Metrics) -> Callable[..., Awaitable[web.StreamResponse]]:
    # prometheus_client's labels() validates and locks on every call: each request's series are looked up once.
    counters: dict[tuple[str, str, int], Any] = {}
    latencies: dict[str, Any] = {}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        status = 500
        try:
            resp = await handler(request)
            status = resp.status
            return resp
        except web.HTTPException as e:
            status = e.status
            raise
        finally:
            key = (route, request.method, status)
            counter = counters.get(key)
            if counter is None:
                counter = metrics.http_requests.labels(route, request.method, str(status))
                if len(counters) < _SERIES_REMEMBERED:
                    counters[key] = counter
            counter.inc()
            latency = latencies.get(route)
            if latency is None:
                latency = metrics.http_latency.labels(route)
                if len(latencies) < _SERIES_REMEMBERED:
                    latencies[route] = latency
            latency.observe(time.perf_counter() - start)

    return middleware


async def healthz(request: web.Request) -> web.Response:
    # pid: which process answered, among the workers of `hub serve --workers N` that share the port
    return web.json_response({"status": "ok", "pid": os.getpid()})


async def readyz(request: web.Request) -> web.Response:
    if not await request.app[DB].ping():
        return web.json_response({"status": "not ready", "reason": "the database is not reachable"}, status=503)
    # A channel that cannot work (a mailbox refusing our login) degrades the hub, but it still serves the others:
    # 200, so a load balancer keeps it, with the problems named for people and monitors.
    problems = {name: p for name, ch in request.app[CHANNELS].items() if (p := ch.problems())}
    if problems:
        return web.json_response(
            {"status": "degraded", "database": request.app[DB].dialect, "problems": problems}
        )
    return web.json_response({"status": "ready", "database": request.app[DB].dialect})


async def index(request: web.Request) -> web.Response:
    """The first page a newcomer opens: where to go next (console, web chat, API docs) and what is configured."""
    s = request.app[SETTINGS]
    configured: dict[str, Channel] = request.app[CHANNELS]
    queues = [{"name": n, "title": q.title or n} for n, q in sorted(s.routing.queues.items())]
    return pages.render("index.html", channels=sorted(configured), queues=queues, console=s.console.enabled,
                        webchat="webchat" in configured, metrics=s.metrics.enabled and not s.metrics.listen)


def build_channels(settings: Settings, host: ChannelHost) -> dict[str, Channel]:
    """The configured channel adapters, by name. Each channel adds its line here."""
    channels: dict[str, Channel] = {}
    if settings.channels.api.enabled:
        channels["api"] = ApiChannel(host, settings.channels.api)
    if settings.channels.telegram.enabled:
        channels["telegram"] = TelegramChannel.from_settings(host, settings)
    if settings.channels.webchat.enabled:
        channels["webchat"] = WebchatChannel.from_settings(host, settings)
    if settings.channels.twilio.enabled:
        from hub.channels.twilio.channels import twilio_channels

        channels.update(twilio_channels(settings, host))
    if settings.channels.email.enabled:
        from hub.channels.email.channel import EmailChannel

        channels["email"] = EmailChannel(host, settings.channels.email)
    return channels


def _task(name: str, make: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(make(), name=name)
        yield
        await background.stop([task])

    return ctx


def _install_calls(app: web.Application, settings: Settings, channels: dict[str, Channel]) -> None:
    """With the voice channel: accepted calls are bridged to agents, menus route, agents place calls."""
    if "voice" not in channels:
        return
    from hub.channels.twilio.voice import VoiceChannel
    from hub.routing.calls import CALLS, Calls

    voice = channels["voice"]
    assert isinstance(voice, VoiceChannel)
    calls = Calls(app[DB], app[BUS], app[ROUTER], voice, settings.channels.twilio,
                  settings.identities.default_region)
    calls.install()
    voice.queue_open = app[BUSINESS_HOURS].is_open
    app[CALLS] = calls

    async def close_calls(app: web.Application) -> None:
        await calls.close()

    app.on_shutdown.append(close_calls)


def _automation(
    settings: Settings, runner: Runner, deliverer: Deliverer, turns: BotTurns
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The rule runner, the bots' turn sender and the webhook sender: the runner always marks events handled (rules
    run only when automation.enabled), the webhook sender runs when webhooks.enabled."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(runner.run_forever(), name="hub-automation")]
        if settings.automation.enabled:  # off, the runner only marks events handled: its poll is soon enough
            tasks.append(asyncio.create_task(runner.watch_bus(), name="hub-automation-events"))
        await deliverer.start()
        await turns.start()
        tasks.append(asyncio.create_task(turns.run_forever(), name="hub-bots"))
        if settings.webhooks.enabled:
            tasks.append(asyncio.create_task(deliverer.run_forever(), name="hub-webhooks"))
        yield
        await background.stop(tasks)
        await turns.close()
        await deliverer.close()

    return ctx


def build_app(settings: Settings) -> web.Application:
    metrics = Metrics()
    db = open_database(settings.database.url, settings.database.pool_size, settings.database.sqlite_synchronous)
    bus = open_bus(settings)
    auth = TokenAuth(db)
    sessions = Sessions(db, settings.console)
    router = Router(db, settings, bus)
    ingest = Ingest(db, settings, bus, metrics, choose_queue=router.choose_queue, on_stored=router.on_ingest,
                    first_response=router.first_response, channel_rules=CHANNEL_RULES)
    channels: dict[str, Channel] = {}
    outbox = Outbox(db, channels, settings.outbox, bus, metrics)
    channels.update(build_channels(settings, ChannelHost(ingest, outbox)))
    deliverer = Deliverer(db, settings.webhooks)
    runner = Runner(db, settings.automation, outbox, router, bus, on_deliveries=deliverer.wake.set)
    turns = BotTurns(db, settings.webhooks, outbox, after=runner.after_bot)
    waker = Waker(db, bus, router, settings.console.snooze_poll_seconds)
    runner.on_bot_turns = turns.wake.set
    surveys = SurveySender(db, settings, outbox, bus)
    campaigns = CampaignSender(db, settings, outbox, bus)

    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[
            _metrics_middleware(metrics), request_guard, error_middleware,
            auth_middleware(auth, sessions if settings.console.enabled else None),
        ],
    )
    security_headers.install(app)
    app[SETTINGS], app[DB], app[BUS], app[METRICS] = settings, db, bus, metrics
    app[AUTH], app[INGEST], app[OUTBOX], app[CHANNELS] = auth, ingest, outbox, channels
    app[SESSIONS] = sessions
    app[BUSINESS_HOURS] = HoursCache(db)
    app[ROUTER] = router
    app[AUTOMATION], app[WEBHOOKS] = runner, deliverer
    app[CSAT] = surveys
    app[CAMPAIGNS] = campaigns
    app[OPEN_SOCKETS] = OpenSockets()
    app.on_shutdown.append(app[OPEN_SOCKETS].close_all)
    _install_calls(app, settings, channels)

    async def event_bus(app: web.Application) -> AsyncIterator[None]:
        await bus.start()
        yield
        await bus.close()

    async def database(app: web.Application) -> AsyncIterator[None]:
        log.info("database %s", redact(settings.database.url))
        applied = await migrate(db)
        if applied:
            log.info("schema migrated to version %d", applied[-1])
        await sync_queues(db, settings.routing.queues)
        yield
        await db.close()

    async def channel_tasks(app: web.Application) -> AsyncIterator[None]:
        started: list[Channel] = []
        for ch in channels.values():
            await ch.start()
            started.append(ch)
        log.info("channels: %s", ", ".join(channels) or "none")
        yield
        for ch in reversed(started):
            await ch.stop()

    async def routing(app: web.Application) -> AsyncIterator[None]:
        await router.start()
        yield
        await router.close()

    app.cleanup_ctx.extend(
        [
            event_bus,
            database,
            routing,
            channel_tasks,
            _task("hub-ingest-recovery", ingest.recover_forever),
            _task("hub-outbox", outbox.run_forever),
            _task("hub-routing-tick", router.tick_forever),
            _task("hub-routing-events", router.watch_events),
            accounts.forget_on_events,
            *([_task("hub-reports-roller", lambda: roll_forever(
                db, lambda: RollRules.from_settings(settings.reports, settings.routing),
                settings.reports.roll_interval_seconds))] if settings.reports.roller else []),
            _task("hub-segment-sizes", lambda: snapshot_forever(db)),
            _automation(settings, runner, deliverer, turns),
            _task("hub-snooze-waker", waker.run_forever),
            _task("hub-snooze-listener", waker.listen),
            _task("hub-csat", surveys.run_forever),
            _task("hub-campaigns", campaigns.run_forever),
        ]
    )

    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    metrics_http.install(app, settings.metrics, metrics)
    app.router.add_get("/api/v1/openapi.json", openapi.serve)
    app.router.add_routes(api_docs.routes())
    app.router.add_routes(api_routes())
    app.router.add_routes(events_routes())
    if settings.console.enabled:
        app.router.add_routes(console_routes())
    app.router.add_routes(routing_routes())
    app.router.add_routes(ownership.routes())
    app.router.add_routes(wall_routes.routes())
    app.router.add_routes(canned_routes.routes())
    app.router.add_routes(label_routes.routes())
    app.router.add_routes(view_routes.routes())
    app.router.add_routes(snooze_routes.routes())
    app.router.add_routes(profile_routes.routes())
    app.router.add_routes(mention_routes.routes())
    app.router.add_routes(macro_routes.routes())
    app.router.add_routes(call_routes())
    app.router.add_routes(template_routes())
    app.router.add_routes(accounts.routes())
    app.router.add_routes(search_routes.routes())
    app.router.add_routes(report_routes())
    app.router.add_routes(business_event_routes())
    app.router.add_routes(segment_routes())
    app.router.add_routes(attention_routes.routes())
    app.router.add_routes(automation_api.routes())
    app.router.add_routes(webhooks_api.routes())
    app.router.add_routes(bots_api.routes())
    app.router.add_routes(csat_page.routes())
    app.router.add_routes(campaigns_api.routes())
    for ch in channels.values():
        app.router.add_routes(ch.routes())
    if "webchat" in channels:
        app.router.add_routes(webchat_availability.routes())
    return app
