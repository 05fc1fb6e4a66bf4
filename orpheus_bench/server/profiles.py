"""Server profiles: a llama-server configuration stated as intent, and its translation to one build's flags.

A profile (YAML, `scenarios/servers/<name>.yaml`) says what the server should be: slots, context size,
batching, flash attention, KV cache type, memory locking, GPU offload. Flags for the same intent changed
across llama.cpp builds (`--mlock`/`--no-mmap` became `-lm/--load-mode`, `-fa` now takes `on|off|auto`,
`--defrag-thold` became a no-op), so `translate` reads the build's parsed `--help` (`ServerHelp`) and emits
the flags it accepts, recording every change, drop and forced addition in a `Translation`. Pure: no process
is started here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orpheus_bench.errors import ConfigError
from orpheus_bench.server.binary import ServerHelp

PROFILE_PACKAGE = "orpheus_bench.server"
PROFILE_PACKAGE_DIR = "profiles"


class ServerProfile(BaseModel):
    """A llama-server configuration as intent; `None` leaves the server's own default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Short name, used in run directories and reports.")
    description: str = Field("", description="Where this configuration comes from and what it is for.")
    slots: int | None = Field(None, ge=1, description="Parallel decoding slots (-np).")
    ctx_size: int | None = Field(
        None,
        ge=0,
        description="Total context (-c); without a unified KV cache each slot gets ctx_size / slots.",
    )
    kv_unified: bool | None = Field(
        None, description="One KV buffer shared by all slots (--kv-unified): each slot may use the whole -c."
    )
    batch_size: int | None = Field(None, ge=1, description="Logical batch size (-b).")
    ubatch_size: int | None = Field(None, ge=1, description="Physical batch size (-ub).")
    threads: int | None = Field(None, ge=1, description="CPU threads for generation (-t).")
    threads_batch: int | None = Field(None, ge=1, description="CPU threads for prompt processing (-tb).")
    continuous_batching: bool | None = Field(None, description="Continuous (dynamic) batching (-cb / -nocb).")
    flash_attn: bool | Literal["auto"] | None = Field(None, description="Flash attention: true, false or auto.")
    kv_cache_type: str | None = Field(None, description="KV cache data type for K and V (-ctk/-ctv), e.g. f16.")
    mlock: bool | None = Field(None, description="Lock the model in RAM.")
    mmap: bool | None = Field(None, description="Memory-map the model file (false = read it into memory).")
    gpu_layers: int | None = Field(None, ge=0, description="Layers offloaded to the GPU (-ngl); 999 = all.")
    defrag_thold: float | None = Field(None, description="KV defragmentation threshold (a no-op in new builds).")
    warmup: bool | None = Field(None, description="Run the server's empty warm-up decode at start.")
    fit_memory: bool | None = Field(
        None, description="Fit unset options to device memory (-fit); off skips a second model load at start."
    )
    metrics: bool = Field(True, description="Prometheus /metrics; the launcher always enables it.")
    slots_endpoint: bool = Field(True, description="GET /slots monitoring; the launcher enables it when it can.")
    extra_args: list[str] = Field(default_factory=list, description="Passed verbatim after the translated flags.")

    def per_slot_ctx(self) -> int | None:
        """Context each slot gets on a build that does not pad (ctx_size // slots), if both are stated."""
        if self.ctx_size is None or self.slots is None or self.kv_unified:
            return self.ctx_size
        return self.ctx_size // self.slots


def load_profile(path: str | os.PathLike[str]) -> ServerProfile:
    """Read one profile YAML; unknown keys and bad values are a `ConfigError` naming the field."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError("server_profile", f"cannot read {p}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError("server_profile", f"{p} is not a mapping")
    data.setdefault("name", p.stem)
    try:
        return ServerProfile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or "profile"
        raise ConfigError(f"server_profile.{loc}", f"{first['msg']} (in {p})") from exc


def _repo_profile_dir() -> Path:
    # orpheus_bench/server/profiles.py -> repository root (a checkout or an editable install).
    return Path(__file__).resolve().parents[2] / "scenarios" / "servers"


def shipped_profile_names() -> list[str]:
    """Names of the profiles packaged with orpheus-bench."""
    root = resources.files(PROFILE_PACKAGE).joinpath(PROFILE_PACKAGE_DIR)
    return sorted(e.name[: -len(".yaml")] for e in root.iterdir() if e.name.endswith(".yaml"))


def resolve_profile(name_or_path: str | os.PathLike[str]) -> ServerProfile:
    """A profile from a YAML path or a bare name (`seed-after`): scenarios/servers/, else the package copy."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or os.sep in text or path.exists():
        if not path.exists():
            raise ConfigError("server_profile", f"no such file: {path}")
        return load_profile(path)
    repo = _repo_profile_dir() / f"{text}.yaml"
    if repo.exists():
        return load_profile(repo)
    packaged = resources.files(PROFILE_PACKAGE).joinpath(PROFILE_PACKAGE_DIR, f"{text}.yaml")
    if packaged.is_file():
        with resources.as_file(packaged) as p:
            return load_profile(p)
    known = ", ".join(shipped_profile_names())
    raise ConfigError("server_profile", f"unknown profile {text!r} (known: {known}; or give a YAML path)")


# ---- translation ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlagNote:
    """What the translation did with one intent: `changed` (new spelling), `dropped`, `added` or `capped`."""

    intent: str
    action: Literal["changed", "dropped", "added", "capped"]
    detail: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form for run.json."""
        return {"intent": self.intent, "action": self.action, "detail": self.detail}


@dataclass(slots=True)
class Translation:
    """The final argv (without the binary) and the notes on what differs from the profile's literal intent."""

    args: list[str] = field(default_factory=list)
    notes: list[FlagNote] = field(default_factory=list)

    def note(self, intent: str, action: Literal["changed", "dropped", "added", "capped"], detail: str) -> None:
        """Record one deviation."""
        self.notes.append(FlagNote(intent, action, detail))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for run.json."""
        return {"args": list(self.args), "notes": [n.to_dict() for n in self.notes]}

    def summary(self) -> list[str]:
        """One human line per note."""
        return [f"{n.intent}: {n.action}: {n.detail}" for n in self.notes]


def translate(
    profile: ServerProfile,
    help_: ServerHelp,
    *,
    model: str,
    host: str,
    port: int,
    cpu_count: int | None = None,
    cap_threads: bool = True,
    extra_args: Sequence[str] = (),
) -> Translation:
    """Translate a profile to flags this build accepts.

    With `cap_threads` and a known `cpu_count`, thread counts are limited to the CPUs there are, minus one on
    machines with 4 CPUs or fewer (the harness decodes audio on the same machine, and llama.cpp's spinning
    threads collapse when a core is oversubscribed: measured 413 vs 7 tokens/s with -t 1 vs -t 2 on a busy
    2-core machine); on such small machines an unset thread count is set to that limit too, so profiles
    compared on one machine get the same threads. Every such change is a note.
    """
    t = Translation()
    a = t.args

    def opt(intent: str, names: Sequence[str], value: object | None = None) -> bool:
        flag = help_.first(*names)
        if flag is None:
            t.note(intent, "dropped", f"this llama-server has none of {', '.join(names)}")
            return False
        a.append(flag)
        if value is not None:
            a.append(str(value))
        return True

    opt("model", ("-m", "--model"), model)
    opt("host", ("--host",), host)
    opt("port", ("--port",), port)
    p = profile
    if p.slots is not None:
        opt("slots", ("-np", "--parallel"), p.slots)
    if p.ctx_size is not None:
        opt("ctx_size", ("-c", "--ctx-size"), p.ctx_size)
    if p.kv_unified is not None:
        opt("kv_unified", ("-kvu", "--kv-unified") if p.kv_unified else ("-no-kvu", "--no-kv-unified"))
    if p.batch_size is not None:
        opt("batch_size", ("-b", "--batch-size"), p.batch_size)
    if p.ubatch_size is not None:
        opt("ubatch_size", ("-ub", "--ubatch-size"), p.ubatch_size)
    limit = thread_limit(cpu_count) if cap_threads else None
    for intent, value, names in (
        ("threads", p.threads, ("-t", "--threads")),
        ("threads_batch", p.threads_batch, ("-tb", "--threads-batch")),
    ):
        if value is None and intent == "threads" and limit is not None and cpu_count and cpu_count <= 4:
            t.note(intent, "added", f"-t {limit}: unset, on a {cpu_count}-CPU machine one CPU is left to the harness")
            value = limit
        if value is None:
            continue
        if limit is not None and value > limit:
            spare = " (one left to the harness)" if limit < (cpu_count or 0) else ""
            t.note(intent, "capped", f"{value} -> {limit}: this machine has {cpu_count} CPUs{spare}")
            value = limit
        opt(intent, names, value)
    _continuous_batching(p, help_, t)
    _flash_attn(p, help_, t)
    if p.kv_cache_type is not None:
        opt("kv_cache_type", ("-ctk", "--cache-type-k"), p.kv_cache_type)
        opt("kv_cache_type", ("-ctv", "--cache-type-v"), p.kv_cache_type)
    _memory(p, help_, t)
    if p.gpu_layers is not None:
        opt("gpu_layers", ("-ngl", "--gpu-layers", "--n-gpu-layers"), p.gpu_layers)
    if p.defrag_thold is not None:
        dt = help_.get("--defrag-thold") or help_.get("-dt")
        if dt is None or dt.deprecated:
            t.note("defrag_thold", "dropped", "--defrag-thold is deprecated or gone in this build (a no-op)")
        else:
            a.extend([dt.names[0], str(p.defrag_thold)])
    if p.warmup is False:
        opt("warmup", ("--no-warmup",))
    if p.fit_memory is not None:
        opt("fit_memory", ("-fit", "--fit"), "on" if p.fit_memory else "off")
    _endpoints(p, help_, t)
    a.extend(p.extra_args)
    a.extend(extra_args)
    return t


def thread_limit(cpu_count: int | None) -> int | None:
    """Most threads a server should get here: every CPU, less one for the harness on machines of 4 or fewer."""
    if not cpu_count:
        return None
    return max(1, cpu_count - 1) if cpu_count <= 4 else cpu_count


def _continuous_batching(p: ServerProfile, help_: ServerHelp, t: Translation) -> None:
    if p.continuous_batching is None:
        return
    if p.continuous_batching:
        flag = help_.first("-cb", "--cont-batching")
        if flag:
            t.args.append(flag)
        else:
            t.note("continuous_batching", "dropped", "no -cb flag; continuous batching is this build's default")
        return
    flag = help_.first("-nocb", "--no-cont-batching")
    if flag:
        t.args.append(flag)
    else:
        t.note("continuous_batching", "dropped", "this build cannot turn continuous batching off")


def _flash_attn(p: ServerProfile, help_: ServerHelp, t: Translation) -> None:
    if p.flash_attn is None:
        return
    fa = help_.get("-fa") or help_.get("--flash-attn")
    value = "auto" if p.flash_attn == "auto" else ("on" if p.flash_attn else "off")
    if fa is None:
        t.note("flash_attn", "dropped", "this build has no -fa")
    elif fa.argument:
        # New builds: `-fa on|off|auto`; a bare -fa would swallow the next flag as its value.
        t.args.extend([fa.names[0], value])
    elif value == "on":
        t.args.append(fa.names[0])
        t.note("flash_attn", "changed", "old build: bare -fa (no on/off argument)")
    else:
        t.note("flash_attn", "dropped", f"old build: -fa is a switch, {value!r} means leaving it out")


def _memory(p: ServerProfile, help_: ServerHelp, t: Translation) -> None:
    if p.mlock is None and p.mmap is None:
        return
    mlock = bool(p.mlock)
    mmap = p.mmap if p.mmap is not None else True
    lm = help_.get("-lm") or help_.get("--load-mode")
    if lm is not None:
        mode = ("mmap+mlock" if mlock else "mmap") if mmap else ("mlock" if mlock else "none")
        choices = lm.choices()
        if choices and mode not in choices:
            t.note("mlock/mmap", "dropped", f"load mode {mode!r} not among {', '.join(choices)}")
            return
        t.args.extend([lm.names[0], mode])
        t.note("mlock/mmap", "changed", f"mlock={mlock}, mmap={mmap} -> {lm.names[0]} {mode}")
        return
    if mlock:
        if help_.accepts("--mlock"):
            t.args.append("--mlock")
        else:
            t.note("mlock", "dropped", "this build has neither --mlock nor --load-mode")
    if not mmap:
        if help_.accepts("--no-mmap"):
            t.args.append("--no-mmap")
        else:
            t.note("mmap", "dropped", "this build has neither --no-mmap nor --load-mode")


def _endpoints(p: ServerProfile, help_: ServerHelp, t: Translation) -> None:
    if help_.accepts("--metrics"):
        t.args.append("--metrics")
        if not p.metrics:
            t.note("metrics", "added", "--metrics is always on so the server timeline can be scraped")
    else:
        t.note("metrics", "dropped", "this build has no --metrics; the server timeline will be empty")
    # Builds with a --slots switch may default it off; older ones serve /slots unless told not to.
    if help_.accepts("--slots"):
        t.args.append("--slots")
        if not p.slots_endpoint:
            t.note("slots_endpoint", "added", "--slots is always on so busy slots can be scraped")
