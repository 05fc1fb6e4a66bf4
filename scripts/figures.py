"""Figures in prose come from committed result files: check them, or rewrite them from their sources.

    python scripts/figures.py check            # exit 1 and list every figure that no longer matches its source
    python scripts/figures.py update           # rewrite every figure and generated block from its source

Two markers, invisible in rendered Markdown:

* an inline figure, ``<!--fig SOURCE SELECTOR [FORMAT]-->1,685<!--/fig-->``: SOURCE is a committed file
  (repository-relative). For a ``.json`` SOURCE the SELECTOR is a path (``after.levels[level=1].ttfa_ms.p50``:
  keys, ``[3]`` list items, ``[key=value&key2=value2]`` the list item whose keys read so); for any other file it is a
  regular expression whose first group is the figure (``/CPU per token: ([0-9.]+) us/``). FORMAT is a Python
  format spec applied to a number (``,.0f``, ``.2f``, ``.1%``), optionally scaled first (``*1000:,.0f``);
  without one the value is shown as it stands;
* a generated block, ``<!--gen NAME ARG...-->`` ... ``<!--/gen-->``: NAME is one of `GENERATORS`, each a
  command over committed files (``include FILE`` embeds a benchmark's saved output; ``table FILE CAPTION
  [COLUMN...]`` copies the first Markdown table printed after the line matching the regular expression CAPTION,
  optionally only the named columns; ``gate-calibration DIR`` renders the calibration tables from its JSON files;
  ``peer-check FILE`` the side-by-side tables of a ``peer_check.json``).

The documents checked are `DOCUMENTS`; tests/unit/test_doc_figures.py runs ``check`` on them, so a quoted
figure cannot drift from its source.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "docs/gates.md", "docs/capacity.md", "docs/locust.md", "benchmarks/README.md")
FIG_RE = re.compile(r"<!--fig (?P<spec>[^>]*?)-->(?P<value>.*?)<!--/fig-->", re.S)
GEN_RE = re.compile(r"<!--gen (?P<spec>[^>]*?)-->\n(?P<body>.*?)<!--/gen-->", re.S)
_STEP_RE = re.compile(r"([^.\[\]]+)|\[(\d+)\]|\[([^\]]*=[^\]]*)\]")


class FigureError(Exception):
    """A marker that cannot be resolved (missing file, path, or group): the message names it."""


def _select(data: Any, selector: str) -> Any:
    for name, index, where in _STEP_RE.findall(selector):
        if name:
            if not isinstance(data, dict) or name not in data:
                raise FigureError(f"no key {name!r} in {selector!r}")
            data = data[name]
        elif index:
            data = data[int(index)]
        else:
            # [key=value&key2=value2]: the one list item whose keys read so (str() of the value, None included)
            wanted = [cond.partition("=")[::2] for cond in where.split("&")]
            matches = [
                item for item in data if isinstance(item, dict) and all(str(item.get(k)) == v for k, v in wanted)
            ]
            if len(matches) != 1:
                raise FigureError(f"{len(matches)} items with {where} in {selector!r}")
            data = matches[0]
    return data


def _format(value: Any, fmt: str | None) -> str:
    if fmt is None:
        return str(value)
    scale = 1.0
    if fmt.startswith("*"):
        factor, _, fmt = fmt[1:].partition(":")
        scale = float(factor)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise FigureError(f"{value!r} is not a number for format {fmt!r}")
    try:
        return format(value * scale if scale != 1.0 else value, fmt)
    except ValueError as exc:
        raise FigureError(f"format {fmt!r} does not apply to {value!r}") from exc


def figure(spec: str, root: Path = REPO) -> str:
    """The text a figure marker's spec stands for."""
    parts = shlex.split(spec)
    if len(parts) not in (2, 3):
        raise FigureError(f"a figure is 'SOURCE SELECTOR [FORMAT]', not {spec!r}")
    source, selector = parts[0], parts[1]
    fmt = parts[2] if len(parts) == 3 else None
    path = root / source
    if not path.is_file():
        raise FigureError(f"no such source file: {source}")
    if path.suffix == ".json":
        return _format(_select(json.loads(path.read_text(encoding="utf-8")), selector), fmt)
    pattern = selector[1:-1] if selector.startswith("/") and selector.endswith("/") else selector
    m = re.search(pattern, path.read_text(encoding="utf-8"), flags=re.M)
    if m is None or not m.groups():
        raise FigureError(f"/{pattern}/ does not match a group in {source}")
    text = m.group(1)
    if fmt is None:
        return text
    try:
        return _format(float(text.replace(",", "")), fmt)
    except ValueError as exc:
        raise FigureError(f"{text!r} from {source} is not a number") from exc


def _include(root: Path, path: str) -> str:
    file = root / path
    if not file.is_file():
        raise FigureError(f"no such file to include: {path}")
    text = file.read_text(encoding="utf-8")
    return text if text.endswith("\n") else text + "\n"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _pipe_rows(lines: list[str]) -> list[list[str]]:
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append(_cells(line))
    return [rows[0], *rows[2:]]  # without the |---| line


def _simple_rows(lines: list[str]) -> list[list[str]]:
    """A table in the simple format (a header line, a line of dash runs, rows): columns are the dash runs."""
    spans = [m.span() for m in re.finditer(r"-+", lines[1])]
    rows = []
    for line in [lines[0], *lines[2:]]:
        if not line.strip() or line.startswith("#"):
            break
        # a cell may start left of its dashes (right-aligned text): cut between the runs, not at them
        cuts = [0, *(start for start, _ in spans[1:]), max(len(line), spans[-1][1])]
        rows.append([line[a:b].strip() for a, b in itertools.pairwise(cuts)])
    return rows


def _table(root: Path, path: str, caption: str, *columns: str) -> str:
    """The first table after the caption line, as printed (or only `columns`, in that order), as Markdown.

    Pipe tables are copied; a table in the simple format (header, dashes, rows) is converted."""
    file = root / path
    if not file.is_file():
        raise FigureError(f"no such file for a table: {path}")
    lines = file.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if re.search(caption, line)), None)
    if start is None:
        raise FigureError(f"no line matching /{caption}/ in {path}")
    first = next((i for i in range(start + 1, len(lines)) if lines[i].strip()), None)
    if first is None:
        raise FigureError(f"no table after /{caption}/ in {path}")
    if lines[first].startswith("|"):
        rows = _pipe_rows(lines[first:])
    elif first + 1 < len(lines) and re.fullmatch(r"[- ]+", lines[first + 1]):
        rows = _simple_rows(lines[first:])
    else:
        raise FigureError(f"no table right after /{caption}/ in {path}")
    header, body = rows[0], rows[1:]
    keep = list(range(len(header)))
    if columns:
        missing = [c for c in columns if c not in header]
        if missing:
            raise FigureError(f"no column {missing} in the table after /{caption}/ in {path}: {header}")
        keep = [header.index(c) for c in columns]
    out = ["| " + " | ".join(header[k] for k in keep) + " |", "|" + "---|" * len(keep)]
    out += ["| " + " | ".join(row[k] for k in keep) + " |" for row in body]
    return "\n".join(out) + "\n"


def _benchmark(root: Path, module: str) -> Any:
    """A script under benchmarks/ imported as a module (its table renderers are the ones it prints with)."""
    sys.path.insert(0, str(root / "benchmarks"))
    try:
        return __import__(module)
    finally:
        sys.path.pop(0)


def _peer_check(root: Path, path: str) -> str:
    file = root / path
    if not file.is_file():
        raise FigureError(f"no peer-check result {path}")
    peer = _benchmark(root, "peer_check")
    result = json.loads(file.read_text(encoding="utf-8"))
    return "\n".join([*peer.side_by_side(result), "", *peer.beyond_server(result)]) + "\n"


def _gate_calibration(root: Path, directory: str) -> str:
    summarize = _benchmark(root, "gate_calibration").summarize
    files = sorted(str(p) for p in (root / directory).glob("*.json"))
    if not files:
        raise FigureError(f"no calibration results in {directory}")
    return summarize(files) + "\n"


GENERATORS: dict[str, Callable[..., str]] = {
    "include": _include,
    "table": _table,
    "gate-calibration": _gate_calibration,
    "peer-check": _peer_check,
}


def generated(spec: str, root: Path = REPO) -> str:
    """The body a generated block's spec stands for."""
    name, *args = shlex.split(spec)
    if name not in GENERATORS:
        raise FigureError(f"unknown generator {name!r}; known: {', '.join(GENERATORS)}")
    return GENERATORS[name](root, *args)


def render(text: str, root: Path = REPO) -> str:
    """The document with every figure and generated block taken from its source."""
    text = GEN_RE.sub(lambda m: f"<!--gen {m['spec']}-->\n{generated(m['spec'], root)}<!--/gen-->", text)
    return FIG_RE.sub(lambda m: f"<!--fig {m['spec']}-->{figure(m['spec'], root)}<!--/fig-->", text)


def stale(text: str, root: Path = REPO) -> list[str]:
    """One line per figure or block whose text differs from its source (or cannot be resolved)."""
    out = []
    for m in GEN_RE.finditer(text):
        try:
            if generated(m["spec"], root) != m["body"]:
                out.append(f"generated block '{m['spec']}' differs from its source")
        except FigureError as exc:
            out.append(f"generated block '{m['spec']}': {exc}")
    for m in FIG_RE.finditer(text):
        try:
            want = figure(m["spec"], root)
        except FigureError as exc:
            out.append(f"figure '{m['spec']}': {exc}")
            continue
        if want != m["value"]:
            out.append(f"figure '{m['spec']}' says {m['value']!r}, its source says {want!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    """``check`` or ``update`` the documents (default: every one of `DOCUMENTS`)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["check", "update"])
    p.add_argument("files", nargs="*", help=f"Documents (default: {', '.join(DOCUMENTS)}).")
    args = p.parse_args(argv)
    files = [REPO / f for f in (args.files or DOCUMENTS)]
    problems = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        if args.action == "update":
            new = render(text)
            if new != text:
                path.write_text(new, encoding="utf-8")
                print(f"updated {path.relative_to(REPO)}")
            continue
        for line in stale(text):
            problems += 1
            print(f"{path.relative_to(REPO)}: {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
