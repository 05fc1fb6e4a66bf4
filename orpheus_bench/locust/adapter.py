"""orpheus-bench under Locust: the user class and the step load shape that ``locustfiles/`` build on.

This is the only module (with the `orpheus_bench.locust` package behind it) that imports Locust, which
monkey-patches the process with gevent; asyncio code never imports it. Importing it registers orpheus-bench's
command-line options and event listeners on ``locust.events``.

- `OrpheusTTSUser` (FastHttpUser): a closed-loop listener. Each task is one Orpheus request through the same
  `Target`, `RequestPipeline` and SNAC decode service as ``orpheus-bench run``, recorded as one
  `RequestRecord` and fired to Locust as ``TTFA``, ``first token`` and ``TTS total`` (``response_length`` =
  audio milliseconds). Locust's own streaming timing stops at the response headers and is never reported.
- `StepLoadShape`: walks ``--step-levels`` (e.g. 1,2,4,8,12), holding each for ``--step-requests`` or
  ``--step-duration``, with one warmup per user and level and a drain between levels; without
  ``--step-levels`` it holds ``-u`` users (spawned at ``-r``) for ``-t`` as one level, and in the web UI it
  follows the form: each user count set there (at Start or with Edit) is a new level, held until the next.

Records land in ``--run-dir`` (``requests.jsonl`` + ``run.json``, the schema of ``orpheus-bench run``), which
``orpheus-bench report`` reads; in the web UI each Start opens a new run directory, and a TTS levels tab and a
report link show this tool's numbers (`orpheus_bench.locust.webui`). See docs/locust.md.
"""

from __future__ import annotations

from typing import Any, ClassVar

from locust import FastHttpUser, LoadTestShape, constant, events, task

from orpheus_bench.locust.bridge import Bridge, bridge_of, run_dir_of
from orpheus_bench.locust.exchange import ALL_STATUSES
from orpheus_bench.locust.options import add_options
from orpheus_bench.locust.users import FIRST_TOKEN, TTFA, TTS_TOTAL, DecoderFactory, UserSlot

__all__ = [
    "FIRST_TOKEN",
    "TTFA",
    "TTS_TOTAL",
    "OrpheusTTSUser",
    "StepLoadShape",
    "run_dir_of",
]


class OrpheusTTSUser(FastHttpUser):
    """One simulated listener: send a prompt, stream and decode its audio, record it, repeat at once."""

    abstract = True
    wait_time = constant(0)  # closed loop: the next request starts when the last one ends
    max_retries = 0  # a POST is never resent: one task, one request, one record
    max_redirects = 0
    decoder_factory: ClassVar[DecoderFactory | None] = None
    """Builds the decoder from the scenario instead of loading SNAC (tests plug in a fake; None = SNAC)."""

    def __init__(self, environment: Any) -> None:
        side = bridge_of(environment).users
        if side is None or side.target is None:
            raise RuntimeError("OrpheusTTSUser started before its process was configured")
        target = side.target
        self.network_timeout = target.between_tokens_timeout_s  # longest silence between two reads
        self.connection_timeout = target.connect_timeout_s
        if self.host is None:
            self.host = target.base_url  # the scenario's host when Locust got no --host
        super().__init__(environment)
        # Every status comes back as a response whose error body is read and classified (not raised unread).
        self.client.client.valid_response_codes = ALL_STATUSES  # type: ignore[misc]
        self._side = side
        self._slot: UserSlot = side.new_slot()

    @task
    def speak(self) -> None:
        """One request: wait for the level to allow it, stream it, publish its record."""
        self._side.speak(self.client.client, self._slot)


class StepLoadShape(LoadTestShape):
    """Step levels (or one level of ``-u`` users for ``-t``, or the web UI form's users) driven by orpheus-bench."""

    abstract = True
    use_common_options = True  # -u, -r and -t (or the web UI's form) describe the load without --step-levels

    def tick(self) -> tuple[int, float] | None:
        """(users, spawn rate) of the level in progress; None when the last level has drained."""
        assert self.runner is not None
        return bridge_of(self.runner.environment).tick(self.get_run_time())


@events.init_command_line_parser.add_listener
def _on_parser(parser: Any, **_: Any) -> None:
    add_options(parser)


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    Bridge.install(environment)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    bridge_of(environment).on_test_start()


@events.test_stopping.add_listener
def _on_test_stopping(environment: Any, **_: Any) -> None:
    bridge_of(environment).on_test_stopping()


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_: Any) -> None:
    bridge_of(environment).on_test_stop()


@events.quitting.add_listener
def _on_quitting(environment: Any, **_: Any) -> None:
    bridge_of(environment).on_quitting()
