//! Two `leanspec-peer up` processes on 127.0.0.1: invite, join, edit a spec file on
//! one machine, see it on the other; events, machines, status; clean stop on SIGTERM.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_leanspec-peer");
const WAIT: Duration = Duration::from_secs(30);

/// A running `up`; killed if the test fails before stopping it.
struct Daemon {
    child: Child,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn start(home: &Path, project: &Path, label: &str) -> Daemon {
        let mut child = Command::new(BIN)
            .args(["up", "--bind", "127.0.0.1:0", "--label", label, "--project"])
            .arg(project)
            .env("LEANSPEC_PEER_HOME", home)
            .env("LEANSPEC_PEER_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn up");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let d = Daemon { child, stderr: rx };
        d.wait_line("listening on");
        d
    }

    /// Waits (bounded) for a stderr line containing `needle`.
    fn wait_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("`up` did not print {needle:?} within {WAIT:?}"),
            }
        }
    }

    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(ok.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "up did not stop on SIGTERM");
            let _ = self.stderr.recv_timeout(Duration::from_millis(100));
        }
    }
}

fn cli(home: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("LEANSPEC_PEER_HOME", home)
        .output()
        .expect("run")
}

fn cli_json(home: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = cli(home, &all);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

fn write_spec(root: &Path, name: &str, status: &str) {
    let d = root.join("specs").join(name);
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::write(
        d.join("README.md"),
        format!("---\nstatus: {status}\ncreated: '2025-01-01'\npriority: high\n---\n\n# {name}\n"),
    )
    .expect("write");
}

/// Re-runs `check` until it returns true, at most `WAIT`.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_daemons_pair_and_replicate_a_file_edit() {
    let (home_a, home_b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let (proj_a, proj_b) = (
        tempfile::tempdir().expect("pa"),
        tempfile::tempdir().expect("pb"),
    );
    write_spec(proj_a.path(), "001-alpha", "planned");
    write_spec(proj_b.path(), "001-beta", "draft");
    let a = Daemon::start(home_a.path(), proj_a.path(), "alpha-box");
    let b = Daemon::start(home_b.path(), proj_b.path(), "beta-box");

    let out = cli(home_a.path(), &["invite"]);
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
    let joined = cli_json(home_b.path(), &["join", &ticket]);
    assert_eq!(joined["inviter_label"], "alpha-box");

    // The second use of a one-time ticket is refused with a clear message.
    let third = tempfile::tempdir().expect("c");
    assert!(cli(third.path(), &["init"]).status.success());
    let out = cli(third.path(), &["join", &ticket]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already used"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    eventually("B lists A's spec", || {
        let rows = cli_json(home_b.path(), &["specs", "--machine", "alpha-box"]);
        rows.as_array()
            .is_some_and(|r| r.len() == 1 && r[0]["status"] == "planned")
    });

    // Edit the file on A: B sees it.
    write_spec(proj_a.path(), "001-alpha", "in-progress");
    eventually("B sees the edit made on A", || {
        let rows = cli_json(home_b.path(), &["specs", "--machine", "alpha-box"]);
        rows[0]["status"] == "in-progress"
    });

    let machines = cli_json(home_b.path(), &["machines"]);
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
        let s = cli_json(home_a.path(), &["status"]);
        s["running"] == true && s["peers"][0]["in_sync"] == true
    });

    // Stop A cleanly: B keeps A's specs and shows it offline.
    let status = a.stop();
    assert!(status.success(), "up exits 0 on SIGTERM");
    assert!(
        !home_a.path().join("control.sock").exists(),
        "socket removed"
    );
    eventually("B shows A offline", || {
        let m = cli_json(home_b.path(), &["machines"]);
        m.as_array()
            .expect("array")
            .iter()
            .any(|r| r["label"] == "alpha-box" && r["online"] == false)
    });
    let rows = cli_json(home_b.path(), &["specs", "--machine", "alpha-box"]);
    assert_eq!(rows[0]["status"], "in-progress");
    assert!(b.stop().success());
    // With no daemon, read-only commands read the store directly.
    let rows = cli_json(home_b.path(), &["specs", "--machine", "alpha-box"]);
    assert_eq!(rows[0]["status"], "in-progress");
}
