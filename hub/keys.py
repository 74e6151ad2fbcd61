"""Typed application keys: how handlers reach the hub's services."""

from __future__ import annotations

from aiohttp import web

from hub.api.auth import TokenAuth
from hub.automation.hours import HoursCache
from hub.channels.base import Channel
from hub.config import Settings
from hub.events import EventBus
from hub.history.db import Database
from hub.ingest import Ingest
from hub.metrics import Metrics
from hub.outbox import Outbox
from hub.routing.service import Router

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
BUSINESS_HOURS = web.AppKey("business_hours", HoursCache)
BUS = web.AppKey("bus", EventBus)
METRICS = web.AppKey("metrics", Metrics)
INGEST = web.AppKey("ingest", Ingest)
OUTBOX = web.AppKey("outbox", Outbox)
AUTH = web.AppKey("auth", TokenAuth)
CHANNELS = web.AppKey("channels", dict[str, Channel])
ROUTER = web.AppKey("router", Router)

# Automation and outbound webhooks (imported late: they build on the services above).
from hub.automation.runner import Runner  # noqa: E402
from hub.webhooks.deliveries import Deliverer  # noqa: E402

AUTOMATION = web.AppKey("automation", Runner)
WEBHOOKS = web.AppKey("webhooks", Deliverer)

from hub.csat.sender import SurveySender  # noqa: E402

CSAT = web.AppKey("csat", SurveySender)

from hub.campaigns.sender import CampaignSender  # noqa: E402

CAMPAIGNS = web.AppKey("campaigns", CampaignSender)
