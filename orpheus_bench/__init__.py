"""orpheus-bench: load testing and benchmarking for Orpheus TTS on llama.cpp's llama-server."""

from __future__ import annotations

__version__ = "0.1.0"
