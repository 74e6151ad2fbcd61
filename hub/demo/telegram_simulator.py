"""A local stand-in for the Telegram Bot API, speaking its wire format (`/bot<token>/<method>`, `/file/bot<token>/
<path>`, `{"ok": ..., "result"|"description"}` bodies) for python-telegram-bot's `Bot(token, base_url=...)`.
`hub demo` runs it so its Telegram customer gets agents' replies with no network and no real bot; the tests drive it,
scripting flood control (429 with retry_after) and refusals. Several bots (tokens) at once, each with its own
webhook (called like Telegram calls it, secret header included) or getUpdates queue. Nothing reaches Telegram."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import BodyPartReader, web

from hub import tasks as background

log = logging.getLogger("hub.channels.telegram.simulator")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

#: who Telegram names as the sender of a message a group posts as itself (anonymous admins, service messages)
ANONYMOUS_ADMIN = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}

#: called with (bot token, chat id, the message the bot sent) after every message a bot sends
SentListener = Callable[[str, int, dict[str, Any]], Coroutine[Any, Any, None]]


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # field -> (filename, bytes)
    at: float = field(default_factory=time.monotonic)
    token: str = ""


@dataclass
class SimulatedBot:
    """One bot's state: who it is, where its updates go (webhook or getUpdates queue)."""

    token: str
    user: dict[str, Any]
    webhook: dict[str, Any] = field(default_factory=dict)
    updates: list[dict[str, Any]] = field(default_factory=list)
    news: asyncio.Event = field(default_factory=asyncio.Event)
    next_update_id: int = 1


def bot_user(token: str, n: int) -> dict[str, Any]:
    bot_id = int(token.split(":", 1)[0])
    return {"id": bot_id, "is_bot": True, "first_name": f"Hub Test Bot {n}" if n else "Hub Test Bot",
            "username": f"hub_test_{n}_bot" if n else "hub_test_bot"}


class TelegramSimulator:
    def __init__(self, *tokens: str) -> None:
        self.bots = {t: SimulatedBot(t, bot_user(t, n)) for n, t in enumerate(tokens)}
        self.calls: list[Call] = []
        #: file_id -> (file_path, bytes) served by getFile and the download path
        self.files: dict[str, tuple[str, bytes]] = {}
        #: method -> retry_after values answered (as 429) before the method succeeds again
        self.flood: dict[str, list[int]] = {}
        #: method -> Bot API errors answered once each: (error_code, description)
        self.failures: dict[str, list[tuple[int, str]]] = {}
        #: chat id -> chat object, for the chats messages are sent to (groups need their type and title)
        self.chats: dict[int, dict[str, Any]] = {}
        #: group chat id -> its supergroup's id, once upgraded: sends to the old id are refused as Telegram does
        self.migrated: dict[int, int] = {}
        self.listeners: list[SentListener] = []
        self.downloads = 0
        self._message_ids = itertools.count(501)
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    # -- for tests and the demo ------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """channels.telegram.api_url pointing here."""
        return f"{self.url}/bot"

    @property
    def file_url(self) -> str:
        """channels.telegram.file_url pointing here."""
        return f"{self.url}/file/bot"

    def add_file(self, file_id: str, data: bytes, path: str | None = None) -> None:
        self.files[file_id] = (path or f"documents/{file_id}.bin", data)

    def sent(self, method: str, token: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.method == method and token in (None, c.token)]

    def push_update(self, update: dict[str, Any], token: str | None = None) -> None:
        """Queue UPDATE for the bot's getUpdates (polling), whatever its webhook."""
        bot = self.bots[token or next(iter(self.bots))]
        bot.updates.append(update)
        bot.news.set()

    async def user_writes(self, token: str, user: dict[str, Any], text: str,
                          chat: dict[str, Any] | None = None) -> int:
        """USER sends TEXT to the bot (in their private chat with it, or in CHAT): the update goes to the bot's
        webhook as Telegram would post it, else to its getUpdates queue. Returns the webhook's HTTP status (0 when
        queued)."""
        bot = self.bots[token]
        if chat is None:
            chat = {"id": user["id"], "type": "private", "first_name": user.get("first_name", "")}
            for k in ("last_name", "username"):
                if user.get(k):
                    chat[k] = user[k]
        self.chats[int(chat["id"])] = chat
        update = {"update_id": bot.next_update_id,
                  "message": {"message_id": next(self._message_ids), "from": user, "chat": chat,
                              "date": int(time.time()), "text": text}}
        bot.next_update_id += 1
        return await self.deliver(token, update)

    async def user_presses(self, token: str, user: dict[str, Any], message: dict[str, Any], data: str) -> int:
        """USER presses the inline keyboard button with callback DATA under MESSAGE (one the bot sent): Telegram
        posts a callback_query update. Returns the webhook's HTTP status (0 when queued)."""
        bot = self.bots[token]
        update = {"update_id": bot.next_update_id,
                  "callback_query": {"id": str(next(self._message_ids) * 7919), "from": user, "message": message,
                                     "chat_instance": str(message["chat"]["id"]), "data": data}}
        bot.next_update_id += 1
        return await self.deliver(token, update)

    async def upgrade_group(self, token: str, group: dict[str, Any], new_id: int, by: dict[str, Any],
                            order: str = "to-first") -> tuple[int, int]:
        """The group chat GROUP becomes a supergroup with id NEW_ID, upgraded by the member BY: as Telegram does, the
        old group gets a service message with `migrate_to_chat_id` and the supergroup one with
        `migrate_from_chat_id` (sent by the group itself), in ORDER ("to-first" or "from-first"); sends to the old
        id are refused from now on. Returns the two webhook statuses in the order delivered."""
        bot = self.bots[token]
        old_id = int(group["id"])
        supergroup = {"id": new_id, "title": group.get("title", ""), "type": "supergroup"}
        self.migrated[old_id] = new_id
        self.chats[new_id] = supergroup
        now = int(time.time())
        to_msg = {"message_id": next(self._message_ids), "from": by, "chat": group, "date": now,
                  "migrate_to_chat_id": new_id}
        from_msg = {"message_id": 1, "from": ANONYMOUS_ADMIN, "sender_chat": supergroup, "chat": supergroup,
                    "date": now, "migrate_from_chat_id": old_id}
        statuses = []
        for msg in ((to_msg, from_msg) if order == "to-first" else (from_msg, to_msg)):
            statuses.append(await self.deliver(token, {"update_id": bot.next_update_id, "message": msg}))
            bot.next_update_id += 1
        return statuses[0], statuses[1]

    async def deliver(self, token: str, update: dict[str, Any]) -> int:
        bot = self.bots[token]
        url = bot.webhook.get("url")
        if not url:
            self.push_update(update, token)
            return 0
        headers = {SECRET_HEADER: bot.webhook["secret_token"]} if bot.webhook.get("secret_token") else {}
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        async with self._http.post(url, json=update, headers=headers) as resp:
            await resp.read()
            return resp.status

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(client_max_size=60_000_000)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.url = f"http://{host}:{self._runner.addresses[0][1]}"
        return self.url

    async def close(self) -> None:
        await background.stop(self._tasks)
        if self._http is not None:
            await self._http.close()
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
                if not isinstance(part, BodyPartReader) or part.name is None:
                    continue
                data = await part.read()
                if part.filename:
                    files[part.name] = (part.filename, bytes(data))
                else:
                    params[part.name] = bytes(data).decode()
        elif request.can_read_body:
            params.update(dict(await request.post()))
        # PTB sends non-string values JSON-encoded
        for k, v in list(params.items()):
            if isinstance(v, str) and v[:1] in "[{":
                with contextlib.suppress(json.JSONDecodeError):
                    params[k] = json.loads(v)
        return params, files

    def _message(self, bot: SimulatedBot, chat_id: Any, **content: Any) -> dict[str, Any]:
        chat = self.chats.get(int(chat_id)) or {"id": int(chat_id), "type": "private" if int(chat_id) > 0 else "group"}
        return {"message_id": next(self._message_ids), "date": int(time.time()), "from": bot.user, "chat": chat,
                **content}

    def _file_dict(self, name: str, data: bytes) -> dict[str, Any]:
        file_id = f"sent-{len(self.files) + 1}"
        self.files[file_id] = (f"sent/{name}", data)
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(data)}

    async def _api(self, request: web.Request) -> web.StreamResponse:
        bot = self.bots.get(request.match_info["token"])
        if bot is None:
            return self._fail(401, "Unauthorized")
        method = request.match_info["method"]
        params, files = await self._params(request)
        self.calls.append(Call(method, params, files, token=bot.token))
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
        moved = self.migrated.get(int(params["chat_id"])) if method.startswith("send") and "chat_id" in params else None
        if moved is not None:
            return self._fail(400, "Bad Request: group chat was upgraded to a supergroup chat",
                              migrate_to_chat_id=moved)
        result = await handler(bot, params, files)
        if isinstance(result, web.Response):
            return result
        if method.startswith("send") and isinstance(result, dict):
            self._announce(bot.token, int(params["chat_id"]), result)
        return web.json_response({"ok": True, "result": result})

    def _announce(self, token: str, chat_id: int, message: dict[str, Any]) -> None:
        for listener in self.listeners:
            task = asyncio.create_task(listener(token, chat_id, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _m_getMe(self, bot: SimulatedBot, params: dict[str, Any], files: Any) -> Any:
        return bot.user

    async def _m_sendMessage(self, bot: SimulatedBot, params: dict[str, Any], files: Any) -> Any:
        if not str(params.get("text", "")).strip():
            return self._fail(400, "Bad Request: message text is empty")
        if str(params.get("chat_id")) == "404":
            return self._fail(400, "Bad Request: chat not found")
        if str(params.get("chat_id")) == "403":
            return self._fail(403, "Forbidden: bot was blocked by the user")
        extra = {"reply_markup": params["reply_markup"]} if params.get("reply_markup") else {}
        return self._message(bot, params["chat_id"], text=params["text"], **extra)

    async def _m_answerCallbackQuery(self, bot: SimulatedBot, params: dict[str, Any], files: Any) -> Any:
        if not params.get("callback_query_id"):
            return self._fail(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        return True

    async def _m_editMessageReplyMarkup(self, bot: SimulatedBot, params: dict[str, Any], files: Any) -> Any:
        if not params.get("chat_id") or not params.get("message_id"):
            return self._fail(400, "Bad Request: message to edit not found")
        extra = {"reply_markup": params["reply_markup"]} if params.get("reply_markup") else {}
        return {**self._message(bot, params["chat_id"], text=""), "message_id": int(params["message_id"]),
                "edit_date": int(time.time()), **extra}

    async def _m_sendPhoto(self, bot: SimulatedBot, params: dict[str, Any], files: dict[str, Any]) -> Any:
        name, data = files["photo"]
        photo = {**self._file_dict(name, data), "width": 1, "height": 1}
        extra = {"caption": params["caption"]} if params.get("caption") else {}
        return self._message(bot, params["chat_id"], photo=[photo], **extra)

    async def _m_sendDocument(self, bot: SimulatedBot, params: dict[str, Any], files: dict[str, Any]) -> Any:
        name, data = files["document"]
        doc = {**self._file_dict(name, data), "file_name": name}
        extra = {"caption": params["caption"]} if params.get("caption") else {}
        return self._message(bot, params["chat_id"], document=doc, **extra)

    async def _m_getFile(self, bot: SimulatedBot, params: dict[str, Any], files: Any) -> Any:
        file_id = str(params.get("file_id", ""))
        if file_id not in self.files:
            return self._fail(400, "Bad Request: invalid file_id")
        path, data = self.files[file_id]
        if len(data) > 20_000_000:
            return self._fail(400, "Bad Request: file is too big")
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(data), "file_path": path}

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] not in self.bots:
            return web.Response(status=401)
        path = request.match_info["path"]
        for p, data in self.files.values():
            if p == path:
                self.downloads += 1
                return web.Response(body=data, content_type="application/octet-stream")
        return web.Response(status=404, text="Not Found")

    async def _m_setWebhook(self, bot: SimulatedBot, params: dict[str, Any], files: Any) -> Any:
        bot.webhook = {"url": params.get("url", ""), "secret_token": params.get("secret_token"),
                       "allowed_updates": params.get("allowed_updates")}
        return True

    async def _m_deleteWebhook(self, bot: SimulatedBot, params: dict[str, Any], files: Any) -> Any:
        bot.webhook = {}
        return True

    async def _m_getWebhookInfo(self, bot: SimulatedBot, params: dict[str, Any], files: Any) -> Any:
        return {"url": bot.webhook.get("url", ""), "has_custom_certificate": False,
                "pending_update_count": len(bot.updates)}

    async def _m_getUpdates(self, bot: SimulatedBot, params: dict[str, Any], files: Any) -> Any:
        if bot.webhook.get("url"):
            return self._fail(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = int(params.get("offset") or 0)
        # Confirming: updates below the offset are forgotten, as Telegram does.
        bot.updates = [u for u in bot.updates if u["update_id"] >= offset]
        timeout = float(params.get("timeout") or 0)
        if not bot.updates and timeout:
            bot.news.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(bot.news.wait(), min(timeout, 2.0))
        return list(bot.updates)
