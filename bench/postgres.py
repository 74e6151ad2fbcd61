"""A PostgreSQL server of a run's own (initdb + pg_ctl on a free port), so a fault can restart it: the soak's
"PostgreSQL restarted" and the fault suite's. The shared server at 127.0.0.1:5432 is never restarted: others use it."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.processes import free_port


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class PostgresServer:
    """Its data in a temporary folder of its own (removed by `close`); `restart` cuts every connection, as a crash
    would."""

    def __init__(self) -> None:
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if not initdb or not pg_ctl:
            raise FileNotFoundError("no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin")
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.dir, self.port = Path(tempfile.mkdtemp(prefix="hub-pg-")), free_port()
        self.data = self.dir / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        # initdb and the server refuse to run as root: as the postgres user then.
        self._as: list[str] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _ctl(self, *args: str) -> None:
        subprocess.run([*self._as, self.pg_ctl, "-D", str(self.data), *args], check=True, capture_output=True)

    def start(self) -> None:
        if not self.data.exists():
            if self._as:
                shutil.chown(self.dir, "postgres")
            subprocess.run([*self._as, self.initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres"],
                           check=True, capture_output=True)
        self._ctl("-l", str(self.dir / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def restart(self, down: float = 0.0) -> None:
        """Stopped at once (every connection cut, as a crash: `-m immediate`, recovery on start), left down for
        DOWN seconds, and started."""
        self._ctl("-m", "immediate", "stop")
        time.sleep(down)
        self.start()

    def close(self) -> None:
        """Stopped, and its data removed."""
        if self.data.exists():
            subprocess.run([*self._as, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
                           capture_output=True, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
