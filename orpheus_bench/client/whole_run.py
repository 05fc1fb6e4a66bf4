"""A whole run, start to finish: server (optional), preflight, decoder, metrics timeline, sweep, run directory.

`execute_run` is what `orpheus-bench run`, `orpheus-bench demo` and the capacity search call. It validates
everything before the first request, writes ``run.json`` at the start and at every level, and always finishes the
run directory in ``finally``: an interrupted run is marked incomplete and its records are all on disk. With
``client.processes`` above one, the sweep's requests are sent by worker processes (`client.processes`) while this
process keeps the plan, the run directory and the progress view; nothing else about the run changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from orpheus_bench.audio.service import DecodeService
from orpheus_bench.audio.setup import build_decode_service
from orpheus_bench.client.processes import WorkerProcesses, resolve_processes
from orpheus_bench.client.runner import RequestSender, SweepRunner
from orpheus_bench.errors import ConfigError, ServerNotReady
from orpheus_bench.levels import LevelOutcome, LevelPlan, plan_levels
from orpheus_bench.records import RequestRecord
from orpheus_bench.rundir import WORKERS_LOG, RunDirectory
from orpheus_bench.scenario import Scenario
from orpheus_bench.sinks import Fanout, JsonlSink, RecordSink
from orpheus_bench.target import Target


@dataclass
class RunOutcome:
    """What a finished (or interrupted) run left behind."""

    run_dir: Path
    complete: bool
    records: int
    levels: list[dict[str, Any]]


class RunHooks:
    """Callbacks for progress views; all optional."""

    def status(self, message: str) -> None:
        """A one-line status message (server starting, model loading...)."""

    def level_start(self, plan: LevelPlan, total: int | None) -> None:
        """A level begins; `total` includes warmup (None for a duration)."""

    def record(self, record: RequestRecord) -> None:
        """A request finished."""

    def level_end(self, outcome: LevelOutcome) -> None:
        """A level finished."""


async def wait_ready(base_url: str, timeout_s: float, api_key: str | None = None) -> str:
    """Poll /health: 'ok', 'unreachable' (after a few tries) or raise ServerNotReady while it stays 503."""
    deadline = time.monotonic() + timeout_s
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    refused = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        while True:
            try:
                async with s.get(base_url.rstrip("/") + "/health", headers=headers) as r:
                    if r.status == 200:
                        return "ok"
                    if r.status != 503:
                        return f"health answered HTTP {r.status}"
            except (aiohttp.ClientError, TimeoutError):
                refused += 1
                if refused >= 3:
                    return "unreachable"
            if time.monotonic() >= deadline:
                raise ServerNotReady(
                    f"{base_url} kept answering 503 (model loading) for {timeout_s:g} s; "
                    "raise timeouts.server_ready_s or wait for the server"
                )
            await asyncio.sleep(0.5)


async def fetch_props(base_url: str, api_key: str | None = None) -> dict[str, Any] | None:
    """GET /props, or None when the server does not answer it."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s,
            s.get(base_url.rstrip("/") + "/props", headers=headers) as r,
        ):
            if r.status != 200:
                return None
            data = await r.json(content_type=None)
            return _scrub_props(data) if isinstance(data, dict) else None
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


def _scrub_props(props: dict[str, Any]) -> dict[str, Any]:
    # The chat template and default prompt are long and say nothing about performance.
    return {k: v for k, v in props.items() if k not in ("chat_template", "chat_template_tool_use")}


@contextlib.asynccontextmanager
async def managed_server(sc: Scenario, rundir: RunDirectory, hooks: RunHooks) -> AsyncIterator[Scenario]:
    """Start llama-server from ``sc.server`` (if set) for the block; yields the scenario pointed at it."""
    if not sc.server.profile:
        yield sc
        return
    from orpheus_bench.server.launcher import LlamaServer
    from orpheus_bench.server.model_builder import cached_test_model
    from orpheus_bench.server.profiles import resolve_profile

    profile = resolve_profile(sc.server.profile)
    model = sc.server.model
    if not model or model == "test":
        hooks.status("building the tiny Orpheus-format test model (cached after the first time)")
        model = str(await asyncio.to_thread(cached_test_model))
    elif not Path(model).is_file():
        raise ConfigError("server.model", f"no such GGUF file: {model}")
    hooks.status(f"starting llama-server with profile {profile.name}")
    server = LlamaServer(profile, model, log_path=rundir.path / "server.log", extra_args=sc.server.extra_args)
    await asyncio.to_thread(server.start)
    try:
        rundir.update(
            server_launch={
                "profile": profile.name,
                "model": model,
                "argv": list(server.args),
                "translation": server.translation.to_dict() if server.translation else None,
            }
        )
        yield sc.model_copy(update={"host": server.url})
    finally:
        await asyncio.to_thread(server.stop)


def _level_total(plan: LevelPlan) -> int | None:
    return None if plan.requests is None else plan.warmup + plan.requests


async def execute_run(
    sc: Scenario,
    out_dir: str | Path,
    *,
    api_key: str | None = None,
    force: bool = False,
    hooks: RunHooks | None = None,
    cli_args: dict[str, Any] | None = None,
    doctor: bool = True,
    extra_sinks: list[RecordSink] | None = None,
) -> RunOutcome:
    """Run a scenario into `out_dir`; see the module docstring."""
    hooks = hooks or RunHooks()
    prompts = sc.prompts.load()  # prompt errors surface before anything starts
    if sc.keep_audio and sc.decode.preset == "off":
        raise ConfigError("keep_audio", "keeping audio needs decoding; decode.preset is 'off'")
    processes = resolve_processes(sc)
    rundir = RunDirectory(out_dir, force=force)
    rundir.start(
        driver=sc.client.transport,
        scenario=sc.model_dump(mode="json"),
        cli_args=cli_args or {},
        host=sc.host,
        planned_levels=[p.label for p in plan_levels(sc.load)],
        client={"processes": processes, "transport": sc.client.transport},
    )
    sink = JsonlSink(rundir.requests_path)
    fanout = Fanout([sink, *(extra_sinks or [])])
    complete = False
    service: DecodeService | None = None
    levels: list[dict[str, Any]] = []
    try:
        async with managed_server(sc, rundir, hooks) as sc:
            target = Target.from_scenario(sc, api_key=api_key)
            health = await wait_ready(sc.host, sc.timeouts.server_ready_s, api_key)
            props = await fetch_props(sc.host, api_key) if health == "ok" else None
            rundir.update(host=sc.host, health=health, server_props=props)
            if health != "ok":
                hooks.status(f"warning: {sc.host} {health}; requests will be recorded as errors")
            if doctor and health == "ok":
                rundir.update(doctor=await _doctor(sc, prompts, api_key, hooks))
            if processes == 1:
                service = await asyncio.to_thread(_decode_service, sc, rundir, hooks)
            else:
                service = DecodeService(None)  # each worker process decodes its own streams
            origin = time.perf_counter()  # the run clock shared by records and the server timeline
            scraper = await _start_scraper(sc, rundir, api_key, health == "ok", origin)
            wav_write = wav_writer(rundir.audio_dir) if sc.keep_audio else None
            sender: RequestSender | None = None
            if processes > 1:
                hooks.status(f"starting {processes} client worker processes")
                sender = WorkerProcesses(
                    processes,
                    sc,
                    target,
                    origin=origin,
                    api_key=api_key,
                    audio_dir=rundir.audio_dir if sc.keep_audio else None,
                    log_path=rundir.path / WORKERS_LOG,
                )

            def level_end(o: LevelOutcome) -> None:
                summary = o.summary()
                if o.decode_services:
                    summary["decode_service"] = o.decode_services  # one entry per worker process
                else:
                    summary.update(_decode_stats(service))
                levels.append(summary)
                rundir.add_level(summary)
                hooks.level_end(o)

            runner = SweepRunner(
                target,
                prompts,
                service,
                fanout,
                sc.load,
                keep_audio=sc.keep_audio,
                on_audio=wav_write,
                on_level_start=lambda p: hooks.level_start(p, _level_total(p)),
                on_record=hooks.record,
                on_level_end=level_end,
                origin=origin,
                transport=sc.client.transport,
                sender=sender,
            )
            try:
                if isinstance(sender, WorkerProcesses):
                    await sender.open()
                    rundir.update(
                        snac=sender.decode_info,
                        client={"processes": processes, "transport": sc.client.transport, "pids": sender.pids},
                    )
                await runner.run()
                complete = True
            finally:
                if sender is not None:
                    await sender.close()
                if scraper is not None:
                    await scraper.stop()
    finally:
        fanout.close()
        if service is not None:
            service.close()
        rundir.finish(complete=complete, records=sink.count, sink_errors=fanout.errors)
    return RunOutcome(rundir.path, complete, sink.count, levels)


def _decode_service(sc: Scenario, rundir: RunDirectory, hooks: RunHooks) -> DecodeService:
    if sc.decode.preset != "off":
        hooks.status(f"loading SNAC ({sc.decode.snac_model}) on {sc.decode.device}")
    service, info = build_decode_service(sc.decode)
    rundir.update(snac=info)
    return service


def _decode_stats(service: DecodeService) -> dict[str, Any]:
    stats = getattr(service, "stats", None)
    if stats is None:
        return {}
    data = stats() if callable(stats) else stats
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return {"decode_service": dataclasses.asdict(data)}
    return {"decode_service": data} if isinstance(data, dict) else {}


async def _doctor(sc: Scenario, prompts: list[Any], api_key: str | None, hooks: RunHooks) -> dict[str, Any]:
    """The doctor's checks (what the seed stumbled on), shown to the user when not ok and kept in run.json."""
    from orpheus_bench.server.doctor import run_checks

    report = await run_checks(
        sc.host,
        prompts={p.id: p.text for p in prompts},
        max_tokens=sc.sampling.max_tokens,
        concurrency=max(sc.load.concurrency) if not sc.load.rate else None,
        api_key=api_key,
        voice=sc.prompts.voice,
    )
    for check in report.checks:
        if check.level != "ok":
            hooks.status(f"doctor {check.level}: {check.name}: {check.message}")
    return report.to_dict()


async def _start_scraper(
    sc: Scenario, rundir: RunDirectory, api_key: str | None, reachable: bool, origin: float
) -> Any:
    if not reachable:
        return None
    from orpheus_bench.server.metrics import MetricsScraper

    scraper = MetricsScraper(
        sc.host,
        rundir.server_path,
        interval_s=sc.scrape_interval_s,
        clock=lambda: time.perf_counter() - origin,
        api_key=api_key,
    )
    await scraper.start()
    return scraper


def wav_writer(audio_dir: Path) -> Callable[[RequestRecord, np.ndarray], None]:
    """Writes a kept sample's PCM into ``audio_dir`` (the run's ``audio/``) and names it in the record."""
    from orpheus_bench.audio.wav import write_wav

    def write(record: RequestRecord, pcm: np.ndarray) -> None:
        name = f"L{record.level}-{record.seq:04d}-{record.request_id}.wav"
        write_wav(audio_dir / name, pcm)
        record.extra["audio_file"] = f"audio/{name}"  # relative to the run directory

    return write
