"""Business hours: weekly hours in a time zone, with holidays, per queue and a default ("default"). Rules ask whether
a conversation's queue is open; out of hours the hub can answer the customer once per closed window."""

from __future__ import annotations

import json
import re
import time as monotonic_time
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.business_hours import DAYS
from hub.history.db import Database, Tx

DEFAULT = "default"
#: how long a process answers "is this queue open?" from what it last read (HoursCache)
CACHE_SECONDS = 5.0
_INTERVAL = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def _interval(raw: str) -> tuple[time, time | None]:
    """(start, end) of "09:00-17:30"; end None means midnight at the end of the day ("...-24:00")."""
    m = _INTERVAL.match(raw)
    if not m or (m.group(3) == "24" and m.group(4) != "00"):
        raise ValueError(f"{raw!r} is not HH:MM-HH:MM (24-hour, e.g. 09:00-17:30; 24:00 ends the day)")
    start = time(int(m.group(1)), int(m.group(2)))
    end = None if m.group(3) == "24" else time(int(m.group(3)), int(m.group(4)))
    if end is not None and end <= start:
        raise ValueError(f"{raw!r} ends before it starts; split a night shift at midnight (22:00-24:00, 00:00-06:00)")
    return start, end


class BusinessHours(BaseModel):
    """When a queue (or the whole hub, "default") is open."""

    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(description="IANA time zone, e.g. Europe/Paris")
    weekly: dict[str, list[str]] = Field(
        description="day (mon..sun) -> open intervals HH:MM-HH:MM; a day left out is closed")
    holidays: list[date] = Field(default_factory=list, description="dates (in the time zone) closed all day")
    auto_reply: str = Field("", max_length=1000, description="sent once per conversation per closed window when a "
                            "customer writes out of hours; {next_open} is replaced by when it opens; empty: none")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not an IANA time zone (e.g. America/New_York)") from None
        return v

    @field_validator("weekly")
    @classmethod
    def _weekly(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for day, intervals in v.items():
            if day not in DAYS:
                raise ValueError(f"{day!r} is not a day; use {', '.join(DAYS)}")
            for raw in intervals:
                _interval(raw)
        return v

    def _open_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        if day in self.holidays:
            return []
        zone = ZoneInfo(self.timezone)
        out = []
        for raw in self.weekly.get(DAYS[day.weekday()], []):
            start, end = _interval(raw)
            begins = datetime.combine(day, start, zone)
            ends = datetime.combine(day + timedelta(days=1), time(0), zone) if end is None else \
                datetime.combine(day, end, zone)
            out.append((begins, ends))
        return sorted(out)

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.timezone))
        return any(b <= local < e for b, e in self._open_intervals(local.date()))

    def open_seconds(self, start: datetime, end: datetime) -> float:
        """Seconds of [START, END) inside these hours (holidays closed): a clock that stops at closing time."""
        if end <= start:
            return 0.0
        zone = ZoneInfo(self.timezone)
        # In UTC: a difference of two times in one zone is wall-clock time, an hour off across a DST change.
        lo, hi = start.astimezone(UTC), end.astimezone(UTC)
        total = 0.0
        day, last = lo.astimezone(zone).date(), hi.astimezone(zone).date()
        while day <= last:
            for b, e in self._open_intervals(day):
                a, z = max(b.astimezone(UTC), lo), min(e.astimezone(UTC), hi)
                if z > a:
                    total += (z - a).total_seconds()
            day += timedelta(days=1)
        return total

    def deadline(self, start: datetime, seconds: float) -> datetime | None:
        """When SECONDS of open time have passed since START: a clock that stops at closing time (and on holidays)
        and runs again at opening. None if these hours do not hold that much open time in the coming year."""
        zone = ZoneInfo(self.timezone)
        # In UTC: adding seconds to a local time would be an hour off across a DST change.
        cursor, left = start.astimezone(UTC), float(seconds)
        day = cursor.astimezone(zone).date()
        for _ in range(370):
            for b, e in self._open_intervals(day):
                a, z = max(b.astimezone(UTC), cursor), e.astimezone(UTC)
                if z <= a:
                    continue
                span = (z - a).total_seconds()
                if left <= span:
                    return a + timedelta(seconds=left)
                left -= span
                cursor = z  # overlapping intervals count their shared time once
            day += timedelta(days=1)
        return None

    def next_open(self, at: datetime) -> datetime | None:
        """When it next opens after AT (AT itself if open then); None if it never opens in the coming year."""
        local = at.astimezone(ZoneInfo(self.timezone))
        for offset in range(370):
            for b, e in self._open_intervals(local.date() + timedelta(days=offset)):
                if e > local:
                    return max(b, local)
        return None


def load(tx: Tx, name: str) -> BusinessHours | None:
    row = tx.one("SELECT body FROM business_hours WHERE name = ?", (name,))
    return BusinessHours.model_validate_json(row["body"]) if row else None


def for_queue(tx: Tx, queue: str | None) -> BusinessHours | None:
    """The queue's own hours, else the default; None when no hours are set (always open)."""
    return (load(tx, queue) if queue else None) or load(tx, DEFAULT)


def listing(tx: Tx) -> dict[str, Any]:
    rows = tx.all("SELECT name, body FROM business_hours ORDER BY name")
    return {str(r["name"]): json.loads(r["body"]) for r in rows}


def save(tx: Tx, name: str, hours: BusinessHours, now: str) -> None:
    tx.exec("DELETE FROM business_hours WHERE name = ?", (name,))
    tx.exec("INSERT INTO business_hours (name, body, updated_at) VALUES (?, ?, ?)",
            (name, hours.model_dump_json(), now))


def delete(tx: Tx, name: str) -> bool:
    return tx.exec("DELETE FROM business_hours WHERE name = ?", (name,)) > 0


class HoursCache:
    """Every business hours, read from the store at most once every CACHE_SECONDS per process, for the questions
    asked per request (the web chat widget, each phone call). A change through the API drops this process's copy at
    once (forget); every other process reads it again within CACHE_SECONDS."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._hours: dict[str, BusinessHours] = {}
        self._read_at: float | None = None

    def forget(self) -> None:
        self._read_at = None

    async def all(self) -> dict[str, BusinessHours]:
        now = monotonic_time.monotonic()
        if self._read_at is None or now - self._read_at > CACHE_SECONDS:
            rows = await self.db.read(listing)
            self._hours = {name: BusinessHours.model_validate(body) for name, body in rows.items()}
            self._read_at = now
        return self._hours

    async def for_queue(self, queue: str | None) -> BusinessHours | None:
        """As for_queue: the queue's own hours, else the default; None when no hours are set (always open)."""
        hours = await self.all()
        return (hours.get(queue) if queue else None) or hours.get(DEFAULT)

    async def is_open(self, queue: str | None, at: datetime) -> bool:
        """Whether QUEUE is open at AT by its hours (else the default's); with none set, always."""
        hours = await self.for_queue(queue)
        return hours is None or hours.is_open(at)
