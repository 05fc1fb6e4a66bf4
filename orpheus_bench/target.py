"""What every request of a run needs to know about its target, resolved once from the scenario.

Shared by the aiohttp driver and the Locust adapter so both send byte-identical requests. The API key lives
here (from ``--api-key`` or ``ORPHEUS_BENCH_API_KEY``) and nowhere else: it is excluded from ``repr`` and from
everything written to disk.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from orpheus_bench.core.pipeline import RequestPipeline
from orpheus_bench.core.prompt import format_prompt
from orpheus_bench.core.protocol import Protocol, build_body, endpoint_path
from orpheus_bench.core.windows import DecodeSpec
from orpheus_bench.prompts import Prompt
from orpheus_bench.records import RequestRecord
from orpheus_bench.scenario import Scenario


@dataclass(frozen=True)
class Target:
    """Resolved request settings of a run."""

    base_url: str
    protocol: Protocol
    streaming: bool
    sampling: dict[str, Any]
    spec: DecodeSpec
    model: str | None = None
    voice: str | None = None
    use_token_ids: bool = False
    max_invalid_code_rate: float = 0.02
    connect_timeout_s: float = 10.0
    request_timeout_s: float = 300.0
    between_tokens_timeout_s: float = 30.0
    api_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_scenario(cls, sc: Scenario, api_key: str | None = None) -> Target:
        """Resolve a scenario."""
        return cls(
            base_url=sc.host.rstrip("/"),
            protocol=sc.protocol,
            streaming=sc.streaming,
            sampling=sc.sampling.body_params(),
            spec=sc.decode.spec(),
            model=sc.model,
            voice=sc.prompts.voice,
            use_token_ids=sc.use_token_ids,
            max_invalid_code_rate=sc.max_invalid_code_rate,
            connect_timeout_s=sc.timeouts.connect_s,
            request_timeout_s=sc.timeouts.request_s,
            between_tokens_timeout_s=sc.timeouts.between_tokens_s,
            api_key=api_key,
        )

    @property
    def url(self) -> str:
        """The completion endpoint."""
        return self.base_url + endpoint_path(self.protocol)

    @property
    def max_stream_tokens(self) -> int:
        """A stream longer than this ignores max_tokens; cut it off to keep memory bounded."""
        return int(self.sampling.get("max_tokens") or 4096) * 2 + 64

    def headers(self) -> dict[str, str]:
        """Request headers (the Bearer token only when a key is set)."""
        h = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if self.streaming else "application/json",
        }
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def body(self, prompt: Prompt) -> dict[str, Any]:
        """The JSON body for one prompt."""
        body = build_body(
            self.protocol,
            format_prompt(prompt.text, self.voice),
            stream=self.streaming,
            sampling=self.sampling,
            model=self.model,
        )
        if self.use_token_ids and self.protocol == "native":
            body["return_tokens"] = True
        return body

    def new_record(
        self,
        prompt: Prompt,
        *,
        level: int,
        worker: int,
        seq: int,
        warmup: bool,
        driver: str,
        wall_start: float,
        run_offset_s: float,
        level_label: str | None = None,
        scheduled_offset_s: float | None = None,
    ) -> RequestRecord:
        """An empty record for a request about to be sent."""
        return RequestRecord(
            request_id=uuid.uuid4().hex[:16],
            level=level,
            worker=worker,
            seq=seq,
            warmup=warmup,
            prompt_id=prompt.id,
            prompt=prompt.text,
            voice=self.voice,
            mode="stream" if self.streaming else "blocking",
            protocol=self.protocol,
            driver=driver,
            wall_start=wall_start,
            run_offset_s=run_offset_s,
            scheduled_offset_s=scheduled_offset_s,
            level_label=level_label,
            prompt_chars=len(prompt.text),
            max_tokens=self.sampling.get("max_tokens"),
        )

    def new_pipeline(self, record: RequestRecord) -> RequestPipeline:
        """The pure pipeline for one request."""
        return RequestPipeline(
            record,
            protocol=self.protocol,
            spec=self.spec,
            use_token_ids=self.use_token_ids,
            max_invalid_code_rate=self.max_invalid_code_rate,
            max_stream_tokens=self.max_stream_tokens,
        )
