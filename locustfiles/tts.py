"""Load-test Orpheus TTS on llama-server with Locust, recording what ``orpheus-bench run`` records.

    locust -f locustfiles/tts.py --host http://127.0.0.1:8080     # web UI: the users typed there are the levels
    locust -f locustfiles/tts.py --headless -u 4 -r 4 -t 30s --host http://127.0.0.1:8080
    locust -f locustfiles/tts.py --headless --host http://127.0.0.1:8080 \\
        --step-levels 1,2,4,8,12 --step-requests 20 --run-dir runs/locust-steps

Every option of ``orpheus-bench run`` that describes requests works here too, with the same name
(``--scenario``, ``--voice``, ``--prompt-set``, ``--max-tokens``, ``--decode``, ``--snac-model``...; see
``orpheus-bench run --help``), plus ``--step-levels``, ``--step-requests``, ``--step-duration`` and
``--run-dir``: docs/locust.md. Copy this file to change the user (e.g. give it a wait time).
"""

from __future__ import annotations

from orpheus_bench.locust.adapter import OrpheusTTSUser, StepLoadShape


class TTSUser(OrpheusTTSUser):
    """A listener that asks for speech, streams and decodes it, and asks again as soon as it is done."""


class TTSShape(StepLoadShape):
    """--step-levels 1,2,4,8,12 walks the levels; without it: -u users for -t as one level (web UI: the form's)."""
