"""The users' side of a Locust process (local runner or worker): turns, requests, records, Locust events.

Every user asks `UserSide.next_turn` before a request: it blocks (the greenlet only) until the current level
lets this user send, and hands out the level's tag, the warmup flag (a user's first request of a level), the
sequence number and the prompt. `UserSide.speak` then runs one request through `exchange.execute` and
`finish` publishes its record: to Locust as request events (``TTFA``, ``first token``, ``TTS total`` with the
audio milliseconds as ``response_length``; a failure carries its classified error), and to the run's side
(directly, or as a message to the master). A cancelled request (Locust killing its users) is recorded but not
fired: it says nothing about the server. Records are never fired twice and never lost, so the run directory's
request count equals Locust's ``TTS total`` count. Each record goes out with the number of the run it belongs
to, so a web UI session's second run never receives a straggler of the first.

Locust's request type carries the level (``c=4``, ``c=4 warmup``), so its tables keep levels apart.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent.event
from geventhttpclient.useragent import UserAgent

from orpheus_bench.audio.service import DecodeService
from orpheus_bench.audio.setup import build_decode_service as shared_build_decode_service
from orpheus_bench.errors import (
    AuthError,
    ConnectError,
    DecodeError,
    DisconnectError,
    HTTPStatusError,
    InvalidAudioError,
    NoAudioError,
    ProtocolError,
    RequestError,
    StreamTimeout,
)
from orpheus_bench.locust.exchange import encode_body, execute
from orpheus_bench.locust.hub import DecodeHost, HubLagMonitor
from orpheus_bench.locust.levels import LevelState
from orpheus_bench.prompts import Prompt
from orpheus_bench.records import SAMPLE_RATE_HZ, ErrorClass, RequestRecord, Status
from orpheus_bench.scenario import Scenario
from orpheus_bench.target import Target

TTFA = "TTFA"
FIRST_TOKEN = "first token"
TTS_TOTAL = "TTS total"
WAIT_POLL_S = 1.0

# A decoder factory builds the object the DecodeService calls (``decode_batch(windows) -> list[np.ndarray]``).
DecoderFactory = Callable[[Scenario], Any]

_ERRORS: dict[ErrorClass, type[RequestError]] = {
    ErrorClass.CONNECT: ConnectError,
    ErrorClass.HTTP: HTTPStatusError,
    ErrorClass.AUTH: AuthError,
    ErrorClass.PROTOCOL: ProtocolError,
    ErrorClass.DISCONNECT: DisconnectError,
    ErrorClass.INVALID_AUDIO: InvalidAudioError,
    ErrorClass.NO_AUDIO: NoAudioError,
    ErrorClass.DECODE: DecodeError,
    ErrorClass.TIMEOUT: StreamTimeout,
}


@dataclass
class UserSlot:
    """One Locust user's place in the levels."""

    number: int  # order of creation in this process
    level_index: int = -1
    sent: int = 0  # requests started at `level_index`


@dataclass(frozen=True, slots=True)
class Turn:
    """Permission for one request, with everything its record needs."""

    state: LevelState
    seq: int
    warmup: bool
    prompt: Prompt


def failure(record: RequestRecord) -> RequestError:
    """The exception Locust shows for a failed record: its class and message, prefixed with the class value."""
    ec = record.error_class or ErrorClass.CLIENT
    cls = _ERRORS.get(ec, RequestError)
    return cls(f"[{ec.value}] {(record.error_message or '')[:300]}", http_status=record.http_status)


def fire_events(events: Any, turn: Turn, record: RequestRecord, url: str) -> None:
    """Fire the record's Locust request events (see the module docstring)."""
    request_type = turn.state.label + (" warmup" if record.warmup else "")
    audio_ms = record.pcm_samples * 1000 // SAMPLE_RATE_HZ
    common: dict[str, Any] = {
        "request_type": request_type,
        "response_length": audio_ms,
        "context": {},
        "start_time": record.wall_start,
        "url": url,
    }
    if record.ok:
        if record.t_first_token_s is not None:
            events.request.fire(name=FIRST_TOKEN, response_time=record.t_first_token_s * 1000.0, **common)
        if record.t_first_pcm_s is not None:
            events.request.fire(name=TTFA, response_time=record.t_first_pcm_s * 1000.0, **common)
    events.request.fire(
        name=TTS_TOTAL,
        response_time=(record.t_end_s or 0.0) * 1000.0,
        exception=None if record.ok else failure(record),
        **common,
    )


def build_decode_service(sc: Scenario, factory: DecoderFactory | None, info: dict[str, Any]) -> DecodeService:
    """The process's decode service (runs on the decode thread); fills `info` for run.json's ``snac``."""
    service, described = shared_build_decode_service(sc.decode, (lambda: factory(sc)) if factory else None)
    info.update(described)
    return service


class UserSide:
    """Levels, turns and records of the users of one process; the callbacks connect it to the run's side."""

    def __init__(
        self,
        events: Any,
        *,
        node: str,
        node_index: int,
        publish_record: Callable[[RequestRecord, int], None],
        report_ready: Callable[[dict[str, Any] | None, str | None], None],
        report_idle: Callable[[int, int, list[float], dict[str, Any] | None], None],
    ) -> None:
        self.events = events
        self.node = node
        self.node_index = node_index
        self._publish_record = publish_record
        self._report_ready = report_ready
        self._report_idle = report_idle
        self.state: LevelState | None = None
        self._changed = gevent.event.Event()
        self.target: Target | None = None
        self.prompts: list[Prompt] = []
        self.decoder: DecodeHost | None = None
        self.ready = False
        self.in_flight = 0
        self._numbers = itertools.count()
        self._seq: dict[int, int] = {}
        self._idle_sent: set[int] = set()
        self._origin_perf: float | None = None
        self._run: int | None = None
        self.lag = HubLagMonitor()

    # ---- setup -------------------------------------------------------------------------------------
    def configure(self, sc: Scenario, api_key: str | None, factory: DecoderFactory | None) -> None:
        """Resolve the target and prompts, start the decoder (on its own thread) and the lag monitor."""
        self.retarget(sc, api_key)
        self.lag.start()
        if sc.decode.preset == "off":
            self._set_ready(
                {
                    "spec": None,
                    "device": None,
                    "random_weights": False,
                    "description": "decoding off: audio seconds are what the tokens encode",
                },
                None,
            )
            return
        info: dict[str, Any] = {}
        self.decoder = DecodeHost(lambda: build_decode_service(sc, factory, info))
        self.decoder.start()
        gevent.spawn(self._await_decoder, info)

    def retarget(self, sc: Scenario, api_key: str | None) -> None:
        """Target and prompts of the next run (the web UI's form may have changed the host); the decoder stays."""
        self.target = Target.from_scenario(sc, api_key=api_key)
        self.prompts = sc.prompts.load()
        random.Random(sc.load.seed).shuffle(self.prompts)  # the aiohttp runner's order

    def _await_decoder(self, info: dict[str, Any]) -> None:
        assert self.decoder is not None
        if self.decoder.wait_ready():
            self._set_ready(info, None)
        else:
            err = self.decoder.error
            self._set_ready(None, f"decoder failed to load: {type(err).__name__}: {err}")

    def fail_setup(self, error: str) -> None:
        """The process cannot send (bad options on a worker): tell the controller, which stops the run."""
        self._set_ready(None, error)

    def _set_ready(self, info: dict[str, Any] | None, error: str | None) -> None:
        self.ready = error is None
        self._report_ready(info, error)
        self._notify()

    def close(self) -> None:
        """Stop the lag monitor and the decode thread."""
        self.lag.stop()
        if self.decoder is not None:
            self.decoder.close()

    # ---- levels ------------------------------------------------------------------------------------
    def apply(self, state: LevelState) -> None:
        """A new level state from the controller."""
        if self._run != state.run:
            self._begin_run(state.run)
        if self._origin_perf is None:
            self._origin_perf = time.perf_counter() - (time.time() - state.origin_wall)
        prev = self.state
        if state.phase == "run" and (prev is None or prev.phase != "run" or prev.index != state.index):
            self.lag.take()  # a level's hub lag starts with its run phase, not with SNAC loading or a drain
        self.state = state
        self._notify()
        self._maybe_idle()

    def _begin_run(self, run: int) -> None:
        # Sequence numbers, idle reports and the run clock belong to one run.
        self._run = run
        self._seq.clear()
        self._idle_sent.clear()
        self._origin_perf = None
        self.state = None

    def end_run(self) -> None:
        """Locust stopped every user (``test_stop``): nobody may send until the next run's first level."""
        self.state = None
        self._numbers = itertools.count()
        self._notify()

    def run_clock(self) -> float:
        """Seconds on the run's clock (aligned to the controller's origin through the wall clock)."""
        origin = self._origin_perf if self._origin_perf is not None else time.perf_counter()
        return time.perf_counter() - origin

    def _notify(self) -> None:
        changed, self._changed = self._changed, gevent.event.Event()
        changed.set()

    def new_slot(self) -> UserSlot:
        """A slot for a new user."""
        return UserSlot(number=next(self._numbers))

    def next_turn(self, slot: UserSlot) -> Turn:
        """Block this user until it may send; see the module docstring."""
        while True:
            st = self.state
            if st is not None and st.phase == "run" and self.ready:
                if slot.level_index != st.index:
                    slot.level_index, slot.sent = st.index, 0
                open_ = st.deadline_s is None or self.run_clock() < st.deadline_s
                if open_ and slot.sent < st.allowed():
                    slot.sent += 1
                    local = self._seq.get(st.index, 0)
                    self._seq[st.index] = local + 1
                    seq = local * st.nodes + self.node_index  # unique over the processes of a run
                    self.in_flight += 1
                    return Turn(st, seq, st.warmup and slot.sent == 1, self.prompts[seq % len(self.prompts)])
            self._changed.wait(WAIT_POLL_S)

    def speak(self, agent: UserAgent, slot: UserSlot) -> None:
        """One turn: wait for permission, send one request, publish its record."""
        turn = self.next_turn(slot)
        target = self.target
        assert target is not None
        st = turn.state
        t0 = time.perf_counter()
        record = target.new_record(
            turn.prompt,
            level=st.users,
            worker=slot.number * st.nodes + self.node_index,
            seq=turn.seq,
            warmup=turn.warmup,
            driver="locust",
            wall_start=time.time(),
            run_offset_s=self.run_clock(),
            level_label=st.label,
        )
        try:
            execute(agent, target, record, encode_body(target.body(turn.prompt)), self.decoder, t0=t0)
        except Exception as exc:  # a harness bug: the record says so, and Locust shows the traceback
            record.fail(ErrorClass.CLIENT, f"harness error: {type(exc).__name__}: {exc}")
            raise
        finally:
            # Whatever happened (a kill included), the request leaves exactly one record.
            self.finish(turn, record)

    def finish(self, turn: Turn, record: RequestRecord) -> None:
        """Publish a finished record (see the module docstring)."""
        self.in_flight -= 1
        if record.status is not Status.CANCELLED:
            url = self.target.url if self.target is not None else ""
            fire_events(self.events, turn, record, url)
        self._publish_record(record, turn.state.run)
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        st = self.state
        if st is None or st.phase != "drain" or self.in_flight > 0 or st.index in self._idle_sent:
            return
        self._idle_sent.add(st.index)
        stats = self.decoder.stats() if self.decoder is not None else None
        self._report_idle(st.run, st.index, self.lag.take(), dataclasses.asdict(stats) if stats else None)
