"""Where the hub's time goes under load (`--profile`): py-spy samples the `hub serve` process during an extra run,
kept apart from the measured ones so sampling does not skew the figures; summarized per thread.

py-spy comes with the `dev` extra (`make` installs it into .venv); it needs ptrace: root or CAP_SYS_PTRACE.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

RATE = 200
_LINE = re.compile(r" \(([^()]*?):\d+\)$")
#: on top of a stack, these mean the thread waits for work or for I/O (py-spy still samples them when the wait
#: ends in a wait for the GIL); they are counted apart from the work
WAITING = frozenset({"_worker (concurrent/futures/thread.py)", "EpollSelector.select (selectors.py)"})


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass
class ThreadProfile:
    name: str
    #: samples doing work (a pool's threads summed); py-spy cannot tell running from waiting for the GIL
    samples: int
    #: samples in WAITING
    waiting: int
    #: (function (file), samples with it anywhere on the stack), most first
    inclusive: list[tuple[str, int]] = field(default_factory=list)
    #: (function (file), samples with it on top of the stack), most first
    self_time: list[tuple[str, int]] = field(default_factory=list)


def _function(frame: str) -> str:
    """`insert_message (hub/history/store.py:250)` -> `insert_message (hub/history/store.py)`: lines merged."""
    return _LINE.sub(r" (\1)", frame)


def summarize(raw: str, top: int = 14) -> list[ThreadProfile]:
    """Per-thread summary of py-spy's `--threads --format raw` output (collapsed stacks, one per line)."""
    stacks: dict[str, Counter[str]] = {}
    tops: dict[str, Counter[str]] = {}
    totals: Counter[str] = Counter()
    waits: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        # "thread (123): hub-db-read_2" -> "hub-db-read": a pool's threads are summed
        thread = re.sub(r"_\d+$", "", frames[0].split(": ", 1)[-1])
        n = int(count)
        if _function(frames[-1]) in WAITING:
            waits[thread] += n
            continue
        totals[thread] += n
        tops.setdefault(thread, Counter())[_function(frames[-1])] += n
        inclusive = stacks.setdefault(thread, Counter())
        for fn in {_function(f) for f in frames[1:]}:
            inclusive[fn] += n
    out = []
    for thread, n in totals.most_common():
        # hub/cli.py frames sit under every sample of the main thread and say nothing
        ours = [(fn, c) for fn, c in stacks[thread].most_common() if "(hub/" in fn and "hub/cli.py" not in fn]
        out.append(ThreadProfile(thread, n, waits[thread], ours[:top], tops[thread].most_common(top // 2)))
    return out


def render(title: str, threads: list[ThreadProfile], seconds: float, requests: int, gil: bool = False) -> str:
    """Each figure as microseconds per request: samples / rate / requests. GIL: sampled with `sampling(gil=True)`."""
    per = 1e6 / RATE / max(1, requests)
    lines = [
        f"Profile: {title}: {requests:,} requests in {seconds:g} s, {1e6 * seconds / max(1, requests):,.0f} us of "
        f"wall time per request (py-spy at {RATE}/s; us per request, "
        f"{'only the thread holding the GIL sampled' if gil else 'GIL waits included'})"
    ]
    for t in threads:
        if t.samples < 0.05 * seconds * RATE:
            continue
        lines.append(f"  thread {t.name}: {t.samples * per:,.0f} us working, {t.waiting * per:,.0f} us waiting "
                     "for work or I/O")
        lines += [f"    on top  {c * per:7,.0f}  {fn}" for fn, c in t.self_time]
        lines += [f"    within  {c * per:7,.0f}  {fn}" for fn, c in t.inclusive]
    return "\n".join(lines)


@contextmanager
def sampling(pid: int, seconds: float, out: Path, gil: bool = False) -> Iterator[None]:
    """Sample PID for SECONDS while the body runs; the collapsed stacks land in OUT. GIL: only the thread holding
    the interpreter lock is sampled (py-spy --gil), so a thread's figures are its Python work, its waits left out."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
    cmd = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(RATE),
           "--threads", "--format", "raw", "--output", str(out), *(["--gil"] if gil else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield
    finally:
        _, err = proc.communicate(timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"py-spy failed ({proc.returncode}): {err.strip()}")
