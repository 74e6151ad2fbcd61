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
def _running(name: str, cmd: list[str], env: dict[str, str], workdir: Path, port: int, ready: str) -> Iterator[Server]:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    server = Server(name, proc, port, log)
    try:
        _wait_ready(server, ready)
        yield server
    finally:
        proc.terminate()  # SIGTERM: the hub drains in-flight requests and closes its database
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def hub_server(db_url: str, workdir: Path) -> contextlib.AbstractContextManager[Server]:
    port = free_port()
    cmd = hub_command("serve", "--host", "127.0.0.1", "--port", str(port))
    return _running("hub", cmd, hub_env(db_url), workdir, port, "/readyz")


def bare_server(workdir: Path) -> contextlib.AbstractContextManager[Server]:
    port = free_port()
    cmd = [sys.executable, "-m", "bench.bare", "--port", str(port), "--sqlite", str(workdir / "bare.db")]
    return _running("bare", cmd, python_env(), workdir, port, "/healthz")
