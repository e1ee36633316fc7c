"""Real `leanspec-peer` processes for the Python suites (MCP, web UI): run the CLI, wait
for a condition, run `up` with its stderr on a queue. Every wait is bounded by WAIT.

LEANSPEC_PEER_BIN names the binary under test.
"""

import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

BIN = os.environ["LEANSPEC_PEER_BIN"]
WAIT = 40.0  # seconds


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LEANSPEC_PEER_HOME=str(home))
    return subprocess.run([BIN, *args], env=env, capture_output=True, text=True, timeout=WAIT)


def cli_json(home: Path, *args: str):
    out = cli(home, *args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def eventually(what: str, cond):
    deadline = time.monotonic() + WAIT
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {WAIT}s")
        time.sleep(0.05)


class Up:
    """`leanspec-peer up` with its stderr lines on a queue. With `ui`, the web UI is
    served (on a free loopback port unless `ui` is an address) and `self.ui` is its base
    URL; without, `--no-ui`. `prefix` runs it under another command (`ip netns exec NS`),
    `extra` adds flags; `project=None` starts a mirror (no project)."""

    def __init__(self, home: Path, project, label: str, ui=False, prefix=(), extra=(),
                 bind: str = "127.0.0.1:0"):
        env = dict(os.environ, LEANSPEC_PEER_HOME=str(home), LEANSPEC_PEER_LOG="info")
        self.home = home
        ui_args = ["--ui", ui if isinstance(ui, str) else "127.0.0.1:0"] if ui else ["--no-ui"]
        project_args = ["--project", str(project)] if project is not None else []
        self.proc = subprocess.Popen(
            [*prefix, BIN, "up", "--bind", bind, *ui_args, "--label", label, *project_args,
             *extra],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.ui = None
        if ui:
            # Printed after the control socket is served ("Ctrl-C to stop").
            line = self.wait_line("web UI at ")
            self.ui = line.split("web UI at ")[1].split()[0]
        else:
            self.wait_line("Ctrl-C to stop")

    def _read(self):
        for line in self.proc.stderr:
            self.lines.put(line)

    def wait_line(self, needle: str) -> str:
        deadline = time.monotonic() + WAIT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line with {needle!r} within {WAIT}s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if needle in line:
                return line

    def login_url(self) -> str:
        out = cli(self.home, "ui")
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=WAIT)
