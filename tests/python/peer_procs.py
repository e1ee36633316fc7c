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
    served on a free port and `self.ui` is its base URL; without, `--no-ui`."""

    def __init__(self, home: Path, project: Path, label: str, ui: bool = False):
        env = dict(os.environ, LEANSPEC_PEER_HOME=str(home), LEANSPEC_PEER_LOG="info")
        self.home = home
        ui_args = ["--ui", "127.0.0.1:0"] if ui else ["--no-ui"]
        self.proc = subprocess.Popen(
            [BIN, "up", "--bind", "127.0.0.1:0", *ui_args, "--label", label,
             "--project", str(project)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.ui = None
        if ui:
            # Printed after the control socket is served ("Ctrl-C to stop").
            line = self.wait_line("web UI at http://")
            self.ui = "http://" + line.split("http://")[1].split()[0]
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
