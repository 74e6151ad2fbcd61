"""The load generator: `wrk` with a generated Lua script when installed, else an aiohttp client in its own process.

Both send the same requests: for inbound, a POST with a unique external_id per request and an identity drawn from a
pool of distinct customers (every fifth an email, the rest phone numbers); for reads, GETs cycling over given paths.
"""

from __future__ import annotations

import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from typing import Any, Literal

from bench.processes import cpu_seconds, python_env

RESULT_MARK = "BENCH_RESULT "
INBOUND_PATH = "/api/v1/inbound"
Tool = Literal["wrk", "python"]


@dataclass(frozen=True)
class Load:
    base_url: str
    kind: Literal["inbound", "get"]
    token: str = ""
    #: get: the paths requested, in order, round and round
    paths: tuple[str, ...] = ()
    #: inbound: every external_id starts with it, so a run's messages can be counted in the store
    tag: str = "bench"
    #: inbound: how many distinct customers the messages come from
    identities: int = 5000
    #: inbound: where the messages are posted
    path: str = INBOUND_PATH
    seed: int = 1


@dataclass
class LoadResult:
    tool: Tool
    seconds: float
    #: requests written; more than the responses when the generator stopped with requests in flight
    sent: int
    statuses: dict[int, int]
    #: connect, read, write and timeout errors: requests that got no HTTP answer
    socket_errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    #: CPU seconds the server process used during the run (all its threads), and the load generator's own
    server_cpu: float = 0.0
    loadgen_cpu: float = 0.0

    @property
    def responses(self) -> int:
        return sum(self.statuses.values())

    @property
    def ok(self) -> int:
        return sum(n for code, n in self.statuses.items() if 200 <= code < 300)

    @property
    def non_2xx(self) -> int:
        return self.responses - self.ok

    @property
    def rps(self) -> float:
        return self.responses / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_response(self) -> float:
        """The server's CPU milliseconds per answered request (for the hub: per stored message)."""
        return 1000 * self.server_cpu / self.responses if self.responses else 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["statuses"] = {str(k): v for k, v in sorted(self.statuses.items())}
        out.update(rps=self.rps, responses=self.responses, ok=self.ok, non_2xx=self.non_2xx,
                   cpu_ms_per_response=self.cpu_ms_per_response)
        return out


def combine(runs: list[LoadResult]) -> LoadResult:
    """Rounds of one load as one result: counts summed; p50, p99 the median over the rounds (wrk reports
    percentiles, not samples, so they cannot be pooled); max the largest."""
    statuses: dict[int, int] = {}
    for r in runs:
        for code, n in r.statuses.items():
            statuses[code] = statuses.get(code, 0) + n
    return LoadResult(
        tool=runs[0].tool,
        seconds=sum(r.seconds for r in runs),
        sent=sum(r.sent for r in runs),
        statuses=statuses,
        socket_errors=sum(r.socket_errors for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        max_ms=max(r.max_ms for r in runs),
        server_cpu=sum(r.server_cpu for r in runs),
        loadgen_cpu=sum(r.loadgen_cpu for r in runs),
    )


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def inbound_body(tag: str, worker: int, counter: int, n: int) -> dict[str, str]:
    """The inbound request the Python generator sends; the Lua script below builds the same one."""
    identity = f"email:customer{n}@example.com" if n % 5 == 0 else f"phone:+1{4150000000 + n}"
    return {
        "identity": identity,
        "text": f"bench message {counter} from customer {n}",
        "external_id": f"{tag}-{worker}-{counter}",
        "name": f"Customer {n}",
    }


def available_tool(prefer: Tool | None = None) -> Tool:
    if prefer == "python":
        return "python"
    if shutil.which("wrk"):
        return "wrk"
    if prefer == "wrk":
        raise RuntimeError("wrk is not installed (Debian: apt-get install -y wrk); drop --loadgen wrk to use Python")
    return "python"


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def run_load(load: Load, tool: Tool, concurrency: int, seconds: float, server_pid: int | None = None) -> LoadResult:
    """One run; with SERVER_PID, the CPU that process used meanwhile is counted too. The generator's own CPU is
    that of the child process it runs in (wrk or bench.pyload); one run at a time, so the children's total says."""
    server0, gen0 = cpu_seconds(server_pid) if server_pid else 0.0, _children_cpu()
    result = _run_wrk(load, concurrency, seconds) if tool == "wrk" else _run_python(load, concurrency, seconds)
    result.loadgen_cpu = _children_cpu() - gen0
    if server_pid:
        result.server_cpu = cpu_seconds(server_pid) - server0
    return result


# -- wrk -----------------------------------------------------------------------------------------------------------

_LUA = """
-- Generated by bench/load.py for one run.
local kind = %(kind)s
local paths = {%(paths)s}
local tag = %(tag)s
local identities = %(identities)d
wrk.headers["Content-Type"] = "application/json"
if %(token)s ~= "" then wrk.headers["Authorization"] = "Bearer " .. %(token)s end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

counter = 0
counts = {}

function init(args)
  math.randomseed(%(seed)d * 1000 + tid)
end

function request()
  counter = counter + 1
  if kind == "get" then
    return wrk.format("GET", paths[(counter - 1) %% #paths + 1])
  end
  local n = math.random(identities)
  local identity
  if n %% 5 == 0 then
    identity = string.format("email:customer%%d@example.com", n)
  else
    identity = string.format("phone:+1%%d", 4150000000 + n)
  end
  local body = string.format(
    '{"identity": "%%s", "text": "bench message %%d from customer %%d", ' ..
    '"external_id": "%%s-%%d-%%d", "name": "Customer %%d"}',
    identity, counter, n, tag, tid, counter, n)
  return wrk.format("POST", %(path)s, nil, body)
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local statuses, sent = {}, 0
  for _, t in ipairs(threads) do
    sent = sent + t:get("counter")
    for code, n in pairs(t:get("counts")) do
      table.insert(statuses, string.format('"%%d": %%d', code, n))
    end
  end
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"duration_us": %%d, "sent": %%d, "statuses": [{%%s}], "socket_errors": %%d, ' ..
    '"p50_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.duration, sent, table.concat(statuses, "}, {"), e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def _lua_str(s: str) -> str:
    return json.dumps(s)  # a JSON string of printable ASCII is a valid Lua string literal


def wrk_script(load: Load) -> str:
    return _LUA % {
        "kind": _lua_str(load.kind),
        "paths": ", ".join(_lua_str(p) for p in load.paths),
        "tag": _lua_str(load.tag),
        "identities": load.identities,
        "token": _lua_str(load.token),
        "seed": load.seed,
        "path": _lua_str(load.path),
        "mark": RESULT_MARK,
    }


def parse_wrk(stdout: str) -> LoadResult:
    line = next((ln for ln in stdout.splitlines() if ln.startswith(RESULT_MARK)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result line:\n{stdout[-2000:]}")
    raw = json.loads(line[len(RESULT_MARK) :])
    statuses: dict[int, int] = {}
    for per_thread in raw["statuses"]:
        for code, n in per_thread.items():
            statuses[int(code)] = statuses.get(int(code), 0) + int(n)
    return LoadResult(
        tool="wrk",
        seconds=raw["duration_us"] / 1e6,
        sent=int(raw["sent"]),
        statuses=statuses,
        socket_errors=int(raw["socket_errors"]),
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
    )


def _run_wrk(load: Load, concurrency: int, seconds: float) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-") as script:
        script.write(wrk_script(load))
        script.flush()
        # One wrk thread: on a small machine the server under test needs the other cores.
        cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
               "-s", script.name, load.base_url]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return parse_wrk(proc.stdout)


# -- the Python fallback -------------------------------------------------------------------------------------------


def _run_python(load: Load, concurrency: int, seconds: float) -> LoadResult:
    spec = {"load": asdict(load), "concurrency": concurrency, "seconds": seconds}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.pyload"], input=json.dumps(spec), capture_output=True, text=True,
        timeout=seconds + 120, env=python_env(), check=False,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARK)), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"the Python load generator failed ({proc.returncode}): {proc.stderr[-2000:]}")
    raw = json.loads(line[len(RESULT_MARK) :])
    raw["statuses"] = {int(k): v for k, v in raw["statuses"].items()}
    return LoadResult(**raw)
