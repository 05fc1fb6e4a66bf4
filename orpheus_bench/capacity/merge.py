"""The merged view of a capacity search: one ordinary run directory's records and levels over all loads. Pure.

A search measures each load in one or more sub-runs (``levels/c=4``, ``levels/c=4-m2``), each on its own run
clock. `merge_levels` lays them out as if they had been one sweep in ascending order of load, so that
``orpheus-bench report`` and ``orpheus-bench gate`` read the search directory like any run:

* loads follow each other on one clock; the first measurement of a load starts where the previous load ended;
* a later measurement of the same load is shifted so that its first measured request starts when the previous
  measurement's last measured request ended, so the level's throughput window (first measured send -> last
  measured end) is the sum of the measurement windows, as the search computed it (its warmups overlap the
  previous measurement on this clock; only the request timeline shows that);
* open-loop levels are numbered by rank (1 = the lowest rate) so that two rates never share a level number;
* each measured record carries its SLO verdict in ``extra["slo"]`` (``{"good": bool, "failed": [...]}``) and
  its sub-run in ``extra["capacity_measurement"]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from orpheus_bench.capacity.slo import Slo, judge_request
from orpheus_bench.records import RequestRecord


@dataclass(frozen=True, slots=True)
class MeasurementRecords:
    """One sub-run's records and its run.json level entry."""

    directory: str  # relative to the search directory
    records: tuple[RequestRecord, ...]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LoadGroup:
    """Every measurement of one load."""

    load: float
    level: int
    label: str
    kind: str  # "concurrency" or "rate"
    measurements: tuple[MeasurementRecords, ...]


def _end(r: RequestRecord) -> float:
    end = r.end_offset_run_s
    return r.run_offset_s if end is None else end


def merge_levels(groups: Sequence[LoadGroup], slo: Slo) -> tuple[list[RequestRecord], list[dict[str, Any]]]:
    """Shifted copies of every record and one run.json level entry per load (see the module docstring)."""
    records: list[RequestRecord] = []
    levels: list[dict[str, Any]] = []
    cursor = 0.0
    for index, group in enumerate(sorted(groups, key=lambda g: g.load)):
        started: float | None = None
        last_measured_end: float | None = None
        level_end = cursor
        reasons: list[str] = []
        client_bound = False
        for m in group.measurements:
            if not m.records:
                continue
            measured = [r for r in m.records if not r.warmup]
            if last_measured_end is None or not measured:
                shift = cursor - min(r.run_offset_s for r in m.records)
            else:
                shift = last_measured_end - min(r.run_offset_s for r in measured)
            for r in m.records:
                records.append(_shifted(r, shift, group, m.directory, slo))
            if started is None:
                started = min(r.run_offset_s for r in m.records) + shift
            if measured:
                last_measured_end = max(_end(r) for r in measured) + shift
            level_end = max(level_end, max(_end(r) for r in m.records) + shift)
            client_bound = client_bound or bool(m.info.get("client_bound")) or any(r.client_bound for r in measured)
            reasons.extend(str(x) for x in m.info.get("client_bound_reasons") or [])
        first_info = next((m.info for m in group.measurements if m.info), {})
        levels.append(
            {
                "index": index,
                "level": group.level,
                "label": group.label,
                "kind": group.kind,
                "value": group.load,
                "warmup": first_info.get("warmup"),
                "started_s": cursor if started is None else started,
                "ended_s": level_end,
                "sent": sum(len(m.records) for m in group.measurements),
                "interrupted": any(bool(m.info.get("interrupted")) for m in group.measurements),
                "client_bound": client_bound,
                "client_bound_reasons": sorted(set(reasons)),
                "client": dict(first_info.get("client") or {}),
                "measurements": [m.directory for m in group.measurements],
            }
        )
        cursor = level_end
    return records, levels


def _shifted(r: RequestRecord, shift: float, group: LoadGroup, directory: str, slo: Slo) -> RequestRecord:
    extra = dict(r.extra)
    extra["capacity_measurement"] = directory
    if not r.warmup:
        extra["slo"] = judge_request(r, slo).to_dict()
    return dataclasses.replace(
        r,
        level=group.level,
        level_label=group.label,
        run_offset_s=r.run_offset_s + shift,
        scheduled_offset_s=None if r.scheduled_offset_s is None else r.scheduled_offset_s + shift,
        extra=extra,
    )


__all__ = ["LoadGroup", "MeasurementRecords", "merge_levels"]
