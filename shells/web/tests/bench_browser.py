"""Benchmark of the web UI as users get it: three `up` processes (the README's release
build) with 10,000 specs between them, beta's UI in headless Chromium.

Reports (medians and percentiles, printed as Markdown for BENCHMARKS.md):
- server time of `/api/v1/board` for every machine's 10,000 specs, and its size;
- time until the board is rendered in Chromium (navigation start -> the page's ready
  mark, every card in the DOM), and DOMContentLoaded;
- file save on alpha -> the card's title changed in beta's open page, over SAVES saves
  (a MutationObserver in the page stamps the moment; both clocks are this machine's).

Run by scripts/bench-web.sh. Environment: LEANSPEC_PEER_BIN, CHROMIUM, SAVES (100),
SPECS (10000).
"""

import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "python"))
from peer_procs import Up, cli, cli_json, eventually  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SAVES = int(os.environ.get("SAVES", "100"))
SPECS = int(os.environ.get("SPECS", "10000"))
STATUSES = ["draft", "planned", "in-progress", "complete", "archived"]
PRIORITIES = ["low", "medium", "high", "critical"]


def write_specs(project: Path, count: int, label: str):
    for i in range(count):
        d = project / "specs" / f"{i + 1:05d}-{label}-spec-{i}"
        d.mkdir(parents=True)
        (d / "README.md").write_text(
            f"---\nstatus: {STATUSES[i % 5]}\npriority: {PRIORITIES[i % 4]}\n"
            f"tags: [t{i % 17}, {label}]\ncreated: '2025-01-01'\n---\n\n# {label} spec {i}\n\nBody {i}.\n"
        )


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def line(name, xs, unit="ms"):
    return (f"| {name} | {len(xs)} | {statistics.median(xs):.1f} | {pct(xs, 90):.1f} | "
            f"{pct(xs, 99):.1f} | {max(xs):.1f} | {unit} |")


def main():
    tmp = Path(tempfile.mkdtemp(prefix="bench-web-"))
    labels = ("alpha", "beta", "gamma")
    per = SPECS // 3
    counts = {"alpha": per, "beta": per, "gamma": SPECS - 2 * per}
    homes = {l: tmp / f"home-{l}" for l in labels}
    projects = {l: tmp / f"proj-{l}" for l in labels}
    for l in labels:
        write_specs(projects[l], counts[l], l)
    ups = {}
    try:
        for l in labels:
            ups[l] = Up(homes[l], projects[l], l, ui=(l == "beta"))
        for joiner in ("alpha", "gamma"):
            ticket = cli(homes["beta"], "invite")
            assert ticket.returncode == 0, ticket.stderr
            cli_json(homes[joiner], "join", ticket.stdout.strip())
        eventually("beta holds every spec", lambda: len(cli_json(homes["beta"], "specs")) == SPECS)
        beta = ups["beta"]
        alpha_id = next(r["id"] for r in cli_json(homes["beta"], "machines") if r["label"] == "alpha")

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
            ])
            ctx = browser.new_context(viewport={"width": 1500, "height": 950})
            page = ctx.new_page()
            page.goto(beta.login_url())
            page.wait_for_selector("body[data-ready=true]")
            cookie = next(c for c in ctx.cookies() if c["name"].startswith("lsp_session"))
            header = f"{cookie['name']}={cookie['value']}"

            # Server: the board of every machine.
            server, size = [], 0
            for _ in range(20):
                req = urllib.request.Request(f"{beta.ui}/api/v1/board?group_by=status",
                                             headers={"Cookie": header})
                t0 = time.perf_counter()
                with urllib.request.urlopen(req, timeout=60) as r:
                    body = r.read()
                server.append((time.perf_counter() - t0) * 1000)
                size = len(body)

            # Browser: navigation -> every card rendered.
            page.evaluate("localStorage.setItem('lsp.machine', 'all')")
            render, dcl, drawn = [], [], 0
            for _ in range(10):
                page.goto(f"{beta.ui}/board")
                page.wait_for_selector("body[data-ready=true]", timeout=120_000)
                n = sum(int(c) for c in page.locator(".column .count").all_inner_texts())
                assert n == SPECS, n
                drawn = page.locator(".card").count()
                t = page.evaluate("""() => {
                    const nav = performance.getEntriesByType('navigation')[0];
                    return [performance.now(), nav.domContentLoadedEventEnd];
                }""")
                render.append(t[0])
                dcl.append(t[1])

            # Where the render time goes: the board's JSON fetched and parsed in the page.
            fetch_parse = []
            for _ in range(10):
                fetch_parse.append(page.evaluate("""async () => {
                    const t0 = performance.now();
                    const r = await fetch('/api/v1/board?group_by=status');
                    const j = await r.json();
                    return performance.now() - t0 + (j.columns.length ? 0 : 1);
                }"""))

            # Live: a file saved on alpha -> the card's title in beta's page.
            project = cli_json(homes["alpha"], "project", "list")[0]["id"]
            live = []
            for i in range(SAVES):
                n = i % per
                name = f"{n + 1:05d}-alpha-spec-{n}"
                key = f"{alpha_id}|{project}|{name}"
                title = f"alpha bench {i}"
                page.evaluate("""([key, title]) => {
                    window.__seen = 0;
                    const find = () => document.querySelector(`.card[data-key="${CSS.escape(key)}"] .title`);
                    const obs = new MutationObserver(() => {
                        const el = find();
                        if (el && el.textContent === title) {
                            window.__seen = performance.timeOrigin + performance.now();
                            obs.disconnect();
                        }
                    });
                    obs.observe(document.getElementById('board'), { childList: true, subtree: true, characterData: true });
                }""", [key, title])
                readme = projects["alpha"] / "specs" / name / "README.md"
                text = readme.read_text().split("\n# ", 1)[0] + f"\n# {title}\n\nBody {n}.\n"
                tmpf = readme.with_name(".README.md.tmp")
                tmpf.write_text(text)
                t0 = time.time() * 1000
                os.replace(tmpf, readme)
                page.wait_for_function("() => window.__seen > 0", timeout=30_000)
                live.append(page.evaluate("window.__seen") - t0)
            browser.close()
    finally:
        for u in ups.values():
            u.stop()

    print(f"\nWeb UI, {SPECS} specs on 3 machines (beta's UI, headless Chromium); board JSON {size / 1e6:.1f} MB\n")
    print("| what | n | p50 | p90 | p99 | max | unit |")
    print("|---|---|---|---|---|---|---|")
    print(line("server: GET /api/v1/board (every machine)", server))
    print(line("browser: fetch + JSON.parse of the board in the page", fetch_parse))
    print(line("browser: navigation -> DOMContentLoaded", dcl))
    print(line(f"browser: navigation -> board rendered ({drawn} cards drawn, 100 per column)", render))
    print(line("file save on alpha -> card updated on beta's page", live))


if __name__ == "__main__":
    main()
