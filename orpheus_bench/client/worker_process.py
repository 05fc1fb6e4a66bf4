"""A client worker process: sends the tickets its parent hands it and answers with one record each.

Started by `client.processes.WorkerProcesses` as ``python -m orpheus_bench.client.worker_process``; not a command
for people. It reads JSON lines on stdin (``start`` first: the scenario, the API key, the run clock's origin;
then ``send``, ``cancel``, ``level_start``, ``level_end``, ``stop``) and writes JSON lines on a private copy of
stdout (``ready``, ``record``, ``health``); file descriptor 1 is pointed at stderr so that a library printing to
stdout cannot corrupt the messages. Requests go through `runner.LocalSender`, the same code as a one-process run,
with this process's own connection pool and decode service. It ignores SIGINT (the parent cancels each request,
so the record says ``cancelled``) and stops when its stdin closes, so a parent that dies leaves no worker behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orpheus_bench.audio.setup import build_decode_service
from orpheus_bench.client.loop_monitor import LoopLagMonitor, ThreadClock
from orpheus_bench.client.processes import LINE_LIMIT
from orpheus_bench.client.runner import LocalSender, Ticket
from orpheus_bench.limits import LAG_INTERVAL_S
from orpheus_bench.records import RequestRecord
from orpheus_bench.scenario import scenario_from_dict
from orpheus_bench.target import Target


@dataclass
class _Level:
    """This worker's counters since the parent's last ``level_start``."""

    clock: ThreadClock = field(default_factory=ThreadClock.sample)
    wall: float = field(default_factory=time.perf_counter)
    sent: int = 0


class _Out:
    """Non-blocking JSON lines to the parent."""

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self.transport = transport

    def send(self, msg: dict[str, Any]) -> None:
        if not self.transport.is_closing():
            self.transport.write(json.dumps(msg, separators=(",", ":")).encode("utf-8") + b"\n")

    def record(self, ident: int, record: RequestRecord) -> None:
        if not self.transport.is_closing():
            self.transport.write(b'{"op":"record","id":%d,"record":%s}\n' % (ident, record.to_json().encode("utf-8")))


async def _channels(msg_fd: int) -> tuple[asyncio.StreamReader, _Out]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(msg_fd, "wb", buffering=0))
    return reader, _Out(transport)


def _wav_writer(audio_dir: Path) -> Any:
    from orpheus_bench.client.whole_run import wav_writer

    return wav_writer(audio_dir)


async def serve(msg_fd: int) -> int:
    """Run until ``stop`` or the end of stdin."""
    reader, out = await _channels(msg_fd)
    line = await reader.readline()
    if not line:
        return 0
    start = json.loads(line)
    try:
        sc = scenario_from_dict(start["scenario"])
        target = Target.from_scenario(sc, api_key=start.get("api_key"))
        service, info = build_decode_service(sc.decode)
    except Exception as exc:  # reported to the parent, which stops the run with this message
        out.send({"op": "error", "message": f"{exc.__class__.__name__}: {exc}"})
        return 2
    origin = float(start["origin"])
    audio_dir = Path(start["audio_dir"]) if start.get("audio_dir") else None
    sender = LocalSender(
        target,
        service,
        transport=sc.client.transport,
        origin=origin,
        on_audio=_wav_writer(audio_dir) if audio_dir else None,
    )
    tasks: dict[int, asyncio.Task[None]] = {}
    monitor = LoopLagMonitor(float(start.get("lag_interval_s") or LAG_INTERVAL_S))
    level = _Level()
    try:
        await sender.open()
        monitor.start()
        out.send({"op": "ready", "pid": os.getpid(), "snac": info})
        while line := await reader.readline():
            msg = json.loads(line)
            op = msg.get("op")
            if op == "send":
                ident = int(msg["id"])
                ticket = Ticket.from_dict(msg["ticket"])
                tasks[ident] = _start(sender, ticket, ident, out, tasks)
                level.sent += 1
            elif op == "clock":
                out.send({"op": "clock", "now": time.perf_counter()})
            elif op == "clock_offset":
                # The parent measured this process's clock against its own (see `WorkerProcesses.open`).
                sender.origin = origin + float(msg["offset"])
            elif op == "cancel":
                running = tasks.get(int(msg["id"]))
                if running is not None:
                    running.cancel()
            elif op == "level_start":
                monitor.take()
                level = _Level()
            elif op == "level_end":
                used = ThreadClock.sample().since(level.clock)
                out.send(
                    {
                        "op": "health",
                        "lag_ms": monitor.take(),
                        "cpu_s": used.cpu_s,
                        "wait_s": used.wait_s,
                        "wall_s": time.perf_counter() - level.wall,
                        "sent": level.sent,
                        "decode": _stats_dict(service),
                    }
                )
            elif op == "stop":
                break
    finally:
        # The parent is gone or said stop: whatever is still in flight ends as a cancelled record.
        for running in tasks.values():
            running.cancel()
        if tasks:
            await asyncio.gather(*tasks.values(), return_exceptions=True)
        await monitor.stop()
        await sender.close()
        service.close()
        out.transport.close()
    return 0


def _start(
    sender: LocalSender, ticket: Ticket, ident: int, out: _Out, tasks: dict[int, asyncio.Task[None]]
) -> asyncio.Task[None]:
    def done(record: RequestRecord) -> None:
        out.record(ident, record)

    task = asyncio.ensure_future(sender.send(ticket, done))
    task.add_done_callback(lambda t: _settled(tasks, ident, t))
    return task


def _settled(tasks: dict[int, asyncio.Task[None]], ident: int, task: asyncio.Task[None]) -> None:
    tasks.pop(ident, None)
    if not task.cancelled() and task.exception() is not None:
        # A bug, not a request failure (those are records): let the parent see this worker die.
        print(f"worker: request task failed: {task.exception()!r}", file=sys.stderr, flush=True)
        os._exit(3)


def _stats_dict(service: Any) -> dict[str, Any] | None:
    """The decode service's counters (None when decoding is off)."""
    if not service.enabled:
        return None
    stats = service.stats
    data = stats() if callable(stats) else stats
    return dataclasses.asdict(data) if dataclasses.is_dataclass(data) and not isinstance(data, type) else None


def main() -> int:
    """Entry point: messages on a private copy of stdout, fd 1 pointed at stderr."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    msg_fd = os.dup(1)
    os.dup2(2, 1)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve(msg_fd))
    return 130


if __name__ == "__main__":
    raise SystemExit(main())
