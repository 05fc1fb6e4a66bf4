"""Worker processes: one sweep spread over N client processes, each with its own event loop (issue 16).

One Python event loop holds a few dozen real-time streams on a small core; ``client.processes: N`` uses more
cores from one command. The parent keeps everything that must be one: the level plan, the request counter that
numbers requests and marks warmup, the open-loop arrival schedule, the run directory, the single
``requests.jsonl`` and the progress view. `WorkerProcesses` is the runner's `RequestSender` for that case: each
`Ticket` goes to one worker process (`client.worker_process`, started as ``python -m``), which sends the request
with its own connection pool and decode service (`runner.LocalSender`) and answers with the finished record.

- The run clock is one: ``perf_counter`` is the system-wide monotonic clock, so every process computes
  ``run_offset_s`` against the parent's origin; one round trip at start checks it (and corrects a worker whose
  clock reads outside the round trip).
- Closed-loop worker ``w`` lives in process ``w % N``; open-loop arrivals go to the least-loaded process.
- Nothing is lost or doubled: the parent remembers every ticket it handed out until its record comes back. When a
  worker process dies, each of its requests in flight becomes a failed record (error class ``client``) written by
  the parent, and later tickets go to the surviving processes; only when none survives does the run stop.
- Ctrl-C / SIGTERM reach the parent (the workers ignore SIGINT): each in-flight ticket is cancelled in its worker,
  whose cancelled record comes back; a worker that does not answer in time gets a cancelled record from the parent.
- At each level's end every worker reports its loop lag, loop CPU time, run-queue wait and decode counters; the
  level summary lists them and is judged by its worst process (`levels.LevelOutcome.summary`).

Messages are JSON lines: tickets and control words on the worker's stdin, records and replies on its stdout.
About 400 lines: the parent's whole side of that protocol (start, tickets, deaths, level health) in one place;
the worker's side is `client.worker_process`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orpheus_bench.client.runner import OnRecord, Ticket
from orpheus_bench.errors import LaunchError
from orpheus_bench.levels import LevelOutcome, ProcessHealth
from orpheus_bench.limits import LAG_INTERVAL_S, MAX_AUTO_PROCESSES, STREAMS_PER_PROCESS
from orpheus_bench.records import ErrorClass, RequestRecord, Status
from orpheus_bench.scenario import Scenario
from orpheus_bench.target import Target

START_TIMEOUT_S = 180.0  # a worker loads SNAC before it is ready (decode on); decode off takes about a second
REPLY_TIMEOUT_S = 15.0  # level-end health, stop
CANCEL_WAIT_S = 5.0  # how long a cancelled ticket waits for its worker's own cancelled record
CLOCK_SLACK_S = 0.001  # a worker's clock reading outside the parent's round trip by more than this is corrected
LINE_LIMIT = 64 * 1024 * 1024  # one record per line; a long utterance's chunk list is tens of kB
REAL_TIME_TOKENS_PER_S = 85.0  # Orpheus at real time: to estimate open-loop streams in flight


class ClientProcessError(LaunchError):
    """A whole-run fault of the client's worker processes: one did not start, or none is left.

    A `LaunchError` (something the run needed could not be started), so the CLI reports it in one line with exit
    code 3 like the other whole-run faults.
    """


def usable_cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def resolve_processes(sc: Scenario, cores: int | None = None) -> int:
    """How many client processes a run uses: ``client.processes``, with ``auto`` resolved.

    auto: one per usable core, but at most one per `STREAMS_PER_PROCESS` streams of the largest level (closed
    loop: its concurrency; open loop: the streams its top rate keeps in flight at real time, at most
    ``max_inflight``) and `MAX_AUTO_PROCESSES` in all, so a small sweep stays in one process.
    """
    setting = sc.client.processes
    if setting != "auto":
        return int(setting)
    cores = usable_cores() if cores is None else cores
    load = sc.load
    if load.rate:
        seconds = sc.sampling.max_tokens / REAL_TIME_TOKENS_PER_S
        streams = min(load.max_inflight, math.ceil(max(load.rate) * seconds))
    else:
        streams = max(load.concurrency)
    return max(1, min(cores, MAX_AUTO_PROCESSES, math.ceil(streams / STREAMS_PER_PROCESS)))


def worker_torch_threads(sc: Scenario, processes: int, cores: int | None = None) -> int | None:
    """torch threads per worker when the scenario leaves it open: the cores shared out, one kept for loops."""
    if sc.decode.threads is not None or processes <= 1:
        return sc.decode.threads
    cores = usable_cores() if cores is None else cores
    return max(1, cores // processes - 1)


def describe_exit(returncode: int | None) -> str:
    """``exit code 1``, ``killed by SIGKILL``..."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


@dataclass
class _Pending:
    """A ticket handed to a worker whose record has not come back yet."""

    ticket: Ticket
    sent_at: float  # parent clock when it was handed out
    wall: float
    record: asyncio.Future[RequestRecord]


@dataclass
class _Worker:
    """The parent's handle on one worker process."""

    index: int
    proc: asyncio.subprocess.Process
    inflight: dict[int, _Pending] = field(default_factory=dict)
    replies: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    alive: bool = True
    exit: str | None = None
    reader: asyncio.Task[None] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    died_in_level: bool = False

    @property
    def name(self) -> str:
        """How summaries and messages name it."""
        return f"worker {self.index}"

    def write(self, msg: dict[str, Any]) -> None:
        """One message to the worker (dropped when it is gone: its tickets are accounted for by `_died`)."""
        if not self.alive or self.proc.stdin is None or self.proc.stdin.is_closing():
            return
        self.proc.stdin.write(json.dumps(msg, separators=(",", ":")).encode("utf-8") + b"\n")


class WorkerProcesses:
    """The runner's `RequestSender` over N worker processes; see the module docstring."""

    def __init__(
        self,
        count: int,
        sc: Scenario,
        target: Target,
        *,
        origin: float,
        clock: Callable[[], float] = time.perf_counter,
        api_key: str | None = None,
        audio_dir: Path | None = None,
        log_path: Path | None = None,
        python: str = sys.executable,
        lag_interval_s: float = LAG_INTERVAL_S,
    ) -> None:
        if count < 1:
            raise ValueError("count must be >= 1")
        self.count = count
        self.sc = sc
        self.target = target
        self.origin = origin
        self.clock = clock
        self.api_key = api_key
        self.audio_dir = audio_dir
        self.log_path = log_path
        self.python = python
        self.lag_interval_s = lag_interval_s
        self.workers: list[_Worker] = []
        self._ids = itertools.count()
        self._log: Any = None
        self._closed = False

    # ---- lifecycle ---------------------------------------------------------------------------------------
    async def open(self) -> None:
        """Start every worker and wait until each is ready (a worker that fails to start is a whole-run fault).

        Idempotent: the run opens it early for the workers' decode description, the runner again.
        """
        if self.workers:
            return
        self._log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 (lives for the run)
        threads = worker_torch_threads(self.sc, self.count)
        scenario = self.sc.model_dump(mode="json")
        if threads is not None:
            scenario["decode"]["threads"] = threads
        for i in range(self.count):
            proc = await asyncio.create_subprocess_exec(
                self.python,
                "-m",
                "orpheus_bench.client.worker_process",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=self._log if self._log is not None else asyncio.subprocess.DEVNULL,
                limit=LINE_LIMIT,
            )
            w = _Worker(i, proc)
            self.workers.append(w)
            w.reader = asyncio.ensure_future(self._read(w))
            w.write(
                {
                    "op": "start",
                    "index": i,
                    "scenario": scenario,
                    "api_key": self.api_key,  # over the pipe, never on a command line
                    "origin": self.origin,
                    "audio_dir": str(self.audio_dir) if self.audio_dir else None,
                    "lag_interval_s": self.lag_interval_s,
                }
            )
        for w in self.workers:
            reply = await self._reply(w, "ready", START_TIMEOUT_S)
            if reply.get("op") != "ready":
                detail = reply.get("message") or w.exit or "no answer"
                raise ClientProcessError(f"client {w.name} did not start: {detail}")
            w.info = reply
            await self._align_clock(w)

    async def _align_clock(self, w: _Worker) -> None:
        """Check the worker's clock against the parent's by one round trip; correct it where they differ.

        ``perf_counter`` is system-wide where Python runs (CLOCK_MONOTONIC, mach_absolute_time, QPC), so the
        worker's reading should fall between the parent's before and after; the correction is for the case where
        it does not (or where the parent runs on another clock, as the benchmarks' ``time.monotonic``).
        """
        t_sent = self.clock()
        w.write({"op": "clock"})
        reply = await self._reply(w, "clock", REPLY_TIMEOUT_S)
        t_back = self.clock()
        if reply.get("op") != "clock":
            return
        now = float(reply["now"])
        if t_sent - CLOCK_SLACK_S <= now <= t_back + CLOCK_SLACK_S:
            return
        offset = now - (t_sent + t_back) / 2.0
        w.write({"op": "clock_offset", "offset": offset})
        w.info["clock_offset_s"] = offset

    @property
    def decode_info(self) -> dict[str, Any] | None:
        """The first worker's decode description (run.json ``snac``); every worker loads the same."""
        return self.workers[0].info.get("snac") if self.workers else None

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers, in order."""
        return [w.proc.pid for w in self.workers]

    async def close(self) -> None:
        """Stop every worker (kill those that do not stop in time); idempotent."""
        if self._closed:
            return
        self._closed = True
        for w in self.workers:
            w.write({"op": "stop"})
            if w.proc.stdin is not None:
                w.proc.stdin.close()
        for w in self.workers:
            try:
                await asyncio.wait_for(w.proc.wait(), REPLY_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.kill()
                await w.proc.wait()
            if w.reader is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await w.reader
        if self._log is not None:
            self._log.close()

    # ---- tickets -------------------------------------------------------------------------------------------
    def _pick(self, ticket: Ticket) -> _Worker:
        live = [w for w in self.workers if w.alive]
        if not live:
            exits = ", ".join(f"{w.name} {w.exit}" for w in self.workers)
            raise ClientProcessError(f"no client worker process is left ({exits})")
        if ticket.scheduled is None:
            preferred = self.workers[ticket.worker % len(self.workers)]
            return preferred if preferred.alive else live[ticket.worker % len(live)]
        return min(live, key=lambda w: len(w.inflight))

    async def send(self, ticket: Ticket, done: OnRecord) -> None:
        """Hand the ticket to a worker and wait for its record (see the module docstring for the failure cases)."""
        pending = _Pending(ticket, self.clock(), time.time(), asyncio.get_running_loop().create_future())
        try:
            w = self._pick(ticket)
        except ClientProcessError as exc:
            done(self._parent_record(pending, ErrorClass.CLIENT, str(exc)))  # a record even for this ticket
            raise
        ident = next(self._ids)
        w.inflight[ident] = pending
        w.write({"op": "send", "id": ident, "ticket": ticket.to_dict()})
        try:
            record = await asyncio.shield(pending.record)
        except asyncio.CancelledError:
            w.write({"op": "cancel", "id": ident})
            try:
                record = await asyncio.wait_for(asyncio.shield(pending.record), CANCEL_WAIT_S)
            except (TimeoutError, asyncio.CancelledError):
                w.inflight.pop(ident, None)
                why = f"run interrupted ({w.name} did not answer)"
                record = self._parent_record(pending, ErrorClass.CANCELLED, why)
            done(record)
            raise
        done(record)

    def _parent_record(self, p: _Pending, error: ErrorClass, message: str) -> RequestRecord:
        """A record the parent writes for a ticket whose worker cannot answer for it."""
        t = p.ticket
        record = self.target.new_record(
            t.prompt,
            level=t.level,
            worker=t.worker,
            seq=t.seq,
            warmup=t.warmup,
            driver=self.sc.client.transport,
            wall_start=p.wall,
            run_offset_s=p.sent_at - self.origin,
            level_label=t.label,
            scheduled_offset_s=t.scheduled,
        )
        status = Status.CANCELLED if error is ErrorClass.CANCELLED else Status.ERROR
        record.fail(error, message, status)
        record.t_end_s = self.clock() - p.sent_at
        record.extra["recorded_by"] = "parent"
        return record

    # ---- levels --------------------------------------------------------------------------------------------
    async def level_started(self) -> None:
        """Every worker restarts its health counters."""
        for w in self.workers:
            w.died_in_level = False
            w.write({"op": "level_start"})

    async def level_ended(self, outcome: LevelOutcome, main: ProcessHealth) -> None:
        """Collect every worker's health; the parent's own loop is listed first."""
        parent = ProcessHealth(
            "parent", main.pid, main.wall_s, main.loop_lag_ms, main.loop_cpu_s, main.loop_wait_s, 0, None
        )
        workers, decode = await self.health(main.wall_s)
        outcome.processes = [parent, *workers]
        outcome.decode_services = decode

    async def health(self, wall_s: float = 0.0) -> tuple[list[ProcessHealth], list[dict[str, Any]]]:
        """Each worker's health since its last ``level_start`` (and its decode counters); resets its samples."""
        health: list[ProcessHealth] = []
        decode: list[dict[str, Any]] = []
        for w in self.workers:
            was_alive = w.alive
            w.write({"op": "level_end"})
            reply = await self._reply(w, "health", REPLY_TIMEOUT_S) if was_alive else {}
            h = ProcessHealth(w.name, w.proc.pid, float(reply.get("wall_s") or wall_s))
            if reply.get("op") == "health":
                h.loop_lag_ms = list(reply.get("lag_ms") or [])
                h.loop_cpu_s = reply.get("cpu_s")
                h.loop_wait_s = reply.get("wait_s")
                h.sent = int(reply.get("sent") or 0)
                if reply.get("decode") is not None:
                    decode.append({"process": w.name, **reply["decode"]})
            if w.died_in_level or not w.alive:
                h.exit = w.exit or "no answer"
            health.append(h)
        return health, decode

    # ---- messages from a worker -------------------------------------------------------------------------
    async def _reply(self, w: _Worker, op: str, timeout_s: float) -> dict[str, Any]:
        """The worker's next control reply of kind ``op`` ({"op": "dead"} / {} when it died or did not answer)."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    msg = await w.replies.get()
                    if msg.get("op") in (op, "dead", "error"):
                        return msg
        except TimeoutError:
            return {}

    async def _read(self, w: _Worker) -> None:
        assert w.proc.stdout is not None
        try:
            while line := await w.proc.stdout.readline():
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue  # a line torn by a dying worker: its ticket is still in flight, `_died` covers it
                if msg.get("op") == "record":
                    pending = w.inflight.pop(int(msg["id"]), None)
                    if pending is not None and not pending.record.done():
                        pending.record.set_result(RequestRecord.from_dict(msg["record"]))
                else:
                    w.replies.put_nowait(msg)
        except (ValueError, asyncio.LimitOverrunError, ConnectionError):
            pass  # an unreadable stream is a dead worker for our purposes
        finally:
            await self._died(w)

    async def _died(self, w: _Worker) -> None:
        """The worker's stdout ended: every ticket it still held becomes a failed record (see the module)."""
        w.alive = False  # first, before any await: no new ticket goes to it
        if w.inflight:
            w.died_in_level = True
        with contextlib.suppress(asyncio.CancelledError):
            try:
                rc = await asyncio.wait_for(w.proc.wait(), REPLY_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.kill()
                rc = await w.proc.wait()
            w.exit = describe_exit(rc)
        message = (
            f"client {w.name} (pid {w.proc.pid}) ended ({w.exit}) with this request in flight; "
            "what it had received was lost with it"
        )
        for ident in list(w.inflight):
            pending = w.inflight.pop(ident)
            if not pending.record.done():
                pending.record.set_result(self._parent_record(pending, ErrorClass.CLIENT, message))
        w.replies.put_nowait({"op": "dead", "message": w.exit})
