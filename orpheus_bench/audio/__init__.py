"""SNAC audio decoding: model loading, the frame decoder, the shared decode service and WAV output.

Importing this package is cheap; `snac_loader` and `decoder` import torch, `service` and `wav` do not (a
decode-off run never loads torch).
"""
