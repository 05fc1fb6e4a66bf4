"""Plots for the HTML report, drawn with matplotlib's object API and returned as ``data:`` URIs.

No pyplot and no global backend switch: each plot builds its own `Figure` and saves it to memory, so importing
this module never changes how a caller's matplotlib behaves. Line charts are SVG (sharp at any width, small);
the per-request timeline and waveforms are PNG (many marks). SVG output is made deterministic (fixed hash
salt, no date) so the same results give byte-identical reports. A plot whose data is missing returns None and
the report shows nothing in its place instead of an empty frame.
"""

from __future__ import annotations

import base64
import io
import itertools
import wave
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, cast

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from orpheus_bench.results.model import RunResults

Run = tuple[str, RunResults]  # (role label such as "after", results)

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf")
_STYLE: dict[str, Any] = {
    "svg.hashsalt": "orpheus-bench",
    "svg.fonttype": "path",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
MAX_TIMELINE_REQUESTS = 400


def plot_style(overrides: dict[str, Any] | None = None) -> AbstractContextManager[None]:
    # matplotlib's stubs type rc keys as literals; ours are checked by matplotlib at runtime.
    return mpl.rc_context(cast(Any, {**_STYLE, **(overrides or {})}))


def figure_uri(fig: Figure, fmt: str) -> str:
    buf = io.BytesIO()
    with plot_style():
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        fig.savefig(buf, format=fmt, dpi=110, bbox_inches="tight", metadata=metadata)
    mime = "image/svg+xml" if fmt == "svg" else "image/png"
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def new_figure(width: float = 7.0, height: float = 3.6, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    with plot_style():
        # No constrained layout: it costs a third of the drawing time; bbox_inches="tight" trims at save.
        fig = Figure(figsize=(width, height))
        axes = fig.subplots(1, ncols, squeeze=False, gridspec_kw={"wspace": 0.3})[0]
    return fig, list(axes)


def _dash(role: str) -> str:
    return "--" if role == "before" else "-"


def _log_if_wide(ax: Axes, values: Sequence[float]) -> None:
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > 20:
        ax.set_yscale("log")


def ttfa_vs_concurrency(runs: Sequence[Run]) -> str | None:
    """TTFA p50/p90/p99 against concurrency, every run on one chart (before dashed)."""
    with plot_style():
        fig, (ax,) = new_figure()
        values: list[float] = []
        for role, res in runs:
            levels = [lv for lv in res.levels if lv.ttfa_ms.n]
            if not levels:
                continue
            x = [lv.level for lv in levels]
            for color, (name, get) in zip(
                PALETTE,
                (
                    ("p50", lambda lv: lv.ttfa_ms.p50),
                    ("p90", lambda lv: lv.ttfa_ms.p90),
                    ("p99", lambda lv: lv.ttfa_ms.p99),
                ),
                strict=False,
            ):
                y = [get(lv) for lv in levels]
                values.extend(v for v in y if v is not None)
                ax.plot(x, y, _dash(role), marker="o", color=color, label=f"{role} {name}")
        if not values:
            return None
        _log_if_wide(ax, values)
        ax.set_xlabel("concurrency (workers)")
        ax.set_ylabel("TTFA (ms)")
        ax.set_title("TTFA percentiles vs concurrency")
        ax.legend(fontsize=8, ncols=2)
        return figure_uri(fig, "svg")


def throughput_vs_concurrency(runs: Sequence[Run]) -> str | None:
    """Successful requests per second against concurrency, every run on one chart."""
    with plot_style():
        fig, (ax,) = new_figure()
        drawn = False
        for i, (role, res) in enumerate(runs):
            levels = [lv for lv in res.levels if lv.throughput_rps is not None]
            if not levels:
                continue
            drawn = True
            ax.plot(
                [lv.level for lv in levels],
                [lv.throughput_rps or 0.0 for lv in levels],
                _dash(role),
                marker="o",
                color=PALETTE[i],
                label=role,
            )
        if not drawn:
            return None
        ax.set_xlabel("concurrency (workers)")
        ax.set_ylabel("throughput (req/s)")
        ax.set_ylim(bottom=0)
        ax.set_title("Throughput vs concurrency")
        ax.legend(fontsize=8)
        return figure_uri(fig, "svg")


def latency_cdf(results: RunResults) -> str | None:
    """Empirical CDFs of TTFA and total latency, one line per level (successful measured requests)."""
    with plot_style():
        fig, (ax_ttfa, ax_total) = new_figure(width=8.0, height=3.4, ncols=2)
        drawn = False
        for i, lv in enumerate(results.levels):
            rows = [r for r in results.requests if r.level == lv.level and not r.warmup and r.ok]
            for ax, values in (
                (ax_ttfa, sorted(r.ttfa_ms for r in rows if r.ttfa_ms is not None)),
                (ax_total, sorted(r.total_ms for r in rows if r.total_ms is not None)),
            ):
                if values:
                    drawn = True
                    y = np.arange(1, len(values) + 1) / len(values)
                    ax.step(values, y, where="post", color=PALETTE[i % len(PALETTE)], label=lv.label)
        if not drawn:
            return None
        ax_ttfa.set_xlabel("TTFA (ms)")
        ax_total.set_xlabel("total latency (ms)")
        ax_ttfa.set_ylabel("share of requests ≤ x")
        ax_ttfa.set_title("TTFA CDF per level")
        ax_total.set_title("Total latency CDF per level")
        ax_total.legend(fontsize=8)
        return figure_uri(fig, "svg")


def request_timeline(results: RunResults) -> str | None:
    """One bar per request on the run clock: sent -> first audio (light) -> end (dark); failures in red."""
    rows = [r for r in results.requests if r.total_ms is not None]
    if not rows:
        return None
    if len(rows) > MAX_TIMELINE_REQUESTS:
        step = len(rows) / MAX_TIMELINE_REQUESTS
        rows = [rows[int(i * step)] for i in range(MAX_TIMELINE_REQUESTS)]
    with plot_style():
        fig, (ax,) = new_figure(width=8.0, height=min(8.0, 2.0 + 0.02 * len(rows)))
        for lv_i, lv in enumerate(results.levels):
            if lv.started_run_s is not None and lv.ended_run_s is not None:
                ax.axvspan(lv.started_run_s, lv.ended_run_s, color=PALETTE[lv_i % len(PALETTE)], alpha=0.06)
                ax.text(lv.started_run_s, 1.0, lv.label, transform=ax.get_xaxis_transform(), fontsize=7, va="bottom")
        y = np.arange(len(rows))
        start = np.array([r.start_run_s for r in rows])
        end = start + np.array([(r.total_ms or 0.0) / 1000.0 for r in rows])
        first = np.array(
            [start[i] + (r.ttfa_ms or 0.0) / 1000.0 if r.ttfa_ms is not None else np.nan for i, r in enumerate(rows)]
        )
        ok = np.array([r.ok for r in rows])
        warm = np.array([r.warmup for r in rows])
        lw = max(0.6, min(4.0, 300.0 / len(rows)))
        ax.hlines(
            y[ok],
            start[ok],
            np.where(np.isnan(first[ok]), end[ok], first[ok]),
            color="#9ecae1",
            lw=lw,
            label="sent → first audio",
        )
        has_audio = ok & ~np.isnan(first)
        ax.hlines(y[has_audio], first[has_audio], end[has_audio], color="#08519c", lw=lw, label="first audio → end")
        if (~ok).any():
            ax.hlines(y[~ok], start[~ok], end[~ok], color="#d62728", lw=lw, label="failed")
        if warm.any():
            ax.plot(start[warm], y[warm], "|", color="#7f7f7f", ms=4, label="warmup (excluded)")
        ax.set_xlabel("run clock (s)")
        ax.set_ylabel("request (by send time)")
        ax.invert_yaxis()
        title = "Per-request timeline"
        if len(rows) < len(results.requests):
            title += f" (every {len(results.requests) / len(rows):.1f}th request)"
        ax.set_title(title, pad=14)
        # Closed-loop timelines run from top left to bottom right, so the top right is free.
        ax.legend(fontsize=8, loc="upper right")
        return figure_uri(fig, "png")


def stall_rate_vs_preroll(runs: Sequence[Run]) -> str | None:
    """Share of streams with at least one stall against the player's pre-roll, one line per level."""
    with plot_style():
        fig, (ax,) = new_figure()
        drawn = False
        for role, res in runs:
            for i, lv in enumerate(res.levels):
                points = [(s.preroll_ms, s.stall_rate * 100.0) for s in lv.stalls if s.stall_rate is not None]
                if not points:
                    continue
                drawn = True
                x, y = zip(*points, strict=True)
                ax.plot(
                    x,
                    y,
                    _dash(role),
                    marker="o",
                    color=PALETTE[i % len(PALETTE)],
                    label=f"{role} {lv.label}" if len(runs) > 1 else lv.label,
                )
        if not drawn:
            return None
        ax.set_xlabel("pre-roll (ms)")
        ax.set_ylabel("streams with a stall (%)")
        ax.set_ylim(-2, 102)
        ax.set_title("Stall rate vs pre-roll")
        ax.legend(fontsize=7, ncols=2)
        return figure_uri(fig, "svg")


def server_timeline(results: RunResults) -> str | None:
    """Busy slots and deferred requests (left) and generated tokens/s (right) over the run clock."""
    samples = results.server
    if not samples:
        return None
    t = [s.t_run_s for s in samples]
    with plot_style():
        fig, (ax,) = new_figure(width=8.0, height=3.4)
        for lv_i, lv in enumerate(results.levels):
            if lv.started_run_s is not None and lv.ended_run_s is not None:
                ax.axvspan(lv.started_run_s, lv.ended_run_s, color=PALETTE[lv_i % len(PALETTE)], alpha=0.06)
                ax.text(lv.started_run_s, 1.0, lv.label, transform=ax.get_xaxis_transform(), fontsize=7, va="top")
        drawn = False
        for name, values, color in (
            ("busy slots", [s.busy_slots for s in samples], "#1f77b4"),
            ("requests processing", [s.processing for s in samples], "#2ca02c"),
            ("requests deferred", [s.deferred for s in samples], "#d62728"),
        ):
            if any(v is not None for v in values):
                drawn = True
                ax.step(t, [np.nan if v is None else v for v in values], where="post", color=color, label=name)
        ax.set_xlabel("run clock (s)")
        ax.set_ylabel("slots / requests")
        handles, labels = ax.get_legend_handles_labels()
        tps = [s.tokens_per_s for s in samples]
        if any(v is not None for v in tps):
            drawn = True
            ax2 = ax.twinx()
            ax2.plot(t, [np.nan if v is None else v for v in tps], color="#ff7f0e", lw=1, label="tokens/s")
            ax2.set_ylabel("tokens/s")
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        if not drawn:
            return None
        ax.set_title("Server timeline")
        ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.18), ncols=4)
        return figure_uri(fig, "svg")


def waveform(path: str | Path, width_px: int = 560, height_px: int = 70) -> str | None:
    """A small PNG of a 16-bit PCM WAV's envelope; None when the file is not a WAV we can read."""
    try:
        with wave.open(str(path), "rb") as fh:
            if fh.getsampwidth() != 2:
                return None
            channels = fh.getnchannels()
            data = np.frombuffer(fh.readframes(fh.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    except (OSError, EOFError, wave.Error):
        return None
    if channels > 1:
        data = data[: data.size - data.size % channels].reshape(-1, channels).mean(axis=1)
    if data.size == 0:
        return None
    bins = min(width_px, data.size)
    edges = np.linspace(0, data.size, bins + 1).astype(int)
    lo = np.array([data[a:b].min() for a, b in itertools.pairwise(edges)])
    hi = np.array([data[a:b].max() for a, b in itertools.pairwise(edges)])
    with plot_style({"axes.grid": False}):
        fig = Figure(figsize=(width_px / 100, height_px / 100), dpi=100)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.fill_between(np.arange(bins), lo, hi, color="#08519c", lw=0)
        ax.set_ylim(-1, 1)
        ax.set_xlim(0, bins)
        ax.axis("off")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
