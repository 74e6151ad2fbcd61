"""Files an agent sends by MMS or WhatsApp: Twilio fetches each from the hub by URL, so each outgoing attachment is
served at an unguessable URL signed with HMAC-SHA256 that expires. Nothing else is ever served there."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote, urlencode

PATH = "/webhooks/twilio/media"


def media_key(configured: str, auth_token: str) -> bytes:
    """The signing key: channels.twilio.media_url_key, else one derived from the auth token (never the token)."""
    if configured:
        return configured.encode()
    return hmac.new(auth_token.encode(), b"hub outbound media urls v1", hashlib.sha256).digest()


def _sig(key: bytes, attachment_id: int, expires: int) -> str:
    return hmac.new(key, f"{attachment_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def signed_url(public_url: str, key: bytes, attachment_id: int, filename: str, seconds: int,
               now: float | None = None) -> str:
    expires = int((time.time() if now is None else now) + seconds)
    query = urlencode({"expires": expires, "sig": _sig(key, attachment_id, expires)})
    # The file name is only a hint for the recipient's phone; the signature covers the id and expiry.
    return f"{public_url.rstrip('/')}{PATH}/{attachment_id}/{quote(filename, safe='')}?{query}"


def check(key: bytes, attachment_id: int, expires: str, sig: str, now: float | None = None) -> str | None:
    """None if the signature is good and fresh, else why not."""
    if not (expires.isascii() and expires.isdigit()) or not sig:  # '²' is a digit to isdigit(), not to int()
        return "expires and sig are required"
    if not hmac.compare_digest(_sig(key, attachment_id, int(expires)), sig):
        return "bad signature"
    if int(expires) < (time.time() if now is None else now):
        return "expired"
    return None
