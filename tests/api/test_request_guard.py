"""Every input that once answered 500 now gets a 4xx JSON error with a reason (or, from a provider, a journaled and
flagged event), and nothing half-stored. Raw sockets send the bytes aiohttp's own client refuses to. SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.channels.telegram.channel import SECRET_HEADER
from hub.config import Settings
from hub.keys import DB
from tests.channels.telegram.fake import FakeBotApi

Client = TestClient[Any, Any]
TG_TOKEN = "123456789:AAHZFMHno3mzVLErU5b5jJvaeG--qUyLyG0"
TG_SECRET = "s3cret-telegram-webhook-token"
SITE = "https://shop.example.com"
DEEP = b"[" * 20_000 + b"]" * 20_000
DEEP_OBJECT = b'{"a":' * 20_000 + b"1" + b"}" * 20_000
# Within a web-chat frame's size limit, far past Python's recursion limit.
WS_DEEP = "[" * 5_000 + "]" * 5_000
HUGE = "99999999999999999999999"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    api = FakeBotApi(TG_TOKEN)
    await api.start()
    yield api
    await api.close()


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str, fake: FakeBotApi) -> Settings:
    return make_settings(db_url, **{
        "HUB_ROUTING__QUEUES": '{"support": {}, "sales": {}}',
        "HUB_CHANNELS__TELEGRAM__ENABLED": "true",
        "HUB_CHANNELS__TELEGRAM__BOT_TOKEN": TG_TOKEN,
        "HUB_CHANNELS__TELEGRAM__WEBHOOK_SECRET": TG_SECRET,
        "HUB_CHANNELS__TELEGRAM__API_URL": fake.base_url,
        "HUB_CHANNELS__TELEGRAM__FILE_URL": fake.file_url,
        "HUB_CHANNELS__WEBCHAT__ENABLED": "true",
        "HUB_CHANNELS__WEBCHAT__ALLOWED_ORIGINS": f'["{SITE}"]',
    })


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Callable[[], None]:
    """Fails the test if anything was logged with a traceback (an unhandled error somewhere)."""
    caplog.set_level(logging.ERROR)

    def check() -> None:
        bad = [r for r in caplog.records if r.exc_info or "unhandled" in r.getMessage()]
        assert not bad, [r.getMessage() for r in bad]

    return check


async def raw(client: Client, head: bytes, body: bytes = b"") -> tuple[int, dict[str, Any]]:
    """Sends HEAD (request line and headers, CRLF-separated, no final blank line) and BODY as bytes."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(head + f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    status = int(status_line.split()[1])
    try:
        data = json.loads(payload)
    except ValueError:
        data = {"raw": payload.decode(errors="replace")}
    return status, data


def refused(status: int, data: dict[str, Any], *allowed: int) -> None:
    assert status in allowed, (status, data)
    assert data["error"]["message"], data


async def test_non_utf8_bytes_in_credentials_are_refused(client: Client, no_tracebacks: Callable[[], None]) -> None:
    status, data = await raw(client, b"GET /api/v1/queues HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer hub_\xff\xfe")
    refused(status, data, 400)
    assert "Authorization" in data["error"]["message"] and "UTF-8" in data["error"]["message"]
    status, data = await raw(client, b"GET /api/v1/queues HTTP/1.1\r\nHost: x\r\nCookie: hub_session=\xff\xfe")
    refused(status, data, 400)
    token = await create_token(client.app[DB], "admin")
    status, data = await raw(
        client, b"POST /console/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"X-CSRF-Token: \xff\xfe\r\nAuthorization: Bearer " + token.encode(), b"{}")
    refused(status, data, 400)
    status, data = await raw(
        client, b"POST /webhooks/telegram HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + SECRET_HEADER.encode() + b": \xff\xfe", b'{"update_id": 1}')
    refused(status, data, 400)
    rows = await client.app[DB].read(lambda tx: tx.all("SELECT id FROM journal"))
    assert rows == []
    no_tracebacks()


async def test_headers_in_utf8_beyond_ascii_pass_and_the_query_is_still_checked(
        client: Client, no_tracebacks: Callable[[], None]) -> None:
    """The guard reads all headers at once when they are ASCII; clean UTF-8 ones take the slower look and pass, and
    the query string is checked after either."""
    token = await create_token(client.app[DB], "admin")
    head = (b"GET /api/v1/queues%s HTTP/1.1\r\nHost: x\r\nX-Caller: Zo\xc3\xab\r\n"
            b"Authorization: Bearer " + token.encode())
    status, data = await raw(client, head.replace(b"%s", b""))
    assert status == 200, data
    status, data = await raw(client, head.replace(b"%s", b"?q=a%00b"))
    refused(status, data, 400)
    assert "query parameter 'q' contains a NUL" in data["error"]["message"], data
    status, data = await raw(client, head.replace(b"%s", b"?q=a%00b").replace(b"X-Caller: Zo\xc3\xab\r\n", b""))
    refused(status, data, 400)
    no_tracebacks()


async def test_a_csrf_header_with_non_utf8_bytes_is_refused(client: Client, no_tracebacks: Callable[[], None]) -> None:
    await add_agent(client.app[DB], "Ann", "ann@example.com", "ann-password-1", "admin", ["support"])
    resp = await client.post("/console/session", json={"email": "ann@example.com", "password": "ann-password-1"})
    assert resp.status == 200
    cookie = resp.cookies["hub_session"].value
    status, data = await raw(
        client, b"POST /api/v1/conversations/1/resolve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Cookie: hub_session=" + cookie.encode() + b"\r\nX-CSRF-Token: \xff\xfe", b"{}")
    refused(status, data, 400)
    no_tracebacks()


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["array", "object"])
async def test_deeply_nested_json_is_refused(client: Client, admin_headers: dict[str, str], body: bytes,
                                             no_tracebacks: Callable[[], None]) -> None:
    json_headers = {"Content-Type": "application/json"}
    resp = await client.post("/console/session", data=body, headers=json_headers)
    refused(resp.status, await resp.json(), 400)
    for path in ("/api/v1/inbound", "/api/v1/conversations/1/resolve", "/api/v1/webchat/typing",
                 "/api/v1/conversations/1/messages", "/api/v1/routing/rules"):
        method = client.put if path.endswith("rules") else client.post
        resp = await method(path, data=body, headers={**admin_headers, **json_headers})
        refused(resp.status, await resp.json(), 400)
    no_tracebacks()


async def test_deeply_nested_json_in_a_web_chat_frame_is_answered_in_the_socket(
        client: Client, no_tracebacks: Callable[[], None]) -> None:
    ws = await client.ws_connect("/webchat/ws", headers={"Origin": SITE})
    await ws.send_str(WS_DEEP)
    msg = await ws.receive(timeout=10)
    assert ws.close_code == 4400, (msg, ws.close_code)
    ws = await client.ws_connect("/webchat/ws", headers={"Origin": SITE})
    await ws.send_json({"type": "hello"})
    assert (await ws.receive_json(timeout=10))["type"] == "welcome"
    await ws.send_str(WS_DEEP)
    frame = await ws.receive_json(timeout=10)
    assert frame["type"] == "error" and frame["code"] == "bad_json", frame
    await ws.send_json({"type": "ping"})
    assert (await ws.receive_json(timeout=10))["type"] == "pong"  # the socket still works
    await ws.close()
    no_tracebacks()


@pytest.mark.parametrize("value", [HUGE, "1e999", "²", "-1", "0x10", " 5"])
async def test_numbers_out_of_range_or_odd_digits_are_refused(client: Client, admin_headers: dict[str, str],
                                                              value: str, no_tracebacks: Callable[[], None]) -> None:
    for path in ("/api/v1/conversations", "/api/v1/search?q=hi&", "/api/v1/customers?q=ann&"):
        sep = "" if path.endswith("&") else "?"
        resp = await client.get(f"{path}{sep}limit={value}", headers=admin_headers)
        refused(resp.status, await resp.json(), 400)
    for name in ("agent", "customer"):
        resp = await client.get(f"/api/v1/conversations?{name}={value}", headers=admin_headers)
        refused(resp.status, await resp.json(), 400)
    no_tracebacks()


async def test_ids_beyond_64_bits_in_paths_and_bodies_are_refused(client: Client, admin_headers: dict[str, str],
                                                                  no_tracebacks: Callable[[], None]) -> None:
    for method, path in [
        ("GET", "/api/v1/customers/{}"), ("GET", "/api/v1/customers/{}/timeline"),
        ("GET", "/api/v1/conversations/{}"), ("GET", "/api/v1/messages/{}"), ("GET", "/api/v1/attachments/{}"),
        ("POST", "/api/v1/conversations/{}/resolve"), ("POST", "/api/v1/conversations/{}/accept"),
        ("POST", "/api/v1/conversations/{}/reject"), ("GET", "/api/v1/agents/{}"),
        ("PATCH", "/api/v1/agents/{}"), ("DELETE", "/api/v1/tokens/{}"), ("PUT", "/api/v1/routing/agents/{}"),
    ]:
        resp = await client.request(method, path.format(HUGE), json={}, headers=admin_headers)
        refused(resp.status, await resp.json(), 400, 404)
    for path, body in [
        ("/api/v1/customers/1/merge", {"customer_id": int(HUGE)}),
        ("/api/v1/webchat/typing", {"conversation_id": int(HUGE)}),
        ("/api/v1/tokens", {"role": "agent", "agent_id": int(HUGE)}),
        ("/api/v1/conversations/1/transfer", {"agent_id": int(HUGE)}),
    ]:
        resp = await client.post(path, json=body, headers=admin_headers)
        refused(resp.status, await resp.json(), 404, 409, 422)
    no_tracebacks()


async def test_ids_in_tokens_cli_style_identities_and_expiry_are_checked(
        client: Client, admin_headers: dict[str, str], no_tracebacks: Callable[[], None]) -> None:
    for ident in ("telegram:²", f"telegram:{HUGE}", "phone:²²²"):
        resp = await client.post("/api/v1/inbound", json={"identity": ident, "text": "hi"}, headers=admin_headers)
        refused(resp.status, await resp.json(), 422)
        resp = await client.get("/api/v1/customers", params={"identity": ident}, headers=admin_headers)
        assert resp.status in (200, 400, 422), resp.status
    no_tracebacks()


@pytest.mark.parametrize("cursor", ["", "!!!", "bnVsbA", "W10", "WzFd", "WyJ4IiwgIngiXQ", "WzEsIDJd",
                                    "W1siYSJdLCB7fV0", "WyIyMDI2IiwgOTk5OTk5OTk5OTk5OTk5OTk5OTk5OTldXQ",
                                    "W251bGwsIG51bGxd"])
async def test_forged_pagination_cursors_are_refused(client: Client, admin_headers: dict[str, str], cursor: str,
                                                     no_tracebacks: Callable[[], None]) -> None:
    resp = await client.post("/api/v1/inbound", json={"identity": "phone:+14155550100", "text": "hi"},
                             headers=admin_headers)
    cid = (await resp.json())["customer"]["id"]
    for path in (f"/api/v1/customers/{cid}/timeline", "/api/v1/conversations"):
        resp = await client.get(path, params={"cursor": cursor}, headers=admin_headers)
        if cursor == "":
            assert resp.status == 200  # an empty cursor is the first page
            continue
        refused(resp.status, await resp.json(), 400)
    no_tracebacks()


async def test_a_telegram_update_without_chat_is_journaled_and_flagged(
        client: Client, no_tracebacks: Callable[[], None]) -> None:
    update = {"update_id": 777001, "message": {"message_id": 5, "date": 1700000000,
                                               "from": {"id": 1111111, "is_bot": False, "first_name": "Ann"},
                                               "text": "hello"}}
    resp = await client.post("/webhooks/telegram", json=update, headers={SECRET_HEADER: TG_SECRET})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "flagged"
    rows = await client.app[DB].read(lambda tx: tx.all("SELECT status, error FROM journal WHERE channel = 'telegram'"))
    assert [r["status"] for r in rows] == ["rejected"] and "without chat" in rows[0]["error"]
    no_tracebacks()


async def test_an_attachment_whose_type_has_parameters_downloads(client: Client, admin_headers: dict[str, str],
                                                                 no_tracebacks: Callable[[], None]) -> None:
    body = {"identity": "phone:+14155550100", "text": "see file",
            "attachments": [{"filename": "notes.txt", "content_type": "text/plain; charset=utf-8",
                             "data_base64": "aGVsbG8="}]}
    resp = await client.post("/api/v1/inbound", json=body, headers=admin_headers)
    assert resp.status == 201, await resp.text()
    att = (await resp.json())["message"]["attachments"][0]
    resp = await client.get(f"/api/v1/attachments/{att['id']}", headers=admin_headers)
    assert resp.status == 200, await resp.text()
    assert await resp.read() == b"hello"
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert resp.headers["Content-Disposition"].startswith("attachment")
    no_tracebacks()


async def test_nul_bytes_are_refused_with_a_reason_and_nothing_stored(
        client: Client, admin_headers: dict[str, str], no_tracebacks: Callable[[], None]) -> None:
    for body in ({"identity": "phone:+14155550100", "text": "a\x00b"},
                 {"identity": "phone:+14155550100", "text": "hi", "name": "A\x00n"},
                 {"identity": "email:a\x00n@example.com", "text": "hi"},
                 {"identity": "phone:+14155550100", "text": "hi", "external_id": "x\x00"}):
        resp = await client.post("/api/v1/inbound", json=body, headers=admin_headers)
        data = await resp.json()
        refused(resp.status, data, 422)
        assert "NUL" in data["error"]["message"], data
    counts = await client.app[DB].read(lambda tx: (
        tx.one("SELECT COUNT(*) AS n FROM messages"), tx.one("SELECT COUNT(*) AS n FROM journal")))
    assert [c["n"] for c in counts] == [0, 0]
    resp = await client.get("/api/v1/search", params={"q": "a\x00b"}, headers=admin_headers)
    refused(resp.status, await resp.json(), 400)
    resp = await client.get("/api/v1/customers", params={"q": "a\x00b"}, headers=admin_headers)
    refused(resp.status, await resp.json(), 400)
    resp = await client.post("/console/session", json={"email": "a\x00n@example.com", "password": "x"})
    refused(resp.status, await resp.json(), 401, 422)
    no_tracebacks()


async def test_wrong_content_types_and_shapes_are_refused(client: Client, admin_headers: dict[str, str],
                                                          no_tracebacks: Callable[[], None]) -> None:
    resp = await client.post("/api/v1/webchat/typing", data="conversation_id=1", headers=admin_headers)
    refused(resp.status, await resp.json(), 415, 422)
    for body in ([], "x", 3, {"conversation_id": "one"}, {"conversation_id": [1]}, {"typing": {"a": 1}}):
        resp = await client.post("/api/v1/webchat/typing", json=body, headers=admin_headers)
        refused(resp.status, await resp.json(), 400, 422)
    resp = await client.post("/api/v1/inbound", data=b"\xff\xfe{", headers={**admin_headers,
                                                                          "Content-Type": "application/json"})
    refused(resp.status, await resp.json(), 400)
    resp = await client.post("/console/session", data=b"email=a", headers={"Content-Type": "text/plain"})
    refused(resp.status, await resp.json(), 415)
    no_tracebacks()


async def test_a_bug_of_ours_is_a_500_with_an_incident_id_and_never_leaks(
        aiohttp_client: Any, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """The last resort, for a bug (no input reaches it: the fuzz test proves that): the answer names an incident
    and carries no detail; the log has the traceback under that incident."""
    from hub.app import build_app

    app = build_app(settings)

    async def broken(request: Any) -> Any:
        raise ZeroDivisionError("secret detail")

    app.router.add_get("/api/v1/broken", broken)
    client = await aiohttp_client(app)
    token = await create_token(client.app[DB], "admin")
    resp = await client.get("/api/v1/broken", headers={"Authorization": f"Bearer {token}"})
    body = await resp.json()
    assert resp.status == 500 and "secret detail" not in json.dumps(body)
    incident = body["error"]["message"].rsplit(" ", 1)[1]
    [record] = [r for r in caplog.records if incident in r.getMessage()]
    assert record.exc_info is not None and "secret detail" in str(record.exc_info[1])

