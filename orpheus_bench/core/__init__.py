"""The sans-I/O pipeline: SSE bytes -> protocol messages -> custom tokens -> audio codes -> frames -> windows.

Nothing in this package opens a socket, sleeps or reads a clock; drivers pass timestamps in.
"""
