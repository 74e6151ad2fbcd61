"""Typing, both ways, in real browsers: a web-chat customer on the hub's own chat page types and the agent sees it
over the composer; the agent types and the customer's widget says so; a teammate on the same conversation sees the
agent typing a reply (so two people do not answer at once). Screenshot: typing.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SHOTS, Hub, customer_chats, go_available, run_hub, sign_in


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with run_hub(tmp_path, extra_env={"HUB_CHANNELS__WEBCHAT__ENABLED": "true"}) as running:
        yield running


def test_typing_both_ways(hub: Hub, new_page: Any) -> None:
    alex = new_page()
    sign_in(alex, "alex@example.com")
    go_available(alex)
    customer = customer_chats(new_page, "Hi, is the store open on Sunday?")

    alex.locator(".conv-item").first.click()
    alex.wait_for_selector(".tl-msg.in >> text=open on Sunday")
    assert alex.locator("#reply-channel").input_value().startswith("webchat")

    # The customer types (and has not sent): the agent sees it over the composer.
    customer.click(".hc-input")
    customer.keyboard.type("Also, do you")
    line = alex.locator("#typing-line")
    line.locator("text=is typing…").wait_for()
    # Sending ends it.
    customer.keyboard.press("Enter")
    alex.wait_for_selector(".tl-msg.in >> text=Also, do you")
    line.wait_for(state="hidden")

    # A teammate opens the same conversation; the agent starts a reply: the customer and the teammate see it.
    dana = new_page()
    sign_in(dana, "dana@example.com")
    dana.goto(alex.url.split("#")[0] + "#" + alex.url.split("#")[1])
    dana.wait_for_selector(".tl-msg.in >> text=Also, do you")
    alex.click("#reply-text")
    alex.keyboard.type("Yes, 10 to 4 on Sundays")
    customer.wait_for_selector("text=Alex Rivera is typing…")
    dana.locator("#typing-line >> text=Alex Rivera is typing a reply…").wait_for()
    assert alex.locator("#typing-line").is_hidden()  # never one's own typing
    alex.wait_for_timeout(200)
    SHOTS.mkdir(parents=True, exist_ok=True)
    dana.screenshot(path=str(SHOTS / "typing.png"))
    alex.keyboard.press("Control+Enter")
    customer.wait_for_selector("text=Yes, 10 to 4 on Sundays")
    customer.wait_for_selector("text=Alex Rivera is typing…", state="hidden")
    assert alex.errors == [] and dana.errors == [] and customer.errors == []
