"""Settings: file + environment, validated with errors that name the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from hub.config import ConfigError, Settings, load_settings

EXAMPLE = Path(__file__).parent.parent / "config" / "hub.example.toml"


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _keys(ann, f"{prefix}{name}.")
        else:
            out.append(f"{prefix}{name}")
    return out


def test_defaults_need_no_file() -> None:
    s = load_settings(None, environ={})
    assert s.server.port == 8080
    assert s.database.url.startswith("sqlite:///")
    assert s.routing.default_queue in s.routing.queues


def test_example_file_loads_and_documents_every_setting() -> None:
    s = load_settings(EXAMPLE, environ={})
    assert s == Settings()  # the example shows the defaults
    text = EXAMPLE.read_text()
    sections = {m.group(1) for m in re.finditer(r"^#?\s*\[([\w.]+)\]", text, re.M)}
    for key in _keys(Settings):
        section, _, name = key.rpartition(".")
        if key == "routing.queues":
            assert "[routing.queues." in text
            continue
        assert section in sections, f"config/hub.example.toml has no [{section}] section"
        documented = re.search(rf"^#?\s*{name}\s*=", text, re.M) or f"[[{key}]]" in text
        assert documented, f"config/hub.example.toml does not document {key}"


def test_environment_overrides_file(tmp_path: Path) -> None:
    f = tmp_path / "hub.toml"
    f.write_text('[server]\nport = 9000\npublic_url = "https://a.example.com/"\n')
    s = load_settings(f, environ={"HUB_SERVER__PORT": "9100", "HUB_DATABASE__URL": "postgresql://u@h/db",
                                  "HUB_CHANNELS__API__WEBHOOK_SECRET": "s3cret", "UNRELATED": "x"})
    assert s.server.port == 9100
    assert s.server.public_url == "https://a.example.com"
    assert s.database.url == "postgresql://u@h/db"
    assert s.channels.api.webhook_secret == "s3cret"


def test_env_json_tables() -> None:
    s = load_settings(None, environ={
        "HUB_ROUTING__QUEUES": '{"support": {"title": "Support"}, "sales": {}}',
        "HUB_ROUTING__DEFAULT_QUEUE": "sales",
    })
    assert set(s.routing.queues) == {"support", "sales"}


@pytest.mark.parametrize(
    ("environ", "needle"),
    [
        (
            {"HUB_SERVER__PORT": "eighty"},
            "server.port: Input should be a valid integer, unable to parse string as an integer"
            " (from HUB_SERVER__PORT)",
        ),
        ({"HUB_SERVER__PORTT": "1"}, "server.portt: unknown setting"),
        ({"HUB_DATABASE__URL": "mysql://x"}, "database.url"),
        ({"HUB_IDENTITIES__DEFAULT_REGION": "XX"}, "identities.default_region"),
        (
            {"HUB_ROUTING__DEFAULT_QUEUE": "nope"},
            "routing.default_queue: unknown queue 'nope' (from HUB_ROUTING__DEFAULT_QUEUE)",
        ),
        (
            {"HUB_ROUTING__RULES": '[{"queue": "support", "colour": "red"}]'},
            "routing.rules[0]: unknown field(s) colour",
        ),
        ({"HUB_SERVER__PUBLIC_URL": "hub.example.com"}, "server.public_url"),
    ],
)
def test_invalid_settings_name_the_key(environ: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(None, environ=environ)
    assert needle in str(e.value)


def test_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, environ={})
    typo = tmp_path / "typo.toml"
    typo.write_text("[sever]\nport = 1\n")
    with pytest.raises(ConfigError, match=r"sever: unknown setting .*\(in .*typo.toml\)"):
        load_settings(typo, environ={})


def test_webhook_lease_must_outlast_a_post() -> None:
    with pytest.raises(ConfigError, match=r"lease_seconds \(20.0\) must be longer than webhooks\.timeout_seconds"):
        load_settings(None, environ={"HUB_WEBHOOKS__TIMEOUT_SECONDS": "30", "HUB_WEBHOOKS__LEASE_SECONDS": "20"})
