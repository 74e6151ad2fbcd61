"""`hub webhooks replay FILE --url URL`: post a saved Twilio webhook (form-encoded, as in webhooks/twilio/) to a hub,
signed with the configured auth token exactly as Twilio signs it."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from urllib.parse import parse_qsl

import aiohttp

from hub.channels.twilio.signature import sign

# Provider ids a fresh replay replaces, so the hub treats it as a new event rather than a retry.
_SIDS = {"MessageSid": "SM", "SmsSid": "SM", "SmsMessageSid": "SM", "CallSid": "CA", "RecordingSid": "RE",
         "TranscriptionSid": "TR"}


def read_payload(path: Path) -> dict[str, str]:
    """A saved webhook: a form-encoded body (.txt) or a JSON object of strings (.json)."""
    text = path.read_text().strip()
    if path.suffix == ".json":
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a JSON payload must be an object of form fields")
        return {str(k): str(v) for k, v in data.items()}
    return dict(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text)))


def freshen(params: dict[str, str]) -> dict[str, str]:
    """New random provider ids (one per kind, kept consistent across fields such as MessageSid and SmsSid)."""
    out: dict[str, str] = dict(params)
    made: dict[str, str] = {}
    for key, prefix in _SIDS.items():
        if key in out:
            old = out[key]
            made.setdefault(old, (old[:2] if old[:2].isalpha() else prefix) + secrets.token_hex(16))
            out[key] = made[old]
    return out


async def replay(path: Path, url: str, auth_token: str, fresh: bool = False) -> tuple[int, str]:
    """POST the saved webhook at PATH to URL, signed; returns (HTTP status, body)."""
    params = read_payload(path)
    if fresh:
        params = freshen(params)
    headers = {"X-Twilio-Signature": sign(auth_token, url, params)}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.post(url, data=params, headers=headers) as resp:
            return resp.status, await resp.text()
