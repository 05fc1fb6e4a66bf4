"""A real llama-server as the benchmark target: tiny Orpheus-format GGUF, launcher, doctor, timeline.

Modules: `model_builder` (the test model), `binary` (finding llama-server, parsing its --help), `profiles`
(intent -> flags), `launcher` (`LlamaServer`), `doctor` (pre-flight checks), `metrics` (the
/metrics and /slots timeline). Import the submodule you need; this package imports nothing heavy on its own.
"""
