"""What Twilio's SMS, WhatsApp and voice channels share: the account's REST client (twilio's async HTTP client), the
webhook signature check, and the background download of MMS media and voicemail recordings."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from hub import tasks as background
from hub.channels.base import AttachmentSink, Fact, FactResult, SendError
from hub.channels.twilio.media import media_key
from hub.channels.twilio.signature import SignatureCheck
from hub.config import TwilioNumberSettings, TwilioSettings
from hub.model import Identity, Message

log = logging.getLogger("hub.channels.twilio")

TWILIO_API = "https://api.twilio.com"
#: the hub's channels carried by Twilio; media of each is fetched with the account's credentials
CHANNELS = ("sms", "whatsapp", "voice")

# Twilio's REST errors carry no headers; the client below keeps the last response's headers per task, for Retry-After.
_last_headers: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "twilio_last_headers", default=None
)


class _HeaderKeepingClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    async def request(self, method: str, url: str, params: Any = None, data: Any = None,
                      headers: dict[str, str] | None = None, auth: tuple[str, str] | None = None,
                      **kwargs: Any) -> Any:
        # twilio would hand aiohttp a BasicAuth (deprecated in aiohttp 3.14); the same credentials as a header instead.
        # twilio's request log leaves out any header named Authorization.
        if auth is not None:
            headers = {**(headers or {}), "Authorization": aiohttp.encode_basic_auth(auth[0], auth[1])}
        response = await super().request(method, url, params, data, headers, None, **kwargs)
        _last_headers.set(dict(response.headers or {}))
        return response


class TwilioSink(AttachmentSink, Protocol):
    """The hub as Twilio's channels see it: the inbound path plus later facts, opt-outs and background fetches
    (all implemented by hub.channels.host.ChannelHost)."""

    async def amend(
        self, channel: str, external_id: str, *, text: str | None = None, meta: dict[str, Any] | None = None,
        summarize: Callable[[dict[str, Any]], str] | None = None,
    ) -> Message | None: ...

    async def record_fact(self, fact: Fact, raw: Any = None) -> FactResult: ...

    async def set_opt_out(self, identity: Identity, channel: str, keyword: str | None) -> None: ...

    async def opted_out(self, identity: Identity, channel: str) -> tuple[str, str] | None: ...

    async def call_survey(self, call_sid: str) -> tuple[int, str] | None: ...

    async def history(self, identity: Identity, channel: str, limit: int) -> list[tuple[Message, str | None]]: ...

    async def claim_attachments(self, channel: str, lease_seconds: float, limit: int = 20) -> list[tuple[int, str]]: ...

    async def outgoing_attachments(self, message_id: int) -> list[tuple[int, str]]: ...

    async def outgoing_file(self, attachment_id: int) -> tuple[str, str, bytes] | None: ...


def rest_error(e: Exception, what: str) -> SendError:
    """A failed REST call as the outbox understands it: 429 and 5xx are retried (honouring Retry-After), other 4xx
    are the caller's fault and final, network trouble is retried."""
    if isinstance(e, TwilioRestException):
        msg = str(e.msg).removeprefix("Unable to create record: ")
        detail = f"Twilio error {e.code}: {msg}" if e.code else f"Twilio answered {e.status}: {msg}"
        if e.status == 429 or e.status >= 500:
            retry_after = (_last_headers.get() or {}).get("Retry-After", "")
            return SendError(
                f"{what}: {detail}", permanent=False,
                retry_after=float(retry_after) if retry_after.isascii() and retry_after.isdigit() else None,
            )
        return SendError(f"{what}: {detail}", permanent=True)
    return SendError(f"{what}: Twilio unreachable: {type(e).__name__}: {e}", permanent=False)


class TwilioAccount:
    """One per hub; started by whichever Twilio channel starts first and stopped with the last."""

    def __init__(self, settings: TwilioSettings, public_url: str, sink: TwilioSink) -> None:
        self.settings = settings
        self.public_url = public_url.rstrip("/")
        self.sink = sink
        self.api_base = settings.api_base_url or TWILIO_API
        self.signature = SignatureCheck(settings.auth_token, self.public_url, settings.signature_mode)
        self.media_key = media_key(settings.media_url_key, settings.auth_token)
        self.client: Any = None
        self._http: aiohttp.ClientSession | None = None
        self._users = 0
        self._fetcher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._users += 1
        if self._users > 1:
            return
        http_client = _HeaderKeepingClient(timeout=self.settings.timeout_seconds)
        self.client = Client(self.settings.account_sid, self.settings.auth_token, http_client=http_client)
        if self.settings.api_base_url:
            # Tests and the demo point the official client at a local server speaking Twilio's wire format.
            self.client.api.base_url = self.settings.api_base_url
            self.client.content.base_url = self.settings.api_base_url
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds))
        self._fetcher = asyncio.create_task(self._fetch_forever(), name="hub-twilio-media")

    async def stop(self) -> None:
        self._users -= 1
        if self._users > 0:
            return
        if self._fetcher is not None:
            await background.stop([self._fetcher])
        if self.client is not None:
            await self.client.http_client.close()
        if self._http is not None:
            await self._http.close()

    # -- facts -----------------------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """An absolute webhook URL for Twilio to call back."""
        return self.public_url + path

    def number(self, number: str) -> TwilioNumberSettings:
        """What is configured for one of the business's numbers (defaults for a number not listed)."""
        return self.settings.numbers.get(number.removeprefix("whatsapp:")) or TwilioNumberSettings()

    def line(self, number: str) -> str:
        """The business line a number belongs to: its configured name, else the number itself."""
        bare = number.removeprefix("whatsapp:")
        return self.number(bare).line or bare

    # -- media -----------------------------------------------------------------------------------------------------

    def media_arrived(self) -> None:
        self._wake.set()

    def trusted(self, url: str) -> bool:
        """Only Twilio's own API host gets the account's credentials (a log-only hub may see forged media URLs)."""
        want, got = urlsplit(self.api_base), urlsplit(url)
        return (got.scheme, got.netloc) == (want.scheme, want.netloc)

    async def fetch_due(self) -> int:
        """Fetch every media download that is due now; returns how many were tried."""
        tried = 0
        # A few at a time, leased for longer than fetching them all may take (each download is bounded by the
        # timeout), so another hub process never fetches the same file meanwhile.
        batch = 4
        lease = batch * self.settings.timeout_seconds + 30
        for channel in CHANNELS:
            while claimed := await self.sink.claim_attachments(channel, lease, batch):
                for attachment_id, url in claimed:
                    tried += 1
                    await self._fetch(attachment_id, url)
        return tried

    async def _fetch(self, attachment_id: int, url: str) -> None:
        if not self.trusted(url):
            await self.sink.finish_attachment(
                attachment_id, error=f"not fetched: {urlsplit(url).netloc} is not Twilio's API host ({self.api_base})"
            )
            return
        limit = self.settings.max_media_bytes
        try:
            data, content_type = await self._download(url, limit)
        except _TooBig as e:
            await self.sink.finish_attachment(attachment_id, error=str(e))
            return
        except (aiohttp.ClientError, TimeoutError, _Unavailable) as e:
            attempts = await self.sink.attachment_attempts(attachment_id) + 1
            why = f"download failed ({type(e).__name__}: {e}), attempt {attempts} of {self.settings.media_attempts}"
            final = attempts >= self.settings.media_attempts
            log.warning("media %d: %s", attachment_id, why)
            await self.sink.finish_attachment(
                attachment_id, error=why, retry_in=None if final else min(300.0, 2.0 * 2 ** (attempts - 1))
            )
            return
        await self.sink.finish_attachment(attachment_id, data=data, content_type=content_type)

    async def _download(self, url: str, limit: int) -> tuple[bytes, str | None]:
        assert self._http is not None, "Twilio account not started"
        auth = {"Authorization": aiohttp.encode_basic_auth(self.settings.account_sid, self.settings.auth_token)}
        async with self._http.get(url, headers=auth) as resp:
            if resp.status != 200:
                raise _Unavailable(f"HTTP {resp.status}")
            if resp.content_length is not None and resp.content_length > limit:
                raise _TooBig(f"media is {resp.content_length} bytes, over the {limit}-byte limit; not stored")
            chunks, size = [], 0
            async for chunk in resp.content.iter_chunked(65536):
                size += len(chunk)
                if size > limit:
                    raise _TooBig(f"media is over the {limit}-byte limit; not stored")
                chunks.append(chunk)
            return b"".join(chunks), resp.headers.get("Content-Type")

    async def _fetch_forever(self) -> None:
        while True:
            try:
                await self.fetch_due()
            except Exception:
                log.exception("media fetch pass failed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 2.0)


class _TooBig(Exception):
    pass


class _Unavailable(Exception):
    pass
