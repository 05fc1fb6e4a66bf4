"""The Locust driver's parts; `orpheus_bench.locust.adapter` is what locustfiles import.

- `levels`: the step plan and the level controller (pure: no gevent, no Locust), shared by the local runner and
  the master of a distributed run.
- `hub`: gevent plumbing: the SNAC decode service on its own OS thread, waiting on its futures without blocking
  the hub, and hub-lag sampling.
- `exchange`: one Orpheus request over geventhttpclient -> one `RequestRecord` (the twin of
  `orpheus_bench.client.aiohttp_driver`).
- `bridge`: one process's share of a run: options, the users' side (levels, records, Locust events) and the
  run's side (run directory, level summaries, gates), wired directly or through Locust messages; in the web UI
  it also feeds the form's user count to the levels and opens a new run at each Start.
- `live` (pure) and `webui`: the per-level numbers the web UI shows (TTS levels tab, report link), computed
  with the measures layer and served through Locust's web UI extension points.

Importing `hub`, `exchange`, `bridge` or `webui` imports gevent or Flask (and Locust monkey-patches the
process), so asyncio code never imports this package's modules other than `levels` and `live`.
"""
