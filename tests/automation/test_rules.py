"""Automation rules as an admin uses them through the API: conditions, actions, once per event, the depth bound,
automatic messages left alone, dry run; and two hub processes on PostgreSQL and Redis acting once per event."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hub.agents import add_agent
from hub.api.auth import create_token
from hub.automation.runner import ACTED_PER_BATCH, WAKE_SETTLE_SECONDS
from hub.config import Settings
from hub.history.db import Tx
from hub.keys import AUTOMATION, DB, INGEST, ROUTER, SETTINGS
from hub.model import Identity, Inbound, format_time, utcnow
from hub.reports.rollup import RollRules, catch_up
from tests.api.client import Api, inbound
from tests.counting import CountingTx
from tests.waiting import eventually

FAST = {"HUB_AUTOMATION__POLL_INTERVAL_SECONDS": "0.1", "HUB_WEBHOOKS__POLL_INTERVAL_SECONDS": "0.1"}
MakeApi = Callable[[Settings], Awaitable[Api]]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url, **FAST, HUB_ROUTING__QUEUES='{"support": {}, "billing": {}}')


async def add_rule(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    return dict(await api.call("POST", "/api/v1/automation/rules", "/api/v1/automation/rules", body, expect=201))


async def conversation(api: Api, conv: int) -> dict[str, Any]:
    return dict(await api.call("GET", "/api/v1/conversations/{id}", f"/api/v1/conversations/{conv}"))


async def settled(api: Api) -> bool:
    """Every logged event handled by the runner."""
    row = await api.client.app[DB].read(lambda tx: tx.one("SELECT COUNT(*) AS n FROM hub_events "
                                                          "WHERE status = 'pending'"))
    return row is not None and int(row["n"]) == 0


async def test_refund_rule_labels_prioritises_replies_and_notes(api: Api) -> None:
    rule = await add_rule(api, {
        "name": "Refunds", "event": "message.received",
        "conditions": [{"field": "text", "op": "contains", "value": "REFUND"},
                       {"field": "channel", "op": "in", "value": ["api", "sms"]}],
        "actions": [{"type": "add_label", "value": "refund"}, {"type": "set_priority", "value": 5},
                    {"type": "send_reply", "value": "We got your refund request."},
                    {"type": "add_note", "value": "Refund: check the order first."},
                    {"type": "set_attribute", "name": "asked_refund", "value": "yes"}],
    })
    replied = await add_rule(api, {"name": "Replied", "event": "message.sent", "conditions": [],
                                   "actions": [{"type": "add_label", "value": "agent-replied"}]})
    first = await inbound(api, "phone:+14155550100", "I want a refund please", "r1")
    conv = first["conversation"]["id"]
    await eventually(lambda: settled(api), what="events handled")
    detail = await conversation(api, conv)
    assert detail["labels"] == ["refund"] and detail["priority"] == 5
    auto = [m for m in detail["messages"] if m["meta"].get("automatic")]
    assert [(m["kind"], m["text"]) for m in auto] == [
        ("text", "We got your refund request."), ("note", "Refund: check the order first.")]
    assert auto[0]["meta"]["automation_rule"] == rule["id"] and auto[0]["direction"] == "out"
    # The automatic reply is a message.sent event, but rules leave automatic messages alone.
    assert (await api.call("GET", "/api/v1/automation/rules/{id}",
                           f"/api/v1/automation/rules/{replied['id']}"))["runs"] == 0
    # A message without the word: no second reply. An agent's reply: the message.sent rule runs.
    await inbound(api, "phone:+14155550100", "and another thing", "r2")
    await api.call("POST", "/api/v1/conversations/{id}/messages", f"/api/v1/conversations/{conv}/messages",
                   {"text": "Looking into it"}, expect=201)
    await eventually(lambda: settled(api), what="events handled")
    detail = await conversation(api, conv)
    assert len([m for m in detail["messages"] if m["meta"].get("automatic")]) == 2
    assert detail["labels"] == ["agent-replied", "refund"]
    shown = await api.call("GET", "/api/v1/automation/rules/{id}", f"/api/v1/automation/rules/{rule['id']}")
    assert shown["runs"] == 1 and shown["last_run_at"] is not None
    attr = await api.client.app[DB].read(lambda tx: tx.one("SELECT value FROM customer_attributes "
                                                           "WHERE name = 'asked_refund'"))
    assert attr is not None and attr["value"] == "yes"


async def test_rules_run_in_order_and_see_each_others_changes(api: Api) -> None:
    await add_rule(api, {"name": "VIP", "event": "message.received", "position": 1,
                         "conditions": [{"field": "label", "op": "contains", "value": "vip"}],
                         "actions": [{"type": "move_to_queue", "value": "billing"}]})
    await add_rule(api, {"name": "Tag VIP", "event": "message.received", "position": 0,
                         "conditions": [{"field": "text", "op": "matches", "value": r"\border\s+#\d+"}],
                         "actions": [{"type": "add_label", "value": "vip"}]})
    listed = await api.call("GET", "/api/v1/automation/rules", "/api/v1/automation/rules")
    assert [r["name"] for r in listed["items"]] == ["Tag VIP", "VIP"]
    first = await inbound(api, "phone:+14155550101", "where is order #1234?", "o1")
    await eventually(lambda: settled(api), what="events handled")
    detail = await conversation(api, first["conversation"]["id"])
    assert detail["labels"] == ["vip"] and detail["queue"] == "billing"


@pytest.mark.parametrize("max_depth", [0, 3])
async def test_a_rules_own_actions_trigger_rules_only_to_the_stated_depth(
    make_settings: Callable[..., Settings], db_url: str, admin_token_api: MakeApi, max_depth: int
) -> None:
    api = await admin_token_api(make_settings(db_url, **FAST, HUB_AUTOMATION__MAX_DEPTH=str(max_depth)))
    await add_rule(api, {"name": "Close", "event": "message.received",
                         "conditions": [{"field": "text", "op": "contains", "value": "thanks, bye"}],
                         "actions": [{"type": "resolve"}]})
    closed = await add_rule(api, {"name": "Closed", "event": "conversation.resolved", "conditions": [],
                                  "actions": [{"type": "add_label", "value": "closed"}]})
    first = await inbound(api, "phone:+14155550102", "thanks, bye", "d1")
    await eventually(lambda: settled(api), what="events handled")
    detail = await conversation(api, first["conversation"]["id"])
    assert detail["status"] == "resolved"
    # The resolve is one action deep: with max_depth 0 no rule reacts to it.
    assert detail["labels"] == ([] if max_depth == 0 else ["closed"])
    runs = (await api.call("GET", "/api/v1/automation/rules/{id}", f"/api/v1/automation/rules/{closed['id']}"))["runs"]
    assert runs == (0 if max_depth == 0 else 1)


async def test_a_rules_resolve_counts_in_the_reports_like_an_agents(api: Api) -> None:
    """Seen: a rule's resolve reached the automation log but not the reports' events, so reports never counted it."""
    await add_rule(api, {"name": "Close", "event": "message.received",
                         "conditions": [{"field": "text", "op": "contains", "value": "thanks, bye"}],
                         "actions": [{"type": "resolve"}]})
    first = await inbound(api, "phone:+14155550109", "thanks, bye", "r1")
    await eventually(lambda: settled(api), what="events handled")
    assert (await conversation(api, first["conversation"]["id"]))["status"] == "resolved"
    s = api.client.app[SETTINGS]
    await catch_up(api.client.app[DB], RollRules.from_settings(s.reports, s.routing), cutoff=format_time(utcnow()))
    summary = await api.call("GET", "/api/v1/reports/summary", "/api/v1/reports/summary")
    assert summary["figures"]["conversations_opened"] == 1 and summary["figures"]["conversations_resolved"] == 1


async def test_messages_marked_automatic_run_no_rules(api: Api) -> None:
    rule = await add_rule(api, {"name": "Any", "event": "message.received", "conditions": [],
                                "actions": [{"type": "send_reply", "value": "Thanks for writing"}]})
    ingest = api.client.app[INGEST]
    # An out-of-office answer (the email channel marks them): no rule runs, so two auto-responders never chat.
    ooo = await ingest.ingest(Inbound(channel="api", identity=Identity("phone", "+14155550103"), text="I am away",
                                      external_id="ooo-1", meta={"automatic": True}))
    await eventually(lambda: settled(api), what="events handled")
    assert (await api.call("GET", "/api/v1/automation/rules/{id}", f"/api/v1/automation/rules/{rule['id']}"))[
        "runs"] == 0
    detail = await conversation(api, ooo.conversation.id)
    assert [m["direction"] for m in detail["messages"]] == ["in"]


async def test_a_replayed_event_does_not_act_twice(api: Api) -> None:
    await add_rule(api, {"name": "Ack", "event": "message.received", "conditions": [],
                         "actions": [{"type": "send_reply", "value": "Got it"}]})
    first = await inbound(api, "phone:+14155550104", "hello", "x1")
    await eventually(lambda: settled(api), what="events handled")
    db, runner = api.client.app[DB], api.client.app[AUTOMATION]
    row = await db.read(lambda tx: tx.one("SELECT id FROM hub_events WHERE type = 'message.received'"))
    assert row is not None
    event_id = int(row["id"])
    # Handled already: nothing to do. Then replayed from scratch (status back to pending): rules remember.
    assert await db.write(lambda tx: runner.process(tx, event_id)) is None
    await db.write(lambda tx: tx.exec("UPDATE hub_events SET status = 'pending' WHERE id = ?", (event_id,)))
    again = await asyncio.gather(*(db.write(lambda tx: runner.process(tx, event_id)) for _ in range(3)))
    assert sum(1 for o in again if o is not None) == 1 and all(not o.messages for o in again if o is not None)
    detail = await conversation(api, first["conversation"]["id"])
    assert [m["text"] for m in detail["messages"] if m["meta"].get("automatic")] == ["Got it"]


async def test_events_no_rule_can_act_on_are_done_together_in_a_few_statements(api: Api) -> None:
    # A rule, but on another event type: the conversation.opened and message.received events have nothing to do.
    rule = await add_rule(api, {"name": "Bye", "event": "conversation.resolved", "conditions": [],
                                "actions": [{"type": "add_label", "value": "done"}]})
    for i in range(20):
        await inbound(api, f"phone:+1415555{i:04d}", "hello", f"n{i}")
    await eventually(lambda: settled(api), what="events handled")
    db, runner = api.client.app[DB], api.client.app[AUTOMATION]

    def again(tx: Tx) -> tuple[int, int, int]:
        # Pending again and handled in the same transaction, so the hub's own runner cannot take them first.
        tx.exec("UPDATE hub_events SET status = 'pending'")
        counting = CountingTx(tx)
        outcomes = runner.batch(counting, 100)
        left = tx.one("SELECT COUNT(*) AS n FROM hub_events WHERE status = 'pending'")
        assert left is not None
        return len(outcomes), counting.statements, int(left["n"])

    handled, statements, left = await db.write(again)
    assert (handled, left) == (40, 0)
    # The events, the rules, business hours and bots read once for the batch, the 40 events marked done in one
    # UPDATE (it was about eight statements per event).
    assert statements <= 5, statements
    detail = await api.call("GET", "/api/v1/automation/rules/{id}", f"/api/v1/automation/rules/{rule['id']}")
    assert detail["runs"] == 0


async def test_a_flow_of_messages_is_handled_in_batches_not_one_write_each(api: Api) -> None:
    """Woken by each message, the runner ran a write transaction of its own for every one or two of them (on the
    writer the acknowledgements share); woken, it now lets the messages right behind join the batch."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(40):
        await inbound(api, f"phone:+1415555{i:04d}", "hello", f"flow{i}")
    elapsed = loop.time() - start
    await eventually(lambda: settled(api), what="events handled")
    # A batch marks its events done with one UPDATE, at one time: the distinct times are the batches.
    row = await api.client.app[DB].read(lambda tx: tx.one(
        "SELECT COUNT(DISTINCT processed_at) AS n FROM hub_events WHERE type = 'message.received'"))
    assert row is not None
    # A pass after each settle, each of a batch or a few (the events that came during its write): bounded by the
    # time the messages took, whatever the machine's speed (about one per message before).
    assert int(row["n"]) <= 3 * (elapsed / WAKE_SETTLE_SECONDS + 1) and int(row["n"]) < 40, (row["n"], elapsed)


async def test_dry_run_shows_what_would_have_matched_and_changes_nothing(api: Api) -> None:
    for i, text in enumerate(["refund my order", "hello", "REFUND now"]):
        await inbound(api, f"phone:+1415555020{i}", text, f"dry{i}")
    await eventually(lambda: settled(api), what="events handled")
    body = {"name": "Refunds", "event": "message.received",
            "conditions": [{"field": "text", "op": "contains", "value": "refund"}],
            "actions": [{"type": "add_label", "value": "refund"}]}
    got = await api.call("POST", "/api/v1/automation/rules/dry-run", "/api/v1/automation/rules/dry-run?limit=50",
                         body)
    assert sorted(m["text"] for m in got["matches"]) == ["REFUND now", "refund my order"]
    for m in got["matches"]:
        assert (await conversation(api, m["conversation_id"]))["labels"] == []
    assert (await api.call("GET", "/api/v1/automation/rules", "/api/v1/automation/rules"))["items"] == []


@pytest.mark.parametrize(("body", "reason"), [
    ({"field": "text", "op": "gt", "value": "x"}, "text takes the operators"),
    ({"field": "text", "op": "matches", "value": "(unclosed"}, "not a regular expression"),
    ({"field": "text", "op": "matches", "value": "^(a+)+$"}, "can take forever"),
    ({"field": "text", "op": "matches", "value": r"(\w*x)*y"}, "can take forever"),
    ({"field": "queue", "op": "is"}, "needs a value"),
    ({"field": "queue", "op": "in", "value": "support"}, "takes a list"),
    ({"field": "business_hours", "op": "is", "value": "maybe"}, "open"),
    ({"field": "customer_attribute", "op": "is", "value": "gold"}, "attribute's name"),
    ({"field": "priority", "op": "gt", "value": "high"}, "whole number"),
])
async def test_bad_conditions_get_reasons(api: Api, body: dict[str, Any], reason: str) -> None:
    rule = {"name": "x", "event": "message.received", "conditions": [body],
            "actions": [{"type": "add_label", "value": "x"}]}
    bad = await api.call("POST", "/api/v1/automation/rules", "/api/v1/automation/rules", rule, expect=422)
    assert reason in str(bad["error"]["details"])


async def test_bad_rules_get_reasons(api: Api) -> None:
    base = {"name": "x", "event": "message.received", "conditions": []}
    for actions, reason in [([], "at least 1"), ([{"type": "resolve", "value": 1}], "takes no value"),
                            ([{"type": "set_priority", "value": "high"}], "whole number"),
                            ([{"type": "set_priority", "value": 10**30}], "from -1000 to 1000"),
                            ([{"type": "send_webhook", "value": 2**64}], "takes an id"),
                            ([{"type": "add_label", "value": "<b>"}], "a label is"),
                            ([{"type": "explode"}], "type")]:
        bad = await api.call("POST", "/api/v1/automation/rules", "/api/v1/automation/rules",
                             {**base, "actions": actions}, expect=422)
        assert reason in str(bad["error"]["details"]), (actions, bad)
    bad = await api.call("POST", "/api/v1/automation/rules", "/api/v1/automation/rules",
                         {**base, "event": "conversation.exploded", "actions": [{"type": "resolve"}]}, expect=422)
    await api.call("GET", "/api/v1/automation/rules/{id}", "/api/v1/automation/rules/99", expect=404)
    await api.call("DELETE", "/api/v1/automation/rules/{id}", "/api/v1/automation/rules/99", expect=404)


async def test_agents_may_not_manage_rules(api: Api) -> None:
    from hub.agents import add_agent
    from hub.api.auth import create_token

    agent = await add_agent(api.client.app[DB], "Ann", "ann@example.com", "pw-123456789", "agent", ["support"])
    token = await create_token(api.client.app[DB], "agent", agent_id=agent.id, label="ann")
    headers = {"Authorization": f"Bearer {token}"}
    await api.call("GET", "/api/v1/automation/rules", "/api/v1/automation/rules", expect=403, headers=headers)
    await api.call("POST", "/api/v1/webhooks", "/api/v1/webhooks", {"url": "https://example.com", "events": ["*"]},
                   expect=403, headers=headers)


async def available_agent(api: Api, name: str) -> int:
    db = api.client.app[DB]
    a = await add_agent(db, name, f"{name.lower()}@example.com", "long password", "agent", ["support"])
    headers = {"Authorization": f"Bearer {await create_token(db, 'agent', a.id)}"}
    resp = await api.client.post("/api/v1/agents/me/presence", json={"presence": "available"}, headers=headers)
    assert resp.status == 200, await resp.text()
    return a.id


async def logged(api: Api, type_: str, conv: int) -> list[int]:
    """The depths of the logged events of TYPE_ about CONV, oldest first."""
    rows = await api.client.app[DB].read(lambda tx: tx.all(
        "SELECT depth FROM hub_events WHERE type = ? AND conversation_id = ? ORDER BY id", (type_, conv)))
    return [int(r["depth"]) for r in rows]


async def test_an_assignment_triggers_rules_with_the_agent_it_went_to(
    make_settings: Callable[..., Settings], db_url: str, admin_token_api: MakeApi
) -> None:
    api = await admin_token_api(make_settings(db_url, **FAST, HUB_ROUTING__QUEUES='{"support": {"direct": true}}'))
    ann = await available_agent(api, "Ann")
    await add_rule(api, {"name": "Ann's", "event": "conversation.assigned",
                         "conditions": [{"field": "agent", "op": "is", "value": ann}],
                         "actions": [{"type": "add_label", "value": "ann"}]})
    first = await inbound(api, "phone:+14155550110", "hello", "a1")
    conv = first["conversation"]["id"]

    async def labelled() -> bool:
        return await settled(api) and (await conversation(api, conv))["labels"] == ["ann"]

    await eventually(labelled, what="the assignment's rule ran")
    assert await logged(api, "conversation.assigned", conv) == [0]
    assert (await conversation(api, conv))["agent_id"] == ann


async def test_rules_passing_a_conversation_back_and_forth_stop_at_the_depth_bound(
    make_settings: Callable[..., Settings], db_url: str, admin_token_api: MakeApi
) -> None:
    api = await admin_token_api(make_settings(db_url, **FAST, HUB_AUTOMATION__MAX_DEPTH="2",
                                              HUB_ROUTING__QUEUES='{"support": {"direct": true}}'))
    ann, bob = await available_agent(api, "Ann"), await available_agent(api, "Bob")
    for name, from_, to in (("to Bob", ann, bob), ("to Ann", bob, ann)):
        await add_rule(api, {"name": name, "event": "conversation.assigned",
                             "conditions": [{"field": "agent", "op": "is", "value": from_}],
                             "actions": [{"type": "assign_agent", "value": to}]})
    first = await inbound(api, "phone:+14155550111", "hello", "b1")
    conv = first["conversation"]["id"]

    async def bounded() -> bool:
        return await settled(api) and len(await logged(api, "conversation.assigned", conv)) == 4

    # Depth 0 (routing's own), then one per rule action: rules still run at depth 2, not at 3.
    await eventually(bounded, what="the rules' assignments")
    await asyncio.sleep(1.0)
    assert await logged(api, "conversation.assigned", conv) == [0, 1, 2, 3]


async def test_a_missed_first_response_target_triggers_rules(
    make_settings: Callable[..., Settings], db_url: str, admin_token_api: MakeApi
) -> None:
    api = await admin_token_api(make_settings(
        db_url, **FAST, HUB_ROUTING__TICK_SECONDS="0.1",
        HUB_ROUTING__QUEUES='{"support": {"first_response": 0.3}}'))
    await add_rule(api, {"name": "Late", "event": "sla.breached", "conditions": [],
                         "actions": [{"type": "add_label", "value": "late"}, {"type": "set_priority", "value": 9}]})
    first = await inbound(api, "phone:+14155550112", "anyone there?", "s1")
    conv = first["conversation"]["id"]

    async def flagged() -> bool:
        return await settled(api) and (await conversation(api, conv))["labels"] == ["late"]

    await eventually(flagged, what="the breach's rule ran")
    assert await logged(api, "sla.breached", conv) == [0]
    assert (await conversation(api, conv))["priority"] == 9


async def test_a_rules_priority_puts_a_waiting_conversation_ahead_of_older_ones(
    make_settings: Callable[..., Settings], db_url: str, backend: str, prefix: str, admin_token_api: MakeApi
) -> None:
    """Seen: set_priority wrote the store only, which routing never read: the VIP waited behind everyone who wrote
    before them. Now the runner tells routing after its commit, and the conversation moves up at once (not the
    reconciler's repair: its passes are minutes apart here)."""
    api = await admin_token_api(make_settings(
        db_url, **FAST, HUB_ROUTING__QUEUES='{"support": {"offer_timeout": 60}}', HUB_ROUTING__BACKEND=backend,
        HUB_ROUTING__REDIS_URL="redis://127.0.0.1:6379/0", HUB_ROUTING__KEY_PREFIX=prefix,
        HUB_ROUTING__RECONCILE_SECONDS="600", HUB_ROUTING__DEFAULT_CAPACITY='{"voice": 1, "chat": 1, "email": 5}'))
    await add_rule(api, {"name": "VIP first", "event": "message.received",
                         "conditions": [{"field": "text", "op": "contains", "value": "VIP"}],
                         "actions": [{"type": "set_priority", "value": 10}]})
    older = [(await inbound(api, f"phone:+1415555013{n}", f"hello {n}", f"v{n}"))["conversation"]["id"]
             for n in (1, 2)]
    vip = (await inbound(api, "phone:+14155550139", "VIP here, please hurry", "v9"))["conversation"]["id"]
    router = api.client.app[ROUTER]
    arrived = (await router.state.conversation(vip)).enqueued_at

    async def moved_up() -> bool:
        view = await router.state.conversation(vip)
        return await settled(api) and view is not None and view.priority == 10

    await eventually(moved_up, within=5, what="the rule's priority in routing")
    view = await router.state.conversation(vip)
    assert view is not None and (view.state, view.enqueued_at) == ("waiting", arrived)  # its age kept
    assert (await conversation(api, vip))["priority"] == 10
    ann = await available_agent(api, "Ann")  # room for one chat
    rows = await api.client.app[DB].read(lambda tx: tx.all("SELECT id, offered_to FROM conversations ORDER BY id"))
    assert {int(r["id"]): r["offered_to"] for r in rows} == {older[0]: None, older[1]: None, vip: ann}


async def test_set_attribute_values_are_checked_against_the_attributes_type(api: Api) -> None:
    rules, attrs = "/api/v1/automation/rules", "/api/v1/customer-attributes"
    await api.call("POST", attrs, attrs, {"key": "plan", "label": "Plan", "type": "list", "options": ["Free", "Pro"]},
                   expect=201)
    await api.call("POST", attrs, attrs, {"key": "seats", "label": "Seats", "type": "number"}, expect=201)
    base = {"name": "Plan", "event": "message.received", "conditions": []}

    def setting(**values: str) -> dict[str, Any]:
        return {**base, "actions": [{"type": "set_attribute", "name": k, "value": v} for k, v in values.items()]}

    # On save: a 400 that says which action and why, and nothing saved.
    for body, reason in [(setting(plan="Gold"), "actions[0].value: Plan is one of Free, Pro: 'Gold' is not"),
                         (setting(plan="Pro", seats="many"), "actions[1].value: Seats is a number: 'many' is not one")]:
        bad = await api.call("POST", rules, rules, body, expect=400)
        assert bad["error"]["message"] == reason
    assert (await api.call("GET", rules, rules))["items"] == []
    rule = await add_rule(api, setting(plan="Pro", seats="12.0", asked_refund="anything"))  # undefined: free text
    path = f"/api/v1/automation/rules/{rule['id']}"
    bad = await api.call("PUT", "/api/v1/automation/rules/{id}", path, setting(seats="1e999"), expect=400)
    assert "Seats is a number" in bad["error"]["message"]
    assert rule["problem"] is None

    # At run time: Pro was taken away since, so plan is left as it was and the rule says why; the rest is done.
    await api.call("PATCH", "/api/v1/customer-attributes/{key}", f"{attrs}/plan", {"options": ["Free", "Team"]})
    made = await inbound(api, "phone:+14155550100", "hello", "sa1")
    await eventually(lambda: settled(api), what="events handled")
    customer = made["conversation"]["customer_id"]
    rows = await api.client.app[DB].read(lambda tx: tx.all(
        "SELECT name, value FROM customer_attributes WHERE customer_id = ?", (customer,)))
    assert {str(r["name"]): str(r["value"]) for r in rows} == {"seats": "12", "asked_refund": "anything"}
    flagged = await api.call("GET", "/api/v1/automation/rules/{id}", path)
    assert flagged["problem"] == ("set_attribute plan: Plan is one of Free, Team: 'Pro' is not "
                                  "(the customer's value was left as it was)")
    assert flagged["problem_at"] and flagged["runs"] == 1
    # Saved again (fixed): the flag is cleared.
    fixed = await api.call("PUT", "/api/v1/automation/rules/{id}", path, setting(plan="Team"))
    assert fixed["problem"] is None and fixed["problem_at"] is None


async def test_a_batch_runs_rules_on_a_bounded_number_of_events_and_every_event_once(api: Api) -> None:
    """A batch is one write transaction on the SQLite writer, which the inbound path shares: it runs rules on at most
    ACTED_PER_BATCH events, leaving the rest to the next batches, and each event still runs its rules once."""
    rule = await add_rule(api, {"name": "Tag", "event": "message.received", "conditions": [],
                                "actions": [{"type": "add_label", "value": "seen"}]})
    for i in range(30):
        await inbound(api, f"phone:+1415556{i:04d}", "hello", f"b{i}")
    await eventually(lambda: settled(api), what="events handled")
    db, runner = api.client.app[DB], api.client.app[AUTOMATION]

    def again(tx: Tx) -> list[tuple[int, int]]:
        # Pending again (and the runs forgotten) and drained here, batch after batch, in one transaction, so the
        # hub's own runner cannot take them first.
        tx.exec("UPDATE hub_events SET status = 'pending'")
        tx.exec("DELETE FROM automation_runs")
        batches = []
        while True:
            counting = CountingTx(tx)
            outcomes = runner.batch(counting, 100)
            if not outcomes:
                return batches
            batches.append((sum(1 for o in outcomes if o.rules), counting.statements))

    batches = await db.write(again)
    assert sum(acted for acted, _ in batches) == 30  # each message.received once
    assert max(acted for acted, _ in batches) == ACTED_PER_BATCH and len(batches) == 3
    assert max(statements for _, statements in batches) <= 30 * ACTED_PER_BATCH, batches
    runs = await db.read(lambda tx: tx.one("SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS events "
                                           "FROM automation_runs"))
    assert runs is not None and int(runs["n"]) == int(runs["events"]) == 30
    detail = await api.call("GET", "/api/v1/automation/rules/{id}", f"/api/v1/automation/rules/{rule['id']}")
    assert detail["runs"] == 60  # 30 the first time, 30 after the replay
