"""POST /api/v1/inbound: the API channel, through the real app and store (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

Client = TestClient[Any, Any]


async def post(client: Client, headers: dict[str, str], body: Any) -> tuple[int, Any]:
    resp = await client.post("/api/v1/inbound", json=body, headers=headers)
    return resp.status, await resp.json()


async def test_inbound_creates_customer_conversation_message(client: Client, admin_headers: dict[str, str]) -> None:
    status, body = await post(
        client, admin_headers,
        {"identity": "phone:(415) 555-0100", "text": "my order is late", "external_id": "ext-1", "name": "Ann"},
    )
    assert status == 201, body
    msg, conv, cust = body["message"], body["conversation"], body["customer"]
    assert msg["text"] == "my order is late" and msg["direction"] == "in" and msg["channel"] == "api"
    assert msg["identity"] == "phone:+14155550100"
    assert conv["status"] == "open" and conv["queue"] == "support"
    assert cust["name"] == "Ann"
    assert cust["identities"] == [{"kind": "phone", "value": "+14155550100", "id": "phone:+14155550100"}]
    assert body["duplicate"] is False


async def test_retry_returns_same_message_and_stores_nothing(client: Client, admin_headers: dict[str, str]) -> None:
    first = await post(client, admin_headers, {"identity": "email:ann@example.com", "text": "hi", "external_id": "e1"})
    again = await post(client, admin_headers, {"identity": "email:ann@example.com", "text": "hi", "external_id": "e1"})
    assert first[0] == 201 and again[0] == 200
    assert again[1]["duplicate"] is True
    assert again[1]["message"]["id"] == first[1]["message"]["id"]
    resp = await client.get(f"/api/v1/customers/{first[1]['customer']['id']}/timeline", headers=admin_headers)
    assert len((await resp.json())["items"]) == 1


async def test_same_person_across_spellings_is_one_customer(client: Client, admin_headers: dict[str, str]) -> None:
    a = await post(client, admin_headers, {"identity": "phone:+1 415 555 0100", "text": "one"})
    b = await post(client, admin_headers, {"identity": "phone:4155550100", "text": "two"})
    c = await post(client, admin_headers, {"identity": "email: Ann@Example.COM ", "text": "three"})
    d = await post(client, admin_headers, {"identity": "email:ann@example.com", "text": "four"})
    assert a[1]["customer"]["id"] == b[1]["customer"]["id"]
    assert a[1]["conversation"]["id"] == b[1]["conversation"]["id"]
    assert c[1]["customer"]["id"] == d[1]["customer"]["id"] != a[1]["customer"]["id"]


async def test_bad_input_gets_a_reason(client: Client, admin_headers: dict[str, str]) -> None:
    cases = [
        ({"identity": "fax:123", "text": "x"}, 422, "unknown identity kind"),
        ({"identity": "phone:hello", "text": "x"}, 422, "not a phone number"),
        ({"identity": "email:nobody", "text": "x"}, 422, "not an email address"),
        ({"identity": "phone:+14155550100", "text": "x", "surprise": 1}, 422, "surprise: unknown field"),
        ({"text": "x"}, 422, "identity: Field required"),
        ([1, 2], 400, "must be a JSON object"),
    ]
    for body, status, reason in cases:
        got, data = await post(client, admin_headers, body)
        assert got == status, (body, data)
        assert reason in data["error"]["message"], (body, data)
    resp = await client.post(
        "/api/v1/inbound", data=b"{not json", headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert resp.status == 400 and "malformed JSON" in (await resp.json())["error"]["message"]
    resp = await client.post("/api/v1/inbound", data=b"x=1", headers=admin_headers)
    assert resp.status == 415
    resp = await client.get("/api/v1/customers?identity=phone:+14155550100", headers=admin_headers)
    assert (await resp.json())["items"] == [], "nothing was stored by the rejected requests"


async def test_customer_html_is_stored_inert(client: Client, admin_headers: dict[str, str]) -> None:
    html = ('<p onclick="steal()">Hi <b>there</b></p><script>window.__xss=1</script>'
            '<a href="javascript:alert(1)">x</a><img src="x" onerror="alert(1)">')
    status, body = await post(client, admin_headers, {"identity": "email:eve@example.com", "text": "hi", "html": html})
    assert status == 201
    stored = body["message"]["html"]
    assert "<b>there</b>" in stored
    for bad in ("<script", "onclick", "onerror", "javascript:", "__xss"):
        assert bad not in stored, (bad, stored)


async def test_oversized_body_is_413(client: Client, admin_headers: dict[str, str]) -> None:
    big = {"identity": "phone:+14155550100", "text": "x" * 2_000_000}
    status, data = await post(client, admin_headers, big)
    assert status == 413
    assert "exceeded" in data["error"]["message"] or "too large" in data["error"]["message"].lower()


async def test_needs_a_valid_admin_token(client: Client) -> None:
    body = {"identity": "phone:+14155550100", "text": "x"}
    assert (await post(client, {}, body))[0] == 401
    assert (await post(client, {"Authorization": "Bearer hub_forged"}, body))[0] == 401
    assert (await post(client, {"Authorization": "Basic abc"}, body))[0] == 401


async def test_attachments_are_stored_and_served_safely(client: Client, admin_headers: dict[str, str]) -> None:
    import base64

    html = b"<script>alert(1)</script>"
    status, body = await post(client, admin_headers, {
        "identity": "webchat:visitor-1", "text": "see file",
        "attachments": [
            {"filename": "x.html", "content_type": "text/html", "data_base64": base64.b64encode(html).decode()},
            {"filename": "later.png", "content_type": "image/png", "url": "https://files.example.com/later.png"},
        ],
    })
    assert status == 201, body
    stored, pending = body["message"]["attachments"]
    assert stored["status"] == "stored" and stored["size"] == len(html)
    assert pending["status"] == "pending"
    resp = await client.get(stored["url"], headers=admin_headers)
    assert resp.status == 200 and await resp.read() == html
    assert resp.headers["Content-Disposition"].startswith("attachment")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in resp.headers["Content-Security-Policy"]
    assert (await client.get(pending["url"], headers=admin_headers)).status == 409


async def test_identities_are_bounded_and_valid_text_on_both_stores(client: Client,
                                                                    admin_headers: dict[str, str]) -> None:
    """A NUL or a lone surrogate reached PostgreSQL (which cannot store them) and an unbounded identity was kept
    whole: each is refused with 422 and a reason, and nothing is stored, on SQLite and PostgreSQL alike."""
    for identity, reason in [
        ("email:ann\x00@example.com", "NUL"),
        ("phone:+1415555\x000100", "NUL"),
        ("webchat:v\x00isitor", "NUL"),
        ("email:ann\ud800@example.com", "lone surrogate"),
        ("telegram:\ud83d", "lone surrogate"),
        ("email:" + "a" * 400 + "@example.com", "at most 320"),
        ("telegram:\u00b2", "numeric Telegram user id"),
    ]:
        status, body = await post(client, admin_headers, {"identity": identity, "text": "hello"})
        assert status == 422 and reason in body["error"]["message"], (identity, status, body)
    resp = await client.get("/api/v1/conversations", headers=admin_headers)
    assert (await resp.json())["items"] == []
