"""How a delivery is signed: HMAC-SHA256 over "<timestamp>.<body>" with the subscription's secret, the timestamp in
its own header so a receiver can refuse replays of an old delivery (docs/webhooks.md shows the receiver's side)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

TIMESTAMP_HEADER = "Hub-Timestamp"
SIGNATURE_HEADER = "Hub-Signature"
DELIVERY_HEADER = "Hub-Delivery"
EVENT_HEADER = "Hub-Event"
#: a receiver should refuse a delivery whose timestamp is further than this from its clock
TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def headers(secret: str, body: bytes, delivery_id: int, event_type: str, now: float | None = None) -> dict[str, str]:
    ts = int(time.time() if now is None else now)
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: signature(secret, ts, body),
        DELIVERY_HEADER: str(delivery_id),
        EVENT_HEADER: event_type,
    }


def verify(secret: str, received: Mapping[str, str], body: bytes, now: float | None = None,
           tolerance: float = TOLERANCE_SECONDS) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    raw_ts = received.get(TIMESTAMP_HEADER, "")
    if not raw_ts.isdigit():
        return False
    ts = int(raw_ts)
    if abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    return hmac.compare_digest(received.get(SIGNATURE_HEADER, ""), signature(secret, ts, body))
