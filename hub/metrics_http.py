"""GET /metrics for Prometheus: on the hub's own address or, with metrics.listen, only on a separate one; behind a
bearer token when metrics.token is set (see docs/security.md)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from hub import security_headers
from hub.config import MetricsSettings
from hub.metrics import Metrics

log = logging.getLogger("hub.metrics")


def handler(metrics: Metrics, settings: MetricsSettings) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def serve(request: web.Request) -> web.Response:
        if settings.token:
            scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), settings.token.encode()):
                raise web.HTTPUnauthorized(text="send Authorization: Bearer <metrics.token>",
                                           headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        return web.Response(body=metrics.render(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    return serve


def install(app: web.Application, settings: MetricsSettings, metrics: Metrics) -> None:
    if not settings.enabled:
        return
    serve = handler(metrics, settings)
    if not settings.listen:
        app.router.add_get("/metrics", serve)
        return
    host, _, port = settings.listen.rpartition(":")

    async def separate(app: web.Application) -> AsyncIterator[None]:
        own = web.Application()
        security_headers.install(own)
        own.router.add_get("/metrics", serve)
        runner = web.AppRunner(own, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host.strip("[]"), int(port)).start()
        log.info("metrics on http://%s/metrics", settings.listen)
        yield
        await runner.cleanup()

    app.cleanup_ctx.append(separate)
