"""Remote access from a device that is not a member: an always-on mirror serves the web UI
over HTTPS to a "phone", each in its own network namespace on one bridge (as the NAT test
builds them; addresses from the documentation range 198.51.100.0/24).

    server 198.51.100.10  `up` with no project (a mirror), UI on :8443 with a certificate
                          from a test CA, accounts `ed` (editor) and `vi` (viewer)
    alpha  198.51.100.20  a member with a project; stopped before the phone looks
    beta   198.51.100.30  a member with a project; stays up
    phone  198.51.100.40  headless Chromium trusting the test CA (an NSS database in its
                          own HOME); it can reach the server only

Needs root, iproute2, openssl and certutil (scripts/test-web.sh installs them). The
namespaces exist only for the test and are removed after it.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from test_browser import CHROMIUM, UI_WAIT_MS, frontmatter_field, spec_text, write

from peer_procs import Up, cli, cli_json, eventually

SERVER = "198.51.100.10"
ADDRS = {"server": SERVER, "alpha": "198.51.100.20", "beta": "198.51.100.30", "phone": "198.51.100.40"}
UI = f"https://{SERVER}:8443"
PASSWORDS = {"ed": "editor-password-1", "vi": "viewer-password-1"}


def sh(script: str):
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{script}\n{out.stderr}"


class Net:
    """Namespaces PREFIX_{server,alpha,beta,phone} on a bridge in PREFIX_lan."""

    def __init__(self):
        self.prefix = f"lspw{os.getpid()}"
        p = self.prefix
        lines = [f"ip netns add {p}_lan", f"ip -n {p}_lan link add br0 type bridge",
                 f"ip -n {p}_lan link set br0 up"]
        for i, (name, addr) in enumerate(ADDRS.items()):
            lines += [
                f"ip netns add {p}_{name}", f"ip -n {p}_{name} link set lo up",
                f"ip link add {p}v{i} netns {p}_lan type veth peer name eth0 netns {p}_{name}",
                f"ip -n {p}_lan link set {p}v{i} master br0 up",
                f"ip -n {p}_{name} addr add {addr}/24 dev eth0", f"ip -n {p}_{name} link set eth0 up",
            ]
        try:
            sh("set -e\n" + "\n".join(lines))
        except AssertionError as e:
            self.close()
            raise AssertionError(f"cannot build the test network (needs root and iproute2): {e}")

    def run_in(self, name: str):
        return ["ip", "netns", "exec", f"{self.prefix}_{name}"]

    def close(self):
        for name in ["lan", *ADDRS]:
            subprocess.run(["ip", "netns", "del", f"{self.prefix}_{name}"], capture_output=True)


def make_test_ca(tmp: Path):
    """A CA, and a certificate for the server's address signed by it."""
    sh(f"""set -e; cd {tmp}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \\
  -keyout ca.key -out ca.pem -subj '/CN=leanspec-peer test CA' \\
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ui.key -out ui.csr \\
  -subj '/CN={SERVER}' 2>/dev/null
printf 'subjectAltName=IP:{SERVER}\\nextendedKeyUsage=serverAuth\\nbasicConstraints=CA:FALSE\\n' > ext
openssl x509 -req -in ui.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext \\
  -out ui.pem 2>/dev/null
mkdir -p phone-home/.pki/nssdb
certutil -d sql:phone-home/.pki/nssdb -N --empty-password
certutil -d sql:phone-home/.pki/nssdb -A -t C,, -n leanspec-test-ca -i ca.pem
""")
    return tmp / "ui.pem", tmp / "ui.key", tmp / "phone-home"


def add_account(home: Path, name: str, role: str):
    out = subprocess.run([os.environ["LEANSPEC_PEER_BIN"], "ui-user", "add", name, "--role", role],
                         input=PASSWORDS[name] + "\n", capture_output=True, text=True, timeout=40,
                         env=dict(os.environ, LEANSPEC_PEER_HOME=str(home)))
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("remote")
    net = Net()
    ups = {}
    try:
        cert, key, phone_home = make_test_ca(tmp)
        homes = {n: tmp / f"home-{n}" for n in ("server", "alpha", "beta")}
        projects = {n: tmp / f"proj-{n}" for n in ("alpha", "beta")}
        write(projects["alpha"] / "specs" / "001-alpha" / "README.md", spec_text("planned", "Alpha"))
        write(projects["beta"] / "specs" / "001-beta" / "README.md", spec_text("planned", "Beta"))
        ups["server"] = Up(homes["server"], None, "server", ui=f"{SERVER}:8443",
                           prefix=net.run_in("server"), bind="0.0.0.0:0",
                           extra=["--tls-cert", str(cert), "--tls-key", str(key)])
        assert ups["server"].ui == UI, ups["server"].ui
        for n in ("alpha", "beta"):
            ups[n] = Up(homes[n], projects[n], n, prefix=net.run_in(n), bind="0.0.0.0:0")
            ticket = cli(homes["server"], "invite")
            assert ticket.returncode == 0, ticket.stderr
            assert cli_json(homes[n], "join", ticket.stdout.strip())["inviter_label"] == "server"
        ids = {n: cli_json(homes[n], "status")["machine"]["id"] for n in ("alpha", "beta")}
        project_ids = {n: cli_json(homes[n], "project", "list")[0]["id"] for n in ("alpha", "beta")}
        for n in ("alpha", "beta"):
            eventually(f"the server holds {n}'s spec",
                       lambda n=n: len(cli_json(homes["server"], "specs", "--machine", n)) == 1)
        add_account(homes["server"], "ed", "editor")
        add_account(homes["server"], "vi", "viewer")
        # alpha goes away; the server keeps its last-known state.
        ups["alpha"].stop()
        eventually("the server sees alpha offline", lambda: any(
            m["label"] == "alpha" and not m["online"] for m in cli_json(homes["server"], "machines")))
        # The phone reaches the server's UI and nothing else.
        probe = subprocess.run([*net.run_in("phone"), "timeout", "2", "bash", "-c",
                                f"exec 3<>/dev/tcp/{ADDRS['beta']}/9"], capture_output=True)
        assert probe.returncode != 0
        wrapper = tmp / "chromium-on-the-phone"
        wrapper.write_text(f"#!/bin/sh\nexec {' '.join(net.run_in('phone'))} {CHROMIUM} \"$@\"\n")
        wrapper.chmod(0o755)
        yield {"net": net, "homes": homes, "projects": projects, "ids": ids,
               "project_ids": project_ids, "browser_bin": wrapper, "phone_home": phone_home}
    finally:
        for u in ups.values():
            u.stop()
        net.close()


@pytest.fixture(scope="module")
def phone(site):
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(site["browser_bin"]), headless=True,
            env=dict(os.environ, HOME=str(site["phone_home"])),
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


def log_in(browser, name: str):
    """A fresh context (no certificate exceptions: the test CA must do) logged in by the form."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.problems = []
    page.on("pageerror", lambda e: page.problems.append(f"page error: {e}"))
    # The refusals the tests provoke are logged by the browser; they are answers, not problems.
    page.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load resource")
            and page.problems.append(f"console: {m.text}"))
    page.goto(f"{UI}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORDS[name])
    page.click("button[type=submit]")
    try:
        page.wait_for_selector("body[data-ready=true]", timeout=UI_WAIT_MS)
    except Exception as e:
        raise AssertionError(f"{name} is not logged in: at {page.url}: "
                             f"{page.locator('body').inner_text()[:500]!r} {page.problems}") from e
    expect(page.locator("#account-name")).to_contain_text(name)
    return ctx, page


def spec_url(site, machine: str, spec: str) -> str:
    return f"{UI}/spec?m={site['ids'][machine]}&project={site['project_ids'][machine]}&spec={spec}"


def test_an_editor_on_the_phone_reads_a_stopped_machine_and_edits_a_running_one(phone, site):
    ctx, page = log_in(phone, "ed")
    # alpha is stopped: its specs are shown from the server's copy, edits are unavailable.
    page.goto(f"{UI}/board?m={site['ids']['alpha']}")
    expect(page.locator(".card[data-key$='|001-alpha'] .title")).to_have_text("Alpha", timeout=UI_WAIT_MS)
    page.goto(spec_url(site, "alpha", "001-alpha"))
    expect(page.locator("#spec-title")).to_have_text("Alpha", timeout=UI_WAIT_MS)
    expect(page.locator("#unavailable")).to_contain_text("unavailable", timeout=UI_WAIT_MS)
    assert page.locator("#save").count() == 0
    # beta runs: the edit lands in beta's file, signed by the server for account `ed`.
    readme = site["projects"]["beta"] / "specs" / "001-beta" / "README.md"
    page.goto(spec_url(site, "beta", "001-beta"))
    page.wait_for_selector("#save", timeout=UI_WAIT_MS)
    page.select_option("#edit-form select[name=status]", "in-progress")
    page.click("#save")
    eventually("beta's file has the new status", lambda: frontmatter_field(readme, "status") == "in-progress")
    expect(page.locator("#toast")).to_contain_text("Applied on beta", timeout=UI_WAIT_MS)
    applied = [r for r in cli_json(site["homes"]["beta"], "audit") if r["spec"] == "001-beta"]
    assert [r["account"] for r in applied] == ["ed"], applied
    assert applied[0]["result"] == "applied", applied
    sent = [r for r in cli_json(site["homes"]["server"], "audit") if r["spec"] == "001-beta"]
    assert sent and all(r["account"] == "ed" for r in sent), sent
    # An execution request (editor role), handed to beta's host with the account named.
    verdict = page.evaluate(EXEC, [site["ids"]["beta"], "make test"])
    assert verdict["result"] == "delivered", verdict
    execs = [r for r in cli_json(site["homes"]["beta"], "audit") if r.get("payload") == "make test"]
    assert [(r["kind"], r["account"]) for r in execs] == [("exec_request", "ed")], execs
    assert page.problems == [], page.problems
    ctx.close()


EXEC = """async ([machine, payload]) => {
  const s = await (await fetch('/api/v1/session')).json();
  const r = await fetch('/api/v1/exec', { method: 'POST',
    headers: { 'content-type': 'application/json', 'x-csrf-token': s.csrf },
    body: JSON.stringify({ machine, payload }) });
  return r.json();
}"""


WRITES = """async ([machine, project]) => {
  const s = await (await fetch('/api/v1/session')).json();
  const post = (path, body) => fetch('/api/v1/' + path, { method: 'POST',
    headers: { 'content-type': 'application/json', 'x-csrf-token': s.csrf },
    body: JSON.stringify(body) }).then((r) => r.status);
  return {
    session: [s.account, s.role],
    edit: await post('edit', { machine, project, spec: '001-beta', base_file_hash: 'x',
                               change: { status: 'complete' } }),
    exec: await post('exec', { machine, payload: 'rm -rf /' }),
    rename: await post('rename', { machine, label: 'x' }),
    revoke: await post('revoke', { machine }),
    invite: await post('invite', {}),
    invite_revoke: await post('invites/revoke', { id: 'abcd' }),
    invites: (await fetch('/api/v1/invites')).status,
  };
}"""


def test_a_viewer_sees_no_edit_controls_and_every_write_is_refused(phone, site):
    readme = site["projects"]["beta"] / "specs" / "001-beta" / "README.md"
    before = readme.read_text()
    ctx, page = log_in(phone, "vi")
    page.goto(f"{UI}/board?m={site['ids']['beta']}")
    card = page.locator(".card[data-key$='|001-beta']")
    expect(card).to_have_count(1, timeout=UI_WAIT_MS)
    assert card.get_attribute("draggable") == "false"
    page.goto(spec_url(site, "beta", "001-beta"))
    expect(page.locator("#read-only")).to_contain_text("viewer", timeout=UI_WAIT_MS)
    assert page.locator("#save").count() == 0
    assert page.locator("#edit-form select[name=status]").is_disabled()
    page.goto(f"{UI}/machines")
    expect(page.locator("#machines tr.machine")).to_have_count(3, timeout=UI_WAIT_MS)
    assert page.locator("#machines button.rename, #machines button.revoke").count() == 0
    assert page.locator("text=Create invitation").count() == 0
    # The API itself refuses, whatever the page shows.
    answers = page.evaluate(WRITES, [site["ids"]["beta"], site["project_ids"]["beta"]])
    assert answers.pop("session") == ["vi", "viewer"]
    assert answers == {k: 403 for k in answers}, answers
    assert readme.read_text() == before
    assert page.problems == [], page.problems
    ctx.close()


LOGINS = """async ([name, tries]) => {
  const out = [];
  for (let i = 0; i < tries; i++) {
    const r = await fetch('/login', { method: 'POST', redirect: 'manual',
      body: new URLSearchParams({ name, password: 'wrong-password-' + i }) });
    out.push([r.status, r.headers.get('retry-after')]);
  }
  return out;
}"""


def test_twenty_wrong_passwords_from_the_phone_are_rate_limited(phone, site):
    # Runs last: the phone's address stays throttled for the window.
    ctx = phone.new_context()
    page = ctx.new_page()
    page.goto(f"{UI}/login")
    answers = page.evaluate(LOGINS, ["ed", 21])
    assert [s for s, _ in answers[:20]] == [401] * 20, answers
    status, retry_after = answers[20]
    assert status == 429, answers
    # The documented window: 15 minutes from the first failure.
    assert 800 <= int(retry_after) <= 900, retry_after
    # The right password is refused too while throttled: guessing gains nothing.
    right = page.evaluate("""async (pw) => (await fetch('/login', { method: 'POST', redirect: 'manual',
        body: new URLSearchParams({ name: 'ed', password: pw }) })).status""", PASSWORDS["ed"])
    assert right == 429
    ctx.close()
