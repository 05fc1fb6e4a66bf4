"""Before/after reports opened in headless Chromium from a file:// URL: one from synthetic runs, one from real
llama-server runs with kept audio.

Checks what a reader would see: the page rendered (every table present, every image decoded, every audio
player loaded a playable clip), no script error or console message (CSP violations included), a hostile prompt
shown as text and never run, and screenshots at desktop and phone widths that are not blank. Chromium is
installed by scripts/setup.sh: where it is missing the tests are skipped, and in CI they fail (tests/needs.py).
Screenshots are kept in the test's tmp dir, or in ``$ORPHEUS_BENCH_ARTIFACTS``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from needs import require_chromium
from PIL import Image
from synthetic_runs import SyntheticSpec, synthetic_run

from orpheus_bench.commands import report

pytestmark = [pytest.mark.integration, pytest.mark.slow]

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"
TABLES = (
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
)


def chromium(profile: Path, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a fresh profile, no network services, logging console messages."""
    cmd = [
        require_chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--mute-audio",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def console_messages(stderr: str) -> list[str]:
    """Page console output (errors, CSP violations, uncaught exceptions) from Chromium's log."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    before = synthetic_run(
        root / "before",
        SyntheticSpec(
            levels=(1, 2),
            requests_per_level=6,
            mode="blocking",
            ttfa_base_s=3.0,
            generation_rtf=2.0,
            fail_every=4,
            prompt=XSS,
        ),
        name="before <b>bold</b>",
    )
    after = synthetic_run(
        root / "after", SyntheticSpec(levels=(1, 2, 4), requests_per_level=8, generation_rtf=1.2, prompt=XSS)
    )
    out = root / "reports" / "compare.html"
    parser = argparse.ArgumentParser()
    report.register(parser.add_subparsers())
    args = parser.parse_args(
        ["report", "--before", str(before), "--after", str(after), "-o", str(out), "--quiet", "--bootstrap", "200"]
    )
    assert args.func(args) == 0
    return out


def test_console_check_catches_errors(tmp_path: Path) -> None:
    """The console check itself can fail: a page with an error is caught."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><body><script>console.error('boom'); missing();</script></body>")
    proc = chromium(tmp_path / "profile", "--virtual-time-budget=2000", "--dump-dom", page.as_uri())
    messages = console_messages(proc.stderr)
    assert any("boom" in m for m in messages) and any("missing" in m for m in messages)


def test_report_renders_in_chromium(report_file: Path, tmp_path: Path) -> None:
    proc = chromium(tmp_path / "profile", "--virtual-time-budget=15000", "--dump-dom", report_file.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None, dom[:500]
    attrs = body.group(1)
    n_images = len(re.findall(r"<img\s", report_file.read_text()))
    assert n_images >= 10
    assert 'data-images-ok="true"' in attrs, attrs  # every <img> complete with naturalWidth > 0
    assert f'data-images-count="{n_images}"' in attrs
    assert 'data-js-errors="0"' in attrs
    assert console_messages(proc.stderr) == []
    for key in TABLES:
        assert f'data-table="{key}"' in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in dom
    assert "<script>alert" not in dom and not re.search(r"<img[^>]*onerror", dom)
    assert "before &lt;b&gt;bold&lt;/b&gt;" in dom


@pytest.mark.parametrize(("width", "height"), [(1280, 2400), (400, 2400)])
def test_screenshots(report_file: Path, tmp_path: Path, width: int, height: int) -> None:
    out_dir = Path(os.environ.get("ORPHEUS_BENCH_ARTIFACTS", tmp_path))
    out_dir.mkdir(parents=True, exist_ok=True)
    shot = out_dir / f"report-{width}px.png"
    proc = chromium(
        tmp_path / "profile",
        f"--window-size={width},{height}",
        "--virtual-time-budget=15000",
        f"--screenshot={shot}",
        report_file.as_uri(),
    )
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    with Image.open(shot) as img:
        assert img.size == (width, height)
        pixels = np.asarray(img.convert("L"), dtype=np.float64)
    assert pixels.std() > 20  # not a blank page: text, tables and plots
    # Nothing overflows sideways at phone width: the right-most columns are background, not cut content.
    if width == 400:
        assert (pixels[:, -3:] > 240).mean() > 0.97
    assert console_messages(proc.stderr) == []


# ---- a report from real llama-server runs ------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_report(llama_server_np1: str, llama_server_np4: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Before (1 slot) and after (4 slots) on the real llama-server, SNAC-decoded with kept audio, one report."""
    import asyncio

    from orpheus_bench.client.whole_run import execute_run
    from orpheus_bench.scenario import scenario_from_dict

    root = tmp_path_factory.mktemp("real-report")
    texts = ["Hello there, thanks for calling.", f"Read this: {XSS}"]
    for name, host in (("before", llama_server_np1), ("after", llama_server_np4)):
        sc = scenario_from_dict(
            {
                "host": host,
                "prompts": {"texts": texts},
                "sampling": {"max_tokens": 512},
                "decode": {"preset": "chunked", "snac_model": "random", "device": "cpu"},
                "load": {"concurrency": [1, 2], "requests_per_level": 2},
                "keep_audio": 1,
            }
        )
        outcome = asyncio.run(execute_run(sc, root / name, doctor=False))
        assert outcome.complete
    out = root / "compare.html"
    parser = argparse.ArgumentParser()
    report.register(parser.add_subparsers())
    args = parser.parse_args(
        ["report", "--before", str(root / "before"), "--after", str(root / "after"), "-o", str(out), "--quiet",
         "--bootstrap", "200"]
    )  # fmt: skip
    assert args.func(args) == 0
    return out


def test_a_report_of_real_runs_renders_its_tables_plots_and_audio(real_report: Path, tmp_path: Path) -> None:
    proc = chromium(tmp_path / "profile", "--virtual-time-budget=20000", "--dump-dom", real_report.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None, dom[:500]
    attrs = body.group(1)
    assert 'data-images-ok="true"' in attrs and 'data-js-errors="0"' in attrs, attrs
    players = int(re.search(r'data-audio-count="(\d+)"', attrs).group(1))  # type: ignore[union-attr]
    assert players >= 4, attrs  # one kept WAV per level of each run
    assert f'data-audio-playable="{players}"' in attrs, attrs  # every clip decoded with a duration
    assert console_messages(proc.stderr) == []
    for key in (*TABLES, "comparison_work", "comparison_server", "intervals"):
        assert f'data-table="{key}"' in dom, key
    # The data never runs: the hostile prompt the model spoke is text in the tables and the players' captions.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom and "<script>alert" not in dom
    assert not re.search(r"<img[^>]*onerror", dom)
