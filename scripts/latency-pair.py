#!/usr/bin/env python3
"""Save -> `events --json` line, paired: for each binary given, two `up` processes on
127.0.0.1 (A with 20 specs, B with 1), paired, and `events --json` on B; saves alternate
between the setups (A's file renamed over, as editors save), so every build sees the same
minute of this shared, noisy machine. Prints p50/p90/p99/max per binary.

    N=250 python3 scripts/latency-pair.py OLD_BINARY NEW_BINARY

Needs the LeanSpec corpus at ../shared/corpus/lean-spec-specs (or LEANSPEC_CORPUS).
"""
import os, sys, subprocess, time, json, tempfile, threading, shutil, glob, queue
CORPUS = os.environ.get("LEANSPEC_CORPUS") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../shared/corpus/lean-spec-specs")
tmpl = sorted(glob.glob(CORPUS + "/*/README.md"))
if not tmpl:
    sys.exit("no specs under %s: set LEANSPEC_CORPUS to the LeanSpec corpus" % CORPUS)
if len(sys.argv) < 2:
    sys.exit(__doc__)
N = int(os.environ.get("N", "200"))
def gen(root, n):
    for i in range(n):
        d = os.path.join(root, "specs", "%05d-spec-%d" % (i+1, i)); os.makedirs(d)
        shutil.copy(tmpl[i % len(tmpl)], d + "/README.md")
class Setup:
    def __init__(self, bin, extra=()):
        self.bin = bin
        base = self.base = tempfile.mkdtemp()
        self.pa, pb, self.ha, self.hb = [os.path.join(base, x) for x in "pa pb ha hb".split()]
        for x in (self.ha, self.hb): os.makedirs(x)
        gen(self.pa, 20); gen(pb, 1)
        up = lambda h, p: subprocess.Popen([bin, "up", "--bind", "127.0.0.1:0", "--no-ui", *extra, "--project", p], env=dict(os.environ, LEANSPEC_PEER_HOME=h), stderr=subprocess.DEVNULL)
        self.procs = [up(self.ha, self.pa), up(self.hb, pb)]
        for h in (self.ha, self.hb):
            for _ in range(300):
                if os.path.exists(h + "/control.sock") and self.run(h, "status").returncode == 0: break
                time.sleep(0.05)
        t = self.run(self.ha, "invite").stdout.strip()
        assert self.run(self.hb, "join", t).returncode == 0
        for _ in range(600):
            try:
                if len(json.loads(self.run(self.hb, "specs", "--json").stdout)) >= 21: break
            except Exception: pass
            time.sleep(0.1)
        self.ev = subprocess.Popen([bin, "events", "--json"], env=dict(os.environ, LEANSPEC_PEER_HOME=self.hb), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.procs.append(self.ev)
        self.q = queue.Queue()
        threading.Thread(target=self.reader, daemon=True).start()
        self.names = ["%05d-spec-%d" % (i+1, i) for i in range(20)]
        for w in range(50):
            self.save(self.names[0], 10**6 + w)
            if self.wait(self.names[0]): break
    def run(self, home, *args):
        return subprocess.run([self.bin, *args], env=dict(os.environ, LEANSPEC_PEER_HOME=home), capture_output=True, text=True)
    def reader(self):
        for line in self.ev.stdout: self.q.put((time.perf_counter(), line))
    def save(self, name, i):
        f = os.path.join(self.pa, "specs", name, "README.md")
        lines = [l for l in open(f).read().splitlines() if not l.startswith("saved ")]
        out = "".join(("status: " + ["planned","in-progress","complete"][i%3] if l.startswith("status:") else l) + "\n" for l in lines) + "saved %d\n" % i
        tmp = os.path.join(os.path.dirname(f), ".README.md.tmp")
        open(tmp, "w").write(out)
        t0 = time.perf_counter(); os.rename(tmp, f); return t0
    def wait(self, name):
        dl = time.time() + 10
        while True:
            try: at, line = self.q.get(timeout=max(0.01, dl - time.time()))
            except queue.Empty: return None
            if '"spec_changed"' in line and '"%s"' % name in line: return at
    def one(self, i):
        name = self.names[i % 20]
        t0 = self.save(name, i + 1)
        at = self.wait(name)
        return (at - t0) * 1000 if at else None
    def close(self):
        for p in self.procs:
            p.kill(); p.wait()
        shutil.rmtree(self.base, ignore_errors=True)
bins = sys.argv[1:]
setups = [Setup(b) for b in bins]
res = [[] for _ in bins]
pause = float(os.environ.get("PAUSE", "0.02"))
for i in range(N):
    order = range(len(setups)) if i % 2 == 0 else reversed(range(len(setups)))
    for k in order:
        r = setups[k].one(i)
        if r is not None: res[k].append(r)
        time.sleep(pause)
for s in setups: s.close()
def pct(v, p): v = sorted(v); return v[min(len(v)-1, int(len(v)*p))]
for b, r in zip(bins, res):
    print("%-28s n=%d p50 %.2f p90 %.2f p99 %.2f max %.2f" % (os.path.basename(b), len(r), pct(r,.5), pct(r,.9), pct(r,.99), max(r)))
