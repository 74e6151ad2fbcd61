"""Reading a fetched batch of emails, in a worker process when it is big enough to pay for it.

Parsing is pure-Python CPU work: in a thread of the hub process it holds the interpreter lock the event loop (the
IMAP client, the API) and the database writer need, so a big import ran at the speed of one core. A worker process
parses on another core; its results come back pickled (about 50 us an email against 500-800 us of parsing). Small
batches (live mail, one at a time) are parsed in a thread: no process to start, no round trip.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from hub.channels.email.parse import ParsedEmail, parse_email

log = logging.getLogger("hub.channels.email")

#: batches smaller than this are parsed in a thread of the hub process
POOL_FROM = 16


def read_all(raws: list[bytes], channel: str, allow_remote_images: bool, own_addresses: frozenset[str]) -> list[
        ParsedEmail]:
    """Every email of RAWS parsed (what a worker process runs)."""
    return [parse_email(raw, channel=channel, allow_remote_images=allow_remote_images, own_addresses=own_addresses)
            for raw in raws]


class Reader:
    """Parses batches of emails for one channel: in PROCESSES worker processes (started at the first big batch,
    stopped by `close`), or in a thread when PROCESSES is 0 or the batch is small."""

    def __init__(self, channel: str, allow_remote_images: bool, own_addresses: frozenset[str],
                 processes: int) -> None:
        self.args = (channel, allow_remote_images, own_addresses)
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        #: batches parsed in a worker process (tests check the path they mean to test was taken)
        self.pooled = 0

    async def read(self, raws: list[bytes]) -> list[ParsedEmail]:
        if self.processes <= 0 or len(raws) < POOL_FROM:
            return await asyncio.to_thread(read_all, raws, *self.args)
        if self._pool is None:
            # spawn, not fork: the hub process has threads (the database writer) a fork would copy mid-lock.
            self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"))
        # A batch per call, not an email: one round trip and one pickle each way for the lot.
        try:
            parsed = await asyncio.get_running_loop().run_in_executor(self._pool, read_all, raws, *self.args)
        except BrokenProcessPool as e:
            # A worker died (killed, out of memory): this batch is parsed here, the next starts a new pool.
            log.warning("email parsing worker process died (%s); parsing this batch in the hub process", e)
            self.close()
            return await asyncio.to_thread(read_all, raws, *self.args)
        self.pooled += 1
        return parsed

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
