"""Business hours for reports: how many seconds of a span of time fell inside them (a clock that stops at closing
time and starts again at opening, as Chatwoot's and Zendesk's business-hours figures do)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from hub.business_hours import Span, parse_span, zone


@lru_cache(maxsize=16)
def spans_of(texts: tuple[str, ...]) -> tuple[Span, ...]:
    return tuple(parse_span(t) for t in texts)


def business_seconds(start: datetime, end: datetime, texts: tuple[str, ...], tz_name: str) -> float:
    """Seconds of [START, END) inside the business hours TEXTS (in time zone TZ_NAME); no hours: every second."""
    if end <= start:
        return 0.0
    if not texts:
        return (end - start).total_seconds()
    tz: ZoneInfo = zone(tz_name)
    spans = spans_of(texts)
    lo, hi = start.astimezone(tz), end.astimezone(tz)
    total = 0.0
    day = lo.date()
    while day <= hi.date():
        weekday = day.weekday()
        for s in spans:
            if weekday not in s.days:
                continue
            open_at = datetime.combine(day, s.start, tz)
            close_at = datetime.combine(day, s.end, tz)
            a, b = max(open_at, lo), min(close_at, hi)
            if b > a:
                total += (b - a).total_seconds()
        day += timedelta(days=1)
    return total
