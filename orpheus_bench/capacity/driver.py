"""Running a capacity search: one sub-run per measurement, state on disk after each, resumable.

`run_capacity` asks the pure policy (`capacity.search.next_step`) what to measure, runs that load with the real
runner (`client.whole_run.execute_run`) into ``<out>/levels/<label>[-mN]/``, judges every load on the SLO
(`capacity.slo.evaluate_level`, all measurements of a load pooled) and rewrites, after every measurement:

* ``capacity.json``: the search's definition (scenario, SLO, search settings) and its measurements, each marked
  complete once its sub-run finished;
* ``capacity_result.json``: `CapacityResult.to_dict` (``complete: false`` until the answer is known);
* ``run.json`` and ``requests.jsonl``: the merged view over all loads (`capacity.merge`), so ``report`` and
  ``gate`` read the search directory like any run.

Running the same command on an existing search directory resumes it: complete measurements are kept, an
interrupted one is deleted and measured again, and the policy continues from the pooled observations. A
directory holding a search with a different definition is refused (``--force`` starts over). With
``server.profile`` set, one llama-server is started for the whole search, not one per level.

Why one module over 400 lines: the resumable on-disk state and the search loop that writes it after every
measurement change together; the policy (`capacity.search`) and SLO (`capacity.slo`) are already apart.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orpheus_bench.capacity.merge import LoadGroup, MeasurementRecords, merge_levels
from orpheus_bench.capacity.result import CapacityResult, LoadResult, write_result
from orpheus_bench.capacity.search import CONCURRENCY, Finished, Measure, SearchConfig, next_step
from orpheus_bench.capacity.slo import DEFAULT_RESAMPLES, Slo, counted_records, evaluate_table
from orpheus_bench.client.whole_run import RunHooks, execute_run, wait_ready
from orpheus_bench.errors import ConfigError, ServerError
from orpheus_bench.measures import metrics
from orpheus_bench.measures.query import Query
from orpheus_bench.measures.stats import percentile
from orpheus_bench.measures.table import MEASUREMENT_KEY, LevelTable, level_tables
from orpheus_bench.records import RequestRecord, read_records
from orpheus_bench.rundir import REQUESTS_FILE, RunDirectory, read_run_meta
from orpheus_bench.scenario import Scenario

STATE_FILE = "capacity.json"
LEVELS_DIR = "levels"
STATE_SCHEMA = 1
MAX_MEASUREMENTS = 60  # a safety stop; a sane search needs well under 20
_RUN_KEYS_FROM_FIRST = ("snac", "server_props", "health", "doctor")


@dataclass(frozen=True)
class CapacityPlan:
    """Everything that defines a search; a resumed search must have the same definition."""

    scenario: Scenario
    slo: Slo
    search: SearchConfig
    resamples: int = DEFAULT_RESAMPLES
    seed: int = 0

    def definition(self) -> dict[str, Any]:
        """What ``capacity.json`` stores and a resume compares (the host may change between attempts)."""
        scenario = self.scenario.model_dump(mode="json", exclude={"host", "name", "load", "gate"})
        load = self.scenario.load.model_dump(mode="json", include={"warmup", "burstiness", "max_inflight", "seed"})
        return {
            "scenario": scenario,
            "load": load,
            "slo": self.slo.to_dict(),
            "search": self.search.to_dict(),
            "resamples": self.resamples,
            "seed": self.seed,
        }


@dataclass
class Measurement:
    """One sub-run of the search, as ``capacity.json`` lists it."""

    index: int
    load: float
    requests: int
    phase: str
    reason: str
    directory: str  # relative to the search directory
    complete: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(vars(self))


class CapacityHooks(RunHooks):
    """Run hooks plus the search's own events; all optional."""

    def resumed(self, measurements: int) -> None:
        """An existing search was found with this many complete measurements."""

    def step_start(self, measurement: Measurement) -> None:
        """A measurement begins."""

    def step_end(self, measurement: Measurement, level: LoadResult, search: SearchConfig) -> None:
        """A measurement ended; ``level`` is its load with every measurement pooled."""

    def finished(self, result: CapacityResult) -> None:
        """The search has its answer."""


def _dirname(search: SearchConfig, load: float, nth: int) -> str:
    base = f"c={int(load)}" if search.kind == CONCURRENCY else f"rate={load:g}"
    return base if nth == 1 else f"{base}-m{nth}"


def _level_scenario(sc: Scenario, search: SearchConfig, load: float, requests: int) -> Scenario:
    shape: dict[str, Any] = (
        {"concurrency": [int(load)], "rate": None} if search.kind == CONCURRENCY else {"rate": [load]}
    )
    load_model = sc.load.model_copy(update={**shape, "requests_per_level": requests, "duration_per_level_s": None})
    server = sc.server.model_copy(update={"profile": None})
    return sc.model_copy(update={"load": load_model, "gate": None, "server": server})


class _State:
    """``capacity.json`` in memory."""

    def __init__(self, path: Path, definition: dict[str, Any], measurements: list[Measurement]) -> None:
        self.path = path
        self.definition = definition
        self.measurements = measurements

    def write(self, complete: bool = False) -> None:
        data = {
            "schema": STATE_SCHEMA,
            "kind": "orpheus-bench capacity search",
            "complete": complete,
            "definition": self.definition,
            "measurements": [m.to_dict() for m in self.measurements],
        }
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, allow_nan=False), encoding="utf-8")
        tmp.replace(self.path)


def _differences(stored: Any, wanted: Any, prefix: str = "") -> list[str]:
    if isinstance(stored, dict) and isinstance(wanted, dict):
        out: list[str] = []
        for key in sorted(set(stored) | set(wanted)):
            out.extend(_differences(stored.get(key), wanted.get(key), f"{prefix}{key}."))
        return out
    return [] if stored == wanted else [prefix.rstrip(".")]


def _open_state(out: Path, plan: CapacityPlan, force: bool) -> _State:
    """Start a new search directory, or load the one there (see the module docstring)."""
    state_path = out / STATE_FILE
    definition = plan.definition()
    if out.exists() and any(out.iterdir()):
        if force:
            shutil.rmtree(out)
        elif not state_path.is_file():
            raise ConfigError("out", f"{out} holds something other than a capacity search; use --force to replace it")
        else:
            try:
                data = json.loads(state_path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ConfigError("out", f"{state_path} is unreadable ({exc}); use --force to start over") from None
            diff = _differences(data.get("definition"), definition)
            if diff:
                raise ConfigError(
                    "out",
                    f"{out} holds a search defined differently ({', '.join(diff[:6])}); run the same command to "
                    "resume it, or use --force to start over or --out for a new directory",
                )
            kept: list[Measurement] = []
            for raw in data.get("measurements") or []:
                m = Measurement(**{k: raw[k] for k in Measurement.__dataclass_fields__ if k in raw})
                sub = out / m.directory
                if m.complete and read_run_meta(sub).get("complete") is True and (sub / REQUESTS_FILE).is_file():
                    kept.append(m)
                elif sub.exists():
                    shutil.rmtree(sub)  # interrupted midway: measured again from scratch
            for i, m in enumerate(kept):
                m.index = i
            state = _State(state_path, definition, kept)
            state.write()
            return state
    out.mkdir(parents=True, exist_ok=True)
    state = _State(state_path, definition, [])
    state.write()
    return state


class _Search:
    """The loop's bookkeeping: measurements' records (read once) and the pooled loads."""

    def __init__(self, out: Path, plan: CapacityPlan, state: _State) -> None:
        self.out = out
        self.plan = plan
        self.state = state
        self._records: dict[str, tuple[RequestRecord, ...]] = {}
        self._infos: dict[str, dict[str, Any]] = {}

    def _load_measurement(self, m: Measurement) -> tuple[tuple[RequestRecord, ...], dict[str, Any]]:
        if m.directory not in self._records:
            sub = self.out / m.directory
            self._records[m.directory] = tuple(read_records(str(sub / REQUESTS_FILE)))
            levels = read_run_meta(sub).get("levels") or []
            self._infos[m.directory] = levels[0] if levels and isinstance(levels[0], dict) else {}
        return self._records[m.directory], self._infos[m.directory]

    def _level_number(self, load: float, loads: list[float]) -> int:
        return int(load) if self.plan.search.kind == CONCURRENCY else loads.index(load) + 1

    def groups(self) -> list[LoadGroup]:
        done = [m for m in self.state.measurements if m.complete]
        loads = sorted({m.load for m in done})
        groups = []
        for load in loads:
            ms = []
            for m in (m for m in done if m.load == load):
                records, info = self._load_measurement(m)
                ms.append(MeasurementRecords(m.directory, records, info))
            groups.append(
                LoadGroup(
                    load,
                    self._level_number(load, loads),
                    self.plan.search.label(load),
                    self.plan.search.kind,
                    tuple(ms),
                )
            )
        return groups

    def load_result(self, group: LoadGroup) -> LoadResult:
        plan = self.plan
        table = load_table(group, self.plan.scenario.success)
        evaluation = evaluate_table(
            table, plan.slo, confidence=plan.search.confidence, resamples=plan.resamples, seed=plan.seed
        )
        windows = [level_tables(list(m.records))[0].window_s if m.records else None for m in group.measurements]
        window = sum(w for w in windows if w) or None
        counted = counted_records(table.records)
        busy = sum(r.t_end_s for r in counted if r.t_end_s is not None)
        ttfa = [r.ttfa_s * 1000.0 for r in counted if r.ok and r.ttfa_s is not None]
        goodput_q = Query("goodput_rps", preroll_ms=plan.slo.preroll_ms, budgets=plan.slo.budgets())
        return LoadResult(
            load=group.load,
            label=group.label,
            level=group.level,
            evaluation=evaluation,
            window_s=window,
            busy_s=busy,
            ttfa_p50_ms=percentile(ttfa, 50),
            ttfa_p95_ms=percentile(ttfa, 95),
            client_bound=table.client_bound,
            measurements=tuple(m.directory for m in group.measurements),
            throughput_rps=metrics.estimate(table, Query("throughput_rps")) if table.n else None,
            goodput_rps=metrics.estimate(table, goodput_q) if table.n else None,
        )

    def result(self, groups: list[LoadGroup], finished: Finished | None) -> CapacityResult:
        levels = tuple(self.load_result(g) for g in groups)
        steps = sum(1 for m in self.state.measurements if m.complete)
        return CapacityResult(self.plan.slo.to_dict(), self.plan.search, levels, finished, steps)


def load_table(group: LoadGroup, success: str = "complete") -> LevelTable:
    """One load's measurements pooled as one level table; each measurement keeps its own clock, so the
    steady-state throughput rows are found within each measurement (`measures.table.MEASUREMENT_KEY`)."""
    records = [
        dataclasses.replace(r, level=group.level, extra={**r.extra, MEASUREMENT_KEY: m.directory})
        for m in group.measurements
        for r in m.records
    ]
    reasons = sorted({str(x) for m in group.measurements for x in m.info.get("client_bound_reasons") or []})
    info = {
        "level": group.level, "label": group.label, "kind": group.kind, "value": group.load,
        "client_bound": any(bool(m.info.get("client_bound")) for m in group.measurements),
        "client_bound_reasons": reasons,
    }  # fmt: skip
    (table,) = level_tables(records, {"levels": [info], "scenario": {"success": success}})
    return table


def _write_merged(rundir: RunDirectory, search: _Search, groups: list[LoadGroup], result: CapacityResult) -> None:
    records, levels = merge_levels(groups, search.plan.slo)
    path = rundir.requests_path
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for r in sorted(records, key=lambda r: (r.level, r.run_offset_s)):
            fh.write(r.to_json() + "\n")
    tmp.replace(path)
    first = next((m for g in groups for m in g.measurements), None)
    first_meta = read_run_meta(search.out / first.directory) if first else {}
    sc = search.plan.scenario
    loads = [g.load for g in sorted(groups, key=lambda g: g.load)]
    shape = (
        {"concurrency": [int(x) for x in loads] or sc.load.concurrency, "rate": None}
        if search.plan.search.kind == CONCURRENCY
        else {"rate": loads or None}
    )
    scenario = sc.model_copy(update={"load": sc.load.model_copy(update=shape)}).model_dump(mode="json")
    summary = result.to_dict()
    rundir.update(
        **{k: first_meta[k] for k in _RUN_KEYS_FROM_FIRST if k in first_meta},
        scenario=scenario,
        levels=levels,
        records=len(records),
        complete=result.complete,
        capacity={k: v for k, v in summary.items() if k not in ("levels", "search", "slo")},
    )


@contextlib.asynccontextmanager
async def _server(sc: Scenario, rundir: RunDirectory, hooks: RunHooks) -> AsyncIterator[Scenario]:
    """One llama-server for the whole search when the scenario names a profile (the run's own helper)."""
    from orpheus_bench.client import whole_run

    async with whole_run.managed_server(sc, rundir, hooks) as started:
        yield started


async def run_capacity(
    plan: CapacityPlan,
    out_dir: str | Path,
    *,
    api_key: str | None = None,
    force: bool = False,
    hooks: CapacityHooks | None = None,
    cli_args: dict[str, Any] | None = None,
    doctor: bool = True,
    max_steps: int | None = None,
) -> CapacityResult:
    """Run (or resume) a capacity search into ``out_dir``; see the module docstring.

    ``max_steps`` stops after that many new measurements (the result is then incomplete and the search can be
    resumed). Whole-run server faults raise `ServerError`; an interruption leaves a resumable directory.
    """
    hooks = hooks or CapacityHooks()
    out = Path(out_dir)
    state = _open_state(out, plan, force)
    search = _Search(out, plan, state)
    fresh = not state.measurements
    if not fresh:
        hooks.resumed(len(state.measurements))
    rundir = RunDirectory(out, resume=True)
    if fresh:
        rundir.start(
            driver=plan.scenario.client.transport,
            capacity_search=True,
            cli_args=cli_args or {},
            host=plan.scenario.host,
        )
    else:
        rundir.meta = read_run_meta(out)
        rundir.update(complete=False, cli_args=cli_args or {})
    groups = search.groups()
    result = search.result(groups, None)
    taken = 0
    try:
        async with _server(plan.scenario, rundir, hooks) as sc:
            health = await wait_ready(sc.host, sc.timeouts.server_ready_s, api_key)
            if health == "unreachable":
                raise ServerError(f"{sc.host} is unreachable: a capacity search needs a running server")
            while True:
                step = next_step({lv.load: lv.observation() for lv in result.levels}, plan.search)
                if isinstance(step, Finished):
                    result = search.result(groups, step)
                    break
                if (max_steps is not None and taken >= max_steps) or len(state.measurements) >= MAX_MEASUREMENTS:
                    break
                before = result.at(step.load)
                await _measure(step, sc, search, hooks, api_key, cli_args, doctor=doctor and fresh and taken == 0)
                taken += 1
                groups = search.groups()
                result = search.result(groups, None)
                level = result.at(step.load)
                assert level is not None
                if before is not None and level.evaluation.n <= before.evaluation.n:
                    raise ServerError(f"{level.label}: the measurement added no counted request; stopping the search")
                hooks.step_end(state.measurements[-1], level, plan.search)
                write_result(out, result)
                _write_merged(rundir, search, groups, result)
    finally:
        write_result(out, result)
        _write_merged(rundir, search, groups, result)
        state.write(complete=result.complete)
        rundir.finish(complete=result.complete)
    if result.complete:
        hooks.finished(result)
    return result


async def _measure(
    step: Measure,
    sc: Scenario,
    search: _Search,
    hooks: CapacityHooks,
    api_key: str | None,
    cli_args: dict[str, Any] | None,
    *,
    doctor: bool,
) -> None:
    state = search.state
    nth = 1 + sum(1 for m in state.measurements if m.load == step.load)
    m = Measurement(
        index=len(state.measurements),
        load=step.load,
        requests=step.requests,
        phase=step.phase,
        reason=step.reason,
        directory=f"{LEVELS_DIR}/{_dirname(search.plan.search, step.load, nth)}",
    )
    state.measurements.append(m)
    state.write()  # listed as incomplete first: an interruption from here on is measured again on resume
    hooks.step_start(m)
    sub = _level_scenario(sc, search.plan.search, step.load, step.requests)
    args = {**(cli_args or {}), "capacity_measurement": m.to_dict()}
    await execute_run(
        sub, search.out / m.directory, api_key=api_key, force=True, hooks=hooks, cli_args=args, doctor=doctor
    )
    m.complete = True
    state.write()


__all__ = ["LEVELS_DIR", "STATE_FILE", "CapacityHooks", "CapacityPlan", "Measurement", "run_capacity"]
