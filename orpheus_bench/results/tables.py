"""The tables people read, built once from compiled results and rendered by every output format.

A `Table` holds display text (and the number behind it, for sorting) so the console, Markdown and HTML show
exactly the same cells. The first three builders reproduce the seed's tables ("Time-to-First-Audio",
"Throughput Performance", "Comparison: Before vs After"); the others are what the seed did not measure.

Mapping to the seed: its single TTFA and total-latency numbers are averages ("TTFA (avg)"), so the TTFA
table's headline column is the mean, with p50/p90/p99 beside it, and the target status judges the mean as the
seed did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orpheus_bench.records import FRAME_POSITIONS
from orpheus_bench.results.compare import Comparison, ComparisonRow
from orpheus_bench.results.model import LevelResult, RunResults

DEFAULT_TTFA_TARGET_MS = 200.0
DASH = "–"


@dataclass(frozen=True, slots=True)
class Cell:
    """One table cell: display text, the number behind it (for sorting), and a tone (good/bad/warn)."""

    text: str
    value: float | None = None
    tone: str | None = None
    strong: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    """A titled table with notes that explain its numbers."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    text_columns: tuple[int, ...] = ()  # free-text columns: left-aligned and wrapped


# ---- number formatting -----------------------------------------------------------------------------


def fmt_ms(value: float | None) -> str:
    """Milliseconds: one decimal below 1000 ms, thousands separators above ("941.8", "4,012")."""
    if value is None:
        return DASH
    return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"


def fmt_num(value: float | None, digits: int = 2) -> str:
    """A plain number with ``digits`` decimals, or a dash."""
    return DASH if value is None else f"{value:,.{digits}f}"


def fmt_pct(value: float | None) -> str:
    """A fraction as a percentage: "100%", "99.5%"."""
    if value is None:
        return DASH
    pct = value * 100.0
    return f"{pct:.0f}%" if pct in (0.0, 100.0) else f"{pct:.1f}%"


def fmt_factor(value: float) -> str:
    """An improvement factor: "5.2x", "15x" ("∞" for a division by zero)."""
    if value == float("inf"):
        return "∞"
    return f"{value:.0f}x" if value >= 10 else f"{value:.1f}x"


def fmt_factor_precise(value: float) -> str:
    """A factor with enough digits for an interval's ends: "4.83x", "44.6x", "251x"."""
    if value == float("inf"):
        return "∞"
    if value >= 100:
        return f"{value:.0f}x"
    return f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def _c(text: str, value: float | None = None, tone: str | None = None) -> Cell:
    return Cell(text, value, tone)


def _ms(value: float | None) -> Cell:
    return Cell(fmt_ms(value), value)


def _rps(value: float | None) -> str:
    return DASH if value is None else f"{fmt_num(value)} req/s"


def _bound(lv: LevelResult) -> Cell:
    return Cell("yes" if lv.client_bound else "no", float(lv.client_bound), "warn" if lv.client_bound else None)


def _label(lv: LevelResult, marker: str = " ⚠ client-bound") -> Cell:
    return Cell(lv.label + (marker if lv.client_bound else ""), float(lv.level), "warn" if lv.client_bound else None)


def _rows(
    results: RunResults, make: Callable[[LevelResult], list[Cell]], marker: str = " ⚠ client-bound"
) -> tuple[tuple[Cell, ...], ...]:
    return tuple(tuple([_label(lv, marker), *make(lv)]) for lv in results.levels)


# ---- the seed's tables -------------------------------------------------------------------------------


def ttfa_table(results: RunResults, target_ms: float = DEFAULT_TTFA_TARGET_MS) -> Table:
    """The seed's "Time-to-First-Audio" table: mean (the seed's number), p50/p90/p99, target, status."""

    def row(lv: LevelResult) -> list[Cell]:
        mean = lv.ttfa_ms.mean
        if mean is None:
            status = Cell("no audio", None, "bad")
        elif mean <= target_ms:
            status = Cell("✓ Met target", 1.0, "good")
        else:
            status = Cell("⚠ Above target", 0.0, "bad")
        s = lv.ttfa_ms
        return [_ms(mean), _ms(s.p50), _ms(s.p90), _ms(s.p99), _ms(s.min), _c(str(s.n), s.n),
                _c(f"{target_ms:g}ms", target_ms), status]  # fmt: skip

    return Table(
        key="ttfa",
        title="Time-to-First-Audio (TTFA)",
        columns=("Concurrency", "TTFA mean (ms)", "p50", "p90", "p99", "min", "n", "Target", "Status"),
        rows=_rows(results, row),
        notes=(
            "TTFA = request sent → first PCM chunk ready to play (after SNAC decode). Successful, measured "
            "(non-warmup) requests only.",
            "The seed's single TTFA number is an average, so 'TTFA mean' is the column to compare with it; "
            "the status judges the mean against the target as the seed did, and p50/p90/p99 show the spread.",
        ),
    )


def throughput_table(results: RunResults) -> Table:
    """The seed's "Throughput Performance" table: req/s, total latency (mean, p50, p99), success."""

    def row(lv: LevelResult) -> list[Cell]:
        sr = lv.success_rate
        tone = None if sr is None else ("good" if sr >= 0.99 else "bad")
        return [
            _c(_rps(lv.throughput_rps), lv.throughput_rps),
            _ms(lv.total_ms.mean), _ms(lv.total_ms.p50), _ms(lv.total_ms.p99),
            _c(fmt_pct(sr), sr, tone), _c(f"{lv.ok}/{lv.n - lv.cancelled}", float(lv.ok)),
        ]  # fmt: skip

    return Table(
        key="throughput",
        title="Throughput",
        columns=(
            "Concurrency",
            "Throughput",
            "Total latency mean (ms)",
            "p50",
            "p99",
            "Success rate",
            "ok/n",
        ),
        rows=_rows(results, row),
        notes=(
            "Throughput = successful measured requests / (last measured end − first measured send) on the "
            "run clock; warmup excluded. Total latency = request sent → response fully read and decoded.",
            "Success rate = ok / (measured − cancelled); requests cancelled by a harness shutdown are not "
            "the server's failures.",
        ),
    )


def _range_text(row: ComparisonRow, rng: tuple[float | None, float | None], is_open: bool) -> str:
    lo, hi = rng
    if row.key == "max_concurrency" and lo is None:
        return "no level ≥ 99%"
    if lo is None or hi is None:
        return DASH
    if row.unit == "%":
        text = fmt_pct(lo) if lo == hi else f"{fmt_pct(lo)}–{fmt_pct(hi)}"
    elif row.key == "total_latency":
        text = f"{lo / 1000:,.1f} s" if lo == hi else f"{lo / 1000:,.1f}–{hi / 1000:,.1f} s"
    elif row.unit == "ms":
        text = f"{fmt_ms(lo)} ms" if lo == hi else f"{fmt_ms(lo)}–{fmt_ms(hi)} ms"
    elif row.unit == "req/s":
        text = f"{fmt_num(lo)} req/s"
    else:
        text = f"{lo:.0f} {row.unit}"
    return text.replace(f" {row.unit}", f"+ {row.unit}", 1) if is_open else text


def _inverse(value: float) -> float:
    return float("inf") if value <= 0 else 1.0 / value


def improvement_text(row: ComparisonRow) -> tuple[str, str, str | None]:
    """(improvement, 95% interval, tone) for one comparison row, oriented the way the text reads."""
    eff = row.effect
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


def comparison_table(comparison: Comparison) -> Table:
    """The seed's "Comparison: Before vs After" table, with a 95% bootstrap interval on each factor."""
    rows = []
    for r in comparison.rows:
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
    return Table(
        key="comparison",
        title="Before vs After",
        columns=("Metric", "Before", "After", "Improvement", f"{pct} interval", "What the factor compares"),
        rows=tuple(rows),
        text_columns=(5,),
        notes=(
            f"Before = {comparison.before_name}, after = {comparison.after_name}. Intervals: percentile "
            f"bootstrap, {comparison.n_resamples} resamples of the requests within each level "
            f"(seed {comparison.seed}); 'within noise' means the interval includes no change.",
            *comparison.notes,
        ),
    )


# ---- beyond the seed -----------------------------------------------------------------------------------


def console_table(results: RunResults) -> Table:
    """The end-of-run table: concurrency, TTFA p50/p90/p99, total p50, req/s, audio s per wall s, success."""

    def row(lv: LevelResult) -> list[Cell]:
        sr = lv.success_rate
        return [
            _c(str(lv.n), lv.n), _ms(lv.ttfa_ms.p50), _ms(lv.ttfa_ms.p90), _ms(lv.ttfa_ms.p99),
            _ms(lv.total_ms.p50), _c(fmt_num(lv.throughput_rps), lv.throughput_rps),
            _c(fmt_num(lv.audio_s_per_wall_s), lv.audio_s_per_wall_s),
            _c(fmt_pct(sr), sr, None if sr is None else ("good" if sr >= 0.99 else "bad")),
        ]  # fmt: skip

    # Two-line headers keep the table within 80 columns; other renderers show the line break as a space.
    return Table(
        key="levels",
        title=f"{results.meta.name}: per level (times in ms)",
        columns=(
            "Concurrency",
            "n",
            "TTFA\np50",
            "TTFA\np90",
            "TTFA\np99",
            "total\np50",
            "req/s",
            "audio s/\nwall s",
            "success",
        ),
        rows=_rows(results, row, marker=" ⚠"),
        notes=("Measured requests only (warmup excluded). ⚠ client-bound: the client, not the server, was the limit.",),
    )


def streaming_table(results: RunResults) -> Table:
    """Audio rate, RTF, tokens/s and decode lag per level."""

    def row(lv: LevelResult) -> list[Cell]:
        return [
            _c(fmt_num(lv.audio_s_per_wall_s), lv.audio_s_per_wall_s),
            _c(fmt_num(lv.rtf.p50), lv.rtf.p50), _c(fmt_num(lv.rtf.p90), lv.rtf.p90),
            _c(fmt_num(lv.tokens_per_s, 1), lv.tokens_per_s),
            _c(fmt_num(lv.stream_tokens_per_s.p50, 1), lv.stream_tokens_per_s.p50),
            _ms(lv.decode_lag_ms.p50), _ms(lv.decode_lag_ms.p99),
            _bound(lv),
        ]  # fmt: skip

    return Table(
        key="streaming",
        title="Streaming: audio rate, real-time factor, tokens, decode lag",
        columns=(
            "Concurrency",
            "audio s / wall s",
            "RTF p50",
            "RTF p90",
            "tokens/s",
            "tokens/s per stream p50",
            "decode lag p50 (ms)",
            "p99",
            "client-bound",
        ),
        rows=_rows(results, row),
        notes=(
            "audio s / wall s: seconds of audio all streams produced per second of the level's window.",
            "RTF = wall seconds per audio second per stream (total latency / audio length): below 1 is "
            "faster than real time.",
            "Decode lag = a window's last token arriving → its PCM ready (decode queue + SNAC), per chunk.",
        ),
    )


def stall_table(results: RunResults) -> Table:
    """Playback continuity per level and pre-roll."""

    def row(lv: LevelResult) -> list[Cell]:
        cells = []
        for st in lv.stalls:
            if st.continuity_rate is None:
                cells.append(Cell(DASH))
                continue
            tone = "good" if st.continuity_rate >= 0.99 else ("warn" if st.continuity_rate >= 0.9 else "bad")
            cells.append(
                Cell(
                    f"{fmt_pct(st.continuity_rate)} · {st.stalls} stalls, {st.stall_s:.2f} s",
                    st.continuity_rate,
                    tone,
                )
            )
        return cells

    return Table(
        key="stalls",
        title="Playback stalls by pre-roll",
        columns=("Concurrency", *(f"pre-roll {p} ms" for p in results.prerolls_ms)),
        rows=_rows(results, row),
        notes=(
            "A virtual player starts at TTFA + pre-roll and plays chunks in order at real time; a stall "
            "is the next chunk not being ready when the buffered audio runs out.",
            "Each cell: continuity rate (share of streams that played without any stall) · total stalls and "
            "stall seconds over the level's streams.",
        ),
    )


def ttfa_split_table(results: RunResults) -> Table:
    """TTFA by part: queue (derived), prefill (server), generation and decode (client), as means in ms."""

    def row(lv: LevelResult) -> list[Cell]:
        s = lv.ttfa_split
        return [_c(str(s.n), s.n), _ms(s.queue_ms), _ms(s.prefill_ms), _ms(s.to_first_token_ms),
                _ms(s.generation_ms), _ms(s.decode_ms), _ms(s.ttfa_ms)]  # fmt: skip

    return Table(
        key="ttfa_split",
        title="Where TTFA goes (means, ms)",
        columns=(
            "Concurrency",
            "n",
            "queue + network (derived)",
            "prefill (server)",
            "first token (measured)",
            "generation → first window",
            "decode → first PCM",
            "TTFA",
        ),
        rows=_rows(results, row),
        notes=(
            "Measured by the client: first token, first window, first PCM. Reported by the server: prefill "
            "(timings.prompt_ms). Derived: queue + network = first token − prefill.",
            "queue + prefill + generation + decode = TTFA (means over the same requests). A dash: the data "
            "lacks that part (e.g. no server timings, or blocking mode without decode windows).",
        ),
    )


def errors_table(results: RunResults) -> Table:
    """Requests by outcome and error class per level."""
    classes = sorted({c for lv in results.levels for c in lv.errors})

    def row(lv: LevelResult) -> list[Cell]:
        return [_c(str(lv.n), lv.n), _c(str(lv.ok), lv.ok), _c(str(lv.cancelled), lv.cancelled),
                *(_c(str(lv.errors.get(c, 0)), lv.errors.get(c, 0), "bad" if lv.errors.get(c) else None)
                  for c in classes)]  # fmt: skip

    return Table(
        key="errors",
        title="Errors by class",
        columns=("Concurrency", "measured", "ok", "cancelled", *classes),
        rows=_rows(results, row),
        notes=("No request failed." if not classes else "Counts of measured requests by error class.",),
    )


def invalid_codes_table(results: RunResults) -> Table:
    """Out-of-range audio codes by frame slot position."""

    def row(lv: LevelResult) -> list[Cell]:
        rate = lv.invalid_code_rate
        return [_c(str(lv.audio_tokens), lv.audio_tokens), *(_c(str(v), v) for v in lv.invalid_codes),
                _c(fmt_pct(rate) if rate else "0", rate, "bad" if rate else None)]  # fmt: skip

    return Table(
        key="invalid_codes",
        title="Invalid audio codes by slot position",
        columns=("Concurrency", "audio tokens", *(f"slot {i}" for i in range(FRAME_POSITIONS)), "rate"),
        rows=_rows(results, row),
        notes=("A code outside [0, 4095] after mapping (N − 10 − 4096 × slot) is invalid: counted, never dropped.",),
    )


def prompts_table(results: RunResults) -> Table:
    """Outcome by prompt (shortest first): where long prompts lose audio, it shows here."""
    rows = []
    for p in results.prompts:
        sr = p.success_rate
        rows.append(
            (
                Cell(p.prompt_id),
                Cell(p.prompt),
                Cell(str(p.chars), p.chars),
                Cell(str(p.n), p.n),
                Cell(fmt_pct(sr), sr, None if sr is None else ("good" if sr >= 0.99 else "bad")),
                _ms(p.ttfa_mean_ms),
                Cell(fmt_num(p.audio_s_mean), p.audio_s_mean),
            )
        )
    return Table(
        key="prompts",
        title="By prompt",
        columns=("Prompt", "Text", "chars", "n", "Success", "TTFA mean (ms)", "audio s mean"),
        rows=tuple(rows),
        text_columns=(1,),
        notes=("Measured requests of all levels. Prompt text is shown exactly as sent.",),
    )


def _plain(value: Any) -> str:
    if value is None:
        return DASH
    if isinstance(value, dict):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    return str(value)


def metadata_table(results: RunResults) -> Table:
    """Run metadata: what ran, where, with which settings."""
    m = results.meta
    s = results.summary
    snac = m.snac or {}
    items: list[tuple[str, Any]] = [
        ("run", m.name),
        ("driver", m.driver),
        ("started / ended", f"{m.started_at or DASH} / {m.ended_at or DASH}"),
        ("complete", m.complete),
        ("mode / protocol", f"{m.mode or DASH} / {m.protocol or DASH}"),
        ("requests (measured / warmup)", f"{s.measured} / {s.warmup}"),
        ("duration", f"{s.duration_s:.1f} s" if s.duration_s is not None else None),
        ("sampling", m.scenario.get("sampling")),
        ("decode", m.scenario.get("decode")),
        ("concurrency", m.scenario.get("concurrency")),
        ("load", m.scenario.get("load")),
        ("prompts", m.scenario.get("prompts")),
        ("server health at start", m.other.get("health")),
        ("SNAC", snac.get("description") or snac.get("spec")),
        ("SNAC device", snac.get("device")),
        (
            "SNAC weights",
            None if m.snac_random is None else ("random (audio is noise)" if m.snac_random else "trained"),
        ),
        ("orpheus-bench", m.version),
        ("git sha", m.git_sha),
        ("target server", m.host),
        ("client host", m.other.get("client_host")),
        (
            "python / platform",
            " / ".join(str(x) for x in (m.other.get("python"), m.other.get("platform")) if x),
        ),
    ]
    props = m.server_props or {}
    settings = props.get("default_generation_settings")
    if props:
        items.append(("server model", props.get("model_path")))
        items.append(("server slots", props.get("total_slots")))
        if isinstance(settings, dict):
            items.append(("server n_ctx per slot", settings.get("n_ctx")))
        items.append(("server build", props.get("build_info")))
    rows = tuple((Cell(k), Cell(_plain(v))) for k, v in items if v is not None and v != "")
    return Table(key="metadata", title="Run metadata", columns=("Field", "Value"), rows=rows, text_columns=(1,))


def run_tables(results: RunResults, target_ms: float = DEFAULT_TTFA_TARGET_MS) -> list[Table]:
    """Every per-run table in report order."""
    return [
        ttfa_table(results, target_ms),
        throughput_table(results),
        streaming_table(results),
        stall_table(results),
        ttfa_split_table(results),
        errors_table(results),
        invalid_codes_table(results),
        prompts_table(results),
        metadata_table(results),
    ]


def table_dicts(tables: Sequence[Table]) -> list[dict[str, Any]]:
    """Tables as plain dicts (for JSON/|tojson)."""
    return [
        {"key": t.key, "title": t.title, "columns": list(t.columns), "text_columns": list(t.text_columns),
         "rows": [[c.text for c in row] for row in t.rows], "notes": list(t.notes)}
        for t in tables
    ]  # fmt: skip
