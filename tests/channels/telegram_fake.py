"""A local server speaking the Telegram Bot API wire format (`/bot<token>/<method>`, `/file/bot<token>/<path>`),
for python-telegram-bot's `Bot(token, base_url=...)`: sending, getFile and downloads, webhooks, getUpdates, and
scripted 429 flood-control answers."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_USER = {"id": 7000001, "is_bot": True, "first_name": "Hub Test Bot", "username": "hub_test_bot"}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # field -> (filename, bytes)
    at: float = field(default_factory=time.monotonic)


class FakeBotApi:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[Call] = []
        #: file_id -> (file_path, bytes) served by getFile and the download path
        self.files: dict[str, tuple[str, bytes]] = {}
        #: method -> retry_after values answered (as 429) before the method succeeds again
        self.flood: dict[str, list[int]] = {}
        #: method -> Bot API errors answered once each: (error_code, description)
        self.failures: dict[str, list[tuple[int, str]]] = {}
        self.updates: list[dict[str, Any]] = []
        self.webhook: dict[str, Any] = {}
        self.downloads = 0
        self._next_message_id = 500
        self._news = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- test controls ---------------------------------------------------------------------------------------

    def add_file(self, file_id: str, data: bytes, path: str | None = None) -> None:
        self.files[file_id] = (path or f"documents/{file_id}.bin", data)

    def push_update(self, update: dict[str, Any]) -> None:
        self.updates.append(update)
        self._news.set()

    def sent(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    @property
    def base_url(self) -> str:
        return f"{self.url}/bot"

    @property
    def file_url(self) -> str:
        return f"{self.url}/file/bot"

    async def start(self) -> str:
        app = web.Application(client_max_size=60_000_000)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the Bot API -----------------------------------------------------------------------------------------

    @staticmethod
    def _fail(code: int, description: str, **parameters: Any) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=code)

    async def _params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
        params: dict[str, Any] = dict(request.query)
        files: dict[str, tuple[str, bytes]] = {}
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if part.name is None or not hasattr(part, "read"):
                    continue
                data = await part.read()  # type: ignore[union-attr]
                if part.filename:
                    files[part.name] = (part.filename, bytes(data))
                else:
                    params[part.name] = bytes(data).decode()
        elif request.can_read_body:
            params.update(dict(await request.post()))
        # PTB sends non-string values JSON-encoded
        for k, v in list(params.items()):
            if isinstance(v, str) and v[:1] in "[{":
                try:
                    params[k] = json.loads(v)
                except json.JSONDecodeError:
                    pass
        return params, files

    def _message(self, chat_id: Any, **content: Any) -> dict[str, Any]:
        self._next_message_id += 1
        return {"message_id": self._next_message_id, "date": int(time.time()), "from": BOT_USER,
                "chat": {"id": int(chat_id), "type": "private"}, **content}

    def _file_dict(self, name: str, data: bytes) -> dict[str, Any]:
        file_id = f"sent-{len(self.files) + 1}"
        self.files[file_id] = (f"sent/{name}", data)
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(data)}

    async def _api(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return self._fail(401, "Unauthorized")
        method = request.match_info["method"]
        params, files = await self._params(request)
        self.calls.append(Call(method, params, files))
        scripted = self.flood.get(method)
        if scripted:
            wait = scripted.pop(0)
            return self._fail(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        failing = self.failures.get(method)
        if failing:
            code, description = failing.pop(0)
            return self._fail(code, description)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return self._fail(404, "Not Found: method not found")
        result = await handler(params, files)
        if isinstance(result, web.Response):
            return result
        return web.json_response({"ok": True, "result": result})

    async def _m_getMe(self, params: dict[str, Any], files: Any) -> Any:
        return BOT_USER

    async def _m_sendMessage(self, params: dict[str, Any], files: Any) -> Any:
        if not str(params.get("text", "")).strip():
            return self._fail(400, "Bad Request: message text is empty")
        if str(params.get("chat_id")) == "404":
            return self._fail(400, "Bad Request: chat not found")
        if str(params.get("chat_id")) == "403":
            return self._fail(403, "Forbidden: bot was blocked by the user")
        return self._message(params["chat_id"], text=params["text"])

    async def _m_sendPhoto(self, params: dict[str, Any], files: dict[str, tuple[str, bytes]]) -> Any:
        name, data = files["photo"]
        photo = {**self._file_dict(name, data), "width": 1, "height": 1}
        extra = {"caption": params["caption"]} if params.get("caption") else {}
        return self._message(params["chat_id"], photo=[photo], **extra)

    async def _m_sendDocument(self, params: dict[str, Any], files: dict[str, tuple[str, bytes]]) -> Any:
        name, data = files["document"]
        doc = {**self._file_dict(name, data), "file_name": name}
        extra = {"caption": params["caption"]} if params.get("caption") else {}
        return self._message(params["chat_id"], document=doc, **extra)

    async def _m_getFile(self, params: dict[str, Any], files: Any) -> Any:
        file_id = str(params.get("file_id", ""))
        if file_id not in self.files:
            return self._fail(400, "Bad Request: invalid file_id")
        path, data = self.files[file_id]
        if len(data) > 20_000_000:
            return self._fail(400, "Bad Request: file is too big")
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(data), "file_path": path}

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        for p, data in self.files.values():
            if p == path:
                self.downloads += 1
                return web.Response(body=data, content_type="application/octet-stream")
        return web.Response(status=404, text="Not Found")

    async def _m_setWebhook(self, params: dict[str, Any], files: Any) -> Any:
        self.webhook = {"url": params.get("url", ""), "secret_token": params.get("secret_token"),
                        "allowed_updates": params.get("allowed_updates")}
        return True

    async def _m_deleteWebhook(self, params: dict[str, Any], files: Any) -> Any:
        self.webhook = {}
        return True

    async def _m_getWebhookInfo(self, params: dict[str, Any], files: Any) -> Any:
        return {"url": self.webhook.get("url", ""), "has_custom_certificate": False,
                "pending_update_count": len(self.updates)}

    async def _m_getUpdates(self, params: dict[str, Any], files: Any) -> Any:
        if self.webhook.get("url"):
            return self._fail(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = int(params.get("offset") or 0)
        # Confirming: updates below the offset are forgotten, as Telegram does.
        self.updates = [u for u in self.updates if u["update_id"] >= offset]
        timeout = float(params.get("timeout") or 0)
        if not self.updates and timeout:
            self._news.clear()
            try:
                await asyncio.wait_for(self._news.wait(), min(timeout, 2.0))
            except TimeoutError:
                pass
        return list(self.updates)
