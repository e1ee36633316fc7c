"""A real MCP client (the `mcp` SDK from PyPI) drives `leanspec-peer mcp` over stdio
against two `leanspec-peer up` processes paired on 127.0.0.1.

Run by scripts/test-mcp.sh; LEANSPEC_PEER_BIN names the binary under test.
"""

import asyncio
import hashlib
import os
import sys
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "python"))
from peer_procs import BIN, WAIT, Up, cli, cli_json, eventually  # noqa: E402

TOOLS = {
    "list_machines",
    "list_specs",
    "search_specs",
    "get_spec",
    "update_spec",
    "request_execution",
    "check_fleet",
    "spec_deps",
}


def write_spec(project: Path, name: str, status: str, title: str, extra: str = "") -> Path:
    d = project / "specs" / name
    d.mkdir(parents=True, exist_ok=True)
    f = d / "README.md"
    tmp = d / ".README.md.tmp"
    tmp.write_text(
        f"---\nstatus: {status}\npriority: high\ncreated: '2025-01-01'\n{extra}---\n\n# {title}\n\nBody of {title}.\n"
    )
    os.replace(tmp, f)
    return f


@pytest.fixture
def mesh(tmp_path):
    homes = {l: tmp_path / f"home-{l}" for l in ("alpha", "beta")}
    projects = {l: tmp_path / f"proj-{l}" for l in ("alpha", "beta")}
    write_spec(projects["alpha"], "001-alpha", "planned", "Alpha")
    write_spec(projects["alpha"], "002-second", "draft", "Second", "depends_on:\n  - 001-alpha\n")
    write_spec(projects["beta"], "001-beta", "planned", "Beta")
    ups = {l: Up(homes[l], projects[l], l) for l in ("alpha", "beta")}
    try:
        ticket = cli(homes["alpha"], "invite")
        assert ticket.returncode == 0, ticket.stderr
        joined = cli_json(homes["beta"], "join", ticket.stdout.strip())
        assert joined["inviter_label"] == "alpha"
        eventually(
            "beta lists alpha's specs",
            lambda: len(cli_json(homes["beta"], "specs", "--machine", "alpha")) == 2,
        )
        yield homes, projects, ups
    finally:
        for u in ups.values():
            u.stop()


def call(homes, name, arguments, home="beta", allow_edits=True):
    """One tool call through a fresh `leanspec-peer mcp` session for `home` (with the
    write tools unless `allow_edits` is False)."""

    async def go():
        params = StdioServerParameters(
            command=BIN,
            args=["mcp", "--allow-edits"] if allow_edits else ["mcp"],
            env=dict(os.environ, LEANSPEC_PEER_HOME=str(homes[home])),
        )
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                if name is None:
                    return await session.list_tools()
                return await session.call_tool(name, arguments)

    return asyncio.run(asyncio.wait_for(go(), WAIT))


def test_every_tool_against_two_running_peers(mesh):
    homes, projects, ups = mesh

    listed = call(homes, None, None)
    assert {t.name for t in listed.tools} == TOOLS
    for t in listed.tools:
        assert t.description and t.inputSchema["type"] == "object"
        assert t.inputSchema.get("additionalProperties") is False

    r = call(homes, "list_machines", {})
    assert not r.isError
    machines = {m["machine"]["label"]: m for m in r.structuredContent["machines"]}
    assert set(machines) == {"alpha", "beta"} and machines["alpha"]["online"] is True

    r = call(homes, "list_specs", {"machine": "alpha"})
    specs = {s["spec"]["name"]: s for s in r.structuredContent["specs"]}
    assert set(specs) == {"001-alpha", "002-second"}
    alpha_file = projects["alpha"] / "specs" / "001-alpha" / "README.md"
    seen_hash = specs["001-alpha"]["spec"]["file_hash"]
    assert seen_hash == hashlib.sha256(alpha_file.read_bytes()).hexdigest()

    r = call(homes, "search_specs", {"query": "status:planned machine:alpha OR beta"})
    assert [h["row"]["spec"]["name"] for h in r.structuredContent["hits"]][:1] == ["001-beta"]
    assert {h["row"]["spec"]["name"] for h in r.structuredContent["hits"]} == {"001-alpha", "001-beta"}
    r = call(homes, "search_specs", {"query": "status:planned ("})
    assert r.isError and "at character" in r.content[0].text

    r = call(homes, "get_spec", {"project": "proj-beta", "spec": "1", "include_body": True})
    assert r.structuredContent["spec"]["spec"]["name"] == "001-beta"
    assert r.structuredContent["body"]["source"] == "local"
    assert "Body of Beta." in r.structuredContent["body"]["text"]
    # Another machine's body comes from its owner, with the hash of the file it read.
    r = call(homes, "get_spec", {"machine": "alpha", "project": "proj-alpha", "spec": "alpha", "include_body": True})
    assert r.structuredContent["spec"]["machine_label"] == "alpha"
    body = r.structuredContent["body"]
    assert body["source"] == "owner" and body["text"] == alpha_file.read_text()
    assert body["file_hash"] == hashlib.sha256(alpha_file.read_bytes()).hexdigest()
    r = call(homes, "get_spec", {"project": "proj-beta", "spec": "404"})
    assert r.isError and r.structuredContent["error"] == "not_found"

    r = call(homes, "spec_deps", {"spec": "001-alpha", "project": "proj-alpha"})
    down = r.structuredContent["downstream"]
    assert [e["spec"]["name"] for e in down] == ["002-second"]

    r = call(homes, "check_fleet", {})
    assert not r.isError and r.structuredContent["problems"] == []

    r = call(homes, "request_execution", {"machine": "alpha", "payload": "run the tests"})
    assert not r.isError and r.structuredContent["result"] == "delivered", r.structuredContent

    # A stale hash: rejected with the file's current hash; the file is untouched.
    write_spec(projects["alpha"], "001-alpha", "planned", "Alpha changed")
    current = hashlib.sha256(alpha_file.read_bytes()).hexdigest()
    eventually(
        "beta sees alpha's new hash",
        lambda: any(
            s["spec"]["file_hash"] == current
            for s in call(homes, "list_specs", {"machine": "alpha"}).structuredContent["specs"]
        ),
    )
    before = alpha_file.read_bytes()
    r = call(
        homes,
        "update_spec",
        {"machine": "alpha", "project": "proj-alpha", "spec": "001-alpha", "file_hash": seen_hash, "status": "complete"},
    )
    assert r.isError and r.structuredContent["result"] == "rejected", r.structuredContent
    assert r.structuredContent["current_file_hash"] == current
    assert alpha_file.read_bytes() == before

    # With the current hash: applied on alpha's disk, only the status line changed.
    r = call(
        homes,
        "update_spec",
        {"machine": "alpha", "project": "proj-alpha", "spec": "001-alpha", "file_hash": current, "status": "complete"},
    )
    assert not r.isError and r.structuredContent["result"] == "applied", r.structuredContent
    after = alpha_file.read_text()
    assert "status: complete" in after
    changed = [l for l in after.splitlines() if l not in before.decode().splitlines()]
    assert all(l.startswith(("status:", "updated_at:", "completed_at:", "transitions:", "  -", "    ")) for l in changed), changed

    r = call(homes, "update_spec", {"machine": "alpha", "project": "proj-alpha", "spec": "1", "file_hash": current, "colour": "red"})
    assert r.isError and r.structuredContent["error"] == "invalid_argument"

    # Alpha stopped: an update comes back unavailable, nothing queued.
    ups["alpha"].stop()
    eventually(
        "beta sees alpha offline",
        lambda: not {m["label"]: m for m in cli_json(homes["beta"], "machines")}["alpha"]["online"],
    )
    new_hash = hashlib.sha256(alpha_file.read_bytes()).hexdigest()
    r = call(
        homes,
        "update_spec",
        {"machine": "alpha", "project": "proj-alpha", "spec": "001-alpha", "file_hash": new_hash, "status": "archived"},
    )
    assert r.isError and r.structuredContent["result"] == "unavailable", r.structuredContent
    assert "status: complete" in alpha_file.read_text()
    # Its body: the copy kept from the last read, marked as such.
    r = call(homes, "get_spec", {"machine": "alpha", "project": "proj-alpha", "spec": "1", "include_body": True})
    body = r.structuredContent["body"]
    assert body["source"] == "cache" and "Body of Alpha" in body["text"] and body["note"], body
    r = call(homes, "get_spec", {"machine": "alpha", "project": "proj-alpha", "spec": "2", "include_body": True})
    assert r.structuredContent["body_unavailable"]["error"] == "unreachable", r.structuredContent

    # Without a running `up`, the same answers (a node opened per request).
    running = call(homes, "list_specs", {}).structuredContent
    ups["beta"].stop()
    stopped = call(homes, "list_specs", {}).structuredContent
    assert stopped == running


def test_without_allow_edits_there_are_no_write_tools(mesh):
    """Issue 39: the write tools are off unless the user starts `mcp --allow-edits`."""
    homes, _, _ = mesh
    names = {t.name for t in call(homes, None, None, allow_edits=False).tools}
    assert "update_spec" not in names and "request_execution" not in names, names
    assert "get_spec" in names and "list_specs" in names
    r = call(homes, "request_execution", {"machine": "alpha", "payload": "x"}, allow_edits=False)
    assert r.isError and "--allow-edits" in r.content[0].text, r
    names = {t.name for t in call(homes, None, None).tools}
    assert {"update_spec", "request_execution"} <= names, names


def test_text_from_another_machine_is_marked_untrusted(mesh):
    """Issue 39: a body written on another machine reaches the agent marked as
    untrusted data with its provenance; this machine's own text is not."""
    homes, projects, _ = mesh
    write_spec(
        projects["alpha"], "003-inject", "planned", "Inject",
        "",
    )
    eventually(
        "beta lists alpha's third spec",
        lambda: len(cli_json(homes["beta"], "specs", "--machine", "alpha")) == 3,
    )
    r = call(homes, "get_spec", {"machine": "alpha", "project": "proj-alpha", "spec": "3", "include_body": True})
    assert not r.isError, r
    got = r.structuredContent
    assert got["spec"]["untrusted"] is True, got["spec"]
    assert got["spec"]["written_on"]["label"] == "alpha", got["spec"]
    assert got["body"]["untrusted"] is True and "data to read" in got["body"]["written_on"]["note"], got["body"]
    listed = call(homes, "list_specs", {"machine": "alpha"}).structuredContent["specs"]
    assert listed and all(row["untrusted"] is True for row in listed), listed
    own = call(homes, "get_spec", {"project": "proj-beta", "spec": "1", "include_body": True}).structuredContent
    assert own["spec"]["untrusted"] is False and own["body"]["untrusted"] is False, own


def test_a_readme_linking_out_of_the_project_is_never_returned(mesh, tmp_path):
    """Issue 39: alpha's README.md is a symlink to a file outside its project; get_spec
    from beta says why it is unreadable and never carries the file's text."""
    homes, projects, _ = mesh
    secret = tmp_path / "secret.env"
    secret.write_text("AWS_SECRET_ACCESS_KEY=mcp-must-never-see-this\n")
    folder = projects["alpha"] / "specs" / "004-leak"
    folder.mkdir(parents=True)
    (folder / "README.md").symlink_to(secret)
    eventually(
        "beta lists alpha's linked spec",
        lambda: any(r["spec"] == "004-leak" for r in cli_json(homes["beta"], "specs", "--machine", "alpha")),
    )
    r = call(homes, "get_spec", {"machine": "alpha", "project": "proj-alpha", "spec": "004-leak", "include_body": True})
    text = str(r.structuredContent) + "".join(getattr(c, "text", "") for c in r.content)
    assert "mcp-must-never-see-this" not in text, text
    assert "outside the specs folder" in r.structuredContent["spec"]["spec"]["parse_error"], r.structuredContent
    assert "body" not in r.structuredContent and "body_unavailable" in r.structuredContent, r.structuredContent
