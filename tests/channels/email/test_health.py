"""A mailbox that is down is visible (/readyz, /metrics), and each mailbox's password can come from the environment."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from hub.app import build_app
from hub.config import ConfigError, load_settings
from tests.channels.email.dovecot import Dovecot, _free_port, running_dovecot
from tests.waiting import eventually

until = functools.partial(eventually, within=30.0)


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    with running_dovecot(["support", "sales"]) as server:
        yield server


def mailbox_env(i: int, user: str, host: str, port: int, password: str) -> dict[str, str]:
    pre = f"HUB_CHANNELS__EMAIL__MAILBOXES__{i}__"
    return {pre + "NAME": user, pre + "HOST": host, pre + "PORT": str(port), pre + "SECURITY": "none",
            pre + "USERNAME": user, pre + "PASSWORD": password, pre + "POLL_INTERVAL_SECONDS": "60"}


async def test_a_mailbox_refusing_our_login_degrades_readyz_and_metrics_without_its_password(
    aiohttp_client: Any, dovecot: Dovecot, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "hub.channels.email")
    smtp_port = _free_port()  # nothing listens: the start-up check warns
    env = {
        "HUB_DATABASE__URL": f"sqlite:///{tmp_path / 'hub.db'}",
        "HUB_CHANNELS__EMAIL__ENABLED": "true", "HUB_CHANNELS__EMAIL__ADDRESS": "support@hub.test",
        "HUB_CHANNELS__EMAIL__SMTP_HOST": "127.0.0.1", "HUB_CHANNELS__EMAIL__SMTP_PORT": str(smtp_port),
        "HUB_CHANNELS__EMAIL__SMTP_SECURITY": "none", "HUB_CHANNELS__EMAIL__RECONNECT_MAX_DELAY_SECONDS": "1",
        **mailbox_env(0, "support", dovecot.host, dovecot.port, dovecot.password),
        **mailbox_env(1, "sales", dovecot.host, dovecot.port, "not-the-password-x7"),
        **mailbox_env(2, "gone", "127.0.0.1", _free_port(), "pw-of-gone-y8"),
    }
    settings = load_settings(None, environ=env)
    assert [m.password for m in settings.channels.email.mailboxes][:2] == [dovecot.password, "not-the-password-x7"]
    client = await aiohttp_client(build_app(settings))

    async def degraded() -> bool:
        body = await (await client.get("/readyz")).json()
        problems = body.get("problems", {}).get("email", [])
        return body["status"] == "degraded" and len([p for p in problems if p.startswith("mailbox ")]) == 2

    await until(degraded, what="both broken mailboxes reported")
    ready = await client.get("/readyz")
    assert ready.status == 200, "the hub still serves its other channels"
    text = await ready.text()
    assert "mailbox sales" in text and "refused" in text and "mailbox gone" in text and "support" not in text.replace(
        "support@", "")
    assert "not-the-password-x7" not in text and "pw-of-gone-y8" not in text
    assert f"SMTP 127.0.0.1:{smtp_port}" in text
    metrics = await (await client.get("/metrics")).text()
    assert 'hub_mailbox_up{mailbox="support"} 1.0' in metrics
    assert 'hub_mailbox_up{mailbox="sales"} 0.0' in metrics and 'hub_mailbox_up{mailbox="gone"} 0.0' in metrics
    assert "not-the-password-x7" not in caplog.text
    assert "cannot send" in caplog.text and "smtp_password" in caplog.text


async def test_an_email_channel_with_no_mailbox_warns_what_to_set(
    aiohttp_client: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "hub.channels.email")
    settings = load_settings(None, environ={
        "HUB_DATABASE__URL": f"sqlite:///{tmp_path / 'hub.db'}", "HUB_CHANNELS__EMAIL__ENABLED": "true",
        "HUB_CHANNELS__EMAIL__ADDRESS": "support@hub.test", "HUB_CHANNELS__EMAIL__SMTP_PORT": str(_free_port()),
    })
    await aiohttp_client(build_app(settings))
    assert "enabled with no mailboxes" in caplog.text and "[[channels.email.mailboxes]]" in caplog.text


def test_mailbox_settings_from_indexed_variables_and_clear_errors(tmp_path: Any) -> None:
    conf = tmp_path / "hub.toml"
    conf.write_text('[channels.email]\nenabled = true\naddress = "s@x.test"\n'
                    '[[channels.email.mailboxes]]\nname = "support"\nhost = "imap.x.test"\nusername = "support"\n')
    s = load_settings(conf, environ={"HUB_CHANNELS__EMAIL__MAILBOXES__0__PASSWORD": "from-env"})
    (m,) = s.channels.email.mailboxes
    assert (m.name, m.host, m.password) == ("support", "imap.x.test", "from-env"), "the file's fields are kept"
    with pytest.raises(ConfigError, match="HUB_CHANNELS__EMAIL__MAILBOXES__2__PASSWORD: index 2, but only 1"):
        load_settings(conf, environ={"HUB_CHANNELS__EMAIL__MAILBOXES__2__PASSWORD": "x"})
    with pytest.raises(ConfigError, match=r"from HUB_CHANNELS__EMAIL__MAILBOXES; the JSON did not parse"):
        load_settings(conf, environ={"HUB_CHANNELS__EMAIL__MAILBOXES": '[{"name": "a",}]'})
    # A password that merely starts with a brace is a password.
    s = load_settings(conf, environ={"HUB_CHANNELS__EMAIL__MAILBOXES__0__PASSWORD": "{not json"})
    assert s.channels.email.mailboxes[0].password == "{not json"
