"""The `hub` command as a user runs it (real subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from hub.history.schema import LATEST, MIGRATIONS
from tests.conftest import free_port, wait_for

COMMANDS = [[], ["serve"], ["demo"], ["migrate"], ["tokens"], ["tokens", "create"], ["agents"], ["agents", "add"],
            ["agents", "list"], ["events"], ["events", "replay"], ["events", "list"], ["events", "show"]]


def hub(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], cwd=cwd, env=full_env, input=stdin,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "hub")
def test_help_everywhere(command: list[str], tmp_path: Path) -> None:
    out = hub(*command, "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: hub")


def test_tokens_agents_migrate(tmp_path: Path) -> None:
    env = {"HUB_DATABASE__URL": f"sqlite:///{tmp_path / 'h.db'}"}
    migrated = hub("migrate", cwd=tmp_path, env=env)
    versions = sorted(v for v, _, _ in MIGRATIONS)
    applied = ", ".join(map(str, versions))
    assert migrated.returncode == 0, migrated.stderr
    assert f"schema at version {LATEST} of {LATEST} (applied {applied})" in migrated.stdout
    assert "nothing to do" in hub("migrate", cwd=tmp_path, env=env).stdout
    created = hub("tokens", "create", "--role", "admin", cwd=tmp_path, env=env)
    assert created.returncode == 0
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("hub_") and len(token) > 30
    added = hub("agents", "add", "--name", "Alice", "--email", "Alice@Example.com", "--queue", "support",
                cwd=tmp_path, env=env, stdin="a long password\n")
    assert added.returncode == 0 and "alice@example.com" in added.stdout
    dup = hub("agents", "add", "--name", "A", "--email", "alice@example.com", "--password", "another one",
              cwd=tmp_path, env=env)
    assert dup.returncode == 2 and "already exists" in dup.stderr
    short = hub("agents", "add", "--name", "B", "--email", "b@example.com", "--password", "short", cwd=tmp_path,
                env=env)
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    noq = hub("agents", "add", "--name", "B", "--email", "b@example.com", "--password", "long enough",
              "--queue", "nope", cwd=tmp_path, env=env)
    assert noq.returncode == 2 and "unknown queue(s) nope" in noq.stderr
    listed = hub("agents", "list", cwd=tmp_path, env=env)
    assert "Alice" in listed.stdout and "support" in listed.stdout
    agent_token = hub("tokens", "create", "--role", "agent", "--agent", "alice@example.com", cwd=tmp_path, env=env)
    assert agent_token.returncode == 0 and agent_token.stdout.strip().splitlines()[-1].startswith("hub_")
    orphan = hub("tokens", "create", "--role", "agent", cwd=tmp_path, env=env)
    assert orphan.returncode == 2 and "belongs to an agent" in orphan.stderr
    replay = hub("events", "replay", cwd=tmp_path, env=env)
    assert replay.returncode == 0 and "replayed: 0 event(s) stored; 0 still failed/pending" in replay.stdout


def test_invalid_config_stops_with_the_key(tmp_path: Path) -> None:
    out = hub("serve", cwd=tmp_path, env={"HUB_SERVER__PORT": "99999"})
    assert out.returncode == 2
    assert "server.port" in out.stderr and "HUB_SERVER__PORT" in out.stderr
    missing = hub("serve", "--config", "nope.toml", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.toml does not exist" in missing.stderr


def test_serve_with_no_config_runs_embedded_default(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "serve", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def up() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    return bool(json.load(r)["database"] == "sqlite")
            except OSError:
                return False

        wait_for(up, timeout=30)
        assert (tmp_path / "hub-data" / "hub.db").exists()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "shutting down" in out


def test_events_show_and_replay_of_rejected_events(tmp_path: Path) -> None:
    """`hub events show ID` tells who sent a flagged event and why; `hub events replay --status rejected` reads
    them again with the configured channels (here: one a fix made readable, one still without a sender)."""
    import asyncio
    import base64

    from tests.channels.email.dovecot import email_world

    corpus = Path(__file__).parent / "channels" / "email" / "emails"
    url = f"sqlite:///{tmp_path / 'h.db'}"

    async def prepare() -> tuple[int, int]:
        async with email_world(url) as w:
            assert await w.channel.receive((corpus / "no_sender.eml").read_bytes()) == "flagged"
            raw = (corpus / "list_post.eml").read_bytes()
            fixed = await w.ingest.flag("email", "list.7@lists.example.org",
                                        {"eml_base64": base64.b64encode(raw).decode()}, "taken for an auto-reply",
                                        "automatic")
            (nosender,) = [j["id"] for j in await w.journal() if j["reason"] == "no_sender"]
            return int(nosender), fixed

    nosender, fixed = asyncio.run(prepare())
    env = {"HUB_DATABASE__URL": url, "HUB_CHANNELS__EMAIL__ENABLED": "true",
           "HUB_CHANNELS__EMAIL__ADDRESS": "support@hub.test"}
    listed = hub("events", "list", "--flagged", cwd=tmp_path, env=env)
    assert "(no_sender)" in listed.stdout and "(automatic)" in listed.stdout
    shown = hub("events", "show", str(nosender), cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "about:   who am I" in shown.stdout and "no usable sender address" in shown.stdout
    assert "There is no From header in this email." in shown.stdout
    raw = hub("events", "show", str(nosender), "--raw", cwd=tmp_path, env=env)
    assert raw.stdout.replace("\r\n", "\n") == (corpus / "no_sender.eml").read_text().replace("\r\n", "\n")
    replay = hub("events", "replay", "--status", "rejected", cwd=tmp_path, env=env)
    assert replay.returncode == 1, "one is still flagged"
    assert f"{fixed:>6}  done     stored" in replay.stdout
    assert f"{nosender:>6}  rejected still unreadable" in replay.stdout
    assert "replayed: 1 event(s) stored or applied; 1 still flagged" in replay.stdout
    again = hub("events", "show", str(nosender), cwd=tmp_path, env=env)
    assert "replay by cli" in again.stdout
    assert hub("events", "show", "999", cwd=tmp_path, env=env).returncode == 1
