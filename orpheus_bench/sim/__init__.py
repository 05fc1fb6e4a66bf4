"""A stand-in for llama-server running Orpheus: same endpoints and wire format, synthetic timing, fault modes.

Nothing it produces is a measurement of anything real; it exists for fast deterministic tests and for trying
the harness without a server. Use from tests::

    config = SimConfig(slots=2, token_ms=1.0, faults=(parse_fault("disconnect:after_tokens=5,every=3"),))
    server = await start_simulator(config)          # async tests; server.url, server.stats, await close()
    with run_simulator_in_thread(config) as url:    # sync code
        ...
    with run_simulator_in_subprocess(config) as url:  # code under gevent (Locust)
        ...

`simulate_schedule` replays the timing model without sockets, to predict what a live run should see.
"""

from __future__ import annotations

from orpheus_bench.sim.app import SimServer, SimStats, start_simulator
from orpheus_bench.sim.config import SimConfig
from orpheus_bench.sim.faults import FaultKind, FaultSpec, parse_fault
from orpheus_bench.sim.thread import SimulatorThread, run_simulator_in_subprocess, run_simulator_in_thread
from orpheus_bench.sim.timing import Arrival, Scheduled, TimingModel, simulate_schedule

__all__ = [
    "Arrival",
    "FaultKind",
    "FaultSpec",
    "Scheduled",
    "SimConfig",
    "SimServer",
    "SimStats",
    "SimulatorThread",
    "TimingModel",
    "parse_fault",
    "run_simulator_in_subprocess",
    "run_simulator_in_thread",
    "simulate_schedule",
    "start_simulator",
]
