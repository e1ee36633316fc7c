//! Two `leanspec-peer up` processes on 127.0.0.1: invite, join, edit a spec file on
//! one machine, see it on the other; events, machines, status; clean stop on SIGTERM.

mod common;

use common::{Daemon, MachineDirs, cli, cli_json, eventually, write_spec};

#[test]
fn two_daemons_pair_and_replicate_a_file_edit() {
    let m_a = MachineDirs::with_spec("001-alpha", "planned");
    let m_b = MachineDirs::with_spec("001-beta", "draft");
    let a = Daemon::start(m_a.home(), m_a.project(), "alpha-box");
    let b = Daemon::start(m_b.home(), m_b.project(), "beta-box");

    let out = cli(m_a.home(), &["invite"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ticket = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string();
    assert!(ticket.starts_with("lsp1"), "{ticket}");
    let joined = cli_json(m_b.home(), &["join", &ticket]);
    assert_eq!(joined["inviter_label"], "alpha-box");

    // The second use of a one-time ticket is refused with a clear message.
    let third = tempfile::tempdir().expect("c");
    assert!(cli(third.path(), &["init"]).status.success());
    let out = cli(third.path(), &["join", &ticket, "--bind", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(12), "refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already used"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    eventually("B lists A's spec", || {
        let rows = cli_json(m_b.home(), &["specs", "--machine", "alpha-box"]);
        rows.as_array()
            .is_some_and(|r| r.len() == 1 && r[0]["status"] == "planned")
    });

    // Edit the file on A: B sees it, and B's `events --json` carries the new values
    // (issue 14: a script needs no second query).
    let events = common::events_json(m_b.home(), m_b.project(), "001-beta");
    write_spec(m_a.project(), "001-alpha", "in-progress");
    eventually("B sees the edit made on A", || {
        let rows = cli_json(m_b.home(), &["specs", "--machine", "alpha-box"]);
        rows[0]["status"] == "in-progress"
    });
    let line = events.wait_line("\"001-alpha\"");
    let ev: serde_json::Value = serde_json::from_str(&line).expect("one JSON event per line");
    assert_eq!(ev["event"], "spec_changed", "{ev}");
    assert!(
        ev["fields"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "status")),
        "{ev}"
    );
    assert_eq!(ev["values"]["status"], "in-progress", "{ev}");
    let file_hash = ev["values"]["file_hash"]
        .as_str()
        .expect("the new file hash");
    let rows = cli_json(m_b.home(), &["specs", "--machine", "alpha-box"]);
    assert_eq!(
        rows[0]["file_hash"], file_hash,
        "the event's hash is the file's"
    );
    drop(events);
    // The body, read from A by B's daemon: A's file as it is on A's disk.
    let project = rows[0]["project"].as_str().expect("project").to_string();
    let body = cli_json(
        m_b.home(),
        &["body", "--machine", "alpha-box", &project, "001-alpha"],
    );
    let on_disk =
        std::fs::read_to_string(m_a.project().join("specs/001-alpha/README.md")).expect("A's file");
    assert_eq!(body["text"], on_disk.as_str(), "{body}");
    assert_eq!(body["source"], "owner");
    assert_eq!(body["file_hash"], file_hash);

    let machines = cli_json(m_b.home(), &["machines"]);
    let rows = machines.as_array().expect("array");
    assert_eq!(rows.len(), 2);
    let mut keys: Vec<&str> = rows[0]
        .as_object()
        .expect("obj")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "id",
            "in_sync",
            "label",
            "last_seen",
            "online",
            "os",
            "path",
            "pending",
            "projects",
            "revoked",
            "self",
            "specs",
            "version"
        ]
    );
    let alpha = rows
        .iter()
        .find(|r| r["label"] == "alpha-box")
        .expect("alpha listed");
    assert_eq!(alpha["online"], true);
    assert_eq!(alpha["specs"], 1);
    eventually("A shows B in sync", || {
        let s = cli_json(m_a.home(), &["status"]);
        s["running"] == true && s["peers"][0]["in_sync"] == true
    });

    // A project removed through A's daemon is announced: B's daemon reports its spec
    // removed (an event, not only at the next unrelated sync) and B's listing drops it.
    let a_short = cli_json(m_a.home(), &["status"])["machine"]["short_id"]
        .as_str()
        .expect("short id")
        .to_string();
    let second = tempfile::tempdir().expect("second project");
    write_spec(second.path(), "001-gamma", "planned");
    let dir = second.path().display().to_string();
    let added = cli_json(m_a.home(), &["project", "add", &dir, "--name", "second"]);
    assert_eq!(added["project"]["name"], "second", "{added}");
    eventually("B lists the second project's spec", || {
        let rows = cli_json(m_b.home(), &["specs", "--machine", "alpha-box"]);
        rows.as_array().is_some_and(|r| r.len() == 2)
    });
    let removed = cli_json(m_a.home(), &["project", "remove", "second"]);
    assert_eq!(removed["removed"]["name"], "second", "{removed}");
    let line = b.wait_line("spec removed");
    assert!(
        line.contains(&a_short) && line.contains("001-gamma"),
        "{line}"
    );
    let rows = cli_json(m_b.home(), &["specs", "--machine", "alpha-box"]);
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");

    // Stop A cleanly: B keeps A's specs and shows it offline.
    let status = a.stop();
    assert!(status.success(), "up exits 0 on SIGTERM");
    assert!(!m_a.home().join("control.sock").exists(), "socket removed");
    eventually("B shows A offline", || {
        let m = cli_json(m_b.home(), &["machines"]);
        m.as_array()
            .expect("array")
            .iter()
            .any(|r| r["label"] == "alpha-box" && r["online"] == false)
    });
    let rows = cli_json(m_b.home(), &["specs", "--machine", "alpha-box"]);
    assert_eq!(rows[0]["status"], "in-progress");
    assert!(b.stop().success());
    // With no daemon, read-only commands read the store directly.
    let rows = cli_json(m_b.home(), &["specs", "--machine", "alpha-box"]);
    assert_eq!(rows[0]["status"], "in-progress");
}

#[test]
fn up_with_an_authkey_joins_on_start() {
    let m_a = MachineDirs::with_spec("001-alpha", "planned");
    let m_b = MachineDirs::with_spec("001-ci", "draft");
    let a = Daemon::start(m_a.home(), m_a.project(), "desk");
    let key = cli_json(m_a.home(), &["invite", "--reusable", "--ttl", "1h"]);
    let key = key["ticket"].as_str().expect("ticket").to_string();
    assert_eq!(
        cli_json(m_a.home(), &["invite", "--reusable"])["reusable"],
        true
    );
    // The CI machine: no init, no join; the key comes from the environment.
    let mut child = std::process::Command::new(common::BIN)
        .args(["up", "--bind", "127.0.0.1:0", "--label", "ci", "--project"])
        .arg(m_b.project())
        .env("LEANSPEC_PEER_HOME", m_b.home())
        .env("LEANSPEC_PEER_AUTHKEY", &key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    eventually("the CI machine appears on the desk", || {
        let out = cli(m_a.home(), &["specs", "--machine", "ci", "--json"]);
        out.status.success()
            && serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .ok()
                .and_then(|v| v.as_array().map(Vec::len))
                == Some(1)
    });
    let _ = child.kill();
    let _ = child.wait();
    // `invite list --json`: both keys, the first used by the CI machine.
    let list = cli_json(m_a.home(), &["invite", "list"]);
    let list = list.as_array().expect("a list");
    assert_eq!(list.len(), 2, "{list:?}");
    let used = list
        .iter()
        .find(|i| i["used_by"].as_array().is_some_and(|u| u.len() == 1))
        .expect("the key the CI machine used");
    assert_eq!(used["state"], "active", "a reusable key stays active");
    assert_eq!(used["used_by"][0]["label"], "ci");
    let used_id = used["id"].as_str().expect("id").to_string();
    let state_of = |id: &str| {
        cli_json(m_a.home(), &["invite", "list"])
            .as_array()
            .expect("a list")
            .iter()
            .find(|i| i["id"] == id)
            .map(|i| i["state"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    // Revoking the CI machine takes down the key it joined with, for everyone.
    assert!(cli(m_a.home(), &["revoke", "ci"]).status.success());
    assert_eq!(state_of(&used_id), "revoked_with_machine");
    // The other key, revoked by id (through the daemon); twice is fine.
    let other = list
        .iter()
        .find(|i| i["id"] != used_id.as_str())
        .and_then(|i| i["id"].as_str())
        .expect("the other key")
        .to_string();
    let revoked = cli_json(m_a.home(), &["invite", "revoke", &other[..6]]);
    assert_eq!(revoked["state"], "revoked");
    assert_eq!(state_of(&other), "revoked");
    assert!(
        cli(m_a.home(), &["invite", "revoke", &other])
            .status
            .success()
    );
    let out = cli(m_a.home(), &["invite", "revoke", "ffff0000"]);
    assert_eq!(out.status.code(), Some(7), "not_found");
    let out = cli(m_a.home(), &["invite", "--reusable", "--ttl", "100d"]);
    assert_eq!(out.status.code(), Some(9), "invalid_argument");
    assert!(String::from_utf8_lossy(&out.stderr).contains("at most 90 days"));
    assert!(a.stop().success());
}

/// A CI runner may start before the machine that issued its key is up (or while it is
/// too busy to answer): `up --authkey` keeps trying with backoff instead of exiting.
#[test]
fn up_with_an_authkey_waits_for_an_inviter_that_is_not_up_yet() {
    let m_a = MachineDirs::with_spec("001-alpha", "planned");
    let m_b = MachineDirs::with_spec("001-ci", "draft");
    let a = Daemon::start(m_a.home(), m_a.project(), "desk");
    let key = cli_json(m_a.home(), &["invite", "--reusable", "--ttl", "1h"]);
    let key = key["ticket"].as_str().expect("ticket").to_string();
    assert!(a.stop().success());
    let runner = leanspec_peer_tests::process::Proc::spawn(
        std::process::Command::new(common::BIN)
            .args(["up", "--bind", "127.0.0.1:0", "--no-ui", "--label", "ci"])
            .arg("--project")
            .arg(m_b.project())
            .arg("--authkey")
            .arg(&key)
            .env("LEANSPEC_PEER_HOME", m_b.home()),
    );
    let line = runner.wait_line("trying the authkey again");
    assert!(line.contains("cannot reach the inviter"), "{line}");
    // The desk comes back (on its remembered port, the one in the key).
    let a = Daemon::start(m_a.home(), m_a.project(), "desk");
    runner.wait_line("joined the mesh of");
    eventually("the runner's spec appears on the desk", || {
        cli_json(m_a.home(), &["specs", "--machine", "ci"])
            .as_array()
            .is_some_and(|r| r.len() == 1)
    });
    assert!(runner.stop().success());
    assert!(a.stop().success());
}

/// Issue 39: a `join` whose `up` is killed mid-way says what happened and what to do
/// (exit 5, "start it again"), and the same ticket joins once both are up again.
#[test]
fn a_join_interrupted_by_a_killed_up_says_so_and_the_ticket_joins_again() {
    let m_a = MachineDirs::with_spec("001-alpha", "planned");
    let m_b = MachineDirs::with_spec("001-beta", "draft");
    let a = Daemon::start(m_a.home(), m_a.project(), "alpha-box");
    let ticket = common::invite(m_a.home());
    // A away: B's join keeps dialing it, so B's `up` is mid-join when it is killed.
    a.stop();
    let b = Daemon::start(m_b.home(), m_b.project(), "beta-box");
    let join = std::process::Command::new(common::BIN)
        .args(["join", &ticket])
        .env("LEANSPEC_PEER_HOME", m_b.home())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("join");
    b.wait_line("joining the mesh of");
    b.kill9();
    let out = join.wait_with_output().expect("join ends");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("stopped before it answered") && err.contains("same ticket"),
        "{err}"
    );
    assert!(!err.contains("EOF while parsing"), "{err}");

    let _a = Daemon::start(m_a.home(), m_a.project(), "alpha-box");
    let _b = Daemon::start(m_b.home(), m_b.project(), "beta-box");
    let joined = cli_json(m_b.home(), &["join", &ticket]);
    assert_eq!(joined["inviter_label"], "alpha-box", "{joined}");
}
