"""JSON output (``--format json``): the compiled results themselves, plus the rendered tables.

Floats that are not finite become null so the file is strict JSON; the shape is ``{"schema", "after",
"before", "comparison", "tables"}`` with ``before``/``comparison`` null for a single run.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from orpheus_bench.results.compare import Comparison
from orpheus_bench.results.model import RunResults
from orpheus_bench.results.tables import DEFAULT_TTFA_TARGET_MS, comparison_table, run_tables, table_dicts

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
        tables["comparison"] = table_dicts([comparison_table(comparison)])[0]
    return _finite(
        {
            "schema": JSON_SCHEMA_VERSION,
            "ttfa_target_ms": ttfa_target_ms,
            "after": after.to_dict(),
            "before": before.to_dict() if before is not None else None,
            "comparison": dataclasses.asdict(comparison) if comparison is not None else None,
            "tables": tables,
        }
    )


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
