"""What a phone call came to (answered, abandoned, missed, voicemail...) and the line the timeline shows for it.

A pure rule over a call message's meta: the voice channel writes it when a call comes in, and `settle` is its rule
for a call's status arriving later as a fact, which the core applies (hub.facts) to the meta stored by then."""

from __future__ import annotations

from typing import Any

from hub.channels.base import MISSED
from hub.model import format_duration


def summary(meta: dict[str, Any]) -> str:
    """What the timeline says about a call, from what the callbacks told us so far."""
    caller = meta.get("from", "")
    waited = meta.get("queue_seconds")
    wait = f" after {format_duration(int(waited))} in queue" if isinstance(waited, int) else ""
    outcome = meta.get("outcome")
    if outcome == "answered":
        who = f" by agent {meta['agent_id']}" if meta.get("agent_id") else ""
        talk = meta.get("talk_seconds")
        talked = f"; talk time {format_duration(int(talk))}" if isinstance(talk, int) else ""
        waited_for = f" (waited {format_duration(int(waited))})" if isinstance(waited, int) else ""
        return f"Call answered{who}{talked}{waited_for}"
    if outcome == "abandoned":
        return f"Abandoned call: the caller hung up{wait}"
    if outcome == "missed":
        status = meta.get("call_status", "")
        return "Missed call" + (f" ({status})" if status and status != "completed" else ": hung up before queueing")
    if outcome == "voicemail":
        return "Call went to voicemail" + (" (outside business hours)" if meta.get("after_hours") else wait)
    if outcome == "no_agent":
        return f"No agent answered{wait}: offered voicemail"
    if outcome == "after_hours":
        return "Call outside business hours: offered voicemail"
    queue = meta.get("queue")
    text = f"Incoming call from {caller}" + (f", waiting in queue {queue}" if queue and outcome == "queued" else "")
    if meta.get("bridge_error"):
        text += f" (could not ring agent {meta.get('bridge_agent_id', '?')}: {meta['bridge_error']})"
    return text


def call_outcome(meta: dict[str, Any]) -> dict[str, Any]:
    """What the call's status (meta call_status, duration_seconds) settles about its outcome, given what the other
    callbacks told us. Applied with each status callback (hub.facts), also when it waited for the call."""
    status, duration, outcome = meta.get("call_status", ""), meta.get("duration_seconds"), meta.get("outcome")
    if status in MISSED and outcome in ("ringing", "menu", "queued", None):
        return {"outcome": "missed"}
    if status == "completed":
        if outcome in ("ringing", "menu"):
            return {"outcome": "missed"}
        if outcome == "queued":
            return {"outcome": "abandoned"}
        if outcome == "answered" and meta.get("talk_seconds") is None and isinstance(duration, int):
            return {"talk_seconds": max(0, duration - int(meta.get("queue_seconds") or 0))}
    return {}


def settle(meta: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The voice channel's FactRule: what a call's status settles given META (all the callbacks said so far), and
    the call's text after it."""
    derived = call_outcome(meta)
    return derived, summary({**meta, **derived})
