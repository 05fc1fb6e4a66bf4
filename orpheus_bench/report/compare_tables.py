"""The before/after tables: the seed's "Comparison: Before vs After", the work each request did, the
server-attributable figures, and the levels left out, all read from one `Comparison`.
"""

from __future__ import annotations

from orpheus_bench.report.format import (
    DASH,
    Cell,
    Table,
    fmt_factor,
    fmt_factor_precise,
    fmt_ms,
    fmt_num,
    fmt_pct,
)
from orpheus_bench.results.compare import Comparison, ComparisonRow


def _range_text(row: ComparisonRow, rng: tuple[float | None, float | None], is_open: bool) -> str:
    lo, hi = rng
    if row.key == "max_concurrency" and lo is None:
        return "no level ≥ 99%"
    if lo is None or hi is None:
        return DASH

    def one(x: float) -> str:
        if row.unit == "%":
            return fmt_pct(x)
        if row.key == "total_latency" and row.unit == "ms":
            return f"{x / 1000:,.1f}"
        if row.unit == "ms":
            return fmt_ms(x)
        if row.unit in ("req/s", "s/s", "s", "x"):
            return fmt_num(x)
        return f"{x:,.0f}"

    unit = "s" if (row.key == "total_latency" and row.unit == "ms") else row.unit
    text = one(lo) if lo == hi else f"{one(lo)}–{one(hi)}"
    if is_open:
        text += "+"
    return text if unit == "%" else f"{text} {unit}"


def _inverse(value: float) -> float:
    return float("inf") if value <= 0 else 1.0 / value


def improvement_text(row: ComparisonRow) -> tuple[str, str, str | None]:
    """(improvement, 95% interval, tone) for one comparison row, oriented the way the text reads."""
    eff = row.effect
    if row.unavailable:
        return f"no factor: {row.unavailable}", DASH, "warn"
    if eff.estimate is None:
        return "n/a", DASH, None
    if eff.kind == "difference":
        pp = eff.estimate * 100.0
        both_high = all(v is not None and v >= 0.99 for v in (row.before_value, row.after_value))
        ci = DASH if eff.low is None or eff.high is None else f"{eff.low * 100:+.1f} to {eff.high * 100:+.1f} pp"
        if not eff.excludes(0.0):
            return ("Stable" if both_high else f"{pp:+.1f} pp (within noise)"), ci, None
        return f"{pp:+.1f} pp", ci, "good" if pp > 0 else "bad"
    better = eff.estimate >= 1.0
    shown = eff.estimate if better else _inverse(eff.estimate)
    word = row.better_word if better else row.worse_word
    text = f"{fmt_factor(shown)} {word}"
    if eff.low is None or eff.high is None:
        ci = DASH
    elif better:
        ci = f"{fmt_factor_precise(eff.low)}–{fmt_factor_precise(eff.high)}"
    else:
        ci = f"{fmt_factor_precise(_inverse(eff.high))}–{fmt_factor_precise(_inverse(eff.low))}"
    if row.per_level is not None:
        lo, hi = row.per_level
        text += f" (per level {fmt_factor(lo)}–{fmt_factor(hi)})"
    if not eff.excludes(1.0):
        return text + " (within noise)", ci, None
    return text, ci, "good" if better else "bad"


def _rows_table(comparison: Comparison, group: str, key: str, title: str, notes: tuple[str, ...]) -> Table:
    rows = []
    for r in comparison.rows:
        if r.group != group:
            continue
        text, ci, tone = improvement_text(r)
        rows.append(
            (
                Cell(r.metric),
                Cell(_range_text(r, r.before_range, r.before_open), r.before_value),
                Cell(_range_text(r, r.after_range, r.after_open), r.after_value),
                Cell(text, r.effect.estimate, tone, strong=tone == "good"),
                Cell(ci),
                Cell(r.basis),
            )
        )
    pct = f"{comparison.confidence:.0%}"
    columns = ("Metric", "Before", "After", "Improvement" if group == "headline" else "Change", f"{pct} interval",
               "What the factor compares")  # fmt: skip
    return Table(key=key, title=title, columns=columns, rows=tuple(rows), text_columns=(5,), notes=notes)


def comparison_table(comparison: Comparison) -> Table:
    """The seed's "Comparison: Before vs After" table, with a 95% bootstrap interval on each factor; every
    factor rests on comparable levels (not client-bound, enough requests) and equal or normalised work."""
    levels = ", ".join(str(x) for x in comparison.comparable_levels) or "none"
    return _rows_table(
        comparison,
        "headline",
        "comparison",
        "Before vs After",
        (
            f"Before = {comparison.before_name}, after = {comparison.after_name}. Intervals: percentile "
            f"bootstrap, {comparison.n_resamples} resamples of the requests within each level "
            f"(seed {comparison.seed}), the gate's method; 'within noise' means the interval includes no change.",
            f"Levels comparable in both runs (not client-bound, enough requests): {levels}. Latency figures "
            "describe the requests that delivered audio; success counts complete utterances.",
            *comparison.notes,
        ),
    )


def work_table(comparison: Comparison) -> Table:
    """What each request did in each run: audio seconds and tokens per request, complete-utterance share."""
    verdict = (
        "equal work: the headline compares requests per second and latency as they are"
        if comparison.equal_work
        else "different work: the headline compares per unit of work (audio seconds per wall second, time per "
        "audio second)"
    )
    return _rows_table(comparison, "work", "comparison_work", "Work per request", (f"Before vs after: {verdict}.",))


def server_table(comparison: Comparison) -> Table:
    """Figures that describe the server even when the client's decoding was the bottleneck."""
    return _rows_table(
        comparison,
        "server",
        "comparison_server",
        "Server-attributable figures",
        (
            "Measured before the client's SNAC decode: the first decode window's tokens and the first token. They "
            "use every shared level whose only client-side problem was the decode queue (the event loop kept up).",
        ),
    )


def exclusions_table(comparison: Comparison) -> Table | None:
    """The levels left out of the headline factors, with their reasons (None when none was)."""
    if not comparison.exclusions:
        return None
    rows = tuple((Cell(e.label, float(e.level), "warn"), Cell(e.reason)) for e in comparison.exclusions)
    return Table(
        key="comparison_excluded",
        title="Levels left out of the headline",
        columns=("Level", "Why"),
        rows=rows,
        text_columns=(1,),
        notes=("Shown in each run's tables below, greyed; no headline factor uses them.",),
    )


def comparison_tables(comparison: Comparison) -> list[Table]:
    """Every comparison table in report order."""
    tables = [comparison_table(comparison), work_table(comparison), server_table(comparison)]
    excluded = exclusions_table(comparison)
    return tables + ([excluded] if excluded is not None else [])
