"""AIPerf as a peer of orpheus-bench: its command line for one level, and its results read from its export files.

`aiperf_command` builds an ``aiperf profile`` run (0.13.x) that sends the same bodies as an orpheus-bench
scenario: the ``completions`` endpoint type with ``--streaming``, a ``single_turn`` JSONL dataset whose ``text``
is our Orpheus-formatted prompt, read in file order (``--dataset-sampling-strategy sequential``), every other
body key through ``--extra-inputs`` as JSON, ``--model`` for ``model``, as many warmup requests as the level's
concurrency (orpheus-bench's warmup), and a new connection per request (see `aiperf_command`). AIPerf adds
``stream_options: {"include_usage": true}`` to every streaming completions body on its own; the orpheus-bench
scenario sends the same key, so the bodies match.

`read_aiperf` reads ``profile_export_aiperf.json`` (AIPerf's own statistics of the profiling phase) and
``profile_export.jsonl`` (one record per request, warmup included), never the console text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AIPERF_VERSION = "0.13"  # the CLI this module was written against
SET_BY_FLAGS = ("prompt", "model", "stream")  # body keys AIPerf fills from its own flags and dataset


def dataset_lines(bodies: list[dict[str, Any]]) -> list[str]:
    """``single_turn`` JSONL lines, one per body, in order: only the prompt text."""
    return [json.dumps({"text": body["prompt"]}) for body in bodies]


def extra_inputs(body: dict[str, Any]) -> dict[str, Any]:
    """The body keys AIPerf must be told with ``--extra-inputs`` (the same for every prompt)."""
    return {k: v for k, v in body.items() if k not in SET_BY_FLAGS}


def aiperf_command(
    aiperf: str,
    *,
    url: str,
    model: str,
    tokenizer_dir: Path,
    dataset: Path,
    extra: dict[str, Any],
    concurrency: int,
    requests: int,
    warmup: int,
    out_dir: Path,
    raw: bool = False,
) -> list[str]:
    """``aiperf profile`` for one closed-loop level (``raw`` adds the per-request wire export, for probes)."""
    cmd = [
        aiperf,
        "profile",
        "--model",
        model,
        "--url",
        url,
        "--endpoint-type",
        "completions",
        "--streaming",
        "--tokenizer",
        str(tokenizer_dir),
        "--input-file",
        str(dataset),
        "--custom-dataset-type",
        "single_turn",
        "--dataset-sampling-strategy",
        "sequential",
        "--concurrency",
        str(concurrency),
        "--request-count",
        str(requests),
        "--warmup-request-count",
        str(max(1, warmup)),
        "--extra-inputs",
        json.dumps(extra),
        "--output-artifact-dir",
        str(out_dir),
        "--ui-type",
        "none",
        "--random-seed",
        "0",
        "--no-gpu-telemetry",
        # llama-server closes the connection after every streamed response (while its headers say keep-alive):
        # AIPerf's pool then hands a closing connection to the next request now and then and loses it
        # (ServerDisconnectedError, "Can not write request body": 1-6 of 64 requests per level here). A new
        # connection per request is what the server allows anyway, and what orpheus-bench ends up doing.
        "--connection-reuse-strategy",
        "never",
    ]
    if raw:
        cmd += ["--export-level", "raw"]
    return cmd


@dataclass(frozen=True)
class AiperfRequest:
    """One request from ``profile_export.jsonl``."""

    phase: str  # "warmup" or "profiling"
    conversation: str  # session_NNNNNN: the dataset line, in file order
    start_wall_s: float
    end_wall_s: float
    ttft_ms: float | None
    latency_ms: float | None
    input_tokens: int | None  # AIPerf's tokenizer, add_special_tokens=False
    output_tokens: int | None  # AIPerf's tokenizer on the generated text
    server_prompt_tokens: int | None  # usage.prompt_tokens from the server
    server_completion_tokens: int | None  # usage.completion_tokens from the server
    error: bool


@dataclass(frozen=True)
class AiperfResult:
    """AIPerf's statistics of one profiling phase and its per-request records."""

    stats: dict[str, Any]
    requests: list[AiperfRequest] = field(default_factory=list)

    def stat(self, metric: str, key: str) -> float | None:
        """``stats[metric][key]`` (e.g. ``time_to_first_token``, ``p99``), None when absent."""
        entry = self.stats.get(metric)
        value = entry.get(key) if isinstance(entry, dict) else None
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def measured(self) -> list[AiperfRequest]:
        """The profiling phase's requests."""
        return [r for r in self.requests if r.phase == "profiling"]

    @property
    def errors(self) -> dict[str, int]:
        """Failed requests of the profiling phase by error type (AIPerf's ``error_summary``)."""
        out: dict[str, int] = {}
        for item in self.stats.get("error_summary") or []:
            if isinstance(item, dict):
                kind = str((item.get("error_details") or {}).get("type") or "error")
                out[kind] = out.get(kind, 0) + int(item.get("count") or 0)
        return out

    @property
    def completed(self) -> int:
        """Requests of the profiling phase that ended, successes and errors (``completed_request_count``)."""
        value = self.stat("completed_request_count", "avg")
        return int(value) if value is not None else len(self.measured)

    @property
    def succeeded(self) -> int:
        """Requests of the profiling phase that succeeded (``request_count``: AIPerf counts successes there)."""
        value = self.stat("request_count", "avg")
        return int(value) if value is not None else self.completed - sum(self.errors.values())


def _metric(metrics: dict[str, Any], name: str) -> float | None:
    entry = metrics.get(name)
    value = entry.get("value") if isinstance(entry, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def read_aiperf(out_dir: Path) -> AiperfResult:
    """The results of one ``aiperf profile`` run from its artifact directory."""
    stats = json.loads((out_dir / "profile_export_aiperf.json").read_text(encoding="utf-8"))
    requests: list[AiperfRequest] = []
    records = out_dir / "profile_export.jsonl"
    if records.exists():
        for line in records.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            meta, metrics = row.get("metadata") or {}, row.get("metrics") or {}
            requests.append(
                AiperfRequest(
                    phase=str(meta.get("benchmark_phase")),
                    conversation=str(meta.get("conversation_id")),
                    start_wall_s=int(meta.get("request_start_ns") or 0) / 1e9,
                    end_wall_s=int(meta.get("request_end_ns") or 0) / 1e9,
                    ttft_ms=_metric(metrics, "time_to_first_token"),
                    latency_ms=_metric(metrics, "request_latency"),
                    input_tokens=_int(_metric(metrics, "input_sequence_length")),
                    output_tokens=_int(_metric(metrics, "output_sequence_length")),
                    server_prompt_tokens=_int(_metric(metrics, "usage_prompt_tokens")),
                    server_completion_tokens=_int(_metric(metrics, "usage_completion_tokens")),
                    error=bool(row.get("error")),
                )
            )
    return AiperfResult(stats=stats, requests=requests)


def raw_payloads(out_dir: Path) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """(body, headers) of each request in ``profile_export_raw.jsonl`` (written with ``--export-level raw``)."""
    path = out_dir / "profile_export_raw.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.append((row.get("payload") or {}, row.get("request_headers") or {}))
    return out


def formatted_payloads(out_dir: Path) -> list[dict[str, Any]]:
    """The bodies AIPerf formatted for its dataset (``inputs.json``), one per dataset entry."""
    path = out_dir / "inputs.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return [p for session in data.get("data") or [] for p in session.get("payloads") or []]
