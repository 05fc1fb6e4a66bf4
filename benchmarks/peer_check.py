"""Peer check: orpheus-bench and AIPerf against one real llama-server, with the same request bodies, side by side.

Do two independent load generators see the same server the same way? The script starts llama-server with the
tiny Orpheus-format test model (`cached_test_model()`; the ``test-np4`` profile with as many slots as the
highest level, 512 tokens each), then for each level (1, 4 and 16 concurrent streams by default) runs

- ``orpheus-bench run --protocol openai --decode off`` (a scenario file written here), and
- ``aiperf profile --endpoint-type completions --streaming`` (AIPerf 0.13, from its own virtualenv,
  ``.venv/peer``, which ``scripts/setup.sh`` makes),

alternating which goes first, each with the same measured request count and as many warmup requests as the
level's concurrency. Both send the same bodies: the same Orpheus-formatted prompts (one per length bucket of the
``seed-lengths`` set, in the same order, so each level's measured requests hold each prompt equally often),
``max_tokens``, ``temperature``, ``top_k``, ``repeat_penalty``, ``stop``, ``model`` and ``stream_options``
(AIPerf always sends ``include_usage``; our scenario sends the same key). An identity probe checks that on
the wire first: one request of each tool goes through a recording proxy (`peer_capture.CaptureProxy`) and the
two JSON bodies are compared key by key; AIPerf's ``inputs.json`` of every level is compared with our bodies
too. Any difference is printed.

AIPerf counts tokens with a tokenizer built offline from the served GGUF's own vocabulary
(`benchmarks/peer_tokenizer.py`); the script prints how its counts compare with the server's ``usage``.

Printed per level, each tool's figures from its own outputs (ours: the run directory's
``requests.jsonl``; AIPerf: ``profile_export_aiperf.json`` / ``profile_export.jsonl``, never its console):

- TTFT p50 / p99 (request sent -> first streamed token), E2E p50 (request sent -> stream ended), requests/s;
- client CPU per token: CPU seconds of the tool's whole process tree (from /proc, sampled every 0.2 s) between
  its first request's send and its last response's end, divided by the tokens the server generated for it in
  that window (``usage`` / ``timings``), warmup included for both: start-up and the end-of-run analysis are
  outside the window;
- the ratio orpheus-bench / AIPerf of each figure;
- our E2E minus the server's own ``timings.prompt_ms + predicted_ms`` of the same request (what the client and
  HTTP add to the server's work).

Everything goes to ``--out`` (default ``runs/peer-check-<time>``): ``peer_check.txt`` (what was printed),
``peer_check.json`` (the figures), ``server.log``, and each tool's own run directory. ``--markdown FILE``
prints the README table of a ``peer_check.json``.

Usage: ``.venv/bin/python benchmarks/peer_check.py [--levels 1,4,16] [--requests 64] [--max-tokens 256]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from peer_aiperf import (
    AiperfResult,
    aiperf_command,
    dataset_lines,
    extra_inputs,
    formatted_payloads,
    read_aiperf,
)
from peer_capture import CaptureProxy, body_differences
from peer_cpu import ToolRun, busy_processes, cpu_per_token_us, machine_line, run_tool
from peer_tokenizer import HELPER_VERSION

from orpheus_bench.measures.stats import percentile
from orpheus_bench.prompts import BUILTIN_SETS
from orpheus_bench.records import RequestRecord, read_records
from orpheus_bench.scenario import load_scenario
from orpheus_bench.server.launcher import LlamaServer
from orpheus_bench.server.model_builder import cache_dir, cached_test_model
from orpheus_bench.server.profiles import resolve_profile
from orpheus_bench.target import Target

ROOT = Path(__file__).resolve().parents[1]
MODEL_NAME = "orpheus-tiny"
SLOT_CTX = 512
OURS, THEIRS = "orpheus-bench", "AIPerf"
OUR_FLAGS = ("--protocol", "openai", "--decode", "off")  # the scenario says so too; the command line shows it
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
# AIPerf treats HF_HUB_OFFLINE as "load from the hub cache" and then cannot load a local directory; instead any
# hub call it might make is pointed at a closed local port, so it fails at once and nothing leaves the machine.
AIPERF_ENV = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}


# ---- output ---------------------------------------------------------------------------------------------


class Report:
    """Prints lines and keeps them in ``peer_check.txt`` as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_text("", encoding="utf-8")

    def __call__(self, *lines: str) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            for line in lines:
                print(line, flush=True)
                fh.write(line + "\n")


def fmt(value: float | None, digits: int = 1) -> str:
    """A number for a table ('-' when missing)."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs, None when either is missing or theirs is zero."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def pipe_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown pipe table (what the README quotes, and readable as text)."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


# ---- orpheus-bench's side -------------------------------------------------------------------------------


def orpheus_bench_cmd() -> list[str]:
    """The console script next to this Python, else the module."""
    script = Path(sys.executable).with_name("orpheus-bench")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from orpheus_bench.cli import main; sys.exit(main())"]


def server_tokens(r: RequestRecord) -> int:
    """Tokens the server generated for a request (its timings), else what the client counted."""
    if r.timings is not None and r.timings.predicted_n is not None:
        return int(r.timings.predicted_n)
    return int(r.tokens_generated)


def ours_level(run_dir: Path, done: ToolRun) -> dict[str, Any]:
    """Our figures of one level, from the run's own records (``requests.jsonl``).

    Definitions as docs/ARCHITECTURE.md states them, over measured (non-warmup) requests: TTFT =
    ``t_first_token_s``, E2E = ``t_end_s``, throughput = requests that ended OK / (last measured end - first
    measured send); percentiles by `orpheus_bench.measures.stats.percentile`, the package's own.
    """
    records = read_records(str(run_dir / "requests.jsonl"))
    measured = [r for r in records if not r.warmup]
    ok = [r for r in measured if r.ok]
    spans = [(r.wall_start, r.wall_start + (r.t_end_s or 0.0)) for r in records if r.t_end_s is not None]
    tokens = sum(server_tokens(r) for r in records)
    cpu_us, cpu_s = cpu_per_token_us(done.sampler, spans, tokens)
    ends = [r.run_offset_s + r.t_end_s for r in measured if r.t_end_s is not None]
    window_s = max(ends) - min(r.run_offset_s for r in measured) if ends else None
    pairs = [  # (E2E ms, the server's prompt_ms + predicted_ms) of each request the server timed
        (r.t_end_s * 1000.0, r.timings.prompt_ms + r.timings.predicted_ms)
        for r in ok
        if r.t_end_s is not None and r.timings
        if r.timings.prompt_ms is not None and r.timings.predicted_ms is not None
    ]
    server_ms = [server for _, server in pairs]
    beyond = [e2e - server for e2e, server in pairs]
    return {
        "requests": len(measured),
        "warmup": len(records) - len(measured),
        "ok": len(ok),
        "errors": dict(Counter(r.outcome for r in measured if not r.ok)),
        "ttft_p50_ms": _ms(percentile([r.t_first_token_s for r in ok], 50)),
        "ttft_p99_ms": _ms(percentile([r.t_first_token_s for r in ok], 99)),
        "e2e_p50_ms": _ms(percentile([r.t_end_s for r in ok], 50)),
        "rps": len(ok) / window_s if window_s else None,
        "tokens": tokens,
        "tokens_per_request": tokens / len(records) if records else None,
        "cpu_us_per_token": cpu_us,
        "cpu_s": cpu_s,
        "cpu_total_s": done.cpu_s,
        "wall_s": done.wall_s,
        "others_cores": done.others_cores,
        "e2e_minus_server_ms": {
            "n": len(beyond),
            "p50": percentile(beyond, 50),
            "p99": percentile(beyond, 99),
            "max": max(beyond) if beyond else None,
        },
        "server_ms_p50": percentile(server_ms, 50),
        "prompt_counts": dict(Counter(r.prompt for r in measured)),
        "client_counted_vs_server": dict(
            Counter("equal" if r.tokens_generated == server_tokens(r) else "differ" for r in records)
        ),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


# ---- AIPerf's side --------------------------------------------------------------------------------------


def aiperf_ttft_split(result: AiperfResult) -> dict[str, float | None]:
    """AIPerf's own HTTP trace, p50 ms: connect + send + wait (for the first byte) make up its TTFT; credit to
    start (its scheduler handing the request to a worker) comes before its clock starts."""
    return {
        name: result.stat(metric, "p50")
        for name, metric in (
            ("credit_to_start", "credit_to_start_latency"),
            ("connecting", "http_req_connecting"),
            ("sending", "http_req_sending"),
            ("waiting", "http_req_waiting"),
        )
    }


def aiperf_level(result: AiperfResult, done: ToolRun, prompts: list[str]) -> dict[str, Any]:
    """AIPerf's figures of one level, from its export files."""
    reqs = result.requests
    tokens = sum(
        r.server_completion_tokens if r.server_completion_tokens is not None else (r.output_tokens or 0) for r in reqs
    )
    cpu_us, cpu_s = cpu_per_token_us(done.sampler, [(r.start_wall_s, r.end_wall_s) for r in reqs], tokens)
    measured = result.measured

    def prompt_of(conversation: str) -> str:
        index = int(conversation.rsplit("_", 1)[-1])
        return prompts[index % len(prompts)]

    input_diff = Counter(
        (r.server_prompt_tokens - r.input_tokens)
        for r in reqs
        if r.server_prompt_tokens is not None and r.input_tokens is not None
    )
    output_diff = Counter(
        (r.server_completion_tokens - r.output_tokens)
        for r in reqs
        if r.server_completion_tokens is not None and r.output_tokens is not None
    )
    return {
        "requests": result.completed,
        "warmup": len(reqs) - len(measured),
        "ok": result.succeeded,
        "errors": result.errors,
        "ttft_p50_ms": result.stat("time_to_first_token", "p50"),
        "ttft_p99_ms": result.stat("time_to_first_token", "p99"),
        "e2e_p50_ms": result.stat("request_latency", "p50"),
        "rps": result.stat("request_throughput", "avg"),
        "tokens": tokens,
        "tokens_per_request": tokens / len(reqs) if reqs else None,
        "cpu_us_per_token": cpu_us,
        "cpu_s": cpu_s,
        "cpu_total_s": done.cpu_s,
        "wall_s": done.wall_s,
        "others_cores": done.others_cores,
        "prompt_counts": dict(Counter(prompt_of(r.conversation) for r in measured)),
        "ttft_split_p50_ms": aiperf_ttft_split(result),
        "server_minus_aiperf_input_tokens": {str(k): v for k, v in sorted(input_diff.items())},
        "server_minus_aiperf_output_tokens": {str(k): v for k, v in sorted(output_diff.items())},
    }


def inputs_differences(bodies: list[dict[str, Any]], formatted: list[dict[str, Any]]) -> list[str]:
    """What differs between the bodies AIPerf formatted (``inputs.json``) and ours for the same prompt."""
    by_prompt = {b["prompt"]: b for b in bodies}
    if not formatted:
        return ["inputs.json is missing or empty"]
    out: set[str] = set()
    for payload in formatted:
        ours = by_prompt.get(payload.get("prompt"))
        if ours is None:
            out.add("inputs.json holds a prompt orpheus-bench does not send")
        else:
            out.update(body_differences(ours, payload))
    return sorted(out)


# ---- set-up: prompts, scenario, dataset, tokenizer ------------------------------------------------------


def pick_prompts() -> list[str]:
    """The first prompt of each length bucket of the seed-lengths set (about 20, 30, 50 and 70+ tokens)."""
    return [texts[0] for texts in BUILTIN_SETS["seed-lengths"].values()]


def write_scenario(path: Path, prompts_file: Path, max_tokens: int) -> Path:
    """Our scenario: the openai protocol, decode off, Orpheus defaults, AIPerf's stream_options key."""
    scenario = {
        "protocol": "openai",
        "model": MODEL_NAME,
        "prompts": {"set": None, "file": str(prompts_file), "voice": "tara"},
        "sampling": {
            "temperature": 0.3,
            "top_k": 30,
            "max_tokens": max_tokens,
            "repeat_penalty": 1.1,
            "stop": ["<custom_token_2>"],
            "extra": {"stream_options": {"include_usage": True}},
        },
        "decode": {"preset": "off"},
    }
    path.write_text(json.dumps(scenario, indent=1) + "\n", encoding="utf-8")
    return path


def find_aiperf(arg: str | None) -> Path:
    """--aiperf, else peer/bin/aiperf inside this Python's virtualenv (setup.sh's .venv/peer), else on PATH."""
    inside = Path(sys.prefix) / "peer" / "bin" / "aiperf"
    candidates = (
        [arg] if arg else [str(inside), str(ROOT / ".venv" / "peer" / "bin" / "aiperf"), shutil.which("aiperf") or ""]
    )
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    raise SystemExit("peer_check: AIPerf not found (run scripts/setup.sh, which makes .venv/peer, or pass --aiperf)")


def peer_version(python: Path, package: str) -> str:
    """A package's version in the AIPerf virtualenv."""
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def build_tokenizer(python: Path, model: Path, say: Callable[..., None]) -> Path:
    """The AIPerf tokenizer directory for `model`, built once into the cache by peer_tokenizer.py."""
    out = cache_dir() / "peer-tokenizers" / f"{model.stem}-v{HELPER_VERSION}"
    stamp = out / "peer_tokenizer.json"
    if stamp.exists() and (out / "tokenizer.json").exists():
        say(f"tokenizer: {out} (cached; {json.loads(stamp.read_text())['added_tokens']} added tokens)")
        return out
    helper = Path(__file__).with_name("peer_tokenizer.py")
    done = subprocess.run(
        [str(python), str(helper), str(model), str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE_ENV},
    )
    if done.returncode != 0:
        raise SystemExit(f"peer_check: building the tokenizer failed:\n{done.stdout}\n{done.stderr}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    say(f"tokenizer: {out} (built from the GGUF's vocabulary in {info['build_s']} s: {info['vocab']} tokens)")
    return out


# ---- the identity probe ---------------------------------------------------------------------------------


def identity_probe(
    url: str,
    work: Path,
    prompt: str,
    max_tokens: int,
    aiperf: Path,
    tokenizer: Path,
    say: Callable[..., None],
    watch: Sequence[int] = (),
) -> dict[str, Any]:
    """One request of each tool through a recording proxy; their bodies compared key by key."""
    work.mkdir(parents=True, exist_ok=True)
    prompts_file = work / "prompt.txt"
    prompts_file.write_text(prompt + "\n", encoding="utf-8")
    scenario = write_scenario(work / "scenario.json", prompts_file, max_tokens)
    sc = load_scenario(str(scenario))
    expected = Target.from_scenario(sc).body(sc.prompts.load()[0])
    (work / "dataset.jsonl").write_text("\n".join(dataset_lines([expected])) + "\n", encoding="utf-8")
    with CaptureProxy(url) as proxy:
        cmd = [*orpheus_bench_cmd(), "run", "--scenario", str(scenario), *OUR_FLAGS, "--host", proxy.url]
        cmd += ["--concurrency", "1", "--requests-per-level", "1", "--no-warmup"]
        run_tool([*cmd, "--out", str(work / "ours"), "--force", "--quiet"], work / "ours.log", watch=watch)
        ours = proxy.completions()
        proxy.clear()
        cmd = aiperf_command(
            str(aiperf),
            url=proxy.url,
            model=MODEL_NAME,
            tokenizer_dir=tokenizer,
            dataset=work / "dataset.jsonl",
            extra=extra_inputs(expected),
            concurrency=1,
            requests=1,
            warmup=1,
            out_dir=work / "aiperf",
        )
        run_tool(cmd, work / "aiperf.log", AIPERF_ENV, watch=watch)
        theirs = proxy.completions()
    if not ours or not theirs:
        raise SystemExit(f"peer_check: the probe captured {len(ours)} / {len(theirs)} completion requests")
    ours_body = ours[-1].json()
    differences = body_differences(ours_body, theirs[-1].json())
    also = [d for r in theirs[:-1] for d in body_differences(ours_body, r.json())]
    sent_as_built = body_differences(expected, ours_body)
    headers = {
        OURS: sorted(ours[-1].headers),
        THEIRS: sorted(theirs[-1].headers),
    }
    say(
        "",
        f"identity probe (one request each through a recording proxy; {len(ours)} / {len(theirs)} completion "
        "requests captured, AIPerf's including its one warmup request):",
        f"  {OURS} body keys: {', '.join(sorted(ours_body))}",
        f"  bodies on the wire: {'IDENTICAL' if not differences and not also else 'DIFFERENT'}"
        + ("" if not differences else ": " + "; ".join(differences)),
    )
    if sent_as_built:
        say("  orpheus-bench sent something other than the body it built: " + "; ".join(sent_as_built))
    for tool in (OURS, THEIRS):
        say(f"  {tool} headers: {', '.join(headers[tool])}")
    say(f"  body bytes: {OURS} {len(ours[-1].body)}, {THEIRS} {len(theirs[-1].body)} (key order and spacing differ)")
    return {
        "identical": not differences and not also,
        "differences": differences + also,
        "body": ours_body,
        "headers": headers,
        "captured": {OURS: len(ours), THEIRS: len(theirs)},
    }


# ---- the run --------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    out = Path(args.out or ROOT / "runs" / f"peer-check-{dt.datetime.now():%Y%m%d-%H%M%S}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    say = Report(out / "peer_check.txt")
    aiperf = find_aiperf(args.aiperf)
    python = aiperf.with_name("python")
    versions = {
        "orpheus-bench": peer_version(Path(sys.executable), "orpheus-bench"),
        "aiperf": peer_version(python, "aiperf"),
        "transformers": peer_version(python, "transformers"),
        "tokenizers": peer_version(python, "tokenizers"),
    }
    say(
        "# peer check: orpheus-bench vs AIPerf on one llama-server (tiny Orpheus-format model)",
        f"date: {dt.datetime.now().isoformat(timespec='seconds')}",
        machine_line(),
        "versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "AIPerf environment: " + " ".join(f"{k}={v}" for k, v in AIPERF_ENV.items()),
    )
    busy = busy_processes()
    say("busiest other processes over 1 s before the run: " + ("; ".join(busy) or "none"))
    model = cached_test_model()
    tokenizer = build_tokenizer(python, model, say)
    prompts = pick_prompts()
    prompts_file = out / "prompts.txt"
    prompts_file.write_text("\n".join(prompts) + "\n", encoding="utf-8")
    scenario_path = write_scenario(out / "scenario.json", prompts_file, args.max_tokens)
    scenario = load_scenario(str(scenario_path))
    target = Target.from_scenario(scenario)
    loaded = scenario.prompts.load()
    bodies = [target.body(p) for p in loaded]
    texts = [p.text for p in loaded]
    extras = {json.dumps(extra_inputs(b), sort_keys=True) for b in bodies}
    if len(extras) != 1:
        raise SystemExit("peer_check: the prompts' bodies differ in more than the prompt; AIPerf cannot send that")
    extra = extra_inputs(bodies[0])
    dataset = out / "aiperf-dataset.jsonl"
    dataset.write_text("\n".join(dataset_lines(bodies)) + "\n", encoding="utf-8")
    levels = sorted({int(x) for x in args.levels.split(",") if x.strip()})
    if args.requests % len(prompts):
        say(f"note: --requests {args.requests} is not a multiple of {len(prompts)} prompts: the mixes may differ")
    slots = args.slots or max(levels)
    profile = resolve_profile(args.profile).model_copy(
        update={"name": f"{args.profile}-peer{slots}", "slots": slots, "ctx_size": slots * SLOT_CTX}
    )
    say(
        f"prompts: {len(prompts)} (seed-lengths, one per bucket: {', '.join(str(len(t)) for t in texts)} chars), "
        f"voice tara; body: {json.dumps(extra)}",
        f"levels: {', '.join(map(str, levels))} streams; {args.requests} measured requests per level and tool, "
        "plus as many warmup requests as streams",
    )
    levels_out: list[dict[str, Any]] = []
    with LlamaServer(profile, model, log_path=out / "server.log") as srv:
        say(f"llama-server {srv.version}: {' '.join(srv.args[1:])}")
        watch = [srv.pid] if srv.pid else []  # the server's CPU is not "other load"
        probe = identity_probe(srv.url, out / "probe", prompts[0], args.max_tokens, aiperf, tokenizer, say, watch)
        for i, level in enumerate(levels):
            order = (OURS, THEIRS) if i % 2 == 0 else (THEIRS, OURS)
            row: dict[str, Any] = {"streams": level, "order": list(order), "load_before": os.getloadavg()[0]}
            for tool in order:
                if tool == OURS:
                    run_dir = out / f"ours-c{level}"
                    cmd = [*orpheus_bench_cmd(), "run", "--scenario", str(scenario_path), *OUR_FLAGS]
                    cmd += ["--host", srv.url]
                    cmd += ["--concurrency", str(level), "--requests-per-level", str(args.requests)]
                    cmd += ["--out", str(run_dir), "--force", "--quiet"]
                    row[OURS] = ours_level(run_dir, run_tool(cmd, out / f"ours-c{level}.log", watch=watch))
                else:
                    art = out / f"aiperf-c{level}"
                    cmd = aiperf_command(
                        str(aiperf),
                        url=srv.url,
                        model=MODEL_NAME,
                        tokenizer_dir=tokenizer,
                        dataset=dataset,
                        extra=extra,
                        concurrency=level,
                        requests=args.requests,
                        warmup=level,
                        out_dir=art,
                    )
                    done = run_tool(cmd, out / f"aiperf-c{level}.log", AIPERF_ENV, watch=watch)
                    row[THEIRS] = aiperf_level(read_aiperf(art), done, texts)
                    row["aiperf_inputs_differences"] = inputs_differences(bodies, formatted_payloads(art))
                fig = row[tool]
                say(
                    f"level {level}: {tool} done in {fig['wall_s']:.1f} s, {fig['cpu_total_s']:.1f} CPU s in all "
                    f"(start-up and analysis included); other processes kept {fig['others_cores']:.2f} cores busy"
                )
            row["load_after"] = os.getloadavg()[0]
            levels_out.append(row)
        server_args = srv.args[1:]
        server_version = srv.version
    busy_after = busy_processes()
    say("busiest other processes over 1 s after the run: " + ("; ".join(busy_after) or "none"))
    result = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_line(),
        "busy_before": busy,
        "busy_after": busy_after,
        "versions": versions,
        "server": {"version": server_version, "args": server_args, "profile": profile.name},
        "max_tokens": args.max_tokens,
        "requests_per_level": args.requests,
        "prompts": texts,
        "body": extra,
        "probe": probe,
        "levels": levels_out,
    }
    (out / "peer_check.json").write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    say("", *summary_lines(result), "", f"files: {out}")
    return 0


# ---- the tables -----------------------------------------------------------------------------------------

FIGURES = [
    ("TTFT p50 ms", "ttft_p50_ms", 1),
    ("TTFT p99 ms", "ttft_p99_ms", 1),
    ("E2E p50 ms", "e2e_p50_ms", 1),
    ("req/s", "rps", 2),
    ("client CPU µs/token", "cpu_us_per_token", 1),
]


def side_by_side(result: dict[str, Any]) -> list[str]:
    """The main table: both tools and their ratio at each level."""
    rows = []
    for lv in result["levels"]:
        ours, theirs = lv[OURS], lv[THEIRS]
        for name, fig in ((OURS, ours), (THEIRS, theirs)):
            rows.append(
                [str(lv["streams"]), name, f"{fig['ok']}/{fig['requests']}"]
                + [fmt(fig[key], d) for _, key, d in FIGURES]
            )
        rows.append(
            [str(lv["streams"]), "ratio ours/AIPerf", ""]
            + [fmt(ratio(ours[key], theirs[key]), 2) for _, key, _ in FIGURES]
        )
    return pipe_table(["streams", "tool", "ok/requests", *(n for n, _, _ in FIGURES)], rows)


def beyond_server(result: dict[str, Any]) -> list[str]:
    """Our E2E minus the server's own time, per level."""
    rows = []
    for lv in result["levels"]:
        b = lv[OURS]["e2e_minus_server_ms"]
        rows.append(
            [str(lv["streams"]), str(b["n"]), fmt(lv[OURS]["server_ms_p50"])]
            + [fmt(b[key], 2) for key in ("p50", "p99", "max")]
        )
    return pipe_table(
        ["streams", "requests", "server prompt+predicted ms p50", "E2E − server ms p50", "p99", "max"], rows
    )


def summary_lines(result: dict[str, Any]) -> list[str]:
    """Everything the run found, as text."""
    lines = [
        f"side by side ({result['requests_per_level']} measured requests per level, max_tokens "
        f"{result['max_tokens']}; each tool's own statistics; CPU = the tool's process tree from its first send "
        "to its last end, per server-generated token, warmup included):",
        *side_by_side(result),
        "",
        "orpheus-bench's E2E minus llama-server's own timings.prompt_ms + predicted_ms (same request):",
        *beyond_server(result),
        "",
        "checks:",
    ]
    probe = result["probe"]
    lines.append(
        "  identity probe: bodies identical on the wire"
        if probe["identical"]
        else "  identity probe: bodies DIFFER: " + "; ".join(probe["differences"])
    )
    for lv in result["levels"]:
        s, ours, theirs = lv["streams"], lv[OURS], lv[THEIRS]
        same_mix = ours["prompt_counts"] == theirs["prompt_counts"]
        diffs = lv.get("aiperf_inputs_differences") or []
        mix = "identical" if same_mix else "DIFFERENT"
        lines.append(
            f"  {s} stream(s): order {' then '.join(lv['order'])}; load {lv['load_before']:.2f} -> "
            f"{lv['load_after']:.2f}; measured prompt mix {mix}; AIPerf inputs.json vs our bodies: "
            + ("identical" if not diffs else "; ".join(diffs))
        )
        lines.append(
            f"    other processes kept {fmt(ours.get('others_cores'), 2)} cores busy during {OURS}'s run, "
            f"{fmt(theirs.get('others_cores'), 2)} during {THEIRS}'s (of {os.cpu_count()}; server and this script "
            f"excluded); whole-run CPU {fmt(ours.get('cpu_total_s'))} s vs {fmt(theirs.get('cpu_total_s'))} s"
        )
        if not same_mix:
            lines.append(f"    ours {ours['prompt_counts']}\n    AIPerf {theirs['prompt_counts']}")
        if theirs.get("errors") or ours.get("errors"):
            errors = f"{OURS} {ours.get('errors') or 'none'}, {THEIRS} {theirs.get('errors') or 'none'}"
            lines.append(f"    errors: {errors}")
        split = theirs.get("ttft_split_p50_ms") or {}
        if split:
            lines.append(
                "    AIPerf's own TTFT split, p50 ms: "
                + ", ".join(f"{k.replace('_', ' ')} {fmt(v)}" for k, v in split.items())
            )
        lines.append(
            f"    tokens per request (server): {OURS} {fmt(ours['tokens_per_request'])}, "
            f"{THEIRS} {fmt(theirs['tokens_per_request'])}; server − AIPerf token counts: input "
            f"{theirs['server_minus_aiperf_input_tokens']}, output {theirs['server_minus_aiperf_output_tokens']} "
            "(difference: requests)"
        )
    lines.append(
        "  AIPerf's tokenizer is the GGUF's own vocabulary: an input difference of 1 is the BOS llama-server adds "
        "(AIPerf encodes with add_special_tokens=False); output 0 means it counted what the server generated."
    )
    return lines


def markdown(path: Path) -> int:
    """Print the README tables of a peer_check.json."""
    result = json.loads(path.read_text(encoding="utf-8"))
    print("\n".join(side_by_side(result)))
    print()
    print("\n".join(beyond_server(result)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--levels", default="1,4,16", help="concurrent streams per level (default 1,4,16)")
    ap.add_argument("--requests", type=int, default=64, help="measured requests per level and tool (default 64)")
    ap.add_argument("--max-tokens", type=int, default=256, help="max_tokens of every request (default 256)")
    ap.add_argument("--profile", default="test-np4", help="server profile to start from (default test-np4)")
    ap.add_argument("--slots", type=int, default=None, help="server slots (default: the highest level)")
    ap.add_argument("--aiperf", default=None, help="the aiperf executable (default .venv/peer/bin/aiperf)")
    ap.add_argument("--out", default=None, help="output folder (default runs/peer-check-<time>)")
    ap.add_argument("--markdown", type=Path, default=None, help="print the README tables of this peer_check.json")
    args = ap.parse_args(argv)
    if args.markdown:
        return markdown(args.markdown)
    if args.requests < 1 or args.max_tokens < 1 or args.max_tokens > SLOT_CTX - 200:
        ap.error(f"--requests >= 1 and 1 <= --max-tokens <= {SLOT_CTX - 200} (slots hold {SLOT_CTX} tokens)")
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
