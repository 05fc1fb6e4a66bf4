"""``python -m orpheus_bench.sim``: the same as ``orpheus-bench simulate`` (used by the subprocess helper)."""

from __future__ import annotations

import sys

from orpheus_bench.commands.simulate import main

if __name__ == "__main__":
    sys.exit(main())
