"""The servers under load, each a real process: `hub serve` on the run's database, and the bare aiohttp baseline."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def python_env() -> dict[str, str]:
    """This environment with the repository importable, wherever the benchmark was started from."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def hub_env(db_url: str) -> dict[str, str]:
    return dict(python_env(), HUB_DATABASE__URL=db_url, HUB_SERVER__LOG_LEVEL="warning")


def hub_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "hub.cli", *args]


def create_token(db_url: str) -> str:
    """An admin token from `hub tokens create` (which also brings the schema up to date)."""
    proc = subprocess.run(
        hub_command("tokens", "create", "--role", "admin", "--label", "bench"),
        env=hub_env(db_url), capture_output=True, text=True, timeout=120, check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"`hub tokens create` failed ({proc.returncode}): {proc.stderr}")
    return lines[-1].strip()


def _wait_ready(server: Server, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + path, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} was not ready on {server.url}{path} after {timeout:.0f}s:\n{server.log_tail()}")


@contextlib.contextmanager
def _running(
    name: str, cmd: list[str], env: dict[str, str], workdir: Path, port: int, ready: str, ready_timeout: float = 60.0,
) -> Iterator[Server]:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    server = Server(name, proc, port, log)
    try:
        _wait_ready(server, ready, ready_timeout)
        yield server
    finally:
        proc.terminate()  # SIGTERM: the hub drains in-flight requests and closes its database
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def hub_server(
    db_url: str, workdir: Path, extra_env: dict[str, str] | None = None, port: int | None = None,
    workers: int = 1, name: str = "hub", ready_timeout: float = 60.0,
) -> contextlib.AbstractContextManager[Server]:
    """`hub serve` on DB_URL; with WORKERS > 1, `hub serve --workers N` (its pid is the supervisor's). READY_TIMEOUT:
    how long it may take to answer /readyz (a big database's start-up takes longer)."""
    port = port or free_port()
    cmd = hub_command("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers))
    return _running(name, cmd, dict(hub_env(db_url), **(extra_env or {})), workdir, port, "/readyz", ready_timeout)


def bare_server(workdir: Path, db_url: str = "") -> contextlib.AbstractContextManager[Server]:
    """The bare baseline; its durable floor commits to PostgreSQL when DB_URL is a postgresql:// one, else SQLite."""
    port = free_port()
    cmd = [sys.executable, "-m", "bench.bare", "--port", str(port), "--sqlite", str(workdir / "bare.db")]
    if db_url.startswith(("postgresql://", "postgres://")):
        cmd += ["--postgres", db_url]
    return _running("bare", cmd, python_env(), workdir, port, "/healthz")


# -- what a server process uses (Linux /proc) ---------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds PID and its live child processes (the workers of `hub serve --workers N`) have
    used so far, all threads together (0.0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15 of proc(5))
    return own + sum(cpu_seconds(child) for child in children(pid))


def children(pid: int) -> list[int]:
    """PID's live child processes (Linux 3.5+: /proc/PID/task/TID/children)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


def rss_mb(pid: int) -> float:
    """PID's resident set size in MB (0.0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
