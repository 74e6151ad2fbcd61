"""Several Telegram bots of one business, and group chats, through the real app and store with the library's Bot
pointed at the local Bot API simulator: a webhook and secret per bot, dedupe per bot, one customer across bots,
replies through the bot the customer wrote to; groups as one customer answered in the group."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.api.auth import create_token
from hub.app import build_app
from hub.channels.telegram.channel import SECRET_HEADER
from hub.config import ConfigError, Settings, load_settings
from hub.keys import DB
from tests.channels.telegram.fake import FakeBotApi
from tests.channels.telegram.test_channel import (
    ROOT,
    SECRET,
    TOKEN,
    conversation_of,
    journal,
    message,
    timeline,
    update,
)
from tests.waiting import eventually

Client = TestClient[Any, Any]
SALES_TOKEN = "987654321:BBHZFMHno3mzVLErU5b5jJvaeG--qUyLyG1"
SALES_SECRET = "sales-bot-webhook-secret-0001"
SALES = "/webhooks/telegram/sales"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    api = FakeBotApi(TOKEN, SALES_TOKEN)
    await api.start()
    yield api
    await api.close()


def two_bots_env(fake: FakeBotApi, sales_groups: str = "accept", **more: str) -> dict[str, str]:
    """The single-bot settings unchanged (bot "default" at /webhooks/telegram), plus a "sales" bot."""
    bots = [{"name": "sales", "bot_token": SALES_TOKEN, "webhook_secret": SALES_SECRET, "groups": sales_groups}]
    return {
        "HUB_CHANNELS__TELEGRAM__ENABLED": "true",
        "HUB_CHANNELS__TELEGRAM__BOT_TOKEN": TOKEN,
        "HUB_CHANNELS__TELEGRAM__WEBHOOK_SECRET": SECRET,
        "HUB_CHANNELS__TELEGRAM__BOTS": json.dumps(bots),
        "HUB_CHANNELS__TELEGRAM__API_URL": fake.base_url,
        "HUB_CHANNELS__TELEGRAM__FILE_URL": fake.file_url,
        "HUB_OUTBOX__BASE_DELAY_SECONDS": "0.2",
        "HUB_OUTBOX__POLL_INTERVAL_SECONDS": "0.2",
        **more,
    }


@pytest.fixture
async def tg(aiohttp_client: Any, make_settings: Callable[..., Settings], db_url: str, fake: FakeBotApi) -> Client:
    c: Client = await aiohttp_client(build_app(make_settings(db_url, **two_bots_env(fake))))
    return c


@pytest.fixture
async def admin(tg: Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {await create_token(tg.app[DB], 'admin')}"}


async def post(client: Client, body: Any, path: str = "/webhooks/telegram", secret: str = SECRET) -> tuple[int, Any]:
    resp = await client.post(path, json=body, headers={SECRET_HEADER: secret})
    return resp.status, await resp.json()


async def replied(client: Client, admin: dict[str, str], conv: int, text: str) -> dict[str, Any]:
    resp = await client.post(f"/api/v1/conversations/{conv}/messages", json={"text": text}, headers=admin)
    assert resp.status == 201, await resp.text()
    mid = (await resp.json())["id"]

    async def sent() -> Any:
        m = await message(client, admin, mid)
        return m if m["status"] in ("sent", "failed") else None

    m: dict[str, Any] = await eventually(sent)
    assert m["status"] == "sent", m
    return m


# -- several bots ----------------------------------------------------------------------------------------------


async def test_each_bot_has_its_own_webhook_and_secret(tg: Client) -> None:
    status, _ = await post(tg, update("text"), SALES, secret=SECRET)
    assert status == 403, "the default bot's secret does not open the sales bot's webhook"
    status, body = await post(tg, update("text"), "/webhooks/telegram", secret=SALES_SECRET)
    assert status == 403 and "webhook_secret" in body["error"]["message"]
    resp = await tg.post(SALES, json=update("text"))
    assert resp.status == 401
    assert (await tg.post("/webhooks/telegram/nobody", json=update("text"),
                          headers={SECRET_HEADER: SECRET})).status == 404
    assert await journal(tg) == [], "nothing stored for any refused update"


async def test_one_customer_across_bots_and_replies_through_the_bot_written_to(
    tg: Client, admin: dict[str, str], fake: FakeBotApi
) -> None:
    # The same user writes to both bots; update and message ids count per bot, so each is its own message.
    assert (await post(tg, update("text")))[1]["status"] == "stored"
    assert (await post(tg, update("text"), SALES, SALES_SECRET))[1]["status"] == "stored"
    assert (await post(tg, update("text"), SALES, SALES_SECRET))[1]["status"] == "duplicate"
    assert (await post(tg, update("text")))[1]["status"] == "duplicate"
    items = await timeline(tg, admin)
    assert [(m["external_id"], m["meta"]["telegram"]["bot"]) for m in items] == [
        ("123456789:1111111:1365", "default"), ("987654321:1111111:1365", "sales"),
    ]
    assert len({m["conversation_id"] for m in items}) == 1, "one customer, one conversation, whichever bot"
    rows = [r["dedupe_key"] for r in await journal(tg)]
    assert len(rows) == 2

    conv = await conversation_of(tg, admin)
    m = await replied(tg, admin, conv, "Sales here: yes, we can help")
    [call] = fake.sent("sendMessage")
    assert call.token == SALES_TOKEN, "the customer last wrote to the sales bot"
    assert call.params["chat_id"] == "1111111" and m["external_id"].startswith("987654321:1111111:")

    later = update("reply")  # then they write to the default bot again
    assert (await post(tg, later))[1]["status"] == "stored"
    await replied(tg, admin, conv, "Support here")
    assert [c.token for c in fake.sent("sendMessage")] == [SALES_TOKEN, TOKEN]


async def test_files_are_fetched_with_the_bot_that_received_them(
    tg: Client, admin: dict[str, str], fake: FakeBotApi
) -> None:
    pdf = b"%PDF-1.4 sales quote" * 20
    fake.add_file("AwADBAADbXXXXXXXXXXXGBdhD2l6_DD", pdf, "documents/file_8.pdf")
    assert (await post(tg, update("document"), SALES, SALES_SECRET))[1]["status"] == "stored"

    async def stored() -> Any:
        items = await timeline(tg, admin)
        att = items[0]["attachments"][0] if items else None
        return att if att and att["status"] == "stored" else None

    assert (await eventually(stored))["size"] == len(pdf)
    assert [c.token for c in fake.sent("getFile")] == [SALES_TOKEN]


async def test_cli_set_webhook_handles_each_bot(fake: FakeBotApi, tmp_path: Path) -> None:
    env = {**os.environ, **two_bots_env(fake), "HUB_DATABASE__URL": f"sqlite:///{tmp_path / 'hub.db'}",
           "HUB_SERVER__PUBLIC_URL": "https://hub.example.com"}

    async def run(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub", "telegram", "set-webhook", *args, env=env, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await run()
    assert code == 0, err
    default, sales = fake.bots[TOKEN].webhook, fake.bots[SALES_TOKEN].webhook
    assert (default["url"], default["secret_token"]) == ("https://hub.example.com/webhooks/telegram", SECRET)
    assert (sales["url"], sales["secret_token"]) == ("https://hub.example.com/webhooks/telegram/sales", SALES_SECRET)
    assert "default: webhook set to" in out and "sales: webhook set to" in out
    assert TOKEN not in out + err and SALES_TOKEN not in out + err

    code, out, err = await run("--bot", "sales", "--url", "https://edge.example.com/tg/sales")
    assert code == 0, err
    assert fake.bots[SALES_TOKEN].webhook["url"] == "https://edge.example.com/tg/sales"
    assert fake.bots[TOKEN].webhook["url"] == "https://hub.example.com/webhooks/telegram", "the other is untouched"

    code, _, err = await run("--url", "https://edge.example.com/tg")
    assert code == 2 and "--bot NAME" in err
    code, _, err = await run("--bot", "nobody")
    assert code == 2 and "no bot named 'nobody'" in err


@pytest.mark.parametrize(("bots", "problem"), [
    ([{"name": "default", "bot_token": SALES_TOKEN, "webhook_secret": SALES_SECRET}], "own name"),
    ([{"name": "sales", "bot_token": TOKEN, "webhook_secret": SALES_SECRET}], "same bot_token"),
    ([{"name": "sales", "bot_token": "nope", "webhook_secret": SALES_SECRET}], "bots[0] (sales): bot_token"),
    ([{"name": "sales", "bot_token": SALES_TOKEN}], "bots[0] (sales): webhook_secret"),
    ([{"name": "Sales Team", "bot_token": SALES_TOKEN, "webhook_secret": SALES_SECRET}], "bots.0.name"),
])
def test_bad_bot_lists_are_refused_at_start(bots: list[dict[str, str]], problem: str) -> None:
    env = {"HUB_CHANNELS__TELEGRAM__ENABLED": "true", "HUB_CHANNELS__TELEGRAM__BOT_TOKEN": TOKEN,
           "HUB_CHANNELS__TELEGRAM__WEBHOOK_SECRET": SECRET, "HUB_CHANNELS__TELEGRAM__BOTS": json.dumps(bots)}
    with pytest.raises(ConfigError) as e:
        load_settings(None, environ=env)
    assert problem in str(e.value)


def test_named_bots_alone_need_no_top_level_token() -> None:
    bots = [{"name": "sales", "bot_token": SALES_TOKEN, "mode": "polling"}]
    s = load_settings(None, environ={"HUB_CHANNELS__TELEGRAM__ENABLED": "true",
                                     "HUB_CHANNELS__TELEGRAM__BOTS": json.dumps(bots)})
    assert s.channels.telegram.bots[0].name == "sales"


# -- groups ----------------------------------------------------------------------------------------------------


async def test_group_messages_are_one_customer_answered_in_the_group(
    tg: Client, admin: dict[str, str], fake: FakeBotApi
) -> None:
    expected = {"group_text": "stored", "supergroup_reply": "stored", "supergroup_edited": "edited",
                "supergroup_anonymous_admin": "stored", "group_member_joined": "ignored"}
    for name, outcome in expected.items():
        status, body = await post(tg, update(name), SALES, SALES_SECRET)  # the sales bot accepts groups
        assert (status, body) == (200, {"ok": True, "status": outcome}), name

    group = await timeline(tg, admin, "telegram:-4012345678")
    assert [m["text"] for m in group] == ["Ann Lee: @shop_support_bot hi, we ordered two lamps (order #1050), "
                                          "one is broken"]
    assert group[0]["meta"]["telegram"]["sender"] == {"name": "Ann Lee", "identity": "telegram:2222222",
                                                      "username": "ann_lee"}
    assert group[0]["external_id"] == "-4012345678:41", "a group's message ids are the same for every bot in it"

    acme = await timeline(tg, admin, "telegram:-1001234567890")
    assert [m["text"] for m in acme] == [
        "Bo: The invoice should go to billing@acme.example, not to me",
        "Acme Ltd x Shop: /status@shop_support_bot",
    ]
    assert acme[0]["meta"]["edits"][0]["text"] == "Bo: The invoice should go to accounts@acme.example, not to me"
    assert acme[0]["meta"]["reply_to"]["text"] == "Thanks! Who should receive the invoice?"
    assert acme[1]["meta"]["telegram"]["sender"] == {"name": "Acme Ltd x Shop", "chat_id": -1001234567890}
    resp = await tg.get("/api/v1/customers", params={"identity": "telegram:-1001234567890"}, headers=admin)
    [customer] = (await resp.json())["items"]
    assert customer["name"] == "Acme Ltd x Shop"
    assert [i["id"] for i in customer["identities"]] == ["telegram:-1001234567890"]
    for member in ("telegram:2222222", "telegram:3333333"):
        assert await timeline(tg, admin, member) == [], "members are named on messages, never merged or created"

    m = await replied(tg, admin, int(acme[0]["conversation_id"]), "Done: invoices now go to billing@")
    [call] = fake.sent("sendMessage")
    assert call.params["chat_id"] == "-1001234567890" and call.token == SALES_TOKEN
    assert m["external_id"].startswith("-1001234567890:")


async def test_a_group_message_two_bots_see_is_stored_once(
    aiohttp_client: Any, make_settings: Callable[..., Settings], fake: FakeBotApi
) -> None:
    env = two_bots_env(fake, HUB_CHANNELS__TELEGRAM__GROUPS="accept")
    client: Client = await aiohttp_client(build_app(make_settings(None, **env)))
    admin = {"Authorization": f"Bearer {await create_token(client.app[DB], 'admin')}"}
    assert (await post(client, update("supergroup_reply")))[1]["status"] == "stored"
    assert (await post(client, update("supergroup_reply"), SALES, SALES_SECRET))[1]["status"] == "duplicate"
    assert (await post(client, update("supergroup_edited")))[1]["status"] == "edited"
    assert (await post(client, update("supergroup_edited"), SALES, SALES_SECRET))[1]["status"] == "edited"
    [msg] = await timeline(client, admin, "telegram:-1001234567890")
    assert len(msg["meta"]["edits"]) == 1, "the same edit through a second bot is not applied twice"


async def test_groups_are_ignored_per_bot(tg: Client, admin: dict[str, str]) -> None:
    # The default bot keeps channels.telegram.groups = "ignore"; only the sales bot accepts groups.
    status, body = await post(tg, update("group_text"))
    assert (status, body["status"]) == (200, "ignored")
    [row] = await journal(tg)
    assert row["status"] == "rejected" and "group chat" in row["error"] and "default" in row["error"]
    assert await timeline(tg, admin, "telegram:-4012345678") == []


# -- a group upgraded to a supergroup: a new chat id for the same customer ----------------------------------------

OLD_GROUP = "telegram:-4012345678"
SUPERGROUP = "telegram:-1002345678901"
UPGRADED = "Group upgraded to a supergroup"


async def customer_with(client: Client, admin: dict[str, str], identity: str) -> dict[str, Any]:
    resp = await client.get("/api/v1/customers", params={"identity": identity}, headers=admin)
    [customer] = (await resp.json())["items"]
    assert isinstance(customer, dict)
    return customer


async def test_group_upgrade_keeps_one_customer_and_replies_go_to_the_supergroup(
    tg: Client, admin: dict[str, str], fake: FakeBotApi
) -> None:
    assert (await post(tg, update("group_text"), SALES, SALES_SECRET))[1]["status"] == "stored"
    # Telegram tells the old group, then the supergroup; each retried, and the default bot (groups ignored) too.
    expected = [("group_migrate_to", "linked"), ("group_migrate_to", "duplicate"),
                ("supergroup_migrate_from", "unchanged"), ("supergroup_migrate_from", "duplicate")]
    for name, outcome in expected:
        assert await post(tg, update(name), SALES, SALES_SECRET) == (200, {"ok": True, "status": outcome}), name
    assert (await post(tg, update("group_migrate_to")))[1]["status"] == "ignored"
    fake.migrated[-4012345678] = -1002345678901  # the old id refuses messages from now on, as on Telegram

    customer = await customer_with(tg, admin, SUPERGROUP)
    assert [i["id"] for i in customer["identities"]] == [OLD_GROUP, SUPERGROUP]
    assert customer == await customer_with(tg, admin, OLD_GROUP)
    items = await timeline(tg, admin, SUPERGROUP)
    assert [(m["kind"], m["text"]) for m in items] == [
        ("text", "Ann Lee: @shop_support_bot hi, we ordered two lamps (order #1050), one is broken"),
        ("event", UPGRADED),
    ]
    event = items[1]
    assert event["meta"]["event"] == "telegram.group_upgraded" and event["identity"] == SUPERGROUP
    assert event["meta"]["telegram"]["migrated_from_chat_id"] == -4012345678
    assert event["conversation_id"] == items[0]["conversation_id"], "shown in the group's open conversation"

    m = await replied(tg, admin, int(items[0]["conversation_id"]), "A new lamp is on its way")
    [call] = fake.sent("sendMessage")
    assert call.params["chat_id"] == "-1002345678901" and call.token == SALES_TOKEN, "straight to the supergroup"
    assert m["external_id"].startswith("-1002345678901:")

    assert (await post(tg, update("supergroup_upgraded_text"), SALES, SALES_SECRET))[1]["status"] == "stored"
    items = await timeline(tg, admin, OLD_GROUP)
    assert "Bo: @shop_support_bot any news on the broken lamp?" in [m["text"] for m in items]
    assert len({m["conversation_id"] for m in items}) == 1, "the supergroup's messages join the same conversation"


async def test_a_supergroup_that_wrote_before_the_upgrade_notice_is_merged_into_the_group(
    tg: Client, admin: dict[str, str], fake: FakeBotApi
) -> None:
    assert (await post(tg, update("group_text"), SALES, SALES_SECRET))[1]["status"] == "stored"
    # A member writes in the new supergroup before the service messages arrive: a new customer, for a moment.
    assert (await post(tg, update("supergroup_upgraded_text"), SALES, SALES_SECRET))[1]["status"] == "stored"
    split = await customer_with(tg, admin, SUPERGROUP)
    group = await customer_with(tg, admin, OLD_GROUP)
    assert split["id"] != group["id"]

    assert (await post(tg, update("supergroup_migrate_from"), SALES, SALES_SECRET))[1]["status"] == "merged"
    assert (await post(tg, update("group_migrate_to"), SALES, SALES_SECRET))[1]["status"] == "unchanged"

    customer = await customer_with(tg, admin, SUPERGROUP)
    assert customer["id"] == group["id"], "Telegram states they are one group: the group's customer survives"
    assert [i["id"] for i in customer["identities"]] == [OLD_GROUP, SUPERGROUP]
    resp = await tg.get(f"/api/v1/customers/{split['id']}", headers=admin)
    assert (await resp.json())["merged_into"] == group["id"]
    texts = [m["text"] for m in await timeline(tg, admin, OLD_GROUP)]
    assert texts[0].startswith("Ann Lee: ") and "Bo: @shop_support_bot any news on the broken lamp?" in texts
    assert texts.count(UPGRADED) == 1
    assert any(t.startswith(f"Merged customer Lee Family Orders #{split['id']}") for t in texts), texts

    fake.migrated[-4012345678] = -1002345678901
    conv = await conversation_of(tg, admin, OLD_GROUP)
    resp = await tg.get(f"/api/v1/conversations/{conv}", headers=admin)
    assert (await resp.json())["status"] != "resolved"
    await replied(tg, admin, conv, "A new lamp is on its way")
    assert [c.params["chat_id"] for c in fake.sent("sendMessage")] == ["-1002345678901"]


async def test_upgrade_told_by_the_simulator_in_either_order(
    tg: Client, admin: dict[str, str], fake: FakeBotApi
) -> None:
    fake.bots[SALES_TOKEN].webhook = {"url": str(tg.make_url(SALES)), "secret_token": SALES_SECRET}
    ann = {"id": 2222222, "is_bot": False, "first_name": "Ann"}
    for n, order in enumerate(("from-first", "to-first")):
        group = {"id": -4000000001 - n, "title": f"Team {n}", "type": "group"}
        new_id = -1009000000001 - n
        assert await fake.user_writes(SALES_TOKEN, ann, "@shop_support_bot hello", chat=group) == 200
        assert await fake.upgrade_group(SALES_TOKEN, group, new_id, ann, order=order) == (200, 200)
        customer = await customer_with(tg, admin, f"telegram:{new_id}")
        assert [i["id"] for i in customer["identities"]] == [f"telegram:{group['id']}", f"telegram:{new_id}"]
        items = await timeline(tg, admin, f"telegram:{new_id}")
        assert [m["text"] for m in items] == ["Ann: @shop_support_bot hello", UPGRADED], order
        await replied(tg, admin, int(items[0]["conversation_id"]), f"hello team {n}")
        assert fake.sent("sendMessage")[-1].params["chat_id"] == str(new_id), order
    statuses = [r["status"] for r in await journal(tg)]
    assert "failed" not in statuses


async def test_a_reply_to_a_group_upgraded_unnoticed_is_rerouted_and_the_upgrade_recorded(
    tg: Client, admin: dict[str, str], fake: FakeBotApi
) -> None:
    assert (await post(tg, update("group_text"), SALES, SALES_SECRET))[1]["status"] == "stored"
    # The service messages never reached us (say the webhook was down for a day): Telegram's refusal says where
    # the group went (400 with parameters.migrate_to_chat_id; python-telegram-bot raises ChatMigrated).
    fake.migrated[-4012345678] = -1002345678901
    conv = await conversation_of(tg, admin, OLD_GROUP)
    m = await replied(tg, admin, conv, "A new lamp is on its way")
    assert [c.params["chat_id"] for c in fake.sent("sendMessage")] == ["-4012345678", "-1002345678901"]
    assert m["external_id"].startswith("-1002345678901:")
    customer = await customer_with(tg, admin, SUPERGROUP)
    assert [i["id"] for i in customer["identities"]] == [OLD_GROUP, SUPERGROUP]
    assert [m["text"] for m in await timeline(tg, admin, OLD_GROUP)].count(UPGRADED) == 1

    await replied(tg, admin, conv, "It ships tomorrow")
    assert fake.sent("sendMessage")[-1].params["chat_id"] == "-1002345678901"
    assert len(fake.sent("sendMessage")) == 3, "once recorded, replies go straight to the supergroup"
    # The service messages arriving late change nothing.
    assert (await post(tg, update("group_migrate_to"), SALES, SALES_SECRET))[1]["status"] == "unchanged"
    assert (await post(tg, update("supergroup_migrate_from"), SALES, SALES_SECRET))[1]["status"] == "unchanged"


async def test_a_bot_removed_from_a_group_fails_the_reply_with_the_reason(
    tg: Client, admin: dict[str, str], fake: FakeBotApi
) -> None:
    assert (await post(tg, update("group_text"), SALES, SALES_SECRET))[1]["status"] == "stored"
    fake.failures["sendMessage"] = [(403, "Forbidden: bot was kicked from the group chat")]
    conv = await conversation_of(tg, admin, OLD_GROUP)
    resp = await tg.post(f"/api/v1/conversations/{conv}/messages", json={"text": "hello?"}, headers=admin)
    mid = (await resp.json())["id"]

    async def failed() -> Any:
        m = await message(tg, admin, mid)
        return m if m["status"] == "failed" else None

    m = await eventually(failed)
    assert m["status_reason"].startswith("the bot is no longer in this group"), m["status_reason"]
    assert len(fake.sent("sendMessage")) == 1, "a refusal is not retried"
