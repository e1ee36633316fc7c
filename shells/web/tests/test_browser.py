"""The web UI in a real browser: headless Debian Chromium driven by Playwright against
real `leanspec-peer up` processes paired on 127.0.0.1.

Run by scripts/test-web.sh. Environment: LEANSPEC_PEER_BIN (the binary under test),
LEANSPEC_CORPUS (the LeanSpec specs folder), CHROMIUM (default /usr/bin/chromium),
LEANSPEC_SCREENSHOTS (a folder: the board and machines pages are saved there as PNG).
"""

import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "python"))
from peer_procs import Up, cli, cli_json, eventually  # noqa: E402

CORPUS = Path(os.environ["LEANSPEC_CORPUS"])
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SHOTS = os.environ.get("LEANSPEC_SCREENSHOTS")
UI_WAIT_MS = 20_000

XSS_TITLE = "<img src=x onerror=alert(1)> Hostile <script>alert(2)</script>"


def spec_text(status: str, title: str, priority: str = "high", extra: str = "", body: str = "") -> str:
    return (
        f"---\nstatus: {status}\npriority: {priority}\ncreated: '2025-01-01'\n{extra}---\n\n"
        f"# {title}\n\n{body or f'Body of {title}.'}\n"
    )


def write(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".README.md.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def set_field(path: Path, key: str, value: str):
    """Changes one frontmatter line in place, as an editor would."""
    text = path.read_text()
    new, n = re.subn(rf"(?m)^{key}:.*$", f"{key}: {value}", text, count=1)
    assert n == 1, f"{path} has no {key}"
    write(path, new)


def frontmatter_field(path: Path, key: str):
    m = re.search(rf"(?m)^{key}:\s*(.*)$", path.read_text())
    return m.group(1).strip().strip("'\"") if m else None


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """alpha holds the LeanSpec corpus plus a hostile spec; beta a small project; gamma
    (to be revoked from the page) nothing much. All three in one mesh."""
    tmp = tmp_path_factory.mktemp("fleet")
    homes = {l: tmp / f"home-{l}" for l in ("alpha", "beta", "gamma")}
    projects = {l: tmp / f"proj-{l}" for l in ("alpha", "beta", "gamma")}
    shutil.copytree(CORPUS, projects["alpha"] / "specs")
    write(projects["alpha"] / "specs" / "900-hostile" / "README.md", spec_text(
        "planned", XSS_TITLE,
        body="<script>alert(3)</script>\n\n<img src=x onerror=alert(4)>\n\n[click](javascript:alert(5))\n",
    ))
    write(projects["alpha"] / "specs" / "901-checklist" / "README.md", spec_text(
        "in-progress", "Checklist", body="- [ ] first\n- [x] second\n- [ ] third\n"))
    # beta and gamma share a project (same name, no git origin: one fleet project) whose
    # spec 001-shared differs between them.
    projects["beta"] = tmp / "beta" / "shared"
    projects["gamma"] = tmp / "gamma" / "shared"
    write(projects["beta"] / "specs" / "001-beta" / "README.md", spec_text("planned", "Beta"))
    write(projects["beta"] / "specs" / "002-shared" / "README.md", spec_text("planned", "Shared"))
    write(projects["gamma"] / "specs" / "002-shared" / "README.md", spec_text("complete", "Shared"))
    ups = {}
    try:
        for l in ("alpha", "beta", "gamma"):
            ups[l] = Up(homes[l], projects[l], l, ui=True)
        for joiner in ("alpha", "gamma"):
            ticket = cli(homes["beta"], "invite")
            assert ticket.returncode == 0, ticket.stderr
            joined = cli_json(homes[joiner], "join", ticket.stdout.strip())
            assert joined["inviter_label"] == "beta"
        alpha_specs = len(cli_json(homes["alpha"], "specs", "--machine", "alpha"))
        assert alpha_specs >= 300
        eventually("beta holds alpha's specs",
                   lambda: len(cli_json(homes["beta"], "specs", "--machine", "alpha")) == alpha_specs)
        yield {"homes": homes, "projects": projects, "ups": ups, "alpha_specs": alpha_specs}
    finally:
        for u in ups.values():
            u.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
        ])
        yield b
        b.close()


@pytest.fixture
def page(browser, fleet):
    ctx = browser.new_context(viewport={"width": 1500, "height": 950})
    pg = ctx.new_page()
    pg.problems = []
    pg.on("dialog", lambda d: (pg.problems.append(f"dialog: {d.message}"), d.dismiss()))
    pg.on("pageerror", lambda e: pg.problems.append(f"page error: {e}"))
    # A 503 for an offline machine's body is an answer the page shows, not a problem.
    pg.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load resource")
          and pg.problems.append(f"console: {m.text}"))
    pg.goto(fleet["ups"]["beta"].login_url())
    pg.wait_for_selector("body[data-ready=true]", timeout=UI_WAIT_MS)
    yield pg
    if pg.problems:
        print("browser problems:", pg.problems)
    ctx.close()


def card(page: Page, name: str):
    return page.locator(f".card[data-key$='|{name}']")


def machine_id(fleet, label: str) -> str:
    rows = cli_json(fleet["homes"]["beta"], "machines")
    return next(r["id"] for r in rows if r["label"] == label)


def switch_to(page: Page, fleet, label: str):
    page.select_option("#machine-switcher", machine_id(fleet, label))


def assert_board_holds(page: Page, total: int):
    """Every spec counted in a column; the first 100 of each drawn, the rest on request."""
    counts = [int(c) for c in page.locator(".column .count").all_inner_texts()]
    assert sum(counts) == total, counts
    assert page.locator(".card").count() == sum(min(c, 100) for c in counts)
    big = page.locator(".column").filter(has=page.locator("button.more:visible")).first
    if any(c > 100 for c in counts):
        before = big.locator(".card").count()
        big.locator("button.more").click()
        assert big.locator(".card").count() > before


def test_board_of_another_machine_is_live_and_editable(page, fleet):
    alpha_dir = fleet["projects"]["alpha"] / "specs"
    page.click("#nav a[data-view='/board']")
    switch_to(page, fleet, "alpha")
    expect(page.locator("h1")).to_contain_text(f"{fleet['alpha_specs']} specs on alpha", timeout=UI_WAIT_MS)
    assert_board_holds(page, fleet["alpha_specs"])
    # The selection survives a reload.
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("h1")).to_contain_text("on alpha", timeout=UI_WAIT_MS)
    assert_board_holds(page, fleet["alpha_specs"])
    assert page.locator("#machine-switcher").input_value() == machine_id(fleet, "alpha")
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / "board.png"))

    # A file saved on alpha moves the card on beta's open page (no reload).
    target = "001-typescript-cli-migration"
    readme = alpha_dir / target / "README.md"
    now = frontmatter_field(readme, "status")
    new = "in-progress" if now != "in-progress" else "planned"
    page.evaluate("window.__marker = 1")
    started = time.monotonic()
    set_field(readme, "status", new)
    expect(page.locator(f".column[data-status='{new}'] .card[data-key$='|{target}']")).to_have_count(
        1, timeout=UI_WAIT_MS)
    print(f"file save on alpha -> card moved on beta's page: {(time.monotonic() - started) * 1000:.0f} ms")
    assert page.evaluate("window.__marker") == 1, "the page was not reloaded"

    # Drag a card to another column: alpha's file changes, only the touched lines.
    moved = "002-template-system-redesign"
    readme = alpha_dir / moved / "README.md"
    before = readme.read_text()
    to = "archived" if frontmatter_field(readme, "status") != "archived" else "planned"
    card(page, moved).drag_to(page.locator(f".column[data-status='{to}']"))
    eventually("alpha's file has the dragged status", lambda: frontmatter_field(readme, "status") == to)
    after = readme.read_text()
    assert after.split("\n---\n", 1)[1] == before.split("\n---\n", 1)[1], "the body is untouched"
    gone = [l for l in before.splitlines() if l not in after.splitlines()]
    assert all(re.match(r"^(status|updated_at|completed_at):", l) for l in gone), gone
    # The status line, and one transition appended.
    assert after.count(f"status: {to}") == before.count(f"status: {to}") + 2, after
    expect(page.locator(f".column[data-status='{to}'] .card[data-key$='|{moved}']")).to_have_count(
        1, timeout=UI_WAIT_MS)
    expect(page.locator("#toast")).to_contain_text("Applied on alpha")
    assert page.problems == [], page.problems


def test_stale_edit_shows_the_conflict_dialog(page, fleet):
    name = "003-init-system-redesign"
    readme = fleet["projects"]["alpha"] / "specs" / name / "README.md"
    set_field(readme, "priority", "low")
    alpha = machine_id(fleet, "alpha")
    project = cli_json(fleet["homes"]["alpha"], "project", "list")[0]["id"]
    eventually("beta sees priority low",
               lambda: cli_json(fleet["homes"]["beta"], "show", "--machine", "alpha", project,
                                name)["priority"] == "low")
    page.goto(f"{fleet['ups']['beta'].ui}/spec?m={alpha}&project={project}&spec={name}")
    page.wait_for_selector("#edit-form select[name=priority]")
    page.select_option("#edit-form select[name=priority]", "critical")
    # Someone changes the file on alpha between page load and submit.
    set_field(readme, "priority", "medium")
    expect(page.locator("#notice")).to_contain_text("changed", timeout=UI_WAIT_MS)
    page.click("#save")
    dialog = page.locator("dialog.conflict")
    expect(dialog).to_be_visible(timeout=UI_WAIT_MS)
    expect(dialog.locator("tr[data-field=priority] td.now")).to_have_text("medium")
    assert frontmatter_field(readme, "priority") == "medium", "nothing written on a stale edit"
    page.click("#apply-current")
    eventually("alpha's file has the applied priority", lambda: frontmatter_field(readme, "priority") == "critical")
    expect(page.locator("#toast")).to_contain_text("Applied on alpha", timeout=UI_WAIT_MS)
    audit = cli_json(fleet["homes"]["alpha"], "audit")
    assert any(r["spec"] == name and r["result"] == "rejected" and r["reason"] == "stale" for r in audit)
    assert any(r["spec"] == name and r["result"] == "applied" for r in audit)
    page.goto(f"{fleet['ups']['beta'].ui}/activity")
    expect(page.locator("#audit tr.audit.rejected").first).to_be_visible(timeout=UI_WAIT_MS)
    assert page.problems == [], page.problems


def test_every_machine_in_one_list_with_differences_marked(page, fleet):
    page.goto(f"{fleet['ups']['beta'].ui}/specs?m=all")
    page.wait_for_selector("#spec-list")
    # Every spec counted, the first 200 rows drawn, the rest on request.
    total = int(page.locator("h1 .muted").inner_text())
    assert total > 300, total
    expect(page.locator("#spec-list tr.spec")).to_have_count(200)
    page.click("#spec-list tr.more-row button")
    expect(page.locator("#spec-list tr.spec")).to_have_count(min(total, 400))
    page.goto(f"{fleet['ups']['beta'].ui}/specs?m=all&q=shared%20OR%20beta")
    page.wait_for_selector("#spec-list")
    shared = page.locator("#spec-list tr.spec[data-key$='|002-shared']")
    expect(shared).to_have_count(2, timeout=UI_WAIT_MS)
    expect(shared.locator(".differs")).to_have_count(2)
    expect(page.locator("#spec-list tr.spec[data-key$='|001-beta'] .differs")).to_have_count(0)
    # Filters from the form land in the URL (a deep link) and apply.
    page.select_option("#filters select[name=status]", "complete")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"status=complete"))
    status_cells = page.locator("#spec-list tr.spec td:nth-child(3)")
    expect(status_cells.filter(has_not_text="complete")).to_have_count(0, timeout=UI_WAIT_MS)
    assert status_cells.count() > 0
    # Projects: alpha's with its count.
    page.goto(f"{fleet['ups']['beta'].ui}/projects")
    expect(page.locator("#projects tbody tr").filter(has_text="proj-alpha").locator("td").last).to_have_text(
        str(fleet["alpha_specs"]), timeout=UI_WAIT_MS)
    assert page.problems == [], page.problems


def test_completing_with_open_checklist_items_asks_first(page, fleet):
    readme = fleet["projects"]["alpha"] / "specs" / "901-checklist" / "README.md"
    alpha = machine_id(fleet, "alpha")
    project = cli_json(fleet["homes"]["alpha"], "project", "list")[0]["id"]
    page.goto(f"{fleet['ups']['beta'].ui}/spec?m={alpha}&project={project}&spec=901-checklist")
    expect(page.locator("#spec-body .markdown input[type=checkbox]")).to_have_count(3, timeout=UI_WAIT_MS)
    page.select_option("#edit-form select[name=status]", "complete")
    page.click("#save")
    expect(page.locator("dialog.confirm")).to_contain_text("2 checklist items are not checked")
    page.click("#confirm-no")
    assert frontmatter_field(readme, "status") == "in-progress"
    page.click("#save")
    page.click("#confirm-yes")
    eventually("alpha's file is complete", lambda: frontmatter_field(readme, "status") == "complete")
    assert page.problems == [], page.problems


def test_hostile_strings_render_as_text(page, fleet):
    alpha = machine_id(fleet, "alpha")
    project = cli_json(fleet["homes"]["alpha"], "project", "list")[0]["id"]
    page.goto(f"{fleet['ups']['beta'].ui}/spec?m={alpha}&project={project}&spec=900-hostile")
    expect(page.locator("#spec-title")).to_have_text(XSS_TITLE, timeout=UI_WAIT_MS)
    expect(page.locator("#spec-body .markdown")).to_contain_text("<script>alert(3)</script>", timeout=UI_WAIT_MS)
    assert page.locator("img[onerror]").count() == 0
    assert page.locator("#view script").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0
    page.goto(f"{fleet['ups']['beta'].ui}/board?m={alpha}&q=hostile")
    expect(card(page, "900-hostile").locator(".title")).to_have_text(XSS_TITLE, timeout=UI_WAIT_MS)
    page.wait_for_timeout(300)  # give a would-be onerror handler its chance to fire
    assert page.problems == [], page.problems


def test_machines_page_rename_revoke_and_offline(page, fleet):
    homes = fleet["homes"]
    page.click("#nav a[data-view='/machines']")
    page.select_option("#machine-switcher", "all")
    expect(page.locator("#machines tr.machine")).to_have_count(3, timeout=UI_WAIT_MS)
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / "machines.png"), full_page=True)
    gamma = machine_id(fleet, "gamma")
    row = page.locator(f"#machines tr.machine[data-id='{gamma}']")
    row.locator("button.rename").click()
    row.locator("input.rename-input").fill("gamma-ci")
    row.locator("form button[type=submit]").click()
    eventually("alpha knows gamma's new label",
               lambda: any(r["label"] == "gamma-ci" for r in cli_json(homes["alpha"], "machines")))
    # Invite with a QR code.
    page.click("text=Create invitation")
    expect(page.locator("#invite-result textarea.ticket")).not_to_be_empty(timeout=UI_WAIT_MS)
    expect(page.locator("#invite-result img.qr")).to_be_visible()
    # Revoke, confirmed in a dialog; alpha learns it.
    page.locator(f"#machines tr.machine[data-id='{gamma}'] button.revoke").click()
    page.click("#confirm-revoke")
    eventually("alpha sees gamma revoked",
               lambda: any(r["id"] == gamma and r["revoked"] for r in cli_json(homes["alpha"], "machines")))
    # alpha stops: shown offline, its edit controls disabled with "unavailable".
    fleet["ups"]["alpha"].stop()
    alpha = machine_id(fleet, "alpha")
    expect(page.locator(f"#machines tr.machine[data-id='{alpha}'] .presence")).to_have_text(
        "offline", timeout=UI_WAIT_MS)
    project = cli_json(homes["alpha"], "project", "list")[0]["id"]
    page.goto(f"{fleet['ups']['beta'].ui}/spec?m={alpha}&project={project}&spec=001-typescript-cli-migration")
    expect(page.locator("#unavailable")).to_contain_text("unavailable", timeout=UI_WAIT_MS)
    assert page.locator("#edit-form select[name=status]").is_disabled()
    assert page.locator("#save").count() == 0
    # The body: the copy kept from an earlier read, or "unavailable".
    expect(page.locator("#cached-note, #body-unavailable")).to_be_visible(timeout=UI_WAIT_MS)
    assert page.problems == [], page.problems
