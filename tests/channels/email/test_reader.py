"""Big fetched batches are parsed in a worker process, read exactly as in the hub process, and the poller reads the
next batch while the one before it is stored."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.channels.email.reader import POOL_FROM, Reader, read_all
from tests.channels.email.dovecot import Dovecot, email_world, running_dovecot
from tests.channels.email.test_imap import count, mail, mailbox
from tests.channels.email.test_parse import CORPUS, OWN
from tests.waiting import eventually

until = functools.partial(eventually, within=60.0)


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    with running_dovecot(["support"]) as server:
        yield server


def corpus() -> list[bytes]:
    return [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]


@pytest.mark.parametrize("remote_images", [False, True])
async def test_the_corpus_reads_the_same_in_a_worker_process_as_in_the_hub_process(remote_images: bool) -> None:
    raws = corpus()
    assert len(raws) >= POOL_FROM
    reader = Reader("email", remote_images, OWN, processes=1)
    try:
        pooled = await reader.read(raws)
    finally:
        reader.close()
    assert reader.pooled == 1
    here = read_all(raws, "email", remote_images, OWN)
    for name, a, b in zip(sorted(p.name for p in CORPUS.glob("*.eml")), pooled, here, strict=True):
        # Everything stored: verdict, headers (meta), text, HTML, attachments (bytes and names), refs, fingerprint.
        assert a == b, name
        if a.inbound is not None and b.inbound is not None:
            # Sanitized HTML stays marked so: the store does not sanitize it a second time.
            assert type(a.inbound.html) is type(b.inbound.html), name


async def test_small_batches_are_read_in_the_hub_process_and_so_is_a_batch_whose_worker_died() -> None:
    raws = corpus()
    reader = Reader("email", False, OWN, processes=1)
    try:
        assert [p.message_id for p in await reader.read(raws[: POOL_FROM - 1])] == [
            p.message_id for p in read_all(raws[: POOL_FROM - 1], "email", False, OWN)]
        assert reader.pooled == 0 and reader._pool is None  # no process started for live mail
        await reader.read(raws)
        assert reader.pooled == 1 and reader._pool is not None
        workers = list(reader._pool._processes.values())  # type: ignore[union-attr]
        for w in workers:
            assert w.pid is not None
            os.kill(w.pid, signal.SIGKILL)
        for w in workers:
            await asyncio.to_thread(w.join, 30)
        # The batch is still read (in the hub process), with a warning, and the next big one gets a new worker.
        again = await reader.read(raws)
        assert [p.fingerprint for p in again] == [p.fingerprint for p in read_all(raws, "email", False, OWN)]
        assert reader.pooled == 1
        await reader.read(raws)
        assert reader.pooled == 2
    finally:
        reader.close()


async def test_the_poller_reads_the_next_batch_while_the_one_before_it_is_stored(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    for n in range(3 * POOL_FROM):
        dovecot.deliver("support", mail(n, sender=f"c{n}@example.com"))
    async with email_world(f"sqlite:///{tmp_path / 'hub.db'}", mailboxes=[mailbox(dovecot)],
                           fetch_batch=POOL_FROM) as w:
        (poller,) = w.channel.pollers
        assert poller.read is not None
        read, deliver = poller.read, poller.deliver
        reads: list[int] = []
        delivered: list[int] = []

        async def counted_read(raws: list[bytes]) -> list[Any]:
            got = await read(raws)
            reads.append(len(raws))
            return got

        async def deliver_once_the_next_batch_is_read(batch: list[tuple[bytes, dict[str, Any]]], ahead: Any) -> Any:
            k = len(delivered)  # this is batch k (from 0); batch k + 1 must be read before k is stored
            if k + 1 < 3:
                await until(lambda: _true(len(reads) >= k + 2), what="the next batch read during this one")
            assert ahead is not None and len(ahead) == len(batch)
            delivered.append(len(batch))
            return await deliver(batch, ahead)

        poller.read, poller.deliver = counted_read, deliver_once_the_next_batch_is_read
        await w.channel.start()
        await until(lambda: _eq(count(w), 3 * POOL_FROM), what="the import")
        assert reads == delivered == [POOL_FROM] * 3 and w.channel.reader.pooled == 3


async def _true(x: bool) -> bool:
    return x


async def _eq(got: Any, want: int) -> bool:
    return bool(await got == want)


_HUB = """
import asyncio, sys
from pathlib import Path
from hub.channels.email.reader import Reader

async def main() -> None:
    reader = Reader("email", False, frozenset(), processes=1)
    await reader.read([p.read_bytes() for p in sorted(Path(sys.argv[1]).glob("*.eml"))])
    Path(sys.argv[2]).write_text(" ".join(str(p.pid) for p in reader._pool._processes.values()))
    await asyncio.sleep(600)

if __name__ == "__main__":
    asyncio.run(main())
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status waits to be read


async def test_the_worker_ends_when_the_hub_process_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "hub_like.py"
    script.write_text(_HUB)
    pids = tmp_path / "workers"
    # No pipe to it: an orphaned worker would hold the pipe open, and the test would wait on it, not fail.
    proc = await asyncio.create_subprocess_exec(sys.executable, str(script), str(CORPUS), str(pids))
    try:
        await until(lambda: _true(pids.exists() and bool(pids.read_text().strip())), what="the worker to start")
        (worker,) = [int(p) for p in pids.read_text().split()]
        assert _running(worker)
    finally:
        proc.kill()
        await proc.wait()
    try:
        await until(lambda: _true(not _running(worker)), what="the orphaned worker to end")
    finally:
        if _running(worker):
            os.kill(worker, signal.SIGKILL)  # leave no process behind, even when failing


def test_the_hub_command_module_imports_neither_the_web_server_nor_the_settings() -> None:
    # A worker process the hub spawns imports the hub's main module (hub.cli, under `hub` or `python -m hub.cli`)
    # before it parses anything: aiohttp and pydantic there cost each worker start 0.3 s of CPU (issue 16 section 6).
    code = "import sys, hub.cli; print(' '.join(sorted(m for m in ('aiohttp', 'pydantic') if m in sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert loaded.stdout.strip() == ""
