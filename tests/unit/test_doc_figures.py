"""Every figure quoted in README.md and the docs matches the committed result file it comes from."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _figures() -> ModuleType:
    spec = importlib.util.spec_from_file_location("figures", REPO / "scripts" / "figures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


figures = _figures()


@pytest.mark.parametrize("document", figures.DOCUMENTS)
def test_every_quoted_figure_matches_its_source(document: str) -> None:
    text = (REPO / document).read_text(encoding="utf-8")
    assert figures.stale(text) == [], f"run: python scripts/figures.py update {document}"


def test_the_markers_resolve_json_paths_text_groups_formats_and_blocks(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(
        json.dumps({"levels": [{"level": 1, "ttfa": 0.2345}, {"level": 4, "ttfa": 1.5}], "rate": 0.125}),
        encoding="utf-8",
    )
    (tmp_path / "out.md").write_text("| a | b |\n|---|---|\nCPU per token: 63.4 us\n", encoding="utf-8")
    doc = (
        "TTFA <!--fig r.json levels[level=4].ttfa *1000:,.0f-->9<!--/fig--> ms, "
        "first <!--fig r.json levels[0].ttfa .2f-->0.23<!--/fig-->, "
        "share <!--fig r.json rate .1%-->12.5%<!--/fig-->, "
        "cpu <!--fig out.md '/CPU per token: ([0-9.]+) us/' .0f-->63<!--/fig--> us\n"
        "<!--gen include out.md-->\nold table\n<!--/gen-->\n"
    )
    problems = figures.stale(doc, tmp_path)
    assert len(problems) == 2  # the 9 that should read 1,500, and the stale table
    assert any("says '9', its source says '1,500'" in p for p in problems)
    fixed = figures.render(doc, tmp_path)
    assert "<!--fig r.json levels[level=4].ttfa *1000:,.0f-->1,500<!--/fig-->" in fixed
    assert "<!--gen include out.md-->\n| a | b |\n|---|---|\nCPU per token: 63.4 us\n<!--/gen-->" in fixed
    assert figures.stale(fixed, tmp_path) == []
    assert "no such source file" in figures.stale("<!--fig gone.json x-->1<!--/fig-->", tmp_path)[0]


def test_table_blocks_copy_pipe_and_simple_tables_with_chosen_columns(tmp_path: Path) -> None:
    (tmp_path / "out.txt").write_text(
        "# header\nfirst table\n\n| path | streams | verdict |\n|------|---------|---------|\n"
        "| aiohttp | 48 | held |\n| stream  | 64 | held |\n\n"
        "## 2. fidelity\nmode                SNR dB  ms per s\n------------------  ------  --------\n"
        "reference (28 tok)    44.2      1337\nchunked K=4 C=2 R=1   50.0       448\n# after: load\n",
        encoding="utf-8",
    )
    pipe = figures.generated("table out.txt '^first table' path verdict", tmp_path)
    assert pipe == "| path | verdict |\n|---|---|\n| aiohttp | held |\n| stream | held |\n"
    simple = figures.generated("table out.txt '^## 2. fidelity'", tmp_path)
    assert simple == (
        "| mode | SNR dB | ms per s |\n|---|---|---|\n| reference (28 tok) | 44.2 | 1337 |\n"
        "| chunked K=4 C=2 R=1 | 50.0 | 448 |\n"
    )
    with pytest.raises(figures.FigureError, match="no column"):
        figures.generated("table out.txt '^first table' lag", tmp_path)
    with pytest.raises(figures.FigureError, match="no line matching"):
        figures.generated("table out.txt '^missing caption'", tmp_path)
