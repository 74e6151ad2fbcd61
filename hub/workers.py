"""`hub serve --workers N`: a small supervisor running N `hub serve` processes that share one port (SO_REUSEPORT, the
kernel spreads connections), restarting one that dies, stopping them all on SIGTERM/SIGINT, and giving up when
workers keep failing at start. The workers share nothing but the store, Redis, the port and a directory of metrics
files (so /metrics on any worker gives the whole hub's figures)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from typing import Literal

from prometheus_client import multiprocess

from hub.config import Settings
from hub.metrics import MULTIPROCESS_DIR

log = logging.getLogger("hub.workers")

#: a worker that exits this many times in a row before it serves: the supervisor stops everything and exits 1
MAX_FAILED_STARTS = 3
#: the wait before restarting a worker, doubled after each restart up to MAX_BACKOFF, back to FIRST_BACKOFF once a
#: worker has served for STEADY_SECONDS
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
STEADY_SECONDS = 30.0
#: on top of server.shutdown_timeout_seconds, what a worker gets to close its tasks and connections before SIGKILL
CLOSE_GRACE_SECONDS = 15.0


def worker_count(value: int | Literal["auto"]) -> int:
    """server.workers as a number of processes: 0 or "auto" is one per core this process may run on."""
    if value == "auto" or value == 0:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return int(value)


def refusal(settings: Settings, workers: int) -> str | None:
    """Why SETTINGS cannot run as WORKERS processes (None when they can): every worker must see the same store,
    routing state and events, or two of them would decide apart."""
    if workers <= 1:
        return None
    wanted = []
    if settings.database.url.startswith("sqlite:"):
        wanted.append('database.url is SQLite, a file of one process: set database.url = "postgresql://USER@HOST/DB" '
                      "(HUB_DATABASE__URL)")
    if settings.routing.backend != "redis":
        wanted.append('routing.backend is "memory", private to each process: set routing.backend = "redis" and '
                      "routing.redis_url (HUB_ROUTING__BACKEND, HUB_ROUTING__REDIS_URL)")
    if settings.events.backend != "redis":
        wanted.append('events.backend is "memory": a console on one worker would miss what happens on another; set '
                      'events.backend = "redis" (HUB_EVENTS__BACKEND; events.redis_url defaults to routing.redis_url)')
    if settings.metrics.enabled and settings.metrics.listen:
        wanted.append("metrics.listen: every worker would bind that address; leave it empty (any worker then "
                      "answers /metrics on the shared port with the figures of all)")
    telegram = settings.channels.telegram
    polling = (telegram.bot_token and telegram.mode == "polling") or any(b.mode == "polling" for b in telegram.bots)
    if telegram.enabled and polling:
        wanted.append('channels.telegram: a bot in mode = "polling"; Telegram lets one process poll a bot, use '
                      'mode = "webhook"')
    if not wanted:
        return None
    return (f"server.workers = {workers} (--workers) runs {workers} hub processes, which must share their state:\n"
            + "\n".join(f"  {w}" for w in wanted)
            + "\n  (or run one process: --workers 1)")


def die_with_parent() -> None:
    """A worker goes when its supervisor goes, even by SIGKILL (Linux: prctl PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to HOST:PORT with SO_REUSEPORT and never listening: it picks the port when PORT is 0, fails
    at once when another program holds it, and keeps it for the workers' restarts. Connections go only to listeners."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class Supervisor:
    """Runs WORKERS copies of `hub serve` on HOST:PORT; `run()` returns the exit code."""

    def __init__(self, workers: int, host: str, port: int, shutdown_timeout: float,
                 config: str | None = None) -> None:
        self.workers, self.host, self.port = workers, host, port
        self.shutdown_timeout = shutdown_timeout
        self.config = config
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = asyncio.Event()
        self.gave_up = False
        #: where the workers write their metrics, so a scrape of any worker reads all (made and removed by run())
        self.metrics_dir = ""

    def command(self, ready_fd: int) -> list[str]:
        cmd = [sys.executable, "-m", "hub.cli", "serve", "--host", self.host, "--port", str(self.port),
               "--workers", "1", "--supervised-fd", str(ready_fd)]
        return cmd + (["--config", self.config] if self.config else [])

    async def run(self) -> int:
        try:
            reserved = reserve_port(self.host, self.port)
        except OSError as e:
            log.error("cannot use %s:%d for the workers: %s", self.host, self.port, e)
            return 1
        self.port = int(reserved.getsockname()[1])
        # A directory of this run's own: a previous run's files would add its counts to this one's.
        self.metrics_dir = tempfile.mkdtemp(prefix="hub-metrics-")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        log.info("serving on http://%s:%d with %d workers (supervisor pid %d, their metrics in %s)", self.host,
                 self.port, self.workers, os.getpid(), self.metrics_dir)
        try:
            await asyncio.gather(*(self._slot(n) for n in range(1, self.workers + 1)))
        finally:
            reserved.close()
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
        if self.gave_up:
            return 1
        log.info("all workers stopped")
        return 0

    def stop(self) -> None:
        """SIGTERM to every worker: each drains its requests and closes (SIGINT from a terminal reaches them too)."""
        if not self.stopping.is_set():
            log.info("stopping %d workers", len(self.procs))
        self.stopping.set()
        for proc in self.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)

    async def _start(self) -> tuple[asyncio.subprocess.Process, asyncio.Task[bytes], asyncio.BaseTransport]:
        """A worker, and a task that reads b"r" when it serves (b"" when it exits before that)."""
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(*self.command(write_fd), pass_fds=(write_fd,),
                                                        env=os.environ | {MULTIPROCESS_DIR: self.metrics_dir})
        finally:
            os.close(write_fd)
        reader = asyncio.StreamReader()
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", 0))
        return proc, asyncio.create_task(reader.read(1)), transport

    async def _slot(self, n: int) -> None:
        """Worker N for the supervisor's lifetime: started, and started again after it dies, with backoff."""
        loop = asyncio.get_running_loop()
        failed, delay = 0, FIRST_BACKOFF
        while not self.stopping.is_set():
            proc, ready, pipe = await self._start()
            self.procs[n] = proc
            if self.stopping.is_set():  # a signal came while it started: it was not among those told to stop
                self.stop()
            log.info("worker %d started (pid %d)", n, proc.pid)
            began = loop.time()
            code = await self._wait(proc)
            # Its counters stay in the sum (a restart never makes a counter go back); its live gauges go.
            multiprocess.mark_process_dead(proc.pid, self.metrics_dir)  # type: ignore[no-untyped-call]
            served = await ready == b"r"
            pipe.close()
            if self.stopping.is_set():
                log.info("worker %d (pid %d) stopped with code %s", n, proc.pid, code)
                return
            if served:
                failed = 0
                if loop.time() - began >= STEADY_SECONDS:
                    delay = FIRST_BACKOFF
            else:
                failed += 1
                if failed >= MAX_FAILED_STARTS:
                    log.error("worker %d exited %d times in a row before serving (last exit code %s): giving up, "
                              "see its log above", n, failed, code)
                    self.gave_up = True
                    self.stop()
                    return
            log.warning("worker %d (pid %d) exited with code %s%s; starting it again in %.1fs", n, proc.pid, code,
                        "" if served else " before serving", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            delay = min(delay * 2, MAX_BACKOFF)

    async def _wait(self, proc: asyncio.subprocess.Process) -> int:
        """PROC's exit code; once stopping, SIGKILL after the drain and close it was given."""
        waiting = asyncio.ensure_future(proc.wait())
        stopping = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not waiting.done():
            try:
                return await asyncio.wait_for(waiting, self.shutdown_timeout + CLOSE_GRACE_SECONDS)
            except TimeoutError:
                log.error("worker pid %d did not stop in time: killing it", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                return await proc.wait()
        return waiting.result()


def run_supervisor(settings: Settings, workers: int, config: str | None) -> int:
    """`hub serve` with several workers: refuse what cannot be shared, else supervise until stopped."""
    why = refusal(settings, workers)
    if why is not None:
        print(f"hub: {why}", file=sys.stderr)
        return 2
    supervisor = Supervisor(workers, settings.server.host, settings.server.port,
                            settings.server.shutdown_timeout_seconds, config)
    return asyncio.run(supervisor.run())
