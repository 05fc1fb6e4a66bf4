"""What a run directory says about itself: run.json as `RunMeta` (secrets redacted), and its kept audio files.

Kept audio: a record's ``extra["audio_file"]`` names its WAV, relative to the run directory (e.g.
``audio/c4-0007.wav``); a record without it is matched to ``audio/<request_id>.wav``; other WAVs under
``audio/`` are listed unmatched. Paths leaving the run directory are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orpheus_bench.records import RequestRecord
from orpheus_bench.results.model import AudioSample, RunMeta

AUDIO_FILE_KEY = "audio_file"
_META_KEYS = {
    "name",
    "driver",
    "started_at",
    "ended_at",
    "complete",
    "version",
    "git_sha",
    "host",
    "scenario",
    "server_props",
    "doctor",
    "snac",
    "levels",
}


def level_label(level: int, label: str | None) -> str:
    """A level's display name: the run's own label unless it is just ``c=N``, else "N worker(s)"."""
    if label and label.strip() and label.strip() != f"c={level}":
        return label.strip()
    return f"{level} worker" if level == 1 else f"{level} workers"


_SECRET_WORDS = ("api_key", "apikey", "token", "secret", "password", "authorization")


def redact(value: Any) -> Any:
    """A copy of ``value`` with the values of secret-looking keys replaced, so reports never show a key."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            secret = any(w in str(k).lower().replace("-", "_") for w in _SECRET_WORDS) and v not in (None, "")
            # Counters such as "tokens_predicted_total" are numbers, not secrets.
            out[k] = "<redacted>" if secret and isinstance(v, str) else redact(v)
        return out
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def run_meta(run_dir: Path, run_json: dict[str, Any], records: Sequence[RequestRecord]) -> RunMeta:
    """run.json as `RunMeta`, with what the records say where run.json is silent; secrets redacted."""
    scenario = run_json.get("scenario") if isinstance(run_json.get("scenario"), dict) else {}
    assert isinstance(scenario, dict)
    snac = run_json.get("snac") if isinstance(run_json.get("snac"), dict) else None
    random_weights = snac.get("random_weights") if snac else None
    drivers = sorted({r.driver for r in records})
    modes = sorted({r.mode for r in records})
    protocols = sorted({r.protocol for r in records})
    props = run_json.get("server_props")
    complete = run_json.get("complete")

    def text(key: str) -> str | None:
        value = run_json.get(key)
        return None if value is None else str(value)

    return RunMeta(
        name=str(run_json.get("name") or run_dir.name),
        run_dir=str(run_dir),
        driver=str(run_json.get("driver") or (",".join(drivers) if drivers else "unknown")),
        started_at=text("started_at"),
        ended_at=text("ended_at"),
        complete=complete if isinstance(complete, bool) else None,
        version=text("version"),
        git_sha=text("git_sha"),
        host=text("host"),
        mode=str(scenario.get("mode") or (modes[0] if len(modes) == 1 else ",".join(modes)) or "") or None,
        protocol=str(scenario.get("protocol") or ",".join(protocols)) or None,
        snac_random=random_weights if isinstance(random_weights, bool) else None,
        snac=snac,
        scenario=redact(scenario),
        server_props=redact(props) if isinstance(props, dict) else None,
        doctor=redact(run_json.get("doctor")),
        other=redact({k: v for k, v in run_json.items() if k not in _META_KEYS}),
    )


def _inside(run_dir: Path, rel: str) -> Path | None:
    try:
        path = (run_dir / rel).resolve()
        path.relative_to(run_dir.resolve())
    except (ValueError, OSError):
        return None
    return path if path.is_file() else None


def find_audio(run_dir: Path, records: Sequence[RequestRecord], labels: dict[int, str]) -> tuple[AudioSample, ...]:
    """Kept WAVs with the request each belongs to (see the module docstring for the naming convention)."""
    out: list[AudioSample] = []
    seen: set[Path] = set()
    for r in sorted(records, key=lambda r: (r.level, r.seq)):
        rel = r.extra.get(AUDIO_FILE_KEY)
        path = _inside(run_dir, rel) if isinstance(rel, str) and rel else None
        if path is None:
            path = _inside(run_dir, f"audio/{r.request_id}.wav")
        if path is None or path in seen:
            continue
        seen.add(path)
        rel_path = path.relative_to(run_dir.resolve()).as_posix()
        out.append(
            AudioSample(
                request_id=r.request_id,
                level=r.level,
                label=labels.get(r.level, level_label(r.level, r.level_label)),
                prompt=r.prompt,
                path=str(run_dir / rel_path),  # as the caller named the run, not resolved: no home paths leak
                rel_path=rel_path,
                status=r.status.value,
            )
        )
    audio_dir = run_dir / "audio"
    if audio_dir.is_dir():
        for candidate in sorted(audio_dir.glob("*.wav")):
            path = _inside(run_dir, f"audio/{candidate.name}")
            if path is None or path in seen:
                continue
            rel_path = path.relative_to(run_dir.resolve()).as_posix()
            out.append(AudioSample(None, None, "unmatched", "", str(run_dir / rel_path), rel_path, None))
    return tuple(out)


def load_run_json(run_dir: Path) -> dict[str, Any]:
    """``run.json`` as a dict ({} when it is missing or unreadable: a crashed run may not have written it)."""
    path = run_dir / "run.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
