"""X-Twilio-Signature on every Twilio webhook, checked with twilio's RequestValidator against the URL Twilio called,
rebuilt from server.public_url so a hub behind a proxy or load balancer validates correctly."""

from __future__ import annotations

import hmac
import logging
from typing import Literal
from urllib.parse import urlparse

from aiohttp import web
from multidict import MultiDict, MultiDictProxy
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    add_port,
    get_signature_algorithm,
    remove_port,
)

log = logging.getLogger("hub.channels.twilio")

Form = MultiDictProxy[str]


def public_webhook_url(public_url: str, request: web.Request) -> str:
    """The URL Twilio was given for this request: the public base plus the path and query it called."""
    return public_url.rstrip("/") + request.rel_url.path_qs


class SignatureCheck:
    def __init__(self, auth_token: str, public_url: str, mode: Literal["enforce", "log-only"]) -> None:
        self._validator = RequestValidator(auth_token)
        self.public_url = public_url
        self.mode = mode

    def valid(self, url: str, form: MultiDict[str] | Form, signature: str, settings_header: str = "") -> bool:
        """Whether SIGNATURE is Twilio's over URL and FORM: the URL with or without its port, as
        RequestValidator.validate accepts (Twilio is inconsistent there). validate computes both HMACs on every
        webhook (75 us of the event loop's time, most of the Twilio path's extra cost over the API's): here the
        URL as configured goes first, and the other form only when it does not match."""
        if not signature:
            return False
        algorithm = get_signature_algorithm(settings_header)
        given = signature.encode("utf-8", "replace")  # a signature is base64: anything else cannot match
        parsed = urlparse(url)
        for candidate in (parsed.geturl(), remove_port(parsed) if parsed.port else add_port(parsed)):
            try:
                expected = self._validator.compute_signature(candidate, form, algorithm)
            except ValueError:  # an algorithm this twilio release does not know: as validate, refused
                log.warning("unsupported Twilio webhook signature algorithm %r", algorithm)
                return False
            if hmac.compare_digest(expected.encode(), given):
                return True
        return False

    async def form(self, request: web.Request) -> Form:
        """The webhook's form parameters once its signature checks out; 403 (nothing stored) when it does not."""
        if request.content_type != "application/x-www-form-urlencoded":
            raise web.HTTPUnsupportedMediaType(
                text=f"Twilio webhooks are application/x-www-form-urlencoded, not {request.content_type or 'empty'}"
            )
        post = await request.post()
        form: Form = MultiDictProxy(MultiDict((k, v) for k, v in post.items() if isinstance(v, str)))
        url = public_webhook_url(self.public_url, request)
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if self.valid(url, form, signature, request.headers.get(SIGNATURE_SETTINGS_HEADER, "")):
            return form
        why = "no X-Twilio-Signature header" if not signature else f"X-Twilio-Signature does not match {url}"
        if self.mode == "log-only":
            log.warning("accepting a Twilio webhook with a bad signature (signature_mode = log-only): %s", why)
            return form
        log.warning("rejected a Twilio webhook: %s", why)
        raise web.HTTPForbidden(
            text=f"{why}: sign the request with the account's auth token over server.public_url + path "
            "(see twilio.request_validator)"
        )


def sign(auth_token: str, url: str, params: dict[str, str]) -> str:
    """What Twilio puts in X-Twilio-Signature for a POST of PARAMS to URL (for replays, the demo and tests)."""
    return str(RequestValidator(auth_token).compute_signature(url, params))
