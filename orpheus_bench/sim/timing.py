"""The simulator's timing model: slots, a FIFO queue, prefill and per-token costs. Pure: no clock, no I/O.

The rules, shared by the live server (`sim.app`) and the discrete-event replay `simulate_schedule`:

* A request takes one of N slots; when all are busy it waits in a FIFO queue (llama-server's deferred tasks).
  A freed slot goes to the head of the queue. Among idle slots the one whose cached prompt shares the largest
  prefix with the new prompt is chosen when that share exceeds ``slot_prompt_similarity``, otherwise the least
  recently used one (llama-server's slot selection, approximated on characters).
* Busy slots = requests holding a slot (prefill or generation). This is ``requests_processing``.
* Prefill: ``prefill_base_ms + prefill_ms_per_token * evaluated`` (+ ``cold_start_ms`` on the first request
  the server ever serves), where evaluated = prompt tokens minus tokens reused from the slot's cached prompt.
  The first decode step completes when the prefill does (its logits come out of the prompt batch).
* Each later decode step takes ``token_ms * (1 + busy_alpha * (busy - 1))``, with ``busy`` read when the
  previous step completed: continuous batching makes every step slower as more slots decode together.
* With ``jitter`` > 0, every prefill and step delay is multiplied by ``exp(N(0, s) - s^2/2)`` (mean one),
  drawn from a per-request generator so a seeded run is repeatable.
* The request ends at its last decode step (the final event goes out then). Stop tokens that are not
  streamed (a stop word, EOS) still cost a step.
"""

from __future__ import annotations

import heapq
import math
import random
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# Orpheus prompts carry special tokens that are one token each; the rest is estimated at 4 characters a token.
SPECIAL_TOKEN_RE = re.compile(r"<\|[A-Za-z0-9_]{1,40}\|>|<custom_token_\d{1,6}>")
CHARS_PER_TOKEN = 4


def estimate_prompt_tokens(prompt: str | Sequence[int]) -> int:
    """Prompt tokens: a token list counts itself; a string counts specials + ceil(text chars / 4)."""
    if not isinstance(prompt, str):
        return len(prompt)
    specials = len(SPECIAL_TOKEN_RE.findall(prompt))
    text_chars = len(SPECIAL_TOKEN_RE.sub("", prompt))
    return specials + math.ceil(text_chars / CHARS_PER_TOKEN)


def common_prefix_len(a: str, b: str) -> int:
    """Length of the longest common prefix of two strings.

    Bisects on slice equality (C-speed compares) instead of walking characters in Python, so a multi-megabyte
    prompt (issue 8's long-prompt fault) does not block the event loop.
    """
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # invariant: a[:lo] == b[:lo] and a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def cached_prompt_tokens(previous: str, prompt: str) -> int:
    """Tokens of `prompt` reusable from a slot that last processed `previous` (llama-server cache_prompt).

    The shared character prefix is counted with whole text tokens only, and the last prompt token is always
    evaluated again (its logits are needed), so an identical prompt reuses all but one token.
    """
    if not previous or not prompt:
        return 0
    prefix = prompt[: common_prefix_len(previous, prompt)]
    specials = len(SPECIAL_TOKEN_RE.findall(prefix))
    text_chars = len(SPECIAL_TOKEN_RE.sub("", prefix))
    shared = specials + text_chars // CHARS_PER_TOKEN
    return max(0, min(shared, estimate_prompt_tokens(prompt) - 1))


@dataclass(frozen=True)
class TimingModel:
    """Delays of prefill and decode steps, in seconds, from the configured milliseconds."""

    token_ms: float = 10.0
    busy_alpha: float = 0.15
    prefill_base_ms: float = 2.0
    prefill_ms_per_token: float = 0.5
    cold_start_ms: float = 0.0
    jitter: float = 0.0

    def prefill_s(self, evaluated_tokens: int, *, cold: bool = False) -> float:
        """Prompt processing time for `evaluated_tokens` (not counting cached ones)."""
        ms = self.prefill_base_ms + self.prefill_ms_per_token * max(0, evaluated_tokens)
        if cold:
            ms += self.cold_start_ms
        return ms / 1000.0

    def token_s(self, busy: int) -> float:
        """One decode step while `busy` slots are busy (the caller's own slot included)."""
        return self.token_ms * (1.0 + self.busy_alpha * max(0, busy - 1)) / 1000.0

    def jitter_factor(self, rng: random.Random) -> float:
        """A mean-one lognormal factor; exactly 1.0 without jitter (and then `rng` is not advanced)."""
        if self.jitter <= 0.0:
            return 1.0
        s = self.jitter
        return math.exp(rng.gauss(0.0, s) - s * s / 2.0)


def jitter_rng(seed: int, request_number: int) -> random.Random:
    """The per-request jitter generator: repeatable for a given server seed and request number."""
    return random.Random(f"jitter:{seed}:{request_number}")


# ---- slots and the FIFO queue ----------------------------------------------------------------------


@dataclass(frozen=True)
class Admission:
    """A request given a slot: which one, and the prompt that slot processed last (for cache reuse)."""

    ticket: int
    slot_id: int
    cached_prompt: str


@dataclass
class _Slot:
    slot_id: int
    ticket: int | None = None
    prompt: str = ""
    last_used: int = -1


@dataclass
class _Waiting:
    ticket: int
    prompt: str


class SlotPool:
    """N slots and a FIFO queue of requests waiting for one; a state machine with no notion of time.

    `submit` admits at once or queues; `release` frees a slot and admits the head of the queue, if any;
    `cancel` drops a request that gave up while queued.
    """

    def __init__(self, n_slots: int, similarity: float = 0.1) -> None:
        if n_slots < 1:
            raise ValueError("n_slots must be >= 1")
        self._slots = [_Slot(i) for i in range(n_slots)]
        self._queue: deque[_Waiting] = deque()
        self._similarity = similarity
        self._uses = 0
        self._busy = 0  # kept as a count: read on every decode step, so it must not scan the slots

    @property
    def n_slots(self) -> int:
        """Number of slots."""
        return len(self._slots)

    @property
    def busy(self) -> int:
        """Slots holding a request."""
        return self._busy

    @property
    def deferred(self) -> int:
        """Requests waiting in the queue."""
        return len(self._queue)

    def slot_ticket(self, slot_id: int) -> int | None:
        """The request holding `slot_id`, if any."""
        return self._slots[slot_id].ticket

    def slot_prompt(self, slot_id: int) -> str:
        """The prompt `slot_id` processed last (its cache)."""
        return self._slots[slot_id].prompt

    def submit(self, ticket: int, prompt: str) -> Admission | None:
        """Admit `ticket` to a slot now, or queue it (returns None) when all are busy or others wait first."""
        if self._queue:
            self._queue.append(_Waiting(ticket, prompt))
            return None
        slot = self._pick_idle(prompt)
        if slot is None:
            self._queue.append(_Waiting(ticket, prompt))
            return None
        return self._assign(slot, ticket, prompt)

    def release(self, slot_id: int) -> Admission | None:
        """Free `slot_id`; return the queued request admitted in its place, if any."""
        slot = self._slots[slot_id]
        if slot.ticket is None:
            raise ValueError(f"slot {slot_id} is not busy")
        slot.ticket = None
        self._busy -= 1
        if not self._queue:
            return None
        waiting = self._queue.popleft()
        # The freed slot goes to the head of the queue, but another idle slot with a better cache may exist.
        best = self._pick_idle(waiting.prompt) or slot
        return self._assign(best, waiting.ticket, waiting.prompt)

    def cancel(self, ticket: int) -> bool:
        """Remove a queued request; False when it is not queued (already admitted or unknown)."""
        for waiting in self._queue:
            if waiting.ticket == ticket:
                self._queue.remove(waiting)
                return True
        return False

    def _pick_idle(self, prompt: str) -> _Slot | None:
        idle = [s for s in self._slots if s.ticket is None]
        if not idle:
            return None
        if self._similarity > 0.0 and prompt:
            best = max(idle, key=lambda s: common_prefix_len(s.prompt, prompt))
            shared = common_prefix_len(best.prompt, prompt)
            if shared / len(prompt) > self._similarity:
                return best
        return min(idle, key=lambda s: s.last_used)

    def _assign(self, slot: _Slot, ticket: int, prompt: str) -> Admission:
        admission = Admission(ticket=ticket, slot_id=slot.slot_id, cached_prompt=slot.prompt)
        self._uses += 1
        slot.ticket = ticket
        slot.prompt = prompt
        slot.last_used = self._uses
        self._busy += 1
        return admission


# ---- discrete-event replay ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    """A request of the replay: when it arrives, its prompt size, and how many decode steps it runs."""

    t_s: float
    prompt_tokens: int
    steps: int
    prompt: str = ""  # only used for slot choice and prompt-cache reuse
    cache_prompt: bool = True


@dataclass(frozen=True)
class Scheduled:
    """When a replayed request got a slot, produced its steps, and ended."""

    index: int
    slot_id: int
    t_arrival_s: float
    t_start_s: float
    cached_tokens: int
    step_times_s: tuple[float, ...]
    t_end_s: float

    @property
    def queue_s(self) -> float:
        """Time spent waiting for a slot."""
        return self.t_start_s - self.t_arrival_s

    @property
    def t_first_step_s(self) -> float | None:
        """When the first decode step completed (first token), if any."""
        return self.step_times_s[0] if self.step_times_s else None


@dataclass
class _Run:
    slot_id: int
    t_start_s: float
    cached: int
    rng: random.Random
    steps: list[float] = field(default_factory=list)


def simulate_schedule(
    model: TimingModel,
    n_slots: int,
    arrivals: Sequence[Arrival],
    *,
    seed: int = 0,
    similarity: float = 0.1,
    next_arrival: Callable[[int, float], Arrival | None] | None = None,
    first_request_number: int = 1,
) -> list[Scheduled]:
    """Replay `arrivals` under the timing rules above and return each request's schedule, in arrival order.

    ``next_arrival(index, t_end)``, when given, is called as each request ends and may return one more arrival
    (a closed loop: the client that was waiting for request ``index`` sends its next one); such arrivals are
    numbered after the given ones. Ties are broken in event order (arrivals and steps in the order they were
    scheduled), so results are exact for tests. Request i uses the jitter generator of request number
    ``first_request_number + i`` and the cold start applies to request number 1 only, as the live server
    numbers the requests it serves.
    """
    pool = SlotPool(n_slots, similarity)
    queue: list[Arrival] = list(arrivals)
    events: list[tuple[float, int, int, int]] = []  # (time, order, kind, index); kind 0 = arrival, 1 = step
    order = 0
    runs: dict[int, _Run] = {}
    done: dict[int, Scheduled] = {}

    def push(t: float, kind: int, index: int) -> None:
        nonlocal order
        heapq.heappush(events, (t, order, kind, index))
        order += 1

    def start(adm: Admission, t: float) -> None:
        arrival = queue[adm.ticket]
        cached = cached_prompt_tokens(adm.cached_prompt, arrival.prompt) if arrival.cache_prompt else 0
        number = first_request_number + adm.ticket
        rng = jitter_rng(seed, number)
        prefill = model.prefill_s(arrival.prompt_tokens - cached, cold=number == 1) * model.jitter_factor(rng)
        runs[adm.ticket] = _Run(adm.slot_id, t, cached, rng)
        if arrival.steps > 0:
            push(t + prefill, 1, adm.ticket)
        else:
            finish(adm.ticket, t + prefill)

    def finish(index: int, t: float) -> None:
        run = runs.pop(index)
        a = queue[index]
        done[index] = Scheduled(index, run.slot_id, a.t_s, run.t_start_s, run.cached, tuple(run.steps), t)
        nxt = pool.release(run.slot_id)
        if nxt is not None:
            start(nxt, t)
        follow = next_arrival(index, t) if next_arrival is not None else None
        if follow is not None:
            queue.append(follow)
            push(follow.t_s, 0, len(queue) - 1)

    for i, a in enumerate(queue):
        push(a.t_s, 0, i)
    while events:
        t, _, kind, index = heapq.heappop(events)
        if kind == 0:
            adm = pool.submit(index, queue[index].prompt)
            if adm is not None:
                start(adm, t)
            continue
        run = runs[index]
        run.steps.append(t)
        if len(run.steps) >= queue[index].steps:
            finish(index, t)
        else:
            push(t + model.token_s(pool.busy) * model.jitter_factor(run.rng), 1, index)
    return [done[i] for i in range(len(queue))]
