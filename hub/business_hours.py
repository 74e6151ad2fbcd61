"""Business hours: "mon-fri 09:00-17:30" spans in a time zone (a Twilio number, the web chat, reports)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^\s*([a-z]{3})(?:\s*-\s*([a-z]{3}))?\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class Span:
    days: frozenset[int]
    start: time
    end: time


def parse_span(text: str) -> Span:
    """'mon-fri 09:00-17:00' -> Span; raises ValueError saying what a valid span looks like."""
    m = _SPAN.match(text.lower())
    if not m or m.group(1) not in DAYS or (m.group(2) and m.group(2) not in DAYS):
        raise ValueError(f"{text!r} is not a span of hours: write e.g. 'mon-fri 09:00-17:00' or 'sat 10:00-14:00'")
    first = DAYS.index(m.group(1))
    last = DAYS.index(m.group(2)) if m.group(2) else first
    days = range(first, last + 1) if first <= last else [*range(first, 7), *range(0, last + 1)]
    h1, m1, h2, m2 = (int(m.group(i)) for i in range(3, 7))
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"{text!r}: hours are 00:00 to 24:00")
    start, end = time(h1, m1), time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2)
    if end <= start:
        raise ValueError(f"{text!r}: the span must end after it starts (split overnight hours into two spans)")
    return Span(frozenset(days), start, end)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as America/New_York") from None


def is_open(spans: list[str], tz: str, at: datetime) -> bool:
    """True if AT falls in one of SPANS (no spans: always open)."""
    if not spans:
        return True
    local = at.astimezone(zone(tz))
    now = local.time()
    return any(local.weekday() in s.days and s.start <= now < s.end for s in map(parse_span, spans))
