"""Profiles: loading and resolving, and translating intent to the flags of a captured llama-server --help."""

from __future__ import annotations

from pathlib import Path

import pytest

from orpheus_bench.errors import ConfigError
from orpheus_bench.server.binary import ServerHelp
from orpheus_bench.server.profiles import (
    ServerProfile,
    Translation,
    load_profile,
    resolve_profile,
    shipped_profile_names,
    translate,
)

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[3]

# A build from before the 2025 flag changes: --mlock/--no-mmap switches, a bare -fa, a live --defrag-thold.
OLD_HELP = """\
----- common params -----

-t,    --threads N                      number of threads to use during generation (default: -1)
-c,    --ctx-size N                     size of the prompt context (default: 4096, 0 = loaded from model)
-b,    --batch-size N                   logical maximum batch size (default: 2048)
-fa,   --flash-attn                     enable Flash Attention (default: disabled)
-ctk,  --cache-type-k TYPE              KV cache data type for K (default: f16)
-ctv,  --cache-type-v TYPE              KV cache data type for V (default: f16)
-dt,   --defrag-thold N                 KV cache defragmentation threshold (default: 0.1, < 0 - disabled)
                                        (env: LLAMA_ARG_DEFRAG_THOLD)
--mlock                                 force system to keep model in RAM rather than swapping or compressing
--no-mmap                               do not memory-map model (slower load but may reduce pageouts if
                                        not using mlock)
-ngl,  --gpu-layers, --n-gpu-layers N   number of layers to store in VRAM
-np,   --parallel N                     number of parallel sequences to decode (default: 1)
-cb,   --cont-batching                  enable continuous batching (a.k.a dynamic batching) (default: enabled)
-nocb, --no-cont-batching               disable continuous batching
-m,    --model FNAME                    model path (default: models/7B/ggml-model-f16.gguf)

----- example-specific params -----

--host HOST                             ip address to listen (default: 127.0.0.1)
--port PORT                             port to listen (default: 8080)
--metrics                               enable prometheus compatible metrics endpoint (default: disabled)
"""


@pytest.fixture(scope="module")
def new_help() -> ServerHelp:
    return ServerHelp.parse((DATA / "llama-server-help-b11434.txt").read_text())


@pytest.fixture(scope="module")
def old_help() -> ServerHelp:
    return ServerHelp.parse(OLD_HELP)


def _t(profile: str | ServerProfile, help_: ServerHelp, cpus: int = 16) -> Translation:
    p = profile if isinstance(profile, ServerProfile) else resolve_profile(profile)
    return translate(p, help_, model="m.gguf", host="127.0.0.1", port=8080, cpu_count=cpus)


def _pairs(args: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for i, a in enumerate(args):
        if a.startswith("-"):
            nxt = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("-") else None
            out[a] = nxt
    return out


# ---- help parsing ---------------------------------------------------------------------------------------


def test_parse_captured_help_options(new_help: ServerHelp) -> None:
    lm = new_help.get("--load-mode")
    assert lm is not None and lm.names[0] == "-lm"
    assert lm.choices() == ("auto", "none", "mmap", "mlock", "mmap+mlock", "dio")
    fa = new_help.get("-fa")
    assert fa is not None and fa.choices() == ("on", "off", "auto")
    dt = new_help.get("-dt")
    assert dt is not None and dt.deprecated
    assert new_help.accepts("-no-kvu") and new_help.accepts("--no-cont-batching")
    assert not new_help.accepts("--mlock") and not new_help.accepts("--no-mmap")
    assert new_help.get("-t") is not None and new_help.get("-t").argument == "N"  # type: ignore[union-attr]


def test_parse_old_help(old_help: ServerHelp) -> None:
    fa = old_help.get("--flash-attn")
    assert fa is not None and fa.argument is None
    assert old_help.accepts("--mlock") and old_help.accepts("--no-mmap")
    dt = old_help.get("--defrag-thold")
    assert dt is not None and not dt.deprecated
    assert not old_help.accepts("--load-mode")


# ---- translation ----------------------------------------------------------------------------------------


def test_seed_after_on_new_build(new_help: ServerHelp) -> None:
    t = _t("seed-after", new_help)
    a = _pairs(t.args)
    assert a["-np"] == "30" and a["-c"] == "2048" and a["-b"] == "512" and a["-t"] == "8"
    assert a["-fa"] == "on"  # never a bare -fa: it would swallow the next flag
    assert a["-ctk"] == a["-ctv"] == "f16"
    assert a["-lm"] == "mlock"
    assert a["-ngl"] == "999"
    assert "-cb" in a and "--metrics" in a and "--slots" in a
    assert "--mlock" not in a and "--no-mmap" not in a and "-dt" not in a and "--defrag-thold" not in a
    actions = {(n.intent, n.action) for n in t.notes}
    assert ("defrag_thold", "dropped") in actions
    assert ("mlock/mmap", "changed") in actions


def test_seed_after_on_old_build(old_help: ServerHelp) -> None:
    t = _t("seed-after", old_help)
    a = _pairs(t.args)
    assert "--mlock" in a and "--no-mmap" in a and "-lm" not in a
    assert "-fa" in a and a["-fa"] is None  # bare switch
    assert a["-dt"] == "0.1"
    assert ("slots_endpoint", "added") not in {(n.intent, n.action) for n in t.notes}


def test_seed_before_turns_continuous_batching_off(new_help: ServerHelp, old_help: ServerHelp) -> None:
    for h in (new_help, old_help):
        a = _pairs(_t("seed-before", h).args)
        assert a["-np"] == "1" and a["-c"] == "4096" and "-nocb" in a and "-cb" not in a


def test_threads_capped_to_cpus_and_reported(new_help: ServerHelp) -> None:
    t = _t("seed-after", new_help, cpus=2)
    assert _pairs(t.args)["-t"] == "1"  # one CPU of two is left to the harness
    assert any(n.intent == "threads" and n.action == "capped" and "8 -> 1" in n.detail for n in t.notes)
    assert _pairs(_t("seed-after", new_help, cpus=16).args)["-t"] == "8"
    # Unset threads: set on small machines (so profiles compare fairly), left to the server on big ones.
    assert _pairs(_t("seed-before", new_help, cpus=2).args)["-t"] == "1"
    assert "-t" not in _pairs(_t("seed-before", new_help, cpus=16).args)
    uncapped = translate(
        resolve_profile("seed-after"), new_help, model="m", host="h", port=1, cpu_count=2, cap_threads=False
    )
    assert _pairs(uncapped.args)["-t"] == "8"


def test_metrics_forced_on(new_help: ServerHelp) -> None:
    p = ServerProfile(name="x", metrics=False)
    t = _t(p, new_help)
    assert "--metrics" in t.args
    assert any(n.intent == "metrics" and n.action == "added" for n in t.notes)


def test_missing_flag_is_dropped_not_passed(old_help: ServerHelp) -> None:
    p = ServerProfile(name="x", kv_unified=True, threads_batch=2, warmup=False)
    t = _t(p, old_help)
    assert "-kvu" not in t.args and "-tb" not in t.args and "--no-warmup" not in t.args
    dropped = {n.intent for n in t.notes if n.action == "dropped"}
    assert {"kv_unified", "threads_batch", "warmup"} <= dropped


def test_load_modes(new_help: ServerHelp) -> None:
    def mode(**kw: bool) -> str | None:
        return _pairs(_t(ServerProfile(name="x", **kw), new_help).args).get("-lm")

    assert mode(mlock=True, mmap=True) == "mmap+mlock"
    assert mode(mmap=False) == "none"
    assert mode(mlock=True, mmap=False) == "mlock"
    assert mode() is None


def test_extra_args_come_last(new_help: ServerHelp) -> None:
    p = ServerProfile(name="x", slots=2, extra_args=["--cache-ram", "0"])
    t = translate(p, new_help, model="m", host="h", port=1, extra_args=["--no-webui"])
    assert t.args[-3:] == ["--cache-ram", "0", "--no-webui"]
    assert t.to_dict()["args"] == t.args


# ---- loading and resolving ------------------------------------------------------------------------------


def test_shipped_profiles_resolve_by_name() -> None:
    names = shipped_profile_names()
    assert {"seed-before", "seed-after", "seed-ultra", "test-np1", "test-np4"} <= set(names)
    assert resolve_profile("seed-ultra").slots == 50
    assert resolve_profile("seed-ultra").per_slot_ctx() == 40  # the seed's "n_ctx 40"
    for name in names:
        if name.startswith("test-"):
            assert (resolve_profile(name).threads or 0) == 1


def test_package_copies_match_scenarios_dir() -> None:
    pkg = REPO / "orpheus_bench" / "server" / "profiles"
    for path in (REPO / "scenarios" / "servers").glob("*.yaml"):
        assert (pkg / path.name).read_text() == path.read_text(), f"{path.name} differs from the package copy"


def test_resolve_path_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text("slots: 3\nctx_size: 3000\n")
    p = resolve_profile(str(good))
    assert p.name == "mine" and p.slots == 3 and p.per_slot_ctx() == 1000
    bad = tmp_path / "bad.yaml"
    bad.write_text("slots: 3\nslotz: 4\n")
    with pytest.raises(ConfigError) as exc:
        load_profile(bad)
    assert "slotz" in str(exc.value)
    with pytest.raises(ConfigError, match="unknown profile"):
        resolve_profile("no-such-profile")
    with pytest.raises(ConfigError, match="no such file"):
        resolve_profile(tmp_path / "missing.yaml")


def test_fit_memory_only_where_accepted(new_help: ServerHelp, old_help: ServerHelp) -> None:
    p = ServerProfile(name="x", fit_memory=False)
    assert _pairs(_t(p, new_help).args)["-fit"] == "off"
    t = _t(p, old_help)
    assert "-fit" not in t.args and any(n.intent == "fit_memory" and n.action == "dropped" for n in t.notes)
