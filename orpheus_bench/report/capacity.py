"""The capacity page of a report: the answer, goodput beside throughput per load, the knee and the limiting term.

`capacity_section(run_dir)` reads a search directory's ``capacity_result.json`` and returns plain data for
every output: `results.tables.Table`s (rendered by the console, Markdown and HTML alike), one plot as a
``data:`` URI (goodput and throughput against load, capacity and break marked), the one-paragraph answer and
the warnings. It returns None for a directory that holds no capacity search, so a report can call it on any
run. Plots reuse the report's figure helpers, so they look like the report's other charts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orpheus_bench.capacity.result import CapacityResult, LoadResult, read_result
from orpheus_bench.capacity.search import CONCURRENCY, confident
from orpheus_bench.capacity.slo import TermResult
from orpheus_bench.report.format import DASH, Cell, Table, fmt_ms, fmt_num, fmt_pct


@dataclass(frozen=True, slots=True)
class CapacityPlot:
    """One figure of the capacity page."""

    title: str
    uri: str  # data:image/svg+xml;base64,...
    caption: str


@dataclass(frozen=True, slots=True)
class CapacitySection:
    """Everything the capacity page shows."""

    result: CapacityResult
    summary: str
    tables: tuple[Table, ...]
    plots: tuple[CapacityPlot, ...]
    warnings: tuple[str, ...]


def _value_text(term: TermResult) -> str:
    if term.value is None:
        return "∞ (failed requests)"
    key = term.key
    if any(key.startswith(share) for share in ("goodput", "continuity", "success_rate")):
        return fmt_pct(term.value)
    if "_ms" in key:
        return f"{fmt_ms(term.value)} ms"
    return fmt_num(term.value, 3)


def _verdict_cell(level: LoadResult, result: CapacityResult) -> Cell:
    met = level.evaluation.meets
    sure = confident(level.observation(), result.search)
    text = ("meets" if met else "misses") + ("" if sure else " (not confident)")
    return Cell(text, 1.0 if met else 0.0, ("good" if met else "bad") if sure else "warn")


def levels_table(result: CapacityResult) -> Table:
    """One row per load: goodput beside raw throughput, the SLO's level terms, the verdict."""
    term_keys = [t["key"] for t in result.slo.get("terms", []) if t.get("scope") == "level"]
    columns = ("load", "requests", "goodput", "good req/s", "req/s", *term_keys, "pass share", "SLO")
    rows = []
    for lv in result.levels:
        ev = lv.evaluation
        mark = ""
        if lv.load == result.capacity_load:
            mark = " ◀ capacity"
        elif result.finished is not None and lv.load == result.finished.break_load:
            mark = " ✕ break"
        label = Cell(lv.label + mark + (" ⚠ client-bound" if lv.client_bound else ""), lv.load, strong=bool(mark))
        cells = [
            label,
            Cell(str(ev.n), float(ev.n)),
            Cell(fmt_pct(ev.goodput), ev.goodput),
            Cell(fmt_num(lv.goodput_rps), lv.goodput_rps),
            Cell(fmt_num(lv.throughput_rps), lv.throughput_rps),
        ]
        for key in term_keys:
            term = ev.term(key)
            if term is None:
                cells.append(Cell(DASH))
                continue
            cells.append(Cell(_value_text(term), term.value, None if term.met else "bad"))
        cells.append(Cell(fmt_pct(ev.pass_share), ev.pass_share))
        cells.append(_verdict_cell(lv, result))
        rows.append(tuple(cells))
    notes = (
        f"SLO: {result.slo.get('text', '')} at a {result.slo.get('preroll_ms', 0)} ms pre-roll. Goodput = share of "
        "requests meeting every per-request term (valid audio, TTFA budget, stall budget).",
        "Level statistics count failed requests as missing every budget. Pass share = share of bootstrap "
        "resamples meeting every level term.",
    )
    return Table("capacity_levels", "Goodput and SLO by load", columns, tuple(rows), notes)


def failures_table(result: CapacityResult) -> Table:
    """Per-request terms: how many requests missed each, per load (what drags goodput down)."""
    keys = [t["key"] for t in result.slo.get("terms", []) if t.get("scope") == "request"]
    rows = []
    for lv in result.levels:
        ev = lv.evaluation
        cells = [Cell(lv.label, lv.load), Cell(str(ev.n), float(ev.n))]
        for key in keys:
            missed = ev.request_failures.get(key, 0)
            cells.append(Cell(str(missed), float(missed), "bad" if missed else None))
        rows.append(tuple(cells))
    return Table(
        "capacity_request_terms",
        "Requests missing each per-request term",
        ("load", "requests", *keys),
        tuple(rows),
        ("A request can miss several terms; goodput counts the requests that missed none.",),
    )


def _streams_text(streams: float | None) -> str:
    if streams is None:
        return DASH
    return f"{streams:g}" if streams == int(streams) else f"{streams:.1f}"


def answer_table(result: CapacityResult) -> Table:
    """The answer as key/value rows: capacity, confidence, break, limiting term, knee, stop reason."""
    f = result.finished
    label = result.search.label
    streams = result.capacity_streams
    limiting = result.limiting_term
    tightest = result.tightest_term
    rows: list[tuple[str, str]] = [
        ("capacity", DASH if f is None else ("none" if f.capacity is None else label(f.capacity))),
        (
            "concurrent streams",
            DASH if streams is None else f"{streams:g}" if streams == int(streams) else f"{streams:.1f}",
        ),
        ("open-ended (at least)", DASH if f is None else ("yes" if f.open_ended else "no")),
        ("confidence (pass share)", fmt_pct(result.confidence)),
        ("edges confident", "yes" if result.confident else "no"),
        ("breaks at", DASH if f is None or f.break_load is None else label(f.break_load)),
        ("failed first", DASH if limiting is None else f"{limiting.key} ({_value_text(limiting)})"),
        ("closest term at capacity", DASH if tightest is None else f"{tightest.key} ({_value_text(tightest)})"),
        ("knee (most goodput req/s)", DASH if result.knee_load is None else label(result.knee_load)),
        ("stopped because", DASH if f is None else f.stop_reason),
        ("measurements", str(result.steps)),
    ]
    return Table(
        "capacity_answer",
        "Capacity",
        ("", "value"),
        tuple((Cell(k), Cell(v)) for k, v in rows),
        (result.summary(),),
        text_columns=(1,),
    )


def goodput_plot(result: CapacityResult) -> str | None:
    """Goodput share (left axis) and throughput/goodput in req/s (right axis) against load; capacity, break
    and knee marked. None when no load was measured."""
    from orpheus_bench.report.plots import PALETTE, figure_uri, new_figure, plot_style

    levels = list(result.levels)
    if not levels:
        return None
    with plot_style():
        fig, (ax,) = new_figure()
        x = [lv.load for lv in levels]
        share = [100.0 * (lv.evaluation.goodput or 0.0) for lv in levels]
        ax.plot(x, share, "-", marker="o", color=PALETTE[2], label="goodput (% of requests)")
        ax.set_ylim(-3, 103)
        ax.set_ylabel("goodput (% of requests meeting the SLO)")
        unit = "concurrency (streams)" if result.search.kind == CONCURRENCY else "arrival rate (req/s)"
        ax.set_xlabel(unit)
        right = ax.twinx()
        right.grid(False)
        right.spines["right"].set_visible(True)
        right.plot(x, [lv.throughput_rps or 0.0 for lv in levels], "--", marker=".", color=PALETTE[0],
                   label="throughput (req/s)")  # fmt: skip
        right.plot(x, [lv.goodput_rps or 0.0 for lv in levels], "-", marker=".", color=PALETTE[1],
                   label="goodput (req/s)")  # fmt: skip
        right.set_ylim(bottom=0)
        right.set_ylabel("requests per second")
        for lv in levels:
            if not lv.evaluation.meets:
                ax.plot([lv.load], [100.0 * (lv.evaluation.goodput or 0.0)], "x", color=PALETTE[3], markersize=9)
        f = result.finished
        if f is not None and f.capacity is not None:
            ax.axvline(f.capacity, color=PALETTE[2], alpha=0.6, linewidth=1.2)
            ax.annotate(f" capacity {result.search.label(f.capacity)}", (f.capacity, 5), fontsize=8)
        if f is not None and f.break_load is not None:
            ax.axvline(f.break_load, color=PALETTE[3], alpha=0.6, linestyle=":", linewidth=1.2)
        knee = result.knee_load
        if knee is not None:
            at = result.at(knee)
            if at is not None and at.goodput_rps is not None:
                right.plot([knee], [at.goodput_rps], "D", color=PALETTE[1], markersize=7, label="knee")
        handles = ax.get_legend_handles_labels()
        more = right.get_legend_handles_labels()
        ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=8, loc="lower left")
        limiting = result.limiting_term
        title = "Goodput vs load"
        if limiting is not None:
            title += f" (limit: {limiting.key})"
        ax.set_title(title)
        return figure_uri(fig, "svg")


def capacity_section(run_dir: str | Path) -> CapacitySection | None:
    """The capacity page of ``run_dir``, or None when it holds no capacity search."""
    result = read_result(run_dir)
    if result is None:
        return None
    return section_from_result(result)


def section_from_result(result: CapacityResult) -> CapacitySection:
    """The capacity page of an in-memory result."""
    plots: list[CapacityPlot] = []
    uri = goodput_plot(result)
    if uri is not None:
        plots.append(
            CapacityPlot(
                "Goodput vs load",
                uri,
                "Green: share of requests meeting every per-request SLO term (left axis; ✕ marks loads missing the "
                "SLO). Blue dashed: raw throughput; orange: goodput in requests per second (right axis); the "
                "diamond is the knee. Vertical lines: capacity (solid) and break (dotted).",
            )
        )
    tables = (answer_table(result), levels_table(result), failures_table(result))
    return CapacitySection(result, result.summary(), tables, tuple(plots), result.warnings)


__all__ = [
    "CapacityPlot",
    "CapacitySection",
    "answer_table",
    "capacity_section",
    "failures_table",
    "goodput_plot",
    "levels_table",
    "section_from_result",
]
