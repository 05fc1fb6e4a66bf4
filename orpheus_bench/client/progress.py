"""Live progress of a sweep in the terminal (rich): one bar per level with live TTFA and error counts."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from orpheus_bench.client.whole_run import RunHooks
from orpheus_bench.levels import LevelOutcome, LevelPlan
from orpheus_bench.measures.stats import percentile
from orpheus_bench.records import RequestRecord


class RichProgress(RunHooks):
    """RunHooks that draw a progress bar per level and print status lines."""

    def __init__(self, console: Console | None = None, *, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("[bold]{task.fields[label]:>10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[live]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=quiet,
        )
        self._task: TaskID | None = None
        self._ttfa: list[float] = []
        self._errors = 0
        self._started = False

    def __enter__(self) -> RichProgress:
        self.progress.start()
        self._started = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def status(self, message: str) -> None:
        """Print a status line above the bars."""
        if not self.quiet:
            self.console.log(message)

    def level_start(self, plan: LevelPlan, total: int | None) -> None:
        """Add a bar for the level."""
        self._ttfa = []
        self._errors = 0
        self._task = self.progress.add_task("", total=total, label=plan.label, live="")

    def record(self, record: RequestRecord) -> None:
        """Advance and refresh the live numbers (measured requests only)."""
        if self._task is None:
            return
        if not record.warmup:
            if record.ttfa_s is not None and record.ok:
                self._ttfa.append(record.ttfa_s * 1000.0)
            if not record.ok:
                self._errors += 1
        p50 = percentile(self._ttfa, 50)
        live = f"TTFA p50 {p50:7.1f} ms" if p50 is not None else "TTFA p50      - ms"
        if self._errors:
            live += f"  [red]{self._errors} errors[/red]"
        self.progress.update(self._task, advance=1, live=live)

    def level_end(self, outcome: LevelOutcome) -> None:
        """Freeze the bar; flag client-bound levels."""
        if self._task is None:
            return
        s = outcome.summary()
        if s["client_bound"]:
            self.console.log(f"[yellow]{outcome.plan.label} client-bound: {'; '.join(s['client_bound_reasons'])}")
        self._task = None
