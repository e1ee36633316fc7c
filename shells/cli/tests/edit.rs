//! `leanspec-peer edit` with real processes: a remote edit applied and audited on both
//! sides, a stale one rejected (exit 3), an offline target (exit 4); and kill -9 of a
//! machine while it applies edits: the spec file is always a whole version.

mod common;

use common::{BIN, Daemon, MachineDirs, cli, cli_json, eventually, write_spec};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn readme(root: &Path, name: &str) -> String {
    std::fs::read_to_string(root.join("specs").join(name).join("README.md")).expect("read")
}

/// `home`'s audit log has an entry for `op_id` in that direction with that result.
fn assert_audited(home: &Path, op_id: &str, direction: &str, result: &str) {
    let audit = cli_json(home, &["audit"]);
    let found = audit
        .as_array()
        .expect("array")
        .iter()
        .any(|r| r["op_id"] == op_id && r["direction"] == direction && r["result"] == result);
    assert!(found, "no {direction} {result} entry for {op_id}: {audit}");
}

#[test]
fn edit_another_machine_applied_stale_and_unavailable() {
    let m_a = MachineDirs::with_spec("001-alpha", "planned");
    let m_b = MachineDirs::with_spec("001-beta", "planned");
    let a = Daemon::start(m_a.home(), m_a.project(), "alpha");
    let b = Daemon::start(m_b.home(), m_b.project(), "beta");
    let ticket = String::from_utf8(cli(m_b.home(), &["invite"]).stdout).expect("utf8");
    cli_json(m_a.home(), &["join", ticket.trim()]);
    eventually("A lists B's spec", || {
        cli_json(m_a.home(), &["specs", "--machine", "beta"])
            .as_array()
            .is_some_and(|r| r.len() == 1)
    });
    let project_b = cli_json(m_b.home(), &["project", "list"])[0]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let before = readme(m_b.project(), "001-beta");

    // A edits B's spec: applied, exit 0.
    let out = cli(
        m_a.home(),
        &[
            "edit",
            "beta",
            &project_b,
            "001",
            "--status",
            "in-progress",
            "--add-tag",
            "from-a",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["result"], "applied");
    let after = readme(m_b.project(), "001-beta");
    assert_eq!(
        v["file_hash"].as_str(),
        Some(leanspec_peer_core::spec::sha256_hex(after.as_bytes()).as_str())
    );
    // Only the status line changed, a tags line and LeanSpec's lines were added.
    let removed: Vec<&str> = before.lines().filter(|l| !after.contains(l)).collect();
    assert_eq!(removed, ["status: planned"], "{after}");
    assert!(
        after.contains("tags:") && after.contains("from-a"),
        "{after}"
    );
    assert!(after.ends_with("\n# 001-beta\n"), "body kept: {after}");
    eventually("A sees the new values after sync", || {
        let rows = cli_json(m_a.home(), &["specs", "--machine", "beta"]);
        rows[0]["status"] == "in-progress"
            && rows[0]["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == "from-a"))
    });
    let op_id = v["op_id"].as_str().expect("op id").to_string();
    assert_audited(m_a.home(), &op_id, "sent", "applied");
    assert_audited(m_b.home(), &op_id, "received", "applied");

    // Stale: an old base hash is rejected with the current one, exit 3, file untouched.
    let old_hash = leanspec_peer_core::spec::sha256_hex(before.as_bytes());
    let out = cli(
        m_a.home(),
        &[
            "edit",
            "beta",
            &project_b,
            "001",
            "--status",
            "complete",
            "--base-hash",
            &old_hash,
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(out.status.code(), Some(3), "{v}");
    assert_eq!(v["reason"], "stale");
    assert_eq!(
        v["current_file_hash"].as_str(),
        Some(leanspec_peer_core::spec::sha256_hex(after.as_bytes()).as_str())
    );
    assert_eq!(readme(m_b.project(), "001-beta"), after);

    // Without `up` on A, the CLI delivers with a short-lived endpoint.
    assert!(a.stop().success());
    let out = cli(
        m_a.home(),
        &[
            "edit",
            "beta",
            &project_b,
            "001",
            "--priority",
            "critical",
            "--base-hash",
            &leanspec_peer_core::spec::sha256_hex(after.as_bytes()),
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert!(readme(m_b.project(), "001-beta").contains("priority: critical"));
    // An execution request reaches B's host (its `up` log) and both audit logs.
    let out = cli(
        m_a.home(),
        &["exec-request", "beta", r#"{"run":"lint"}"#, "--json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["result"], "delivered");
    let line = b.wait_line("exec request");
    assert!(line.contains(r#"{"run":"lint"}"#), "{line}");
    let audit_b = cli_json(m_b.home(), &["audit", "--limit", "1"]);
    assert_eq!(audit_b[0]["kind"], "exec_request");
    assert_eq!(audit_b[0]["payload"], r#"{"run":"lint"}"#);

    // B stops: unavailable within the timeout, exit 4.
    assert!(b.stop().success());
    let t0 = Instant::now();
    let out = cli(
        m_a.home(),
        &[
            "edit",
            "beta",
            &project_b,
            "001",
            "--priority",
            "low",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(out.status.code(), Some(4), "{v}");
    assert_eq!(v["result"], "unavailable");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
}

fn trials() -> usize {
    std::env::var("LEANSPEC_EDIT_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

/// kill -9 of the owning machine at a random point of applying an edit (the whole
/// pipeline: sign, verify, write + fsync + rename, rescan). After every kill the spec
/// file is either the version before or a whole edited version, and parses.
#[test]
fn kill_9_while_applying_edits_never_tears_the_file() {
    let home = tempfile::tempdir().expect("home");
    let proj = tempfile::tempdir().expect("project");
    write_spec(proj.path(), "001-target", "planned");
    assert!(
        cli(home.path(), &["init", "--label", "owner"])
            .status
            .success()
    );
    let dir = proj.path().to_str().expect("utf8");
    assert!(
        cli(home.path(), &["project", "add", dir, "--name", "p"])
            .status
            .success()
    );
    let statuses = ["in-progress", "planned", "complete", "draft"];
    let (mut killed_before, mut applied) = (0, 0);
    let n = trials();
    for trial in 0..n {
        let before = readme(proj.path(), "001-target");
        let status = statuses[trial % statuses.len()];
        // The base is the file as it is now: a kill may have left the document behind
        // the file (it is rescanned after the write), which `scan` or `up` would fix.
        let base = leanspec_peer_core::spec::sha256_hex(before.as_bytes());
        let mut child = Command::new(BIN)
            .args([
                "edit",
                "owner",
                "p",
                "001",
                "--status",
                status,
                "--base-hash",
                &base,
            ])
            .env("LEANSPEC_PEER_HOME", home.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        // Kill points spread over the process's life (a fixed LCG: reproducible).
        let mut x = (trial as u64)
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x ^= x >> 29;
        let delay = Duration::from_micros(x % 60_000);
        let deadline = Instant::now() + delay;
        while Instant::now() < deadline {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let _ = child.kill();
        let _ = child.wait();
        let now = readme(proj.path(), "001-target");
        let parsed =
            leanspec_peer_core::spec::parse_bytes("001-target", now.as_bytes(), Vec::new());
        assert!(
            parsed.parse_error.is_none(),
            "trial {trial}: the file does not parse: {:?}\n{now}",
            parsed.parse_error
        );
        if now == before {
            killed_before += 1;
        } else {
            assert_eq!(
                parsed.status.map(|s| s.as_str()),
                Some(status),
                "trial {trial}: a changed file holds the requested status"
            );
            assert!(
                now.ends_with("\n# 001-target\n"),
                "trial {trial}: body kept"
            );
            applied += 1;
        }
        // No temp file left behind in the spec folder.
        let leftovers: Vec<_> = std::fs::read_dir(proj.path().join("specs/001-target"))
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .filter(|n| n != "README.md")
            .collect();
        assert!(
            leftovers
                .iter()
                .all(|n| n.to_string_lossy().starts_with('.')),
            "trial {trial}: {leftovers:?}"
        );
    }
    eprintln!(
        "kill -9 while applying edits: {n} trials, {applied} killed after the write, {killed_before} before"
    );
    assert!(
        applied > 0 && killed_before > 0,
        "kill points must cover both sides"
    );
    // The store survived every kill: after a scan, an edit through the same path works.
    assert!(cli(home.path(), &["scan"]).status.success());
    let out = cli(
        home.path(),
        &["edit", "owner", "p", "001", "--priority", "low", "--json"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
