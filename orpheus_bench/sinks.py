"""Record consumers: every finished `RequestRecord` is published to each sink of the run.

- `JsonlSink` appends one line per record as it happens and fsyncs at each level's end, so a crash loses at most
  the requests in flight.
- `RecordSink` is the protocol any consumer implements (the Locust bridge, a progress view, tests).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import IO, Protocol

from orpheus_bench.records import RequestRecord


class RecordSink(Protocol):
    """A consumer of records."""

    def emit(self, record: RequestRecord) -> None:
        """Take one finished record."""

    def level_done(self, level: int) -> None:
        """A level's requests have all been emitted."""

    def close(self) -> None:
        """The run is over (or aborted): flush everything."""


class JsonlSink:
    """Appends records to ``requests.jsonl``; thread-safe (Locust workers and decode threads may emit)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (lives for the run)
        self._lock = threading.Lock()
        self.count = 0

    def emit(self, record: RequestRecord) -> None:
        """Write and flush one line (fsync happens per level)."""
        line = record.to_json() + "\n"
        with self._lock:
            if self._fh is None:
                raise RuntimeError("JsonlSink is closed")
            self._fh.write(line)
            self._fh.flush()
            self.count += 1

    def level_done(self, level: int) -> None:
        """fsync: the level's records are on disk."""
        with self._lock:
            if self._fh is not None:
                os.fsync(self._fh.fileno())

    def close(self) -> None:
        """fsync and close; idempotent."""
        with self._lock:
            if self._fh is not None:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()
                self._fh = None


class Fanout:
    """Publishes each record to several sinks; a sink that raises does not stop the others."""

    def __init__(self, sinks: list[RecordSink]) -> None:
        self.sinks = sinks
        self.errors: list[str] = []

    def emit(self, record: RequestRecord) -> None:
        """Publish one record."""
        for s in self.sinks:
            try:
                s.emit(record)
            except Exception as exc:  # a broken consumer must not lose the record for the others
                self.errors.append(f"{type(s).__name__}: {exc}")

    def level_done(self, level: int) -> None:
        """Tell every sink a level ended."""
        for s in self.sinks:
            s.level_done(level)

    def close(self) -> None:
        """Close every sink."""
        for s in self.sinks:
            s.close()
