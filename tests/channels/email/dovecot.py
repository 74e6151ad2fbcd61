"""A real Dovecot IMAP server for tests: unprivileged, on a free high port, from a config written here."""

from __future__ import annotations

import contextlib
import getpass
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
PASSWORD = "imap-test-pass"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _version() -> tuple[int, ...]:
    out = subprocess.run([DOVECOT, "--version"], capture_output=True, text=True, check=True).stdout
    return tuple(int(p) for p in out.split()[0].split(".")[:2])


class Dovecot:
    """One running server. `users` each get a Maildir under `home/<user>`; `stop()`/`start()` simulate an outage."""

    def __init__(self, base: Path, users: list[str], tls: tuple[Path, Path] | None = None) -> None:
        self.base = base
        self.users = users
        self.port = _free_port()
        #: IMAPS (TLS from the first byte) on a second port when TLS is (certificate, key) PEM files
        self.tls_port = _free_port() if tls else 0
        self.host = "127.0.0.1"
        self.password = PASSWORD
        self.proc: subprocess.Popen[bytes] | None = None
        # Dovecot never runs mail processes as root: as root, mail belongs to an unprivileged account.
        if os.geteuid() == 0:
            self.mail_user, internal, login = "nobody", "dovecot", "dovenull"
        else:
            self.mail_user = internal = login = getpass.getuser()
        pw = pwd.getpwnam(self.mail_user)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.config = base / "dovecot.conf"
        auth = "auth_allow_cleartext = yes" if _version() >= (2, 4) else "disable_plaintext_auth = no"
        (base / "run").mkdir()
        (base / "state").mkdir()
        (base / "home").mkdir()
        ssl = f"ssl = yes\nssl_cert = <{tls[0]}\nssl_key = <{tls[1]}" if tls else "ssl = no"
        (base / "passwd").write_text("".join(f"{u}:{{PLAIN}}{PASSWORD}::::::\n" for u in users))
        self.config.write_text(
            f"""
protocols = imap
listen = 127.0.0.1
{ssl}
{auth}
auth_mechanisms = plain login
base_dir = {base}/run
state_dir = {base}/state
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 0
shutdown_clients = yes
mail_location = maildir:~/Maildir
log_path = {base}/dovecot.log
protocol imap {{
  mail_max_userip_connections = 100
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = static
  args = uid={self.uid} gid={self.gid} home={base}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
    {"ssl = yes" if tls else ""}
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
        )
        for p in (base / "home", base / "passwd"):
            os.chown(p, self.uid, self.gid) if os.geteuid() == 0 else None
        os.chmod(base, 0o755)

    def start(self, timeout: float = 20.0) -> None:
        self.proc = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so stop() takes the per-connection processes too
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"dovecot exited: {err}\n{self.log()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=1) as s:
                s.settimeout(5)
                if s.recv(100).startswith(b"* OK"):
                    return
            time.sleep(0.1)
        raise RuntimeError(f"dovecot did not answer on port {self.port}\n{self.log()}")

    def stop(self) -> None:
        """Stop the server and drop every client connection, as a crash or restart of the mail server would."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            # Per-connection processes may outlive the master by a moment.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            if self.proc.stderr is not None:
                self.proc.stderr.close()
        self.proc = None

    def log(self) -> str:
        p = self.base / "dovecot.log"
        return p.read_text(errors="replace")[-4000:] if p.exists() else ""

    def maildir(self, user: str) -> Path:
        return self.base / "home" / user / "Maildir"

    def deliver(self, user: str, raw: bytes, name: str | None = None) -> Path:
        """Drop one message into USER's INBOX the way a local delivery agent does (Maildir tmp -> new)."""
        md = self.maildir(user)
        for sub in ("tmp", "new", "cur"):
            (md / sub).mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            for p in (self.base / "home" / user, md, md / "tmp", md / "new", md / "cur"):
                os.chown(p, self.uid, self.gid)
        name = name or f"{time.time_ns()}.P{os.getpid()}.hubtest"
        tmp = md / "tmp" / name
        tmp.write_bytes(raw)
        if os.geteuid() == 0:
            os.chown(tmp, self.uid, self.gid)
        dest = md / "new" / name
        os.rename(tmp, dest)
        return dest

    def drop_connections(self) -> int:
        """Kill the server's IMAP session processes: clients see their sockets close with no goodbye, as on a
        network failure. The server itself stays up."""
        assert self.proc is not None
        killed = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                comm = stat.read_text().split("(", 1)[1].rsplit(")", 1)[0]
                if int(fields[2]) == self.proc.pid and comm == "imap":  # fields[2] is the process group
                    os.kill(int(stat.parent.name), signal.SIGKILL)
                    killed += 1
        return killed

    def reset_uidvalidity(self, user: str) -> None:
        """Make the server hand out a new UIDVALIDITY for INBOX, as after a mailbox rebuild or migration."""
        md = self.maildir(user)
        for f in ("dovecot-uidlist", "dovecot.index", "dovecot.index.cache", "dovecot.index.log"):
            (md / f).unlink(missing_ok=True)
        # Dovecot bases a new UIDVALIDITY on the clock; make sure it differs from the old one.
        time.sleep(1.1)


@contextlib.contextmanager
def running_dovecot(users: list[str], tls: tuple[Path, Path] | None = None) -> Iterator[Dovecot]:
    if not os.path.exists(DOVECOT):
        pytest.skip("dovecot is not installed (Debian: apt install dovecot-imapd)")
    base = Path(tempfile.mkdtemp(prefix="hub-dovecot-"))
    server = Dovecot(base, users, tls)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


# -- the hub side of the email tests: a real store, ingest, outbox and the email channel -------------------------


class EmailWorld:
    def __init__(self, db: Any, ingest: Any, outbox: Any, host: Any, channel: Any, channels: dict[str, Any]) -> None:
        self.db, self.ingest, self.outbox, self.host = db, ingest, outbox, host
        self.channel, self.channels = channel, channels

    async def journal(self) -> list[dict[str, Any]]:
        rows: list[Any] = await self.db.read(lambda tx: tx.all("SELECT * FROM journal ORDER BY id"))
        return [dict(r) for r in rows]

    async def messages(self) -> list[Any]:
        from hub.history import store

        def load(tx: Any) -> list[Any]:
            ids = [r["id"] for r in tx.all("SELECT id FROM messages ORDER BY id")]
            return [store.message(tx, i) for i in ids]

        found: list[Any] = await self.db.read(load)
        return found


@contextlib.asynccontextmanager
async def email_world(db_url: str, **email: Any) -> AsyncIterator[EmailWorld]:
    """The hub's real inbound and outbound paths with an email channel configured from EMAIL."""
    from hub.channel_host import ChannelHost
    from hub.channels.base import Channel
    from hub.channels.email.channel import EmailChannel
    from hub.config import EmailChannelSettings, OutboxSettings, load_settings
    from hub.events import MemoryBus
    from hub.history.db import open_database
    from hub.history.schema import migrate
    from hub.ingest import Ingest
    from hub.metrics import Metrics
    from hub.outbox import Outbox

    settings = load_settings(None, environ={"HUB_DATABASE__URL": db_url})
    db = open_database(db_url)
    await migrate(db)
    bus = MemoryBus()
    ingest = Ingest(db, settings, bus, Metrics())
    channels: dict[str, Channel] = {}
    outbox = Outbox(db, channels, OutboxSettings(max_attempts=3, base_delay_seconds=0.05, max_delay_seconds=0.1),
                    bus, Metrics())
    host = ChannelHost(ingest, outbox)
    conf = {"enabled": True, "address": "support@hub.test", "from_name": "Hub Support", **email}
    channel = EmailChannel(host, EmailChannelSettings.model_validate(conf))
    channels["email"] = channel
    try:
        yield EmailWorld(db, ingest, outbox, host, channel, channels)
    finally:
        await channel.stop()
        await db.close()
