"""The run directory: ``run.json`` metadata, ``requests.jsonl``, ``server.jsonl``, ``audio/``, logs.

With several client processes, the parent alone writes ``run.json`` and ``requests.jsonl``; the workers' stderr
goes to ``client-workers.log``.

Both drivers (aiohttp runner, Locust) write it through this module, so `orpheus-bench report` reads them alike.
``run.json`` is written when the run starts (``complete: false``) and rewritten atomically as levels finish and
at the end; an interrupted run therefore still has valid metadata that says it is incomplete. An existing run
directory is never overwritten without ``force``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from orpheus_bench import __version__
from orpheus_bench.errors import ConfigError

REQUESTS_FILE = "requests.jsonl"
RUN_FILE = "run.json"
SERVER_FILE = "server.jsonl"
AUDIO_DIR = "audio"
WORKERS_LOG = "client-workers.log"  # stderr of the client's worker processes (client.processes > 1)


def utc_now() -> str:
    """ISO-8601 UTC timestamp."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def git_sha(cwd: str | Path | None = None) -> str | None:
    """The current commit of the working directory's repository, if any."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and sha else None


class RunDirectory:
    """One run's output folder."""

    def __init__(self, path: str | Path, *, force: bool = False, resume: bool = False) -> None:
        self.path = Path(path)
        if self.path.exists() and any(self.path.iterdir()) and not resume:
            if not force:
                raise ConfigError("out", f"{self.path} already holds a run; use --force to replace it")
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.meta: dict[str, Any] = {}

    @property
    def requests_path(self) -> Path:
        """``requests.jsonl``."""
        return self.path / REQUESTS_FILE

    @property
    def server_path(self) -> Path:
        """``server.jsonl`` (metrics timeline)."""
        return self.path / SERVER_FILE

    @property
    def audio_dir(self) -> Path:
        """Kept sample WAVs."""
        d = self.path / AUDIO_DIR
        d.mkdir(exist_ok=True)
        return d

    def start(self, **fields: Any) -> None:
        """Write the initial run.json."""
        self.meta = {
            "schema": 1,
            "name": self.path.name,
            "started_at": utc_now(),
            "ended_at": None,
            "complete": False,
            "version": __version__,
            "git_sha": git_sha(),
            "client_host": socket.gethostname(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "levels": [],
        }
        self.meta.update(fields)
        self.write()

    def update(self, **fields: Any) -> None:
        """Merge fields and rewrite run.json."""
        self.meta.update(fields)
        self.write()

    def add_level(self, level: dict[str, Any]) -> None:
        """Append one finished level's summary."""
        self.meta.setdefault("levels", []).append(level)
        self.write()

    def finish(self, *, complete: bool, **fields: Any) -> None:
        """Mark the end of the run."""
        self.meta.update(fields)
        self.meta["ended_at"] = utc_now()
        self.meta["complete"] = complete
        self.write()

    def write(self) -> None:
        """Atomic rewrite (write to a temp file, then rename)."""
        tmp = self.path / (RUN_FILE + ".tmp")
        tmp.write_text(json.dumps(self.meta, indent=2, default=str, allow_nan=False), encoding="utf-8")
        os.replace(tmp, self.path / RUN_FILE)


def read_run_meta(path: str | Path) -> dict[str, Any]:
    """Load run.json of a run directory (empty dict when missing)."""
    p = Path(path) / RUN_FILE
    if not p.is_file():
        return {}
    data = json.loads(p.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}
