"""The HTML report: self-contained, escaped, CSP-locked, with every table, plot and audio player."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from orpheus_bench.report import plots
from orpheus_bench.report.html import render_html
from orpheus_bench.results.compile import compile_records

pytestmark = pytest.mark.unit

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


@pytest.fixture(scope="module")
def compare_html(compiled) -> str:  # type: ignore[no-untyped-def]
    before, after, comparison = compiled
    return render_html(after, before, comparison, generated_at="fixed")


def test_hostile_prompt_is_text(compare_html: str) -> None:
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in compare_html
    assert "<script>alert" not in compare_html
    assert "<img src=x" not in compare_html
    assert not re.search(r"<[^>]*\sonerror", compare_html)  # no attribute made it into a tag
    assert "\\u003cscript\\u003e" in compare_html  # the embedded JSON escapes it too


def test_self_contained_and_locked_down(compare_html: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", compare_html)
    assert "@import" not in compare_html
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', compare_html)
    assert csp is not None and "default-src &#39;none&#39;" in csp.group(1)
    scripts = re.findall(r"<script>(.*?)</script>", compare_html, flags=re.S)
    assert len(scripts) == 2  # the error counter and the page script; data is application/json
    for body in scripts:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"sha256-{digest}" in csp.group(1)


def test_every_section_table_and_plot(compare_html: str) -> None:
    for key in (
        "comparison",
        "ttfa",
        "throughput",
        "streaming",
        "stalls",
        "ttfa_split",
        "errors",
        "invalid_codes",
        "prompts",
        "metadata",
    ):
        assert f'data-table="{key}"' in compare_html
    assert compare_html.count('data-table="ttfa"') == 2  # before and after
    for title in (
        "TTFA percentiles vs concurrency",
        "Throughput vs concurrency",
        "Stall rate vs pre-roll",
        "Latency CDF per level",
        "Per-request timeline",
        "Server timeline",
    ):
        assert f"<strong>{title}" in compare_html
    images = re.findall(r'<img src="([^"]+)"', compare_html)
    assert images and all(src.startswith(("data:image/svg+xml;base64,", "data:image/png;base64,")) for src in images)
    assert compare_html.count('src="data:audio/wav;base64,') == 5  # one kept WAV per level: 3 after + 2 before
    assert "SNAC weights were random: this audio is noise." in compare_html
    assert 'id="report-data"' in compare_html


def test_single_run_report(compiled) -> None:  # type: ignore[no-untyped-def]
    _, after, _ = compiled
    html = render_html(after, audio_per_level=0, include_plots=False)
    assert 'data-table="comparison"' not in html
    assert "data:audio/wav" not in html
    assert "orpheus-bench: after" in html


def test_audio_budget_links_instead_of_embedding(compiled) -> None:  # type: ignore[no-untyped-def]
    _, after, _ = compiled
    html = render_html(after, audio_budget_bytes=10, include_plots=False)
    assert "<img" not in html  # no plots, and no waveform for audio that is not embedded
    assert "data:audio/wav" not in html and "not embedded (report size budget)" in html


def test_plots_decode_and_are_none_without_data(compiled, compare_html: str) -> None:  # type: ignore[no-untyped-def]
    _, after, _ = compiled
    images = re.findall(r'<img src="data:(image/[a-z+]+);base64,([^"]+)"', compare_html)
    kinds = [kind for kind, _ in images]
    assert kinds.count("image/svg+xml") == 3 + 2 * 2  # 3 shared + CDF and server timeline per run
    assert kinds.count("image/png") == 2 + 5  # 2 request timelines + 5 waveforms
    for kind, data in images:
        raw = base64.b64decode(data)
        assert raw.startswith(b"\x89PNG") if kind == "image/png" else b"<svg" in raw
    empty = compile_records([])
    assert plots.ttfa_vs_concurrency([("after", empty)]) is None
    assert plots.throughput_vs_concurrency([("after", empty)]) is None
    assert plots.latency_cdf(empty) is None and plots.request_timeline(empty) is None
    assert plots.server_timeline(empty) is None and plots.stall_rate_vs_preroll([("x", empty)]) is None
    assert plots.waveform(after.audio[0].path + ".missing") is None


def test_svg_plots_are_deterministic(compiled) -> None:  # type: ignore[no-untyped-def]
    _, after, _ = compiled
    assert plots.throughput_vs_concurrency([("after", after)]) == plots.throughput_vs_concurrency([("after", after)])


def test_partial_and_empty_runs_still_render(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from orpheus_bench.records import ErrorClass, RequestRecord, Status

    def rec(seq: int, warmup: bool, end: float | None) -> RequestRecord:
        r = RequestRecord(f"r{seq}", 2, 0, seq, warmup, "p", XSS, None, "stream", "native", "locust", 0.0, float(seq))
        r.t_end_s = end
        if end is None:
            r.fail(ErrorClass.CANCELLED, "interrupted", Status.CANCELLED)
        return r

    partial = compile_records([rec(0, True, 0.5), rec(1, True, 0.7), rec(2, False, None)], {"complete": False})
    html = render_html(partial, partial, None)
    assert 'data-table="ttfa"' in html and "did not complete" in html
    empty = compile_records([])
    assert "The run has no request records." in render_html(empty, include_plots=True)
