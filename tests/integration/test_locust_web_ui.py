"""Locust's web UI, driven as a person drives it: ``locust -f locustfiles/tts.py`` with no ``--headless``.

Each test starts Locust as a subprocess against the simulator (serving from a thread here) and talks to the web
UI's own HTTP API, the calls its buttons make: ``POST /swarm`` (Start, and Edit while running), ``POST /stop``,
``GET /stats/requests`` (the poll behind every table), plus orpheus-bench's ``/orpheus-bench/levels``. The
checks read what the run wrote (records, levels, statuses) and what Locust counted, so a form that is ignored,
a Stop that blames the server or a second Start that mixes runs fails here. The last test opens the page in
headless Chromium and checks that the TTFA rows and the TTS levels tab render.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from needs import require_chromium
from PIL import Image

from orpheus_bench.records import RequestRecord, Status, read_records
from orpheus_bench.results.compile import compile_run
from orpheus_bench.sim import SimConfig, SimStats, SimulatorThread

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
LOCUST = Path(sys.executable).with_name("locust")
TTS_LOCUSTFILE = REPO / "locustfiles" / "tts.py"
START_TIMEOUT_S = 60.0
WAIT_TIMEOUT_S = 60.0

SHORT = SimConfig(token_ms=2.0, audio_frames=8)  # ~0.15 s per request
LONG = SimConfig(token_ms=5.0, audio_frames=40)  # ~1.5 s per request: a Stop always finds some in flight


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WebUI:
    """A running ``locust`` web UI and the run directory it writes."""

    url: str
    run_dir: Path
    proc: subprocess.Popen[bytes]
    log_path: Path

    def call(self, path: str, form: dict[str, Any] | None = None) -> Any:
        """GET (or POST `form`) one web UI endpoint; its JSON answer."""
        data = None if form is None else urllib.parse.urlencode(form).encode()
        with urllib.request.urlopen(self.url + path, data=data, timeout=30) as resp:
            return json.loads(resp.read())

    def text(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=60) as resp:
            return str(resp.read().decode("utf-8"))

    def swarm(self, users: int, rate: float) -> dict[str, Any]:
        answer = self.call("/swarm", {"user_count": users, "spawn_rate": rate})
        assert answer["success"], answer
        return dict(answer)

    def stop(self) -> None:
        assert self.call("/stop", {})["success"]
        self.wait_for(lambda: not self.levels()["running"], "the run to close after Stop")

    def levels(self) -> dict[str, Any]:
        return dict(self.call("/orpheus-bench/levels"))

    def level(self, label: str) -> dict[str, Any] | None:
        return next((lv for lv in self.levels()["levels"] if lv["level"] == label), None)

    def wait_for(self, ready: Callable[[], Any], what: str, timeout_s: float = WAIT_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.25)
        pytest.fail(f"timed out waiting for {what}; Locust log:\n{self.log()[-3000:]}")

    def wait_measured(self, label: str, ok: int) -> None:
        """Until the level `label` has at least `ok` measured successes."""
        self.wait_for(lambda: (lv := self.level(label)) is not None and lv["ok"] >= ok, f"{ok} ok at {label}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def web_ui(tmp_path: Path, host: str, *args: str) -> Iterator[WebUI]:
    """Start ``locust -f locustfiles/tts.py`` with its web UI; stop it (SIGTERM) afterwards."""
    port = _free_port()
    run_dir = tmp_path / "run"
    log_path = tmp_path / "locust.log"
    cmd = [
        str(LOCUST), "-f", str(TTS_LOCUSTFILE), "--host", host, "--web-host", "127.0.0.1",
        "--web-port", str(port), "--run-dir", str(run_dir), "--decode", "off", *args,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    ui = WebUI(f"http://127.0.0.1:{port}", run_dir, proc, log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                ui.text("/")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the web UI did not come up; Locust log:\n{ui.log()[-3000:]}")
                time.sleep(0.25)
        yield ui
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def simulator(request: pytest.FixtureRequest) -> Iterator[tuple[str, SimStats]]:
    sim = SimulatorThread(getattr(request, "param", None) or SHORT)
    url = sim.start()
    try:
        assert sim.server is not None
        yield url, sim.server.stats
    finally:
        sim.stop()


def _records(run_dir: Path) -> list[RequestRecord]:
    return read_records(str(run_dir / "requests.jsonl"))


def _run_json(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "run.json").read_text(encoding="utf-8")))


def _locust_rows(stats: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [s for s in stats["stats"] if s["name"] == name]


def _assert_no_failures(stats: dict[str, Any]) -> None:
    assert stats["errors"] == []
    assert all(s["num_failures"] == 0 for s in stats["stats"]), stats["stats"]


def test_form_users_drive_levels_and_each_change_is_a_new_level(
    tmp_path: Path, simulator: tuple[str, SimStats]
) -> None:
    url, sim_stats = simulator
    with web_ui(tmp_path, url) as ui:
        started = ui.swarm(3, 3)
        assert "3 users" in started["message"] and "shape class" not in started["message"]
        ui.wait_measured("c=3", 6)
        ui.swarm(6, 6)  # the Edit button while running
        ui.wait_measured("c=6", 12)
        ui.stop()
        stats = ui.call("/stats/requests")
    records = _records(ui.run_dir)
    by_level = {users: [r for r in records if r.level == users] for users in (3, 6)}
    assert {r.level for r in records} == {3, 6}
    for users, recs in by_level.items():
        assert {r.worker for r in recs} == set(range(users))  # as many users as typed, each sending
        warmups = [r for r in recs if r.warmup]
        assert sorted(r.worker for r in warmups) == list(range(users))  # one warmup per user and level
        assert {r.level_label for r in recs} == {f"c={users}"}
    # The change drained the first level: nothing of it ended after the second level's first request.
    assert max(r.end_offset_run_s or 0.0 for r in by_level[3]) <= min(r.run_offset_s for r in by_level[6])
    meta = _run_json(ui.run_dir)
    assert meta["complete"] is True and meta["locust"]["web_ui_form"] is True
    assert [(lv["label"], lv["interrupted"]) for lv in meta["levels"]] == [("c=3", False), ("c=6", False)]
    assert meta["scenario"]["load"]["concurrency"] == [3, 6]
    assert [lv.level for lv in compile_run(ui.run_dir).levels] == [3, 6]  # the report: one row per count tried
    # Locust counted what the run recorded, per level, and blamed the server for nothing.
    _assert_no_failures(stats)
    tab = stats["extended_stats"][0]  # the TTS levels tab's rows ride on Locust's own poll
    assert tab["key"] == "orpheus-bench" and [row["level"] for row in tab["data"]] == ["c=3", "c=6"]
    fired = [r for r in records if r.status is not Status.CANCELLED]
    assert sum(s["num_requests"] for s in _locust_rows(stats, "TTS total")) == len(fired)
    assert {s["method"] for s in _locust_rows(stats, "TTFA")} == {"c=3", "c=3 warmup", "c=6", "c=6 warmup"}
    assert len(records) == sim_stats.requests_total


@pytest.mark.parametrize("simulator", [LONG], indirect=True)
def test_stop_cancels_in_flight_requests_and_a_new_start_opens_a_new_run(
    tmp_path: Path, simulator: tuple[str, SimStats]
) -> None:
    url, sim_stats = simulator
    with web_ui(tmp_path, url) as ui:
        ui.swarm(4, 4)
        ui.wait_measured("c=4", 4)
        ui.stop()  # four users, back to back: requests are in flight
        first_stats = ui.call("/stats/requests")
        first = _records(ui.run_dir)
        ui.swarm(2, 2)
        ui.wait_for(lambda: ui.levels()["run_dir"] != str(ui.run_dir), "the second run to open")
        second_dir = Path(ui.levels()["run_dir"])
        ui.wait_measured("c=2", 2)
        ui.stop()
        second_stats = ui.call("/stats/requests")

    # Stop: in-flight requests are cancelled records, never failures Locust shows.
    cancelled = [r for r in first if r.status is Status.CANCELLED]
    assert cancelled, Counter(r.status.value for r in first)
    assert all(r.error_class is not None and r.error_class.value == "cancelled" for r in cancelled)
    assert {r.status for r in first} <= {Status.OK, Status.CANCELLED}
    _assert_no_failures(first_stats)
    assert sum(s["num_requests"] for s in _locust_rows(first_stats, "TTS total")) == len(first) - len(cancelled)
    meta = _run_json(ui.run_dir)
    assert meta["complete"] is True
    assert [(lv["label"], lv["interrupted"]) for lv in meta["levels"]] == [("c=4", False)]
    assert compile_run(ui.run_dir).level(4).cancelled == len([r for r in cancelled if not r.warmup])

    # The second Start: its own directory and its own records; the first run's file is untouched.
    assert second_dir == ui.run_dir.with_name("run-2")
    assert len(_records(ui.run_dir)) == len(first)
    second = _records(second_dir)
    assert second and {r.level for r in second} == {2}
    assert not {r.request_id for r in first} & {r.request_id for r in second}
    last_end = max(r.wall_start + (r.t_end_s or 0.0) for r in first)
    assert min(r.wall_start for r in second) >= last_end
    meta2 = _run_json(second_dir)
    assert meta2["locust"]["session_run"] == 2 and meta2["complete"] is True
    assert [lv["label"] for lv in meta2["levels"]] == ["c=2"]
    assert sum(r.warmup for r in second) == 2  # each user of the new run warms up again
    _assert_no_failures(second_stats)
    fired_2 = [r for r in second if r.status is not Status.CANCELLED]
    assert sum(s["num_requests"] for s in _locust_rows(second_stats, "TTS total")) == len(fired_2)
    assert len(first) + len(second) == sim_stats.requests_total


def test_step_levels_keep_the_step_shape_in_the_web_ui(tmp_path: Path, simulator: tuple[str, SimStats]) -> None:
    url, _ = simulator
    with web_ui(tmp_path, url, "--step-levels", "1,2", "--step-requests", "2") as ui:
        page = ui.text("/")
        match = re.search(r"window\.templateArgs = (\{.*\})", page)
        assert match is not None, page[:500]
        args = json.loads(match.group(1))
        assert args["hide_common_options"] is True  # the form greys out its user count: the shape sets it
        assert any(tab["key"] == "orpheus-bench" for tab in args["extended_tabs"])
        started = ui.swarm(5, 5)
        assert "--step-levels 1,2" in started["message"]
        ui.wait_for(lambda: ui.levels()["complete"] is True, "the step shape to finish by itself")
    records = _records(ui.run_dir)
    assert {r.level for r in records} == {1, 2}  # not the 5 typed in the form
    assert [lv["label"] for lv in _run_json(ui.run_dir)["levels"]] == ["c=1", "c=2"]


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        require_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio", "--hide-scrollbars",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_web_ui_page_shows_the_ttfa_rows_and_the_tts_levels_tab(
    tmp_path: Path, simulator: tuple[str, SimStats]
) -> None:
    url, _ = simulator
    out_dir = Path(os.environ.get("ORPHEUS_BENCH_ARTIFACTS", tmp_path))
    out_dir.mkdir(parents=True, exist_ok=True)
    with web_ui(tmp_path, url) as ui:
        ui.swarm(2, 2)
        ui.wait_measured("c=2", 4)
        ui.stop()  # a still page: the tables hold the finished run's numbers
        row = ui.level("c=2")
        assert row is not None and row["ttfa_p50_ms"] is not None
        stats_page = _chromium(tmp_path / "p1", "--virtual-time-budget=10000", "--dump-dom", ui.url + "/")
        tab_url = ui.url + "/?tab=orpheus-bench"
        tab_page = _chromium(tmp_path / "p2", "--virtual-time-budget=10000", "--dump-dom", tab_url)
        shot = out_dir / "locust-web-ui-tts-levels.png"
        taken = _chromium(
            tmp_path / "p3", "--window-size=1400,900", "--virtual-time-budget=10000", f"--screenshot={shot}", tab_url
        )
        report = ui.text("/orpheus-bench/report")
    assert stats_page.returncode == 0, stats_page.stderr[-2000:]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", stats_page.stdout)
    names = {re.sub(r"<[^>]+>", "", c) for c in cells}
    assert {"TTFA", "first token", "TTS total"} <= names, sorted(names)[:40]
    assert "TTS levels" in stats_page.stdout  # the added tab
    assert tab_page.returncode == 0, tab_page.stderr[-2000:]
    assert "TTFA p95 (ms)" in tab_page.stdout and "Stall share % (no pre-roll)" in tab_page.stdout
    tab_cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tab_page.stdout)]
    assert "c=2" in tab_cells and f"{row['ttfa_p50_ms']:g}" in tab_cells, tab_cells
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("L"), dtype=np.float64)
    assert pixels.std() > 20  # text and tables, not a blank page
    assert "orpheus-bench" in report and 'data-table="ttfa"' in report  # the report link's page
