#!/usr/bin/env python3
"""Scale benchmark (issue 15): N real `leanspec-peer up` processes on 127.0.0.1, each
with SPECS generated specs, joined to one mesh with a reusable key. Reports, per mesh
size: the time until every machine holds every machine's specs after start, the time
until a change storm (each machine archives 10 of its specs) is visible everywhere, and
RSS and CPU per process.

The storm is timed on the machines' `events --json` streams (one `events` process per
machine, started before the storm): done when every machine has printed an `archived`
status for every one of the 10·N specs; then every machine's `specs --status archived`
is asked once to confirm. (Polling `specs` instead costs each daemon a full query per
round and competes for the same two cores: at 25 machines one polling round took 2.5 s.)

    LEANSPEC_PEER_BIN=target/release/leanspec-peer SCALE_SIZES=10,25,50 SCALE_SPECS=1000 \
        python3 scripts/bench-scale.py

Wire bytes per change: run as root, the script re-runs itself in a network namespace of
its own (`unshare -n`, loopback only) so that every byte on its `lo` is the mesh's: IP,
UDP, QUIC and all sync, links and address frames. The storm's bytes (from its first write
until every events stream shows it) are divided by its 10·N changes; the bytes of the
10 quiet seconds after it are reported as idle traffic. The storm starts once the mesh
is quiet (loopback under 6 KiB/s per process, checked over 5 s), not while sessions
still carry the end of convergence. SCALE_NETNS=0 stays in the
current namespace (then no byte figures). SCALE_PERF=FILE records every process on the
machine over the storm with `perf record -a --call-graph dwarf` into FILE.

Every wait is bounded (SCALE_WAIT seconds, default 900); the resolution of the times is
one polling round (each machine asked once through its CLI), printed with them.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BIN = os.environ.get("LEANSPEC_PEER_BIN", "target/release/leanspec-peer")
SIZES = [int(x) for x in os.environ.get("SCALE_SIZES", "10,25,50").split(",")]
SPECS = int(os.environ.get("SCALE_SPECS", "1000"))
WAIT = float(os.environ.get("SCALE_WAIT", "900"))
STORM = 10
CLK = os.sysconf("SC_CLK_TCK")
NETNS = os.environ.get("SCALE_IN_NETNS") == "1"
QUIET = 6 * 1024


def lo_bytes():
    """Bytes sent on loopback so far (the namespace's own when NETNS)."""
    if not NETNS:
        return 0
    # /proc/self/net follows this process's namespace (/sys shows the mounter's).
    with open("/proc/self/net/dev") as f:
        for line in f:
            name, _, counters = line.partition(":")
            if name.strip() == "lo":
                return int(counters.split()[8])
    raise RuntimeError("no lo in /proc/self/net/dev")


def cli(home: Path, *args: str):
    env = dict(os.environ, LEANSPEC_PEER_HOME=str(home))
    out = subprocess.run([BIN, *args], env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"{args}: {out.stderr.strip()}")
    return out.stdout


def cli_json(home: Path, *args: str):
    return json.loads(cli(home, *args, "--json"))


def generate(root: Path, machine: int):
    for i in range(SPECS):
        d = root / "specs" / f"{i + 1:05d}-m{machine}-spec-{i}"
        d.mkdir(parents=True)
        (d / "README.md").write_text(
            f"---\nstatus: planned\npriority: {['low', 'medium', 'high'][i % 3]}\n"
            f"created: '2025-01-01'\ntags:\n- m{machine}\n- t{i % 7}\n---\n\n"
            f"# Spec {i} of machine {machine}\n\nBody {i}.\n")


def archive(root: Path, machine: int, i: int):
    f = root / "specs" / f"{i + 1:05d}-m{machine}-spec-{i}" / "README.md"
    tmp = f.with_name(".README.md.tmp")
    tmp.write_text(f.read_text().replace("status: planned", "status: archived", 1))
    os.replace(tmp, f)


def proc_stats(pid: int):
    rss = 0
    with open(f"/proc/{pid}/status") as s:
        for line in s:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    with open(f"/proc/{pid}/stat") as s:
        fields = s.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK
    return rss / 1024.0, cpu


class Watch(threading.Thread):
    """Reads one machine's `events --json` and notes when it has seen `want` distinct
    specs archived."""

    def __init__(self, home: Path, want: int):
        super().__init__(daemon=True)
        env = dict(os.environ, LEANSPEC_PEER_HOME=str(home))
        self.proc = subprocess.Popen([BIN, "events", "--json"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        self.want = want
        self.seen = set()
        self.done_at = None
        self.lines = 0

    def run(self):
        for line in self.proc.stdout:
            self.lines += 1
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("event") == "spec_changed" and \
                    e.get("values", {}).get("status") == "archived":
                self.seen.add((e["machine"], e["spec"]))
                if len(self.seen) >= self.want and self.done_at is None:
                    self.done_at = time.monotonic()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def until(what: str, check):
    """Polls `check` (one round asks every machine once) until true or WAIT: seconds
    elapsed and the longest round."""
    start = time.monotonic()
    longest = 0.0
    while True:
        r0 = time.monotonic()
        done = check()
        longest = max(longest, time.monotonic() - r0)
        if done:
            return time.monotonic() - start, longest
        if time.monotonic() - start > WAIT:
            raise RuntimeError(f"{what}: not within {WAIT} s")


def run(n: int):
    tmp = Path(tempfile.mkdtemp(prefix=f"lsp-scale{n}-"))
    homes = [tmp / f"h{i}" for i in range(n)]
    projects = [tmp / f"p{i}" for i in range(n)]
    for i, p in enumerate(projects):
        generate(p, i)
    procs = []

    def up(i: int, key=None):
        env = dict(os.environ, LEANSPEC_PEER_HOME=str(homes[i]), LEANSPEC_PEER_LOG=os.environ.get("SCALE_LOG", "warn"))
        args = [BIN, "up", "--bind", "127.0.0.1:0", "--no-ui", "--label", f"m{i:02d}",
                "--project", str(projects[i])]
        if key:
            args += ["--authkey", key]
        log = open(tmp / f"up{i}.log", "w")
        p = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log)
        procs.append(p)
        deadline = time.monotonic() + 120
        while "Ctrl-C to stop" not in (tmp / f"up{i}.log").read_text():
            if p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"up {i} did not start: {(tmp / f'up{i}.log').read_text()}")
            time.sleep(0.05)

    ok = False
    try:
        up(0)
        key = cli(homes[0], "invite", "--reusable", "--ttl", "1h").strip()
        t0 = time.monotonic()
        for i in range(1, n):
            up(i, key)
        started = time.monotonic() - t0
        print(f"({n} machines started in {started:.1f} s)", file=sys.stderr, flush=True)

        def everyone_holds_everything():
            for h in homes:
                rows = cli_json(h, "machines")
                if len(rows) != n or any(r["specs"] != SPECS for r in rows):
                    return False
            return True

        converge, round1 = until("convergence", everyone_holds_everything)
        converge += started
        print(f"({n} machines: everyone holds everything after {converge:.1f} s)", file=sys.stderr, flush=True)
        # "Everyone holds everything" is read from documents; sessions may still be
        # sending (whole documents to third parties, acknowledgements). The storm starts
        # once the mesh is quiet: loopback under QUIET bytes/s per process (keepalives
        # are ~3 KiB/s per process at 50 machines), bounded.
        quiet = 0.0
        if NETNS:
            q0 = time.monotonic()
            while True:
                b0 = lo_bytes()
                time.sleep(5)
                if (lo_bytes() - b0) / 5 < QUIET * n:
                    break
                if time.monotonic() - q0 > WAIT:
                    raise RuntimeError(f"the mesh was not quiet within {WAIT} s")
            quiet = time.monotonic() - q0
            print(f"({n} machines: quiet {quiet:.1f} s after that)", file=sys.stderr, flush=True)
        idle = [proc_stats(p.pid) for p in procs]
        cpu_converge = sum(c for _, c in idle)
        watches = [Watch(h, STORM * n) for h in homes]
        for w in watches:
            w.start()
        # The streams are live once each prints a line: machine 0 changes one spec
        # that is not part of the storm, and every stream must show it (bounded).
        f = projects[0] / "specs" / f"{SPECS:05d}-m0-spec-{SPECS - 1}" / "README.md"
        staged = f.with_name(".README.md.tmp")
        staged.write_text(re.sub(r"priority: \w+", "priority: critical", f.read_text(), count=1))
        os.replace(staged, f)
        deadline = time.monotonic() + 120
        while any(w.lines == 0 for w in watches):
            if time.monotonic() > deadline:
                raise RuntimeError("an events stream printed nothing within 120 s")
            time.sleep(0.05)
        perf = None
        if os.environ.get("SCALE_PERF"):
            # Every process on both cores over the storm (`perf report --sort comm,dso,sym`).
            perf = subprocess.Popen(["perf", "record", "-a", "-F", "499", "--call-graph",
                                     os.environ.get("SCALE_PERF_GRAPH", "dwarf,16384"), "-o",
                                     os.environ["SCALE_PERF"]],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        t_storm = time.monotonic()
        bytes0 = lo_bytes()
        for i, p in enumerate(projects):
            for j in range(STORM):
                archive(p, i, j)
        written = time.monotonic() - t_storm
        while any(w.done_at is None for w in watches):
            if time.monotonic() - t_storm > WAIT:
                raise RuntimeError(f"storm: not within {WAIT} s")
            time.sleep(0.02)
        storm = max(w.done_at for w in watches) - t_storm
        storm_bytes = lo_bytes() - bytes0
        if perf:
            perf.send_signal(2)
            perf.wait(timeout=120)
        for w in watches:
            w.stop()
        for h in homes:
            got = len(cli_json(h, "specs", "--status", "archived"))
            if got != STORM * n:
                raise RuntimeError(f"events said done, but specs lists {got} archived")
        bytes1 = lo_bytes()
        time.sleep(10)
        idle_bytes = lo_bytes() - bytes1
        after = [proc_stats(p.pid) for p in procs]
        rss = sorted(r for r, _ in after)
        cpu_idle = sum(c for _, c in after) - sum(c for _, c in idle)
        print(f"| {n} | {SPECS} | {converge:.1f} s (poll round {round1:.1f} s) | "
              f"{storm:.2f} s (files written in {written:.2f} s) | "
              f"median {rss[len(rss) // 2]:.1f} MB, max {rss[-1]:.1f} MB | "
              f"{cpu_converge / n:.2f} s per process until converged and quiet (quiet {quiet:.0f} s later); "
              f"{cpu_idle / n:.2f} s per process over the storm + 10 s | "
              f"{wire(storm_bytes / (STORM * n))} per change; idle {wire(idle_bytes / 10 / n)}/s per process |",
              flush=True)
        ok = True
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        keep = os.environ.get("SCALE_KEEP")
        if (ok and keep != "always") or not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp} (SCALE_KEEP)", file=sys.stderr)


def wire(b: float) -> str:
    if not NETNS:
        return "n/a (SCALE_NETNS=0)"
    return f"{b / 1024:.1f} KiB" if b >= 1024 else f"{b:.0f} B"


def main():
    if not NETNS and os.environ.get("SCALE_NETNS") != "0" and os.geteuid() == 0:
        # A namespace of our own: its loopback carries the mesh's bytes only.
        env = dict(os.environ, SCALE_IN_NETNS="1")
        cmd = f"ip link set lo up && exec {sys.executable} {os.path.abspath(__file__)}"
        os.execvpe("unshare", ["unshare", "-n", "--", "sh", "-c", cmd], env)
    if not Path(BIN).exists():
        sys.exit(f"{BIN} is missing: build it first (cargo build --release -p leanspec-peer)")
    print(f"binary {BIN}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    print("| machines | specs each | everyone holds everything (from the first start) | "
          "storm of 10 changes per machine visible everywhere | RSS per process after | CPU | "
          "wire bytes |")
    print("|---|---|---|---|---|---|---|")
    for n in SIZES:
        run(n)


if __name__ == "__main__":
    main()
