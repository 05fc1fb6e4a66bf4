"""JSON output (``--format json``): the compiled results themselves, plus the rendered tables.

Floats that are not finite become null so the file is strict JSON; the shape is ``{"schema", "first_lines",
"after", "before", "comparison", "tables"}`` with ``before``/``comparison`` null for a single run;
``first_lines`` are what the console, Markdown and HTML print first.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from orpheus_bench.report.compare_tables import comparison_tables
from orpheus_bench.report.format import DEFAULT_TTFA_TARGET_MS, table_dicts
from orpheus_bench.report.tables import run_tables
from orpheus_bench.results.compare import Comparison
from orpheus_bench.results.model import RunResults

JSON_SCHEMA_VERSION = 1


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def results_dict(
    after: RunResults,
    before: RunResults | None = None,
    comparison: Comparison | None = None,
    *,
    ttfa_target_ms: float = DEFAULT_TTFA_TARGET_MS,
) -> dict[str, Any]:
    """The whole report as a JSON-ready dict."""
    tables: dict[str, Any] = {"after": table_dicts(run_tables(after, ttfa_target_ms))}
    if before is not None:
        tables["before"] = table_dicts(run_tables(before, ttfa_target_ms))
    if comparison is not None:
        tables["comparison"], *more = table_dicts(comparison_tables(comparison))
        tables["comparison_more"] = more
    return _finite(
        {
            "schema": JSON_SCHEMA_VERSION,
            "first_lines": report_first_lines(after, before, comparison),
            "ttfa_target_ms": ttfa_target_ms,
            "after": after.to_dict(),
            "before": before.to_dict() if before is not None else None,
            "comparison": dataclasses.asdict(comparison) if comparison is not None else None,
            "tables": tables,
        }
    )


def report_first_lines(
    after: RunResults, before: RunResults | None = None, comparison: Comparison | None = None
) -> list[str]:
    """What a reader must know before any number: the comparison's first lines, else the run's warnings."""
    if comparison is not None:
        return list(comparison.first_lines)
    return list(after.warnings)


def render_json(
    after: RunResults,
    before: RunResults | None = None,
    comparison: Comparison | None = None,
    *,
    ttfa_target_ms: float = DEFAULT_TTFA_TARGET_MS,
) -> str:
    """The report as strict JSON text."""
    data = results_dict(after, before, comparison, ttfa_target_ms=ttfa_target_ms)
    return json.dumps(data, indent=2, allow_nan=False, ensure_ascii=False)
