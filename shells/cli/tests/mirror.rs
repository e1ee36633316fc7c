//! An always-on peer: `up` with no project holds every member's documents and hands them
//! on. A machine that joins while the owner is offline gets the owner's specs from the
//! mirror alone.

mod common;

use common::{Daemon, MachineDirs, cli_json, eventually, pair};

#[test]
fn a_mirror_hands_an_offline_machines_specs_to_a_newcomer() {
    let a = MachineDirs::with_spec("001-alpha", "in-progress");
    let b = MachineDirs::with_spec("001-beta", "draft");
    let mirror_home = tempfile::tempdir().expect("mirror");
    let mirror = Daemon::mirror(mirror_home.path(), "vps");
    let up_a = Daemon::start(a.home(), a.project(), "laptop");
    pair(mirror_home.path(), a.home());
    eventually("the mirror holds the laptop's spec", || {
        cli_json(mirror_home.path(), &["specs", "--machine", "laptop"])
            .as_array()
            .is_some_and(|r| r.len() == 1)
    });
    let status = cli_json(mirror_home.path(), &["status"]);
    assert_eq!(
        status["projects"].as_array().map(Vec::len),
        Some(0),
        "{status}"
    );
    assert!(up_a.stop().success());

    // The desk joins through the mirror while the laptop is off.
    let up_b = Daemon::start(b.home(), b.project(), "desk");
    pair(mirror_home.path(), b.home());
    eventually("the desk shows the laptop's spec, from the mirror", || {
        cli_json(b.home(), &["specs", "--machine", "laptop"])
            .as_array()
            .is_some_and(|r| r.len() == 1 && r[0]["status"] == "in-progress")
    });
    let machines = cli_json(b.home(), &["machines"]);
    let laptop = machines
        .as_array()
        .and_then(|m| m.iter().find(|r| r["label"] == "laptop"))
        .expect("the laptop is listed")
        .clone();
    assert_eq!(laptop["online"], false, "{laptop}");
    assert!(up_b.stop().success());
    assert!(mirror.stop().success());
}
