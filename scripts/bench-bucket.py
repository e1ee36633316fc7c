#!/usr/bin/env python3
"""Bucket benchmark (issue 17), with the release `leanspec-peer` and a real S3 server
(`s3s-fs`, as the tests use) on 127.0.0.1. Reports:

- the bytes one machine uploads for a one-field change (a spec's status saved, `scan`,
  `bucket sync`), over CHANGES changes;
- the time a fresh member takes to catch up from a bucket holding SPECS specs of another
  machine (`bucket sync` on a member that paired before those specs existed and never
  synced since), over RUNS runs.

    LEANSPEC_PEER_BIN=target/release/leanspec-peer python3 scripts/bench-bucket.py

Environment: SPECS (10000), RUNS (3), CHANGES (20), S3S_FS (~/.cargo/bin/s3s-fs).
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = os.environ.get("LEANSPEC_PEER_BIN", "target/release/leanspec-peer")
S3S = os.environ.get("S3S_FS", str(Path.home() / ".cargo/bin/s3s-fs"))
SPECS = int(os.environ.get("SPECS", "10000"))
RUNS = int(os.environ.get("RUNS", "3"))
CHANGES = int(os.environ.get("CHANGES", "20"))
KEY, SECRET, BUCKET = "bench-key", "bench-secret-0123456789", "bench"
CREDS = {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}


def cli(home: Path, *args: str, creds=False):
    env = dict(os.environ, LEANSPEC_PEER_HOME=str(home))
    if creds:
        env.update(CREDS)
    out = subprocess.run([BIN, *args], env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{args}: {out.stdout.strip()} {out.stderr.strip()}")
    return out.stdout


def cli_json(home: Path, *args: str, creds=False):
    return json.loads(cli(home, *args, "--json", creds=creds))


def spec_text(i: int, status: str) -> str:
    return (f"---\nstatus: {status}\npriority: {['low', 'medium', 'high'][i % 3]}\n"
            f"created: '2025-01-01'\ntags:\n- t{i % 7}\n---\n\n# Spec {i}\n\nBody {i}.\n")


def generate(root: Path, n: int):
    for i in range(n):
        d = root / "specs" / f"{i + 1:05d}-spec-{i}"
        d.mkdir(parents=True)
        (d / "README.md").write_text(spec_text(i, "planned"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def up(tmp: Path, home: Path, label: str, procs: list):
    env = dict(os.environ, LEANSPEC_PEER_HOME=str(home), LEANSPEC_PEER_LOG="warn", **CREDS)
    log = tmp / f"{label}.log"
    p = subprocess.Popen([BIN, "up", "--bind", "127.0.0.1:0", "--no-ui", "--label", label],
                         env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    procs.append(p)
    deadline = time.monotonic() + 60
    while "Ctrl-C to stop" not in log.read_text():
        if p.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"up {label}: {log.read_text()}")
        time.sleep(0.05)
    return p


def stop(p):
    p.terminate()
    p.wait(timeout=30)


def run_once(first: bool):
    tmp = Path(tempfile.mkdtemp(prefix="lsp-bucket-"))
    root = tmp / "s3"
    (root / BUCKET).mkdir(parents=True)
    port = free_port()
    s3 = subprocess.Popen([S3S, "--host", "127.0.0.1", "--port", str(port), "--access-key", KEY,
                           "--secret-key", SECRET, str(root)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = []
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        a, b = tmp / "a", tmp / "b"
        # Paired while A has no specs: B's copy of A's document stays empty.
        pa = up(tmp, a, "a", procs)
        pb = up(tmp, b, "b", procs)
        ticket = cli(a, "invite").strip()
        cli(b, "join", ticket)
        url = f"s3://{BUCKET}/mesh"
        cli(a, "bucket", "add", url, "--endpoint", f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while not cli_json(b, "bucket", "list"):
            if time.monotonic() > deadline:
                raise RuntimeError("B never got the bucket")
            time.sleep(0.1)
        stop(pa)
        stop(pb)
        project = tmp / "project"
        generate(project, SPECS)
        cli(a, "project", "add", str(project))
        rounds = cli_json(a, "bucket", "sync", creds=True)
        a_bytes = cli_json(a, "bucket", "status")[0]["state"]["bytes_pushed"]
        t0 = time.monotonic()
        got = cli_json(b, "bucket", "sync", creds=True)
        catch_up = time.monotonic() - t0
        a_id = cli_json(a, "status")["machine"]["id"]
        held = [r for r in cli_json(b, "machines") if r["id"] == a_id][0]["specs"]
        if held != SPECS:
            raise RuntimeError(f"B holds {held} of A's {SPECS} specs: {got}")
        sizes, push_times = [], []
        if first:
            for k in range(CHANGES):
                f = project / "specs" / f"{k + 1:05d}-spec-{k}" / "README.md"
                f.write_text(spec_text(k, "complete" if k % 2 == 0 else "in-progress"))
                cli(a, "scan")
                t1 = time.monotonic()
                r = cli_json(a, "bucket", "sync", creds=True)
                push_times.append(time.monotonic() - t1)
                sizes.append(r[0]["pushed"][2])
        return catch_up, a_bytes, sizes, push_times, rounds
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        s3.kill()
        s3.wait()


def main():
    catch_ups, sizes, times = [], [], []
    stored = 0
    for i in range(RUNS):
        c, stored, s, t, _ = run_once(i == 0)
        catch_ups.append(c)
        sizes += s
        times += t
        print(f"run {i + 1}: fresh member caught up with {SPECS} specs in {c:.2f} s "
              f"(the bucket held {stored} bytes of A's objects)", file=sys.stderr)
    print(f"| specs | catch-up median | runs | A's objects | one-field change: bytes median (min-max) | `bucket sync` push median |")
    print("|---|---|---|---|---|---|")
    print(f"| {SPECS} | {statistics.median(catch_ups):.2f} s | "
          f"{', '.join(f'{c:.2f}' for c in catch_ups)} s | {stored} B | "
          f"{statistics.median(sizes):.0f} B ({min(sizes)}-{max(sizes)}) over {len(sizes)} | "
          f"{statistics.median(times) * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
