"""One place that builds a minimal valid `RequestRecord` for tests; keyword arguments override any field."""

from __future__ import annotations

from typing import Any

from orpheus_bench.records import RequestRecord


def new_record(**fields: Any) -> RequestRecord:
    """A measured (non-warmup) streaming request of level 1, with nothing observed yet unless given."""
    base: dict[str, Any] = {
        "request_id": "r",
        "level": 1,
        "worker": 0,
        "seq": 0,
        "warmup": False,
        "prompt_id": "p",
        "prompt": "x",
        "voice": None,
        "mode": "stream",
        "protocol": "native",
        "driver": "test",
        "wall_start": 0.0,
        "run_offset_s": 0.0,
    }
    base.update(fields)
    return RequestRecord(**base)
