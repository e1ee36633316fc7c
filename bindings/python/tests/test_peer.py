"""Two peers in one process, on 127.0.0.1, through the installed `leanspec_peer` package:
pairing, replication, events, stale and applied edits, errors with kinds."""

import asyncio
import json
import hashlib
import os
import queue
import time
from pathlib import Path

import pytest

from leanspec_peer import (
    ErrorKind,
    EventListener,
    InviteState,
    Outcome,
    Peer,
    PeerConfig,
    PeerError,
    PeerEvent,
    SpecChange,
    SpecQuery,
)

WAIT = 30.0  # seconds; every wait below is bounded by it


def write_spec(root: Path, name: str, status: str, priority: str = "high") -> Path:
    """Writes a spec as editors save: a temp file renamed over it. (A plain rewrite lets
    the watcher read the file half-written, and the event for that state names a
    status that is not the one the test waits for.)"""
    d = root / "specs" / name
    d.mkdir(parents=True, exist_ok=True)
    f = d / "README.md"
    tmp = d / ".README.md.tmp"
    tmp.write_text(
        f"---\nstatus: {status}\ncreated: '2025-01-01'\npriority: {priority}\n---\n\n# {name}\n"
    )
    os.replace(tmp, f)
    return f


class Collector(EventListener):
    """Puts every event on a queue the test waits on."""

    def __init__(self):
        self.events = queue.Queue()

    def on_event(self, event):
        self.events.put(event)

    def wait_for(self, what, pred):
        deadline = time.monotonic() + WAIT
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no event {what} within {WAIT}s; saw {seen}")
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            seen.append(ev)
            if pred(ev):
                return ev


def eventually(what, cond):
    """Re-checks `cond` after each event-free 20 ms, bounded by WAIT."""
    deadline = time.monotonic() + WAIT
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {WAIT}s")
        time.sleep(0.02)


@pytest.fixture
def pair(tmp_path):
    """Machines A and B, each with a project, started and paired (A joined B)."""
    homes, projects = {}, {}
    peers = {}
    for label in ("alpha", "beta"):
        projects[label] = tmp_path / f"proj-{label}"
        write_spec(projects[label], f"001-{label}", "planned")
        homes[label] = tmp_path / f"home-{label}"
        peer = Peer.open(str(homes[label]), PeerConfig(label=label, bind="127.0.0.1:0"))
        peer.add_project(str(projects[label]), None)
        peers[label] = peer
    a, b = peers["alpha"], peers["beta"]

    async def start_and_pair():
        await a.start()
        await b.start()
        invite = b.invite(600, False)
        return await a.join(invite.ticket)

    listener_a = Collector()
    joined = asyncio.run(start_and_pair())
    sub = a.subscribe(listener_a)
    yield a, b, projects, joined, listener_a
    sub.cancel()
    asyncio.run(a.stop())
    asyncio.run(b.stop())


def test_each_sees_the_others_specs_and_events_follow_file_edits(pair):
    a, b, projects, joined, events = pair
    assert joined.inviter == b.machine_id()
    assert joined.inviter_label == "beta"
    assert joined.members == 2

    eventually("A lists B's spec", lambda: len(a.specs(SpecQuery(machine="beta"))) == 1)
    eventually("B lists A's spec", lambda: len(b.specs(SpecQuery(machine="alpha"))) == 1)
    row = a.spec("beta", a.specs(SpecQuery(machine="beta"))[0].project, "001")
    assert row.name == "001-beta" and row.status == "planned" and row.priority == "high"

    machines = {m.label: m for m in a.machines()}
    assert machines["alpha"].is_self and not machines["beta"].is_self

    # Two projects with no common origin: nothing to report.
    report = a.check()
    assert report.specs == 2 and report.projects == 2 and report.problems == []

    # Search over both machines; a malformed query says where.
    hits = a.search("status:planned machine:beta OR name:1", 10)
    assert {h.spec.name for h in hits} == {"001-alpha", "001-beta"}
    with pytest.raises(PeerError.Failed) as e:
        a.search("status:planned (", 10)
    assert e.value.kind == ErrorKind.INVALID_ARGUMENT and "at character" in e.value.detail
    eventually("B online for A", lambda: {m.label: m for m in a.machines()}["beta"].online)

    # A file edit on B reaches A's listener as a spec-changed event for B's machine.
    write_spec(projects["beta"], "001-beta", "in-progress")
    b_id = b.machine_id()
    ev = events.wait_for(
        "spec changed on B",
        lambda e: isinstance(e, PeerEvent.SPEC_CHANGED)
        and e.machine == b_id
        and e.spec == "001-beta"
        and "status" in e.fields,
    )
    assert a.spec("beta", ev.project, "001-beta").status == "in-progress"
    # The event carries the new values (JSON text), so no second query is needed.
    assert json.loads(ev.values["status"]) == "in-progress"
    assert json.loads(ev.values["file_hash"]) == a.spec("beta", ev.project, "001-beta").file_hash

    # B's body, read from B.
    async def read_body():
        return await a.spec_body("beta", ev.project, "001-beta")

    body = asyncio.run(read_body())
    assert body.source == "owner" and body.text == (projects["beta"] / "specs" / "001-beta" / "README.md").read_text()
    assert body.file_hash == a.spec("beta", ev.project, "001-beta").file_hash

    # Fleet queries through the bindings: stats, board, deps.
    stats = a.stats()
    assert {m.machine_label for m in stats.machines} == {"alpha", "beta"}
    assert stats.fleet.specs == 2 and stats.fleet.by_status.get("in-progress") == 1
    board = a.board(None, "machine")
    assert board.group_by == "machine"
    assert {c.key: [s.name for s in c.specs] for c in board.columns} == {
        "alpha": ["001-alpha"],
        "beta": ["001-beta"],
    }
    assert [c.key for c in a.board("status:in-progress", "status").columns if c.specs] == ["in-progress"]
    with pytest.raises(PeerError.Failed) as e:
        a.board(None, "colour")
    assert e.value.kind == ErrorKind.INVALID_ARGUMENT
    deps = a.deps(None, "001-beta", False, False, 3)
    assert deps.spec.machines == ["beta"] and deps.upstream == [] and deps.downstream == []

    # A rename on B reaches A as a renamed event, and A's machine list follows.
    b.rename("beta", "beta-desk")
    events.wait_for(
        "B renamed",
        lambda e: isinstance(e, PeerEvent.MACHINE_RENAMED) and e.machine == b_id and e.label == "beta-desk",
    )
    assert "beta-desk" in [m.label for m in a.machines()]

    status = a.status()
    assert status.running and status.label == "alpha"
    assert [p.label for p in status.peers] == ["beta-desk"]

    # Removing a project on the running peer is announced: an event here, and B stops
    # listing A's specs without waiting for another change.
    a_id = a.machine_id()
    removed = a.remove_project("proj-alpha")
    events.wait_for(
        "A's spec removed",
        lambda e: isinstance(e, PeerEvent.SPEC_REMOVED) and e.machine == a_id and e.spec == "001-alpha",
    )
    assert removed.name == "proj-alpha"
    eventually("B no longer lists A's spec", lambda: b.specs(SpecQuery(machine="alpha")) == [])


def test_revoke_works_with_the_network_stopped(pair):
    """As the CLI's: recorded at once, an event for the host, enforced at the next start."""
    a, b, _, _, events = pair
    b_id = b.machine_id()
    asyncio.run(a.stop())
    assert not a.is_running()
    a.revoke("beta")
    events.wait_for(
        "B revoked",
        lambda e: isinstance(e, PeerEvent.MACHINE_REVOKED) and e.machine == b_id,
    )
    assert [m.revoked for m in a.machines() if m.id == b_id] == [True]
    asyncio.run(a.start())  # the fixture stops it again
    assert [m.revoked for m in a.machines() if m.id == b_id] == [True]


def test_invitations_are_listed_and_revoked_and_a_revoked_machine_takes_its_key_down(pair):
    """B's invitation that A used is listed as used by A; a reusable key is revoked by id
    prefix; revoking A makes the invitation it used refused for everyone."""
    a, b, _, _, _ = pair
    listed = b.invites()
    assert len(listed) == 1
    assert listed[0].state == InviteState.USED and listed[0].used_by == [a.machine_id()]
    key = b.invite(3600, True)
    assert key.reusable
    fresh = [i for i in b.invites() if i.reusable]
    assert len(fresh) == 1 and fresh[0].state == InviteState.ACTIVE
    revoked = b.revoke_invite(fresh[0].id[:6])
    assert revoked.state == InviteState.REVOKED
    with pytest.raises(PeerError.Failed) as e:
        b.invite(91 * 86400, True)
    assert e.value.kind == ErrorKind.INVALID_ARGUMENT
    with pytest.raises(PeerError.Failed) as e:
        b.revoke_invite("ffffffff")
    assert e.value.kind == ErrorKind.NOT_FOUND
    b.revoke(a.machine_id())
    used = [i for i in b.invites() if not i.reusable]
    assert used[0].state == InviteState.REVOKED_WITH_MACHINE
    status = b.status()
    assert status.refused_strangers >= 0 and status.refused_over_limit == 0


def test_stale_edit_is_rejected_with_the_current_hash_and_a_good_edit_applies(pair):
    a, b, projects, _, events = pair
    eventually("A lists B's spec", lambda: len(a.specs(SpecQuery(machine="beta"))) == 1)
    seen = a.specs(SpecQuery(machine="beta"))[0]
    readme = projects["beta"] / "specs" / "001-beta" / "README.md"

    # The file changes on B after A's view: A's edit carries an old hash.
    write_spec(projects["beta"], "001-beta", "planned", priority="low")
    on_disk = readme.read_bytes()
    stale = asyncio.run(
        a.edit("beta", seen.project_id, "001-beta", SpecChange(status="complete"), seen.file_hash)
    )
    assert stale.outcome == Outcome.REJECTED
    assert stale.reason == "stale"
    assert stale.current_file_hash == hashlib.sha256(on_disk).hexdigest()
    assert readme.read_bytes() == on_disk, "a rejected edit must not touch the file"

    # With the current hash the edit is applied and the file changes.
    good = asyncio.run(
        a.edit(
            "beta",
            seen.project_id,
            "001-beta",
            SpecChange(status="in-progress", add_tags=["from-python"]),
            stale.current_file_hash,
        )
    )
    assert good.outcome == Outcome.APPLIED, good.message
    after = readme.read_text()
    assert "status: in-progress" in after and "from-python" in after
    assert good.file_hash == hashlib.sha256(readme.read_bytes()).hexdigest()
    assert after.endswith("\n# 001-beta\n")

    # Both audit logs have it.
    assert any(e.op_id == good.op_id and e.direction == "sent" for e in a.audit(10))
    assert any(e.op_id == good.op_id and e.direction == "received" for e in b.audit(10))
    # And A sees the new values once they replicate.
    eventually(
        "A sees the applied edit",
        lambda: a.spec("beta", seen.project_id, "001-beta").status == "in-progress",
    )


def test_errors_arrive_as_exceptions_with_kinds(tmp_path):
    peer = Peer.open(str(tmp_path / "home"), PeerConfig(label="solo", bind="127.0.0.1:0"))

    with pytest.raises(PeerError.Failed) as e:
        peer.invite(60, False)
    assert e.value.kind == ErrorKind.NOT_RUNNING

    # Revoking needs no running network (as in the CLI), but never this machine itself.
    with pytest.raises(PeerError.Failed) as e:
        peer.revoke(peer.machine_id())
    assert e.value.kind == ErrorKind.INVALID_ARGUMENT
    with pytest.raises(PeerError.Failed) as e:
        peer.revoke("nobody")
    assert e.value.kind == ErrorKind.NOT_FOUND

    with pytest.raises(PeerError.Failed) as e:
        peer.spec("solo", "no-such-project", "001")
    assert e.value.kind == ErrorKind.NOT_FOUND
    assert "no-such-project" in e.value.detail

    with pytest.raises(PeerError.Failed) as e:
        peer.add_project(str(tmp_path / "empty"), None)
    assert e.value.kind in (ErrorKind.INVALID_ARGUMENT, ErrorKind.IO)

    with pytest.raises(PeerError.Failed) as e:
        peer.specs(SpecQuery(status="nearly-done"))
    assert e.value.kind == ErrorKind.INVALID_ARGUMENT

    with pytest.raises(PeerError.Failed) as e:
        Peer.open(str(tmp_path / "other"), PeerConfig(bind="not an address"))
    assert e.value.kind == ErrorKind.INVALID_ARGUMENT

    # The store is locked while a Peer holds it.
    with pytest.raises(PeerError.Failed) as e:
        Peer.open(str(tmp_path / "home"), PeerConfig())
    assert e.value.kind == ErrorKind.STORE

    async def bad_ticket():
        await peer.start()
        try:
            await peer.join("not-a-ticket")
        finally:
            await peer.stop()

    with pytest.raises(PeerError.Failed) as e:
        asyncio.run(bad_ticket())
    assert e.value.kind == ErrorKind.TICKET
    assert not peer.is_running()


def test_a_stopped_peer_answers_and_changes_like_a_running_one(tmp_path):
    """The same object, network stopped: queries and mutations work and are events;
    start/stop keeps the state; starting twice is BUSY, stopping twice NOT_RUNNING."""
    project = tmp_path / "proj"
    write_spec(project, "001-solo", "planned")
    peer = Peer.open(str(tmp_path / "home"), PeerConfig(label="solo", bind="127.0.0.1:0"))
    events = Collector()
    sub = peer.subscribe(events)
    try:
        assert not peer.is_running()
        added = peer.add_project(str(project), "proj")
        events.wait_for("spec changed", lambda e: isinstance(e, PeerEvent.SPEC_CHANGED))
        peer.rename(peer.machine_id(), "solo-desk")
        events.wait_for(
            "renamed",
            lambda e: isinstance(e, PeerEvent.MACHINE_RENAMED) and e.label == "solo-desk",
        )
        assert [m.label for m in peer.machines()] == ["solo-desk"]

        async def cycle():
            await peer.start()
            assert peer.is_running()
            with pytest.raises(PeerError.Failed) as e:
                await peer.start()
            assert e.value.kind == ErrorKind.BUSY
            assert [s.name for s in peer.specs(SpecQuery())] == ["001-solo"]
            await peer.stop()
            with pytest.raises(PeerError.Failed) as e:
                await peer.stop()
            assert e.value.kind == ErrorKind.NOT_RUNNING

        asyncio.run(cycle())
        assert not peer.is_running()
        removed = peer.remove_project(added.id)
        assert removed.name == "proj"
        events.wait_for(
            "spec removed while stopped",
            lambda e: isinstance(e, PeerEvent.SPEC_REMOVED) and e.spec == "001-solo",
        )
        assert peer.specs(SpecQuery()) == []
    finally:
        sub.cancel()
