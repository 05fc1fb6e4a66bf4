"""DecodeService: batching rules, per-stream order, futures, decode off, errors, close; plus one real-SNAC run."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np
import pytest

from orpheus_bench.audio.decoder import SnacDecoder
from orpheus_bench.audio.service import DecodeResult, DecodeService, default_batching
from orpheus_bench.core.frames import SAMPLES_PER_FRAME, Frame
from orpheus_bench.core.windows import DecodeSpec, DecodeWindow, WindowPlanner
from orpheus_bench.errors import DecodeError

pytestmark = pytest.mark.unit


def random_frames(n: int, seed: int = 1) -> list[Frame]:
    rng = random.Random(seed)
    return [tuple(rng.randrange(4096) for _ in range(7)) for _ in range(n)]  # type: ignore[misc]


def window(index: int, n_frames: int = 4) -> DecodeWindow:
    return DecodeWindow(index, 0, tuple((index,) * 7 for _ in range(n_frames)), 0, 8)


class FakeDecoder:
    """Fills each window's PCM with its index; can hold the worker inside a decode until released."""

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.fail_index: int | None = None

    def decode_batch(self, windows: Sequence[DecodeWindow]) -> list[np.ndarray]:
        self.batches.append([w.index for w in windows])
        self.entered.set()
        assert self.release.wait(10)
        if any(w.index == self.fail_index for w in windows):
            raise RuntimeError("boom")
        return [np.full(w.kept_samples, w.index, dtype=np.float32) for w in windows]


def make(fake: FakeDecoder, **kw: Any) -> DecodeService:
    return DecodeService(fake, **kw)  # type: ignore[arg-type]


def test_gathers_queued_same_shape_windows_and_never_reorders() -> None:
    fake = FakeDecoder(hold_first=True)
    done: list[int] = []
    with make(fake, max_batch=3) as svc:
        futs = [svc.submit(window(0))]
        assert fake.entered.wait(10)  # the worker is busy with window 0 alone
        shapes = [4, 4, 4, 4, 4, 2, 4]
        futs += [svc.submit(window(i, n)) for i, n in enumerate(shapes, start=1)]
        for f in futs:
            f.add_done_callback(lambda f: done.append(int(f.result().pcm[0])))
        assert svc.stats.queue_depth == 7
        fake.release.set()
        results = [f.result(10) for f in futs]
    assert fake.batches == [[0], [1, 2, 3], [4, 5], [6], [7]]
    assert done == list(range(8))  # completion order = submission order
    assert [r.batch_size for r in results] == [1, 3, 3, 3, 2, 2, 1, 1]
    assert all(r.queue_s >= 0 and r.decode_s >= 0 and r.done_perf_s > 0 for r in results)
    s = svc.stats
    assert (s.submitted, s.decoded, s.batches, s.queue_depth) == (8, 8, 5, 0)
    assert s.mean_batch_size == pytest.approx(8 / 5)
    assert s.queue_s_max >= max(r.queue_s for r in results) > 0


def test_waits_up_to_max_wait_for_a_batch_partner() -> None:
    fake = FakeDecoder()
    with make(fake, max_batch=2, max_wait_ms=5000) as svc:
        t0 = time.perf_counter()
        a = svc.submit(window(0))
        time.sleep(0.05)
        b = svc.submit(window(1))
        assert a.result(10).batch_size == b.result(10).batch_size == 2
        assert time.perf_counter() - t0 < 4  # the partner ended the wait, not the deadline
        lone = svc.submit(window(2))
        t1 = time.perf_counter()
    # close() ends the wait early and the lone window is still decoded
    assert lone.result(10).batch_size == 1 and time.perf_counter() - t1 < 4
    assert fake.batches == [[0, 1], [2]]


def test_lone_window_waits_about_max_wait() -> None:
    with make(FakeDecoder(), max_batch=4, max_wait_ms=50) as svc:
        r = svc.submit(window(0)).result(10)
    assert r.batch_size == 1 and r.queue_s >= 0.04


def test_decode_off_resolves_at_once_with_empty_pcm() -> None:
    with DecodeService(None) as svc:
        fut = svc.submit(window(0))
        assert fut.done() and not svc.enabled
        r = fut.result()
        assert r.pcm.shape == (0,) and r.batch_size == 0 and r.decode_s == 0
        assert svc.stats.decoded == svc.stats.submitted == 1


def test_decode_failure_fails_that_batch_only() -> None:
    fake = FakeDecoder()
    fake.fail_index = 1
    with make(fake) as svc:
        bad = svc.submit(window(1))
        good = svc.submit(window(2))
        with pytest.raises(DecodeError, match="boom"):
            bad.result(10)
        assert good.result(10).pcm[0] == 2
    assert svc.stats.failed == 1 and svc.stats.decoded == 1


def test_close_cancels_pending_when_asked_and_is_idempotent() -> None:
    fake = FakeDecoder(hold_first=True)
    svc = make(fake, max_batch=1)
    first = svc.submit(window(0))
    assert fake.entered.wait(10)
    pending = [svc.submit(window(i)) for i in (1, 2, 3)]
    threading.Timer(0.1, fake.release.set).start()
    svc.close(cancel_pending=True)
    assert first.result(1).pcm[0] == 0
    assert all(f.cancelled() for f in pending)
    assert svc.stats.cancelled == 3
    svc.close()
    with pytest.raises(RuntimeError, match="closed"):
        svc.submit(window(4))


def test_close_drains_by_default_and_skips_caller_cancelled() -> None:
    fake = FakeDecoder(hold_first=True)
    svc = make(fake, max_batch=1)
    svc.submit(window(0))
    assert fake.entered.wait(10)
    futs = [svc.submit(window(i)) for i in (1, 2, 3)]
    assert futs[1].cancel()
    fake.release.set()
    svc.close()
    assert futs[0].result(0).pcm[0] == 1 and futs[2].result(0).pcm[0] == 3
    assert fake.batches == [[0], [1], [3]] and svc.stats.cancelled == 1


async def test_futures_await_from_asyncio() -> None:
    with make(FakeDecoder()) as svc:
        r = await asyncio.wrap_future(svc.submit(window(5)))
    assert isinstance(r, DecodeResult) and r.pcm[0] == 5


def test_bad_settings() -> None:
    with pytest.raises(ValueError):
        DecodeService(None, max_batch=0)
    assert default_batching("cpu")[0] >= 1 and default_batching("cuda")[1] > 0


def test_real_snac_streams_through_a_batching_service_match_direct_decodes(decoder: SnacDecoder) -> None:
    streams = [random_frames(5, seed=s) for s in (11, 12)]
    planners = [WindowPlanner(DecodeSpec()) for _ in streams]
    submitted: list[tuple[int, DecodeWindow, Future[DecodeResult]]] = []
    with DecodeService(decoder, max_batch=4, max_wait_ms=20) as svc:
        for i in range(5):  # interleave the two streams frame by frame
            for s, (planner, frames) in enumerate(zip(planners, streams, strict=True)):
                submitted += [(s, w, svc.submit(w)) for w in planner.feed(frames[i])]
        results = [(s, w, f.result(30)) for s, w, f in submitted]
    for s in range(2):
        pcm = np.concatenate([r.pcm for t, _, r in results if t == s])
        assert pcm.shape == (2 * SAMPLES_PER_FRAME,)
    for _, w, r in results:
        np.testing.assert_allclose(r.pcm, decoder.decode_window(w), atol=1e-5, rtol=0)
    assert svc.stats.decoded == 4 and svc.stats.decode_s_total > 0
