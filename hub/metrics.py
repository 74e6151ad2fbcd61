"""Prometheus metrics for one hub app (its own registry, so several apps in one test process never clash). Under
`hub serve --workers N` every worker writes its figures to files in the directory the supervisor names in
PROMETHEUS_MULTIPROC_DIR, and a scrape of any worker reads them all: the whole hub's figures, not one worker's."""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

#: set by the supervisor of `hub serve --workers N` for its workers (prometheus_client's multiprocess mode)
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

# The *_created series double every counter on /metrics and no dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "hub_http_requests_total", "HTTP requests served", ["route", "method", "status"], registry=r
        )
        self.http_latency = Histogram(
            "hub_http_request_seconds", "HTTP request latency", ["route"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.inbound = Counter(
            "hub_inbound_messages_total", "Inbound events by channel and outcome", ["channel", "outcome"], registry=r
        )
        self.outbound = Counter(
            "hub_outbound_sends_total", "Outbound send attempts by channel and outcome", ["channel", "outcome"],
            registry=r,
        )
        # Every worker counts the same table: the latest count of a live worker is the hub's.
        self.journal_pending = Gauge(
            "hub_journal_pending", "Journaled inbound events not yet processed", registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.outbox_pending = Gauge("hub_outbox_pending", "Outbound messages waiting to be sent", registry=r,
                                    multiprocess_mode="livemostrecent")
        self.signin_throttled = Counter(
            "hub_signin_throttled_total", "Console sign-ins refused by throttling (429)", registry=r
        )
        self.flagged = Counter(
            "hub_flagged_events_total", "Inbound events kept for an operator (see docs/attention.md), by reason",
            ["channel", "reason"], registry=r,
        )
        self.email_dedupe = Counter(
            "hub_email_dedupe_total", "Email dedupe decisions: duplicates skipped (same_uid, same_content) and "
            "different emails stored despite a reused Message-ID (reused_message_id)", ["reason"], registry=r,
        )
        self.mailbox_up = Gauge(
            "hub_mailbox_up", "1 while the hub is logged in to the mailbox, 0 while it cannot reach it or log in",
            ["mailbox"], registry=r, multiprocess_mode="livemostrecent",
        )
        self.webchat_refused = Counter(
            "hub_webchat_refused_total", "Web chat sockets and messages refused by a limit", ["reason"], registry=r
        )

    def render(self) -> bytes:
        shared = os.environ.get(MULTIPROCESS_DIR)
        if not shared:
            return bytes(generate_latest(self.registry))
        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker, shared)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(every_worker))
