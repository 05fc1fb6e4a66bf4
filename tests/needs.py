"""What the integration tests need from the machine, and what happens when it is missing.

llama-server, Debian's Chromium and AIPerf are all installed by ``scripts/setup.sh``. Where set-up ran (CI:
``.ci/run`` sets ``ORPHEUS_BENCH_REQUIRE_TOOLS=1``) a missing one fails the test that needs it; elsewhere the test
is skipped with the install hint.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

REQUIRE_ENV = "ORPHEUS_BENCH_REQUIRE_TOOLS"


def missing(message: str) -> NoReturn:
    """Skip, or fail where the tools are required (see the module docstring)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {message}")
    pytest.skip(message)


def chromium_path() -> str | None:
    """Debian's chromium, wherever it is on this machine (None when it is not installed)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    return found


def require_chromium() -> str:
    """The Chromium binary, or skip/fail (see `missing`)."""
    found = chromium_path()
    if found is None:
        missing("Chromium is not installed (scripts/setup.sh installs Debian's chromium)")
    return found
