"""The per-run tables people read, built once from compiled results and rendered by every output format.

The first two builders reproduce the seed's tables ("Time-to-First-Audio", "Throughput Performance"; its
"Comparison: Before vs After" is `orpheus_bench.report.compare_tables`); the others are what the seed did not
measure. Cells and number formats: `orpheus_bench.report.format`.

Mapping to the seed: its single TTFA and total-latency numbers are averages ("TTFA (avg)"), so the TTFA
table's headline column is the mean, with p50/p90/p99 beside it, and the target status judges the mean as the
seed did.

Why one module over 400 lines: one small builder per table the report shows, each a few dozen lines, kept together
so that every output format gets the same list in the same order (`run_tables`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orpheus_bench.records import FRAME_POSITIONS
from orpheus_bench.report.format import (
    DASH,
    DEFAULT_TTFA_TARGET_MS,
    Cell,
    Table,
    fmt_ms,
    fmt_num,
    fmt_pct,
)
from orpheus_bench.results.model import LevelResult, RunResults


def _c(text: str, value: float | None = None, tone: str | None = None) -> Cell:
    return Cell(text, value, tone)


def _ms(value: float | None) -> Cell:
    return Cell(fmt_ms(value), value)


def _rps(value: float | None) -> str:
    return DASH if value is None else f"{fmt_num(value)} req/s"


def _bound(lv: LevelResult) -> Cell:
    return Cell("yes" if lv.client_bound else "no", float(lv.client_bound), "warn" if lv.client_bound else None)


def _label(lv: LevelResult, marker: str = " ⚠ client-bound") -> Cell:
    # Greyed: a client-bound level describes the client, and no headline factor uses it.
    return Cell(lv.label + (marker if lv.client_bound else ""), float(lv.level), "muted" if lv.client_bound else None)


def _cut(lv: LevelResult) -> Cell:
    rate = lv.cut_short_rate
    return _c(fmt_pct(rate), rate, "bad" if lv.cut_short else None)


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
            "TTFA = request sent → first PCM chunk ready to play (after SNAC decode). Measured (non-warmup) "
            "requests that delivered audio, complete or cut short (see the cut-short column of Throughput).",
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
            _c(fmt_pct(sr), sr, tone), _cut(lv), _c(f"{lv.ok}/{lv.n - lv.cancelled}", float(lv.ok)),
            _c(fmt_num(lv.audio_s_mean), lv.audio_s_mean),
            _c(_basis(lv), float(lv.throughput_requests)),
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
            "Cut short",
            "complete/n",
            "audio s / request",
            "throughput rests on",
        ),
        rows=_rows(results, row),
        notes=(
            "Throughput = complete utterances per second the level sustained: in a closed loop, Little's law over "
            "the measured requests sent while the level's concurrency was in flight (concurrency × successes / "
            "their summed latencies), so queued warmups and the final drain do not bias it; 'rests on' says how "
            "many requests that was (a level that never held its concurrency falls back to first send → last "
            "end). Total latency = request sent → response fully read and decoded.",
            "Success rate = complete utterances / (measured − cancelled); cut short = requests whose utterance a "
            "length limit ended (max_tokens, the slot's context): they delivered audio but are not successes. "
            "Requests cancelled by a harness shutdown are not the server's failures.",
        ),
    )


def _basis(lv: LevelResult) -> str:
    if lv.kind != "concurrency":
        return "completions (open loop)"
    if lv.throughput_basis.startswith("steady state"):
        return f"{lv.throughput_requests} steady-state req"
    return "window (never held)" if lv.n else DASH


# ---- beyond the seed -----------------------------------------------------------------------------------


def console_table(results: RunResults) -> Table:
    """The end-of-run table: concurrency, TTFA p50/p90/p99, total p50, req/s, audio s per wall s, success."""

    def row(lv: LevelResult) -> list[Cell]:
        sr = lv.success_rate
        return [
            _c(str(lv.n), lv.n), _ms(lv.ttfa_ms.p50), _ms(lv.ttfa_ms.p90), _ms(lv.ttfa_ms.p99),
            _ms(lv.total_ms.p50), _c(fmt_num(lv.throughput_rps), lv.throughput_rps),
            _c(fmt_num(lv.audio_s_per_wall_s), lv.audio_s_per_wall_s),
            _c(fmt_pct(sr), sr, None if sr is None else ("good" if sr >= 0.99 else "bad")), _cut(lv),
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
            "cut\nshort",
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


def intervals_table(results: RunResults) -> Table:
    """The headline statistics of each level with their 95% bootstrap intervals (the gate's engine and seed)."""
    keys = sorted({k for lv in results.levels for k in lv.intervals}, key=lambda k: _INTERVAL_ORDER.get(k, 99))

    def cell(lv: LevelResult, key: str) -> Cell:
        iv = lv.intervals.get(key)
        if iv is None or iv.estimate is None:
            return Cell(DASH)
        share = not key.startswith(("ttfa", "total", "throughput"))
        fmt = fmt_pct if share else (fmt_ms if key.startswith(("ttfa", "total")) else fmt_num)
        ci = "" if iv.low is None or iv.high is None else f" [{fmt(iv.low)}, {fmt(iv.high)}]"
        return Cell(fmt(iv.estimate) + ci, iv.estimate)

    return Table(
        key="intervals",
        title="Headline statistics with 95% intervals",
        columns=("Concurrency", *keys),
        rows=_rows(results, lambda lv: [cell(lv, k) for k in keys]),
        notes=(
            "Percentile bootstrap over the level's requests (the gate's engine: the same rule at the same level "
            "gets the same interval there). Latencies describe the requests that delivered audio; times in ms.",
        ),
    )


_INTERVAL_ORDER = {
    "ttfa_ms p50": 0, "ttfa_ms p95": 1, "total_ms p50": 2, "throughput_rps": 3, "success_rate": 4,
    "cut_short_rate": 5, "stall_rate preroll 250 ms": 6,
}  # fmt: skip


def beyond_tables(results: RunResults) -> list[Table]:
    """The tables of what the seed did not measure, in report order."""
    return [
        intervals_table(results),
        streaming_table(results),
        stall_table(results),
        ttfa_split_table(results),
        errors_table(results),
        invalid_codes_table(results),
        prompts_table(results),
    ]


def run_tables(results: RunResults, target_ms: float = DEFAULT_TTFA_TARGET_MS) -> list[Table]:
    """Every per-run table in report order: the seed's two, the ones beyond the seed, the metadata."""
    return [ttfa_table(results, target_ms), throughput_table(results), *beyond_tables(results), metadata_table(results)]
