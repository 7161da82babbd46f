"""_X_AMZN_TRACE_ID per invocation: seen everywhere it is read, and no growth.

Run in a child interpreter: the test changes the process's C environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lamina

RUNTIME = Path(lamina.__file__).parent / "runtimes" / "python"
SCRIPT = """
import ctypes, json, os, subprocess, sys
sys.path.insert(0, sys.argv[1])
from trace_env import NAME, TraceVariable

libc = ctypes.CDLL(None)
libc.getenv.restype = ctypes.c_char_p
out = {}


def seen():
    shell = subprocess.run(["sh", "-c", "printf %s \\"$_X_AMZN_TRACE_ID\\""], capture_output=True)
    got = libc.getenv(NAME.encode())
    return [os.environ.get(NAME), got.decode() if got else None, shell.stdout.decode()]


trace = TraceVariable(os.environ)
trace.set("Root=1-first")
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4
before = rss()
for i in range(200_000):
    trace.set(f"Root=1-{i:08x}-{i:024x};Parent={i:016x};Sampled=0")
out["grew_kib"] = rss() - before
trace.set("Root=1-last")
out["last"] = seen()
os.environ[NAME] = "the function's own"  # setenv() copies: ours is out of place
trace.set("Root=1-after")
out["after"] = seen()
trace.set(None)
out["unset"] = seen()
trace.set("Root=1-again")
out["again"] = seen()
trace.release()
out["released"] = seen()
print(json.dumps(out))
"""


def test_each_invocations_trace_id_is_seen_everywhere_and_costs_no_memory(tmp_path: Path) -> None:
    script = tmp_path / "check.py"
    script.write_text(SCRIPT)
    # The module alone, as the runtime imports it (no lamina package on the path).
    (tmp_path / "trace_env.py").write_text((RUNTIME / "trace_env.py").read_text())
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, check=True
    )
    out = json.loads(done.stdout)
    # os.environ's setitem leaks ~144 bytes a call in glibc: ~28 MB over 200,000 calls.
    assert out["grew_kib"] < 1024
    assert out["last"] == ["Root=1-last"] * 3
    assert out["after"] == ["Root=1-after"] * 3
    assert out["unset"] == [None, None, ""]
    assert out["again"] == ["Root=1-again"] * 3
    assert out["released"] == ["Root=1-again"] * 3
