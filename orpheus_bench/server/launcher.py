"""Starting and stopping a real llama-server from a profile: the driver around `profiles.translate`.

`LlamaServer` finds the binary, reads its `--help` once, translates the profile, starts the process on
127.0.0.1 with a free port (its output goes to a log file that is kept), waits for `/health` to answer 200
(503 means the model is still loading), and stops it with SIGTERM, then SIGKILL. It is a context manager for
tests and commands, with `astart`/`astop` (and `async with`) for asyncio callers; nothing here blocks an event
loop, because the blocking parts run in a worker thread there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from orpheus_bench.errors import LaunchError, ServerNotReady
from orpheus_bench.server.binary import find_llama_server, read_help, server_version
from orpheus_bench.server.profiles import ServerProfile, Translation, resolve_profile, translate

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
_BIND_RETRIES = 3


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the server retries on a lost race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def available_cpus() -> int:
    """CPUs this process may run on (affinity-aware where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _die_with_parent() -> None:
    # Linux: the server gets SIGTERM if the harness dies without cleanup: no orphan keeps the port and CPUs.
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LlamaServer:
    """One llama-server process started from a profile; use `with LlamaServer(...) as srv: srv.url`."""

    def __init__(
        self,
        profile: ServerProfile | str | os.PathLike[str],
        model: str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        *,
        binary: str | os.PathLike[str] | None = None,
        ready_timeout_s: float = READY_TIMEOUT_S,
        cap_threads: bool = True,
    ) -> None:
        self.profile = profile if isinstance(profile, ServerProfile) else resolve_profile(profile)
        self.model = Path(model)
        self.host = host
        self.port = port
        self._fixed_port = port is not None
        self.extra_args = list(extra_args)
        self.ready_timeout_s = ready_timeout_s
        self.cap_threads = cap_threads
        self._binary_arg = binary
        self.binary: Path | None = None
        self.version: str | None = None
        self.log_path: Path | None = Path(log_path) if log_path else None
        self.translation: Translation | None = None
        self.startup_s: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # ---- what will run ------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:39123."""
        if self.port is None:
            raise LaunchError("the server has no port yet: call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def args(self) -> list[str]:
        """The final argv, binary first (translating the profile if that has not happened yet)."""
        self.prepare()
        assert self.binary is not None and self.translation is not None
        return [str(self.binary), *self.translation.args]

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc else None

    def prepare(self) -> Translation:
        """Find the binary, read its help and translate the profile (idempotent; no process started)."""
        if self.translation is not None:
            return self.translation
        if not self.model.is_file():
            raise LaunchError(f"model file {self.model} does not exist")
        self.binary = find_llama_server(self._binary_arg)
        help_ = read_help(self.binary)
        self.version = help_.version or server_version(self.binary)
        if self.port is None:
            self.port = free_port(self.host)
        self.translation = translate(
            self.profile,
            help_,
            model=str(self.model),
            host=self.host,
            port=self.port,
            cpu_count=available_cpus(),
            cap_threads=self.cap_threads,
            extra_args=self.extra_args,
        )
        return self.translation

    def info(self) -> dict[str, Any]:
        """What run.json records about a server the run started."""
        return {
            "profile": self.profile.model_dump(mode="json"),
            "binary": str(self.binary) if self.binary else None,
            "version": self.version,
            "url": self.url if self.port else None,
            "args": self.args if self.translation else None,
            "translation": self.translation.to_dict() if self.translation else None,
            "log_path": str(self.log_path) if self.log_path else None,
            "startup_s": self.startup_s,
            "model": str(self.model),
        }

    # ---- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> LlamaServer:
        """Start the process and wait until /health is 200; raise `LaunchError` / `ServerNotReady`."""
        if self._proc is not None:
            return self
        for attempt in range(_BIND_RETRIES):
            self.prepare()
            t0 = time.perf_counter()
            self._spawn()
            try:
                self._wait_ready()
            except _PortTaken:
                self.stop()
                if self._fixed_port or attempt == _BIND_RETRIES - 1:
                    raise LaunchError(f"port {self.port} is in use; log: {self.log_path}") from None
                self.port = None
                self.translation = None
                continue
            except BaseException:
                self.stop()
                raise
            self.startup_s = time.perf_counter() - t0
            return self
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log.write(f"# {' '.join(self.args)}\n".encode())
        self._log.flush()
        try:
            self._proc = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop the server in order
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        except OSError as exc:
            self._close_log()
            raise LaunchError(f"cannot start {self.binary}: {exc}") from exc

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.ready_timeout_s
        loading = False
        while True:
            code = self._proc.poll()
            if code is not None:
                tail = self.log_tail()
                if "bind" in tail.lower() and ("address already in use" in tail.lower() or "couldn't" in tail):
                    raise _PortTaken()
                raise LaunchError(f"llama-server exited with code {code} while starting; log {self.log_path}:\n{tail}")
            status = _health_status(self.url)
            if status == 200:
                return
            loading = loading or status == 503
            if time.monotonic() > deadline:
                if loading:
                    raise ServerNotReady(f"{self.url}/health still 503 (loading) after {self.ready_timeout_s:.0f}s")
                raise LaunchError(f"{self.url}/health not answering after {self.ready_timeout_s:.0f}s")
            time.sleep(0.05)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server log (for error messages)."""
        if not self.log_path or not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16_384))
            text = fh.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, wait up to `timeout_s`, then SIGKILL; returns the exit code (None if never started)."""
        proc, self._proc = self._proc, None
        code: int | None = None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    proc.wait()
            code = proc.returncode
        self._close_log()
        return code

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def wait(self) -> int:
        """Block until the server exits (foreground `server start`); returns its exit code."""
        if self._proc is None:
            raise LaunchError("server not started")
        return self._proc.wait()

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- asyncio ------------------------------------------------------------------------------------------
    async def astart(self) -> LlamaServer:
        """`start()` in a worker thread, so the event loop keeps running while the model loads."""
        return await asyncio.to_thread(self.start)

    async def astop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """`stop()` in a worker thread."""
        return await asyncio.to_thread(self.stop, timeout_s)

    async def __aenter__(self) -> LlamaServer:
        return await self.astart()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.astop()


# Never route 127.0.0.1 through an http_proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class _PortTaken(Exception):
    """The free port we picked was taken before the server bound it."""


def _health_status(url: str) -> int | None:
    """HTTP status of GET /health, or None when nothing answers yet."""
    try:
        with _DIRECT.open(f"{url}/health", timeout=2.0) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None
