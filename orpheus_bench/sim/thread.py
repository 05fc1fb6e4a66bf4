"""Run the simulator beside synchronous code: in a thread with its own event loop, or in a child process.

`run_simulator_in_thread` suits plain pytest and sync code in this process. Code running under gevent
(Locust users, ``locustfiles/``) must use `run_simulator_in_subprocess` instead: gevent's monkey-patching
turns threads into greenlets, and an asyncio loop in a greenlet would stall the hub. The child process is
``python -m orpheus_bench.sim``; it gets its configuration (API key included) on stdin, never on its
command line, and prints the line ``... listening on <url>`` that the helper waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator

from orpheus_bench.sim.app import SimServer, start_simulator
from orpheus_bench.sim.config import SimConfig

LISTENING_RE = re.compile(r"listening on (http://\S+)")


class SimulatorThread:
    """A simulator serving from a daemon thread; `start()` returns the base URL, `stop()` ends it."""

    def __init__(self, config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or SimConfig()
        self.host = host
        self.port = port
        self.server: SimServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="orpheus-bench-simulator", daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        if self.server is None:
            raise RuntimeError("simulator not started")
        return self.server.url

    def start(self, timeout_s: float = 10.0) -> str:
        """Start serving and return the base URL; raises what the server raised if it could not start."""
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"simulator did not start within {timeout_s} s")
        if self._error is not None:
            raise self._error
        return self.url

    def stop(self, timeout_s: float = 10.0) -> None:
        """Close the server (in-flight completions are cancelled) and join the thread."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already closed: nothing left to stop
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout_s)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # handed to start(); a thread has nowhere else to report it
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.server = await start_simulator(self.config, self.host, self.port)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.close()


@contextlib.contextmanager
def run_simulator_in_thread(config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve a simulator from a background thread for the duration of the block; yields its base URL."""
    sim = SimulatorThread(config, host, port)
    url = sim.start()
    try:
        yield url
    finally:
        sim.stop()


@contextlib.contextmanager
def run_simulator_in_subprocess(
    config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0, startup_timeout_s: float = 30.0
) -> Iterator[str]:
    """Serve a simulator from a child Python process (safe under gevent); yields its base URL."""
    config = config or SimConfig()
    cmd = [
        sys.executable,
        "-m",
        "orpheus_bench.sim",
        "--config-json",
        "-",
        "--host",
        host,
        "--port",
        str(port),
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # stderr goes to a file, not a pipe: a child blocked on a full pipe nobody reads would hang the tests.
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        reader = _StdoutReader(proc)
        try:
            assert proc.stdin is not None
            proc.stdin.write(config.to_json_with_secrets())
            proc.stdin.close()
            url = reader.wait_for_url(startup_timeout_s)
            if url is None:
                _stop_process(proc)
                err.seek(0)
                detail = err.read().strip()[-2000:]
                raise RuntimeError(f"simulator process did not start (exit {proc.returncode}): {detail}")
            yield url
        finally:
            _stop_process(proc)
            reader.close()


class _StdoutReader:
    """Reads the child's stdout in a thread: finds the 'listening on' line, then keeps draining."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._proc = proc
        self._url: str | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="orpheus-bench-simulator-stdout", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if self._url is None:
                match = LISTENING_RE.search(line)
                if match:
                    self._url = match.group(1)
                    self._ready.set()
        self._ready.set()

    def wait_for_url(self, timeout_s: float) -> str | None:
        self._ready.wait(timeout_s)
        return self._url

    def close(self) -> None:
        """After the child exited: let the reader reach EOF, then close the pipe."""
        self._thread.join(5.0)
        if self._proc.stdout is not None and not self._thread.is_alive():
            self._proc.stdout.close()


def _stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)
