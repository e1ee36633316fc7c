//! Ephemeral machines (CI runners): a machine that joins with an ephemeral key syncs,
//! stops, and is removed from every member's `machines` once the key's machine has not
//! heard from it for `--ephemeral-after`; a normal machine offline just as long stays.
//! The key stays good for the next runner; the removed one is refused if it comes back.

mod common;

use common::{Daemon, MachineDirs, cli, cli_json, events_json, eventually, pair};
use std::path::Path;

fn ids(home: &Path) -> Vec<String> {
    cli_json(home, &["machines"])
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn machine_id(home: &Path) -> String {
    cli_json(home, &["status"])["machine"]["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// A CI key from `home`'s running `up`: reusable, ephemeral, removed after 3 s away.
fn ci_key(home: &Path) -> String {
    let out = cli(
        home,
        &[
            "invite",
            "--reusable",
            "--ephemeral",
            "--ttl",
            "1h",
            "--ephemeral-after",
            "3s",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

fn join(home: &Path, ticket: &str) -> std::process::Output {
    cli(home, &["join", ticket])
}

#[test]
fn an_ephemeral_runner_is_removed_everywhere_after_it_stays_away_and_a_normal_machine_is_not() {
    let server_home = tempfile::tempdir().expect("home");
    let server = Daemon::mirror(server_home.path(), "server");
    let laptop = MachineDirs::with_spec("001-laptop", "planned");
    let desk = MachineDirs::with_spec("001-desk", "planned");
    let ci = MachineDirs::with_spec("001-ci", "in-progress");
    let up_laptop = Daemon::start(laptop.home(), laptop.project(), "laptop");
    let up_desk = Daemon::start(desk.home(), desk.project(), "desk");
    pair(server_home.path(), laptop.home());
    pair(server_home.path(), desk.home());

    // A CI key: reusable, ephemeral, removed after 3 s away.
    let key = ci_key(server_home.path());
    let listed = cli_json(server_home.path(), &["invite", "list"]);
    assert_eq!(listed[0]["ephemeral_after"], 3, "{listed}");

    let up_ci = Daemon::start(ci.home(), ci.project(), "ci-runner");
    let out = join(ci.home(), &key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ci_id = machine_id(ci.home());
    let desk_id = machine_id(desk.home());
    eventually("the laptop holds the runner's spec", || {
        cli_json(laptop.home(), &["specs", "--machine", "ci-runner"])
            .as_array()
            .is_some_and(|r| r.len() == 1)
    });

    // The desk (a normal member) goes away first, and stays away longer than 3 s.
    assert!(up_desk.stop().success());
    let events = events_json(laptop.home(), laptop.project(), "001-laptop");
    assert!(up_ci.stop().success());
    let line = events.wait_line("machine_removed");
    let event: serde_json::Value = serde_json::from_str(line.trim()).expect("json");
    assert_eq!(event["machine"], ci_id.as_str(), "{event}");
    assert_eq!(event["label"], "ci-runner", "{event}");
    for home in [server_home.path(), laptop.home()] {
        eventually("the runner is gone from the list", || {
            !ids(home).contains(&ci_id)
        });
        assert!(
            ids(home).contains(&desk_id),
            "a normal machine away just as long is still listed"
        );
    }
    let fleet = cli_json(laptop.home(), &["specs"]);
    assert!(
        fleet
            .as_array()
            .is_some_and(|r| r.iter().all(|s| s["spec"] != "001-ci")),
        "the runner's specs are forgotten: {fleet}"
    );
    let audit_of_key = cli_json(server_home.path(), &["invite", "list"]);
    assert_eq!(audit_of_key[0]["state"], "active", "{audit_of_key}");
    assert_eq!(
        audit_of_key[0]["used_by"][0]["removed"], true,
        "{audit_of_key}"
    );

    // The next runner joins with the same key.
    let ci2 = MachineDirs::with_spec("001-ci2", "planned");
    let up_ci2 = Daemon::start(ci2.home(), ci2.project(), "ci-runner-2");
    let out = join(ci2.home(), &key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ci2_id = machine_id(ci2.home());
    eventually("the laptop lists the next runner", || {
        ids(laptop.home()).contains(&ci2_id)
    });

    // The removed runner comes back with its old identity: refused, not listed again.
    let back = Daemon::start(ci.home(), ci.project(), "ci-runner");
    eventually("the server refuses the removed runner", || {
        cli_json(server_home.path(), &["status"])["refused"]["revoked"]
            .as_u64()
            .is_some_and(|n| n > 0)
    });
    assert!(!ids(server_home.path()).contains(&ci_id));
    assert!(back.stop().success());
    assert!(up_ci2.stop().success());
    assert!(up_laptop.stop().success());
    assert!(server.stop().success());
    drop(events);
}

/// Issue 38: an ephemeral member that rewrites its own record (`added_at` far in the
/// future, `added_by` itself, its mark deleted: patched software, here
/// `examples/forge_mesh.rs` writing a change signed with the runner's key into its
/// store) is still removed on time: what a member writes about itself is no fact.
#[test]
fn an_ephemeral_runner_that_rewrites_its_own_record_is_still_removed() {
    let server_home = tempfile::tempdir().expect("home");
    let server = Daemon::mirror(server_home.path(), "server");
    let key = ci_key(server_home.path());
    let ci = MachineDirs::with_spec("001-ci", "in-progress");
    let up_ci = Daemon::start(ci.home(), ci.project(), "ci-runner");
    let out = join(ci.home(), &key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ci_id = machine_id(ci.home());
    assert!(up_ci.stop().success());

    // The runner rewrites its own record, with its own key, while stopped.
    let forged = std::process::Command::new(common::example("forge_mesh"))
        .args(["rewrite-own"])
        .arg(ci.home())
        .arg("ci-forever")
        .output()
        .expect("forge_mesh");
    assert!(
        forged.status.success(),
        "{}",
        String::from_utf8_lossy(&forged.stderr)
    );
    // Without `--label`: `up --label` would rename it back (a later change).
    let up_ci = Daemon::start_with(ci.home(), ci.project(), &[]);
    let label = |home: &Path| {
        cli_json(home, &["machines"])
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["id"] == ci_id.as_str()).cloned())
            .map(|r| r["label"].clone())
    };
    eventually("the server holds the rewritten record", || {
        label(server_home.path()).is_some_and(|l| l == "ci-forever")
    });
    let events = events_json(server_home.path(), ci.project(), "001-ci");
    let stopped = std::time::Instant::now();
    assert!(up_ci.stop().success());
    let line = events.wait_line("machine_removed");
    eprintln!(
        "the runner that rewrote its record was removed {} ms after it stopped",
        stopped.elapsed().as_millis()
    );
    let event: serde_json::Value = serde_json::from_str(line.trim()).expect("json");
    assert_eq!(event["machine"], ci_id.as_str(), "{event}");
    eventually("the runner is gone from the list", || {
        !ids(server_home.path()).contains(&ci_id)
    });
    assert!(server.stop().success());
}
