//! Issue 38, with real processes: a revoked machine cannot undo its revocation on a
//! member that was away. A revokes X while laptop P is stopped. X (patched software:
//! `examples/hostile_member.rs`, with X's key) learns R and reaches P first, with R and
//! U in one message, U replacing the `members` map and the `revocations` list. P keeps
//! R, refuses U, ends X's session and refuses it from then on; A and P agree on the
//! members once they meet, and the mesh does not split.

mod common;

use common::{BIN, Daemon, MachineDirs, cli, cli_json, eventually, pair};
use leanspec_peer_tests::process::Proc;
use std::path::Path;
use std::process::Command;

/// The members as `machines --json` lists them on `home`: (id, label, revoked), sorted.
fn members(home: &Path) -> Vec<(String, String, bool)> {
    let mut rows: Vec<(String, String, bool)> = cli_json(home, &["machines"])
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r["id"].as_str().unwrap_or_default().to_string(),
                        r["label"].as_str().unwrap_or_default().to_string(),
                        r["revoked"].as_bool().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    rows.sort();
    rows
}

fn id(home: &Path) -> String {
    cli_json(home, &["status"])["machine"]["id"]
        .as_str()
        .expect("id")
        .to_string()
}

fn online(home: &Path, other: &str) -> bool {
    cli_json(home, &["machines"])
        .as_array()
        .is_some_and(|rows| rows.iter().any(|r| r["id"] == other && r["online"] == true))
}

/// P's `up` on a port of its own (the hostile member dials it there).
fn up_at(dirs: &MachineDirs, label: &str, port: u16) -> Daemon {
    let d = Daemon::from_proc(Proc::spawn(
        Command::new(BIN)
            .args(["up", "--no-ui", "--label", label])
            .args(["--bind", &format!("127.0.0.1:{port}"), "--project"])
            .arg(dirs.project())
            .env("LEANSPEC_PEER_HOME", dirs.home())
            .env("LEANSPEC_PEER_LOG", "info"),
    ));
    d.wait_line("Ctrl-C to stop");
    d
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

fn unrevoke(x: &MachineDirs, a: &MachineDirs, p_id: &str, port: u16) -> String {
    let out = Command::new(common::example("hostile_member"))
        .args(["unrevoke"])
        .arg(x.home())
        .arg(a.home())
        .args([p_id, &format!("127.0.0.1:{port}")])
        .output()
        .expect("hostile_member");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

#[test]
fn a_revoked_machine_cannot_undo_its_revocation_on_a_laptop_that_was_away() {
    let a = MachineDirs::with_spec("001-a", "planned");
    let p = MachineDirs::with_spec("001-p", "planned");
    let x = MachineDirs::with_spec("001-x", "planned");
    let port = free_udp_port();
    let up_a = Daemon::start(a.home(), a.project(), "a");
    let up_p = up_at(&p, "p", port);
    let up_x = Daemon::start(x.home(), x.project(), "x");
    pair(a.home(), p.home());
    pair(a.home(), x.home());
    let (p_id, x_id) = (id(p.home()), id(x.home()));
    eventually("P knows X", || online(p.home(), &x_id));

    // The laptop goes away; A revokes X meanwhile.
    assert!(up_p.stop().success());
    assert!(cli(a.home(), &["revoke", &x_id]).status.success());
    eventually("A lists X revoked", || {
        members(a.home()).iter().any(|m| m.0 == x_id && m.2)
    });
    assert!(up_x.stop().success());
    assert!(up_a.stop().success());

    // P comes back; X reaches it first, with R and U.
    let up_p = up_at(&p, "p", port);
    let said = unrevoke(&x, &a, &p_id, port);
    eprintln!("X, first: {said}");
    assert!(said.contains("sent"), "{said}");
    up_p.wait_line("refused mesh changes by a revoked machine");
    assert!(
        members(p.home()).iter().any(|m| m.0 == x_id && m.2),
        "P applied R: {:?}",
        members(p.home())
    );
    // And X is refused from then on, before anything it sends is read.
    let again = unrevoke(&x, &a, &p_id, port);
    eprintln!("X, again: {again}");
    assert!(!again.contains("sent"), "{again}");
    eventually("P counts the refusal", || {
        cli_json(p.home(), &["status"])["refused"]["revoked"]
            .as_u64()
            .is_some_and(|n| n > 0)
    });

    // A and P meet: the same members, nobody split off.
    let up_a = Daemon::start(a.home(), a.project(), "a");
    let a_id = id(a.home());
    eventually("A and P meet", || {
        online(p.home(), &a_id) && online(a.home(), &p_id)
    });
    eventually("A and P agree on the members", || {
        members(a.home()) == members(p.home())
    });
    let listed = members(p.home());
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.iter().any(|m| m.0 == x_id && m.2), "{listed:?}");
    assert!(up_a.stop().success());
    assert!(up_p.stop().success());
    // U never entered P's store (nor A's).
    let u = said
        .lines()
        .find_map(|l| l.strip_prefix("U "))
        .expect("U's hash")
        .trim()
        .to_string();
    for home in [p.home(), a.home()] {
        let store =
            leanspec_peer_core::store::Store::open(&home.join("store.redb")).expect("store");
        let mut doc = automerge::AutoCommit::new();
        for chunk in store.doc_chunks(b"mesh").expect("chunks") {
            doc.load_incremental(&chunk).expect("load");
        }
        let held: Vec<String> = doc
            .get_changes(&[])
            .iter()
            .map(|c| c.hash().to_string())
            .collect();
        assert!(!held.contains(&u), "U was stored in {}", home.display());
    }
}
