"""One request's whole pure pipeline: bytes -> SSE -> protocol messages -> codes -> frames -> decode windows.

`RequestPipeline` owns the parsers of one request and writes what they observe into its `RequestRecord`. It
never reads a clock: every call takes ``t``, seconds since the request was sent, from the driver. Decoding is not
done here either: the pipeline returns `DecodeWindow`s, the driver hands them to a decode service and reports
each result back with `on_decoded`, and `finalize` classifies the request (protocol error, no audio, too many
invalid codes) once the driver is done.

With decode mode ``off`` no window is returned; each window's samples are credited at the moment its tokens
were complete, i.e. the audio the tokens encode as if decoding were free (the run says so in run.json).

A stream ends at its final event (``stop: true`` on /completion; on /v1/completions the ``finish_reason``
chunk, after which only metadata and ``[DONE]`` may follow): whatever the server sends after that is counted
in ``events_after_final`` and never parsed as audio. Audio chunks carry their window index, so playback, stalls
and TTFA follow stream order even when several decode workers finish windows out of order.
"""

from __future__ import annotations

from orpheus_bench.core.frames import Frame, FrameAssembler
from orpheus_bench.core.protocol import Protocol, StreamMessage, parse_event
from orpheus_bench.core.sse import SSEDecoder
from orpheus_bench.core.tokens import AudioCodeMapper, CustomTokenParser, numbers_from_token_ids
from orpheus_bench.core.windows import DecodeSpec, DecodeWindow, WindowPlanner
from orpheus_bench.errors import InvalidAudioError, NoAudioError, ProtocolError
from orpheus_bench.records import AudioChunk, ErrorClass, RequestRecord, Status


def _token_ids(ids: list[int]) -> list[int]:
    try:
        return [int(t) for t in ids]
    except (TypeError, ValueError):
        raise ProtocolError(f"native event: 'tokens' is not a list of token ids: {ids[:8]!r}") from None


class RequestPipeline:
    """Parsers and bookkeeping of one request; see the module docstring for the calling sequence."""

    def __init__(
        self,
        record: RequestRecord,
        *,
        protocol: Protocol,
        spec: DecodeSpec,
        use_token_ids: bool = False,
        max_invalid_code_rate: float = 0.02,
        max_stream_tokens: int | None = None,
    ) -> None:
        self.record = record
        self.protocol = protocol
        self.spec = spec
        self.decode_off = spec.mode == "off"
        planner_spec = DecodeSpec.from_preset("reference") if self.decode_off else spec
        self.planner = WindowPlanner(planner_spec)
        self.use_token_ids = use_token_ids
        self.max_invalid_code_rate = max_invalid_code_rate
        self.max_stream_tokens = max_stream_tokens
        self.sse = SSEDecoder()
        self.tokens = CustomTokenParser()
        self.mapper = AudioCodeMapper()
        self.frames = FrameAssembler()
        self.saw_final = False
        self._ended = False  # past the last event that may carry anything (see the module docstring)
        self._window_token_t: dict[int, float] = {}

    # ---- input -------------------------------------------------------------------------------
    def feed_bytes(self, chunk: bytes, t: float) -> list[DecodeWindow]:
        """A chunk of the SSE response body arrived at `t`."""
        rec = self.record
        if rec.t_first_byte_s is None and chunk:
            rec.t_first_byte_s = t
        return self._events(self.sse.feed_data(chunk), t)

    def _events(self, events: list[str], t: float) -> list[DecodeWindow]:
        windows: list[DecodeWindow] = []
        for data in events:
            if self._ended:
                # After the final event nothing is parsed, so noise can neither add audio nor fail the request.
                self.record.events_after_final += 1
                continue
            got = self._message(parse_event(self.protocol, data), t)
            if got:
                windows.extend(got)
        return windows

    def feed_body(self, body: bytes, t: float) -> list[DecodeWindow]:
        """A whole non-streaming JSON body (blocking mode) arrived at `t`."""
        if self.record.t_first_byte_s is None:
            self.record.t_first_byte_s = t
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("response body is not UTF-8") from exc
        msg = parse_event(self.protocol, text)
        msg.final = True
        windows = self._message(msg, t)
        return windows + self.end_of_stream(t)

    def end_of_stream(self, t: float) -> list[DecodeWindow]:
        """The connection delivered its last byte at `t`; returns the tail windows (flush / blocking)."""
        windows = self._events(self.sse.flush_data(), t)
        tail = self.tokens.flush()
        self.record.text_chars += tail.other_chars
        self.frames.flush()
        self._sync_counts()
        windows.extend(self._plan(self.planner.flush(), t))
        return windows

    def _message(self, msg: StreamMessage, t: float) -> list[DecodeWindow]:
        rec = self.record
        if msg.done_marker:
            self.saw_final = self._ended = True
            return []
        if self.saw_final:
            # openai: a chunk after the finish_reason chunk may still bring usage and timings, never tokens.
            if msg.text or msg.token_ids:
                rec.events_after_final += 1
            elif msg.timings is not None:
                rec.timings = msg.timings
            return []
        numbers: list[int] | None = None
        if self.use_token_ids and msg.token_ids:
            numbers = numbers_from_token_ids(_token_ids(msg.token_ids))
        if numbers is None:
            whole = self.tokens.whole_token(msg.text)
            if whole is not None:  # the common case: exactly one token, nothing held from before
                numbers = [whole]
                produced = 1
            else:
                parsed = self.tokens.feed(msg.text)
                numbers = parsed.numbers
                rec.text_chars += parsed.other_chars
                produced = len(numbers) or (1 if parsed.other_chars else 0)
        else:
            produced = len(numbers)
        if produced:
            rec.tokens_generated += produced
            rec.t_last_token_s = t
            if rec.t_first_token_s is None:
                rec.t_first_token_s = t
        if self.max_stream_tokens is not None and rec.tokens_generated > self.max_stream_tokens:
            raise ProtocolError(f"stream exceeded {self.max_stream_tokens} tokens (max_tokens is not being honoured)")
        windows: list[DecodeWindow] = []
        if numbers:
            codes = self.mapper.feed(numbers)
            if codes and rec.t_first_audio_token_s is None:
                rec.t_first_audio_token_s = t
            for frame in self.frames.feed(codes):
                windows.extend(self._frame(frame, t))
        if msg.final:
            self.saw_final = True
            self._ended = self.protocol == "native"
            rec.stop_reason = msg.stop_reason or rec.stop_reason
            if msg.truncated is not None:
                rec.truncated = msg.truncated
            if msg.tokens_cached is not None:
                rec.tokens_cached = msg.tokens_cached
            if msg.timings is not None:
                rec.timings = msg.timings
        sent = msg.sim_sent_mono
        if sent is not None and numbers and "sim_first_token_sent_mono" not in rec.extra:
            # Simulator stamp mode: when the server wrote the first token (time.monotonic, same host).
            rec.extra["sim_first_token_sent_mono"] = sent
        # The record's counters (audio tokens, invalid codes, frames) are copied from the parsers at the end of
        # the stream and in `finalize`, not per event: nobody reads them in between.
        return windows

    def _frame(self, frame: Frame, t: float) -> list[DecodeWindow]:
        if self.record.t_first_frame_s is None:
            self.record.t_first_frame_s = t
        return self._plan(self.planner.feed(frame), t)

    def _plan(self, windows: list[DecodeWindow], t: float) -> list[DecodeWindow]:
        if windows and self.record.t_first_window_s is None:
            self.record.t_first_window_s = t
        if self.decode_off:
            for w in windows:
                self._credit(AudioChunk(t_ready_s=t, samples=w.keep_end - w.keep_start, t_tokens_s=t, window=w.index))
            return []
        for w in windows:
            self._window_token_t[w.index] = t
        return windows

    def _sync_counts(self) -> None:
        rec = self.record
        rec.audio_tokens = self.mapper.audio_tokens
        rec.special_tokens = self.mapper.special_tokens
        rec.end_of_speech = self.mapper.end_of_speech
        if rec.invalid_codes != self.mapper.invalid_codes:
            rec.invalid_codes = list(self.mapper.invalid_codes)
        rec.frames = self.frames.frames_out

    # ---- decode results ----------------------------------------------------------------------------
    def on_decoded(self, window: DecodeWindow, samples: int, t_ready: float, decode_s: float, queue_s: float) -> None:
        """The driver's decode service finished `window` at `t_ready` with `samples` PCM samples."""
        t_tokens = self._window_token_t.pop(window.index, t_ready)
        self._credit(
            AudioChunk(
                t_ready_s=t_ready,
                samples=samples,
                t_tokens_s=t_tokens,
                decode_s=decode_s,
                queue_s=queue_s,
                window=window.index,
            )
        )

    def _credit(self, chunk: AudioChunk) -> None:
        rec = self.record
        if chunk.samples <= 0:
            return
        rec.chunks.append(chunk)
        rec.pcm_samples += chunk.samples

    # ---- verdict --------------------------------------------------------------------------------------
    def finalize(self, t_end: float) -> RequestRecord:
        """Close the record at `t_end`: classify protocol gaps, missing audio and invalid codes."""
        rec = self.record
        rec.t_end_s = t_end
        # Stream order, not completion order: a player cannot play window 3 before window 2, however early
        # a second decode worker finished it. TTFA is the first window's ready time for the same reason.
        rec.chunks.sort(key=lambda c: c.window)
        rec.t_first_pcm_s = rec.chunks[0].t_ready_s if rec.chunks else None
        self._sync_counts()
        if rec.status is not Status.OK:
            return rec
        if not self.saw_final:
            rec.fail(ErrorClass.PROTOCOL, "stream ended without its final event (truncated response)")
            return rec
        invalid = sum(rec.invalid_codes)
        if rec.audio_tokens and invalid / rec.audio_tokens > self.max_invalid_code_rate:
            err: Exception = InvalidAudioError(
                f"{invalid} of {rec.audio_tokens} audio codes out of range "
                f"(limit {self.max_invalid_code_rate:.1%}); by position {rec.invalid_codes}"
            )
            rec.fail(ErrorClass.INVALID_AUDIO, str(err))
            return rec
        if rec.frames == 0:
            reason = "no complete audio frame in the response"
            if rec.truncated:
                reason += " (server truncated the generation: per-slot context too small?)"
            elif rec.stop_reason:
                reason += f" (stop: {rec.stop_reason})"
            rec.fail(ErrorClass.NO_AUDIO, str(NoAudioError(reason)))
        return rec
