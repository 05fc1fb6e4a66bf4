"""Process-tree CPU accounting for the peer check: what a load generator's client side costs, from /proc.

`TreeCpuSampler` samples, every 0.2 s in a thread, the CPU seconds of a process and all its live descendants
(each with the CPU of its children it has reaped, so a worker process that exited is still counted) against
the wall clock; `cpu_at(t)` interpolates between samples, so CPU can be taken over any wall-clock window a
tool's own records give (first send to last end). `run_tool` runs a command to its end under a sampler, takes
the tree's exact CPU total from ``wait4`` and how many cores the rest of the machine kept busy meanwhile
(/proc/stat minus the tool, the server and this script); `busy_processes` names what else ran. Linux only.
"""

from __future__ import annotations

import itertools
import os
import platform
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CPU_SAMPLE_S = 0.2
TOOL_TIMEOUT_S = 900.0

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, CPU ticks of the process and its reaped children, command name)."""
    out: dict[int, tuple[int, int, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            data = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        comm = data[data.index("(") + 1 : data.rindex(")")]
        rest = data[data.rindex(")") + 2 :].split()
        # after comm: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
        out[int(entry.name)] = (int(rest[1]), sum(int(x) for x in rest[11:15]), comm)
    return out


def tree_cpu_s(root: int, table: dict[int, tuple[int, int, str]] | None = None) -> float | None:
    """CPU seconds of `root` and its live descendants, each with its reaped children (None once it is gone)."""
    table = table if table is not None else _proc_table()
    if root not in table:
        return None
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += table[pid][1]
        todo.extend(children.get(pid, []))
    return total / CLK_TCK


class TreeCpuSampler:
    """Samples a process tree's CPU seconds against the wall clock in a thread; `cpu_at(t)` interpolates."""

    def __init__(self, root: int, interval_s: float = CPU_SAMPLE_S) -> None:
        self.root = root
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            cpu = tree_cpu_s(self.root)
            if cpu is None:
                return
            self.samples.append((time.time(), cpu))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> TreeCpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def cpu_at(self, wall_s: float) -> float | None:
        """CPU seconds used by `wall_s` (linear between samples; clamped to the first and last)."""
        s = self.samples
        if not s:
            return None
        if wall_s <= s[0][0]:
            return s[0][1]
        for (t0, c0), (t1, c1) in itertools.pairwise(s):
            if t0 <= wall_s <= t1:
                return c0 + (c1 - c0) * (wall_s - t0) / (t1 - t0) if t1 > t0 else c1
        return s[-1][1]


def busy_processes(seconds: float = 1.0, top: int = 5) -> list[str]:
    """The processes that used most CPU over `seconds` (other sessions' work on a shared machine)."""
    a = _proc_table()
    time.sleep(seconds)
    b = _proc_table()
    used = [
        ((b[pid][1] - a[pid][1]) / CLK_TCK / seconds, pid, b[pid][2])
        for pid in b
        if pid in a and pid != os.getpid() and b[pid][1] > a[pid][1]
    ]
    used.sort(reverse=True)
    return [f"{name} (pid {pid}) {share:.0%}" for share, pid, name in used[:top]]


def machine_line() -> str:
    """Cores, load and Python of this machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    python = platform.python_version()
    return f"machine: {platform.machine()}, {cores} cores, load avg {load} (1/5/15 min), Python {python}"


# ---- running one tool -----------------------------------------------------------------------------------


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (user, nice, system, irq, softirq) since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields[i] for i in (0, 1, 2, 5, 6) if i < len(fields)) / CLK_TCK


@dataclass
class ToolRun:
    """One tool's run: its CPU samples, wall time, exact CPU total and what the rest of the machine did."""

    sampler: TreeCpuSampler
    wall_s: float
    cpu_s: float  # the tool and every descendant it waited for (wait4's rusage): start-up and analysis included
    others_cores: float  # cores busy meanwhile outside the tool, the watched processes and this script


def run_tool(cmd: list[str], log_path: Path, env: dict[str, str] | None = None, watch: Sequence[int] = ()) -> ToolRun:
    """Run `cmd` to its end with its process tree's CPU sampled (`watch`: more pids not to count as others)."""
    t0 = time.perf_counter()
    busy0, self0 = machine_busy_s(), time.process_time()
    watched0 = sum(tree_cpu_s(pid) or 0.0 for pid in watch)
    with open(log_path, "wb") as log:
        log.write(("# " + " ".join(cmd) + "\n").encode())
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        with TreeCpuSampler(proc.pid) as sampler:
            deadline = time.monotonic() + TOOL_TIMEOUT_S
            while True:  # wait4 for the exact CPU of the whole tree; poll so a hung tool can be killed
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    proc.kill()
                time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    watched = sum(tree_cpu_s(pid) or 0.0 for pid in watch) - watched0
    cpu = usage.ru_utime + usage.ru_stime
    others = machine_busy_s() - busy0 - cpu - watched - (time.process_time() - self0)
    if proc.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
        raise SystemExit(
            f"peer_check: {cmd[0]} exited with {proc.returncode}; last lines of {log_path}:\n" + "\n".join(tail)
        )
    return ToolRun(sampler, wall, cpu, max(0.0, others) / wall)


def cpu_per_token_us(
    sampler: TreeCpuSampler, spans: list[tuple[float, float]], tokens: int
) -> tuple[float | None, float | None]:
    """(µs CPU per token, CPU seconds) over the window from the first send to the last end."""
    if not spans or tokens <= 0:
        return None, None
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    c0, c1 = sampler.cpu_at(start), sampler.cpu_at(end)
    if c0 is None or c1 is None:
        return None, None
    return (c1 - c0) / tokens * 1e6, c1 - c0
