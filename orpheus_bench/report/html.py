"""The HTML report: one self-contained file (inline CSS, plots and audio as ``data:`` URIs, no network).

Rendering goes through jinja2 with autoescape on, so everything that came from prompts, servers or files is
text, never markup; the compiled results are embedded once more as JSON through ``|tojson`` (which escapes
``<``, ``>`` and ``&``). A Content-Security-Policy allows only this file's own two scripts (by hash) and
``data:`` images and audio, so even a missed escape could neither run script nor load anything.

The small scripts make tables sortable and record, on ``<body>``, whether every image decoded
(``data-images-ok``), how many audio players loaded a playable clip (``data-audio-playable`` of
``data-audio-count``) and how many script errors happened (``data-js-errors``), which the browser test reads.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from orpheus_bench import __version__
from orpheus_bench.report import plots
from orpheus_bench.report.compare_tables import comparison_tables
from orpheus_bench.report.format import DEFAULT_TTFA_TARGET_MS, Table
from orpheus_bench.report.json_out import report_first_lines, results_dict
from orpheus_bench.report.tables import beyond_tables, metadata_table, throughput_table, ttfa_table
from orpheus_bench.results.compare import Comparison
from orpheus_bench.results.model import AudioSample, RunResults

TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_AUDIO_PER_LEVEL = 2
DEFAULT_AUDIO_BUDGET_BYTES = 12 * 1024 * 1024

# Runs first, in <head>: counts script errors before anything else can fail.
ERROR_SCRIPT = (
    "window.__errors=0;window.addEventListener('error',function(){window.__errors++;"
    "if(document.body){document.body.dataset.jsErrors=String(window.__errors);}},true);"
)
# Runs at the end of <body>: sortable tables and the image check.
PAGE_SCRIPT = """
(function () {
  document.body.dataset.jsErrors = String(window.__errors || 0);
  function key(cell) {
    var v = cell.getAttribute('data-v');
    return v === null || v === '' ? cell.textContent.trim() : parseFloat(v);
  }
  document.querySelectorAll('table.sortable th').forEach(function (th, i) {
    th.addEventListener('click', function () {
      var table = th.closest('table'), body = table.tBodies[0];
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a.cells[th.cellIndex]), y = key(b.cells[th.cellIndex]);
        if (typeof x === 'number' && typeof y === 'number') { return asc ? x - y : y - x; }
        return asc ? String(x).localeCompare(String(y)) : String(y).localeCompare(String(x));
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  function checkImages() {
    var imgs = Array.prototype.slice.call(document.images);
    var done = imgs.every(function (img) { return img.complete; });
    if (!done) { return false; }
    var ok = imgs.every(function (img) { return img.naturalWidth > 0; });
    document.body.dataset.imagesOk = ok ? 'true' : 'false';
    document.body.dataset.imagesCount = String(imgs.length);
    return true;
  }
  if (!checkImages()) { window.addEventListener('load', checkImages); }
  var players = Array.prototype.slice.call(document.querySelectorAll('audio'));
  var playable = 0;
  document.body.dataset.audioCount = String(players.length);
  players.forEach(function (a) {
    a.addEventListener('loadedmetadata', function () {
      if (a.duration > 0) { playable++; }
      document.body.dataset.audioPlayable = String(playable);
    });
    a.preload = 'metadata';
    a.load();
  });
})();
"""


def _csp_hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"


CSP = (
    "default-src 'none'; img-src data:; media-src data:; style-src 'unsafe-inline'; "
    f"script-src {_csp_hash(ERROR_SCRIPT)} {_csp_hash(PAGE_SCRIPT)}; base-uri 'none'; form-action 'none'"
)


@dataclass(frozen=True, slots=True)
class Plot:
    """A rendered figure for the template."""

    title: str
    uri: str
    caption: str


@dataclass(frozen=True, slots=True)
class AudioItem:
    """One embedded (or, past the size budget, only linked) audio sample."""

    sample: AudioSample
    audio_uri: str | None
    waveform_uri: str | None
    note: str | None


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _audio_items(results: RunResults, per_level: int, budget: list[int]) -> list[AudioItem]:
    items: list[AudioItem] = []
    taken: dict[int | None, int] = {}
    for sample in results.audio:
        if taken.get(sample.level, 0) >= per_level:
            continue
        taken[sample.level] = taken.get(sample.level, 0) + 1
        path = Path(sample.path)
        try:
            size = path.stat().st_size
        except OSError:
            items.append(AudioItem(sample, None, None, "file missing"))
            continue
        if size > budget[0]:
            items.append(AudioItem(sample, None, None, f"not embedded (report size budget); file: {sample.rel_path}"))
            continue
        budget[0] -= size
        uri = "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
        items.append(AudioItem(sample, uri, plots.waveform(path), None))
    return items


def _run_plots(role: str, results: RunResults) -> list[Plot]:
    out = []
    for title, uri, caption in (
        ("Latency CDF per level", plots.latency_cdf(results),
         "Share of successful measured requests at or below each latency, one line per level."),
        ("Per-request timeline", plots.request_timeline(results),
         "Each row is a request on the run clock: light = waiting for the first audio, dark = streaming "
         "until the end, red = failed. Shaded bands are the levels."),
        ("Server timeline", plots.server_timeline(results),
         "From server.jsonl (/metrics and /slots samples): busy slots, requests processing and deferred "
         "(queued) on the left axis, generated tokens per second on the right."),
    ):  # fmt: skip
        if uri is not None:
            out.append(Plot(f"{title} ({role}: {results.meta.name})", uri, caption))
    return out


def _shared_plots(roles: list[tuple[str, RunResults]]) -> list[Plot]:
    """The charts that put every run on one set of axes."""
    compared = len(roles) > 1
    out = []
    for title, uri, caption in (
        ("TTFA percentiles vs concurrency", plots.ttfa_vs_concurrency(roles),
         "p50, p90 and p99 of TTFA per level" + ("; before dashed, after solid." if compared else ".")),
        ("Throughput vs concurrency", plots.throughput_vs_concurrency(roles),
         "Successful requests per second over each level's measured window."),
        ("Stall rate vs pre-roll", plots.stall_rate_vs_preroll(roles),
         "Share of streams with at least one playback stall, by how much audio time the player waits before "
         "starting (TTFA + pre-roll)."),
    ):  # fmt: skip
        if uri is not None:
            out.append(Plot(title, uri, caption))
    return out


def _run_view(
    role: str, results: RunResults, target_ms: float, per_level: int, budget: list[int], include_plots: bool
) -> dict[str, Any]:
    beyond: list[Table] = beyond_tables(results)
    return {
        "role": role,
        "anchor": role,
        "results": results,
        "ttfa": ttfa_table(results, target_ms),
        "throughput": throughput_table(results),
        "beyond": beyond,
        "metadata": metadata_table(results),
        "plots": _run_plots(role, results) if include_plots else [],
        "audio": _audio_items(results, per_level, budget),
        "capacity": _capacity(results) if include_plots else None,
    }


def _capacity(results: RunResults) -> Any:
    """The capacity page of a run made by `orpheus-bench capacity` (None for ordinary runs)."""
    from orpheus_bench.report.capacity import capacity_section

    return capacity_section(results.meta.run_dir)


def render_html(
    after: RunResults,
    before: RunResults | None = None,
    comparison: Comparison | None = None,
    *,
    ttfa_target_ms: float = DEFAULT_TTFA_TARGET_MS,
    audio_per_level: int = DEFAULT_AUDIO_PER_LEVEL,
    audio_budget_bytes: int = DEFAULT_AUDIO_BUDGET_BYTES,
    include_plots: bool = True,
    generated_at: str | None = None,
) -> str:
    """The whole report as one HTML document (``before``/``comparison`` given: a before/after report).

    ``include_plots=False`` skips matplotlib (a few seconds on a small CPU) for tables-only reports.
    """
    budget = [audio_budget_bytes]
    roles: list[tuple[str, RunResults]] = [("after" if before is not None else "run", after)]
    if before is not None:
        roles.append(("before", before))
    runs = [_run_view(role, res, ttfa_target_ms, audio_per_level, budget, include_plots) for role, res in roles]
    shared_plots = _shared_plots(roles) if include_plots else []
    title = (
        f"orpheus-bench: {before.meta.name} vs {after.meta.name}"
        if before is not None
        else f"orpheus-bench: {after.meta.name}"
    )
    context = {
        "title": title,
        "csp": CSP,
        "error_script": Markup(ERROR_SCRIPT),
        "page_script": Markup(PAGE_SCRIPT),
        "version": __version__,
        "generated_at": generated_at or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "target_ms": ttfa_target_ms,
        "comparison": comparison_tables(comparison)[0] if comparison is not None else None,
        "comparison_more": comparison_tables(comparison)[1:] if comparison is not None else [],
        "first_lines": report_first_lines(after, before, comparison),
        "runs": runs,
        "shared_plots": shared_plots,
        "capacity_runs": [r for r in runs if r["capacity"] is not None],
        "data": results_dict(after, before, comparison, ttfa_target_ms=ttfa_target_ms),
    }
    return _environment().get_template("report.html.j2").render(**context)
