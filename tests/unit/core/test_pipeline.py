"""RequestPipeline end to end on recorded-style streams, without sockets or clocks."""

from __future__ import annotations

import json

import pytest
from record_factory import new_record as base_record

from orpheus_bench.core.pipeline import RequestPipeline
from orpheus_bench.core.windows import DecodeSpec
from orpheus_bench.records import ErrorClass, RequestRecord, Status

pytestmark = pytest.mark.unit


def new_record() -> RequestRecord:
    return base_record(prompt="hi", voice="tara")


def audio_tokens(n_frames: int, *, bad_at: set[int] | None = None) -> list[str]:
    out = []
    for i in range(n_frames * 7):
        pos = i % 7
        code = (i * 37) % 4096
        n = 10 + pos * 4096 + code
        if bad_at and i in bad_at:
            n = 10 + 7 * 4096 + 5  # beyond every position's range
        out.append(f"<custom_token_{n}>")
    return out


def native_stream(tokens: list[str], *, final: bool = True) -> bytes:
    parts = [b'data: {"content":"","stop":false}\n\n']  # llama-server may send an empty first event
    for t in tokens:
        parts.append(b"data: " + json.dumps({"content": t, "stop": False}).encode() + b"\n\n")
    if final:
        fin = {
            "content": "",
            "stop": True,
            "stop_type": "word",
            "truncated": False,
            "timings": {"prompt_n": 20, "prompt_ms": 5.0, "predicted_n": len(tokens), "predicted_ms": 50.0},
        }
        parts.append(b"data: " + json.dumps(fin).encode() + b"\n\n")
    return b"".join(parts)


def run(stream: bytes, spec: DecodeSpec, *, chunk: int = 13, protocol: str = "native") -> RequestRecord:
    rec = new_record()
    pipe = RequestPipeline(rec, protocol=protocol, spec=spec)  # type: ignore[arg-type]
    t = 0.0
    windows = []
    for i in range(0, len(stream), chunk):
        t += 0.001
        windows += pipe.feed_bytes(stream[i : i + chunk], t)
    windows += pipe.end_of_stream(t)
    for w in windows:  # pretend each decode takes 2 ms
        pipe.on_decoded(w, w.keep_end - w.keep_start, t + 0.002, 0.002, 0.0)
    return pipe.finalize(t + 0.01)


@pytest.mark.parametrize("chunk", [1, 7, 64, 100_000])
def test_reference_window_sample_count(chunk: int) -> None:
    rec = run(native_stream(audio_tokens(10)), DecodeSpec.from_preset("reference"), chunk=chunk)
    assert rec.status is Status.OK, rec.error_message
    assert rec.frames == 10 and rec.audio_tokens == 70
    assert rec.pcm_samples == (10 - 3) * 2048
    assert rec.timings is not None and rec.timings.prompt_ms == 5.0
    assert rec.stop_reason == "word"
    # ordering of the timestamps the record promises
    assert rec.t_first_byte_s is not None and rec.t_first_token_s is not None
    assert rec.t_first_byte_s <= rec.t_first_token_s <= rec.t_first_audio_token_s  # type: ignore[operator]
    assert rec.t_first_frame_s <= rec.t_first_window_s < rec.t_first_pcm_s  # type: ignore[operator]


def test_truncated_stream_is_protocol_error_with_partial_audio() -> None:
    rec = run(native_stream(audio_tokens(6), final=False), DecodeSpec.from_preset("reference"))
    assert rec.error_class is ErrorClass.PROTOCOL
    assert rec.pcm_samples == 3 * 2048  # the audio received is kept


def test_invalid_codes_above_threshold_fail_below_pass() -> None:
    many = run(native_stream(audio_tokens(10, bad_at={3, 10, 17})), DecodeSpec.from_preset("reference"))
    assert many.error_class is ErrorClass.INVALID_AUDIO
    assert many.invalid_codes == [0, 0, 0, 3, 0, 0, 0]
    assert many.frames == 7  # three frames dropped
    few = run(native_stream(audio_tokens(60, bad_at={3})), DecodeSpec.from_preset("reference"))
    assert few.ok and few.invalid_code_count == 1 and few.frames == 59


def test_no_audio() -> None:
    rec = run(native_stream([]), DecodeSpec.from_preset("reference"))
    assert rec.error_class is ErrorClass.NO_AUDIO


def test_decode_off_credits_nominal_samples_at_token_time() -> None:
    rec = run(native_stream(audio_tokens(10)), DecodeSpec.from_preset("off"))
    assert rec.ok and rec.pcm_samples == 7 * 2048
    assert rec.t_first_pcm_s == rec.t_first_window_s


def test_blocking_body() -> None:
    rec = new_record()
    pipe = RequestPipeline(rec, protocol="native", spec=DecodeSpec.from_preset("blocking"))
    body = json.dumps({"content": "".join(audio_tokens(8)), "stop": True, "stop_type": "limit"}).encode()
    windows = pipe.feed_body(body, 1.0)
    assert len(windows) == 1
    pipe.on_decoded(windows[0], 8 * 2048, 1.5, 0.5, 0.0)
    pipe.finalize(1.5)
    assert rec.ok and rec.pcm_samples == 8 * 2048 and rec.ttfa_s == 1.5


def test_openai_stream_with_done() -> None:
    parts = [
        b"data: " + json.dumps({"choices": [{"text": t, "finish_reason": None}]}).encode() + b"\n\n"
        for t in audio_tokens(5)
    ]
    parts.append(b'data: {"choices":[{"text":"","finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
    rec = run(b"".join(parts), DecodeSpec.from_preset("reference"), protocol="openai")
    assert rec.ok and rec.frames == 5 and rec.pcm_samples == 2 * 2048 and rec.stop_reason == "stop"


def test_stream_ignoring_max_tokens_is_cut_off() -> None:
    rec = new_record()
    pipe = RequestPipeline(rec, protocol="native", spec=DecodeSpec.from_preset("off"), max_stream_tokens=20)
    from orpheus_bench.errors import ProtocolError

    with pytest.raises(ProtocolError, match="exceeded 20 tokens"):
        pipe.feed_bytes(native_stream(audio_tokens(5)), 0.1)


def test_chunks_play_in_stream_order_when_decodes_finish_out_of_order() -> None:
    # Two decode workers: window 1 finishes (t=0.20) before window 0 (t=0.30). The player cannot start before
    # window 0 is ready, so TTFA is window 0's ready time and the chunks are in window order.
    rec = new_record()
    pipe = RequestPipeline(rec, protocol="native", spec=DecodeSpec.from_preset("reference"))
    windows = pipe.feed_bytes(native_stream(audio_tokens(5)), 0.1) + pipe.end_of_stream(0.1)
    assert [w.index for w in windows] == [0, 1]
    pipe.on_decoded(windows[1], 2048, 0.20, 0.05, 0.0)
    pipe.on_decoded(windows[0], 2048, 0.30, 0.05, 0.1)
    pipe.finalize(0.35)
    assert [c.window for c in rec.chunks] == [0, 1]
    assert [c.t_ready_s for c in rec.chunks] == [0.30, 0.20]
    assert rec.ttfa_s == 0.30


def test_native_stream_ends_at_its_final_event() -> None:
    # Audio tokens after `stop: true` are protocol noise: counted, never audio, never a failure.
    after = b"".join(b"data: " + json.dumps({"content": t, "stop": False}).encode() + b"\n\n" for t in audio_tokens(3))
    rec = run(native_stream(audio_tokens(5)) + after + b"data: not json\n\n", DecodeSpec.from_preset("reference"))
    assert rec.ok, rec.error_message
    assert rec.frames == 5 and rec.audio_tokens == 35
    assert rec.events_after_final == 3 * 7 + 1


def test_openai_chunks_after_finish_reason_bring_timings_not_audio() -> None:
    parts = [
        b"data: " + json.dumps({"choices": [{"text": t, "finish_reason": None}]}).encode() + b"\n\n"
        for t in audio_tokens(5)
    ]
    parts.append(b'data: {"choices":[{"text":"","finish_reason":"length"}]}\n\n')
    late_audio = audio_tokens(1)[0]
    parts.append(b"data: " + json.dumps({"choices": [{"text": late_audio, "finish_reason": None}]}).encode() + b"\n\n")
    parts.append(b'data: {"choices":[],"timings":{"prompt_n":9,"prompt_ms":3.5}}\n\n')
    parts.append(b"data: [DONE]\n\ndata: [DONE]\n\n")
    rec = run(b"".join(parts), DecodeSpec.from_preset("reference"), protocol="openai")
    assert rec.ok and rec.frames == 5 and rec.audio_tokens == 35
    assert rec.timings is not None and rec.timings.prompt_ms == 3.5
    assert rec.events_after_final == 2  # the late audio chunk and the second [DONE]
    assert rec.stop_reason == "length"


def test_counters_reach_the_record_when_the_stream_fails_midway() -> None:
    # Counters are copied from the parsers at the end, not per event: a failure midway must still leave them.
    rec = new_record()
    pipe = RequestPipeline(rec, protocol="native", spec=DecodeSpec.from_preset("off"))
    from orpheus_bench.errors import ProtocolError

    with pytest.raises(ProtocolError):
        pipe.feed_bytes(native_stream(audio_tokens(5), final=False) + b"data: not json\n\n", 0.1)
    pipe.finalize(0.2)
    assert rec.audio_tokens == 35 and rec.frames == 5 and rec.tokens_generated == 35


def test_bad_token_ids_are_a_protocol_error() -> None:
    rec = new_record()
    pipe = RequestPipeline(rec, protocol="native", spec=DecodeSpec.from_preset("off"), use_token_ids=True)
    from orpheus_bench.errors import ProtocolError

    with pytest.raises(ProtocolError, match="token ids"):
        pipe.feed_bytes(b'data: {"content":"x","tokens":["a"],"stop":false}\n\n', 0.1)
