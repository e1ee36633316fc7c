//! Helpers for tests that run `leanspec-peer` processes.
#![allow(dead_code, unreachable_pub)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_leanspec-peer");
pub const WAIT: Duration = Duration::from_secs(30);

/// A running `up`; killed if the test fails before stopping it.
pub struct Daemon {
    pub child: Child,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `up` and waits until it serves its control socket.
    pub fn start(home: &Path, project: &Path, label: &str) -> Daemon {
        let d = Daemon::spawn(home, project, label);
        d.wait_line("Ctrl-C to stop");
        d
    }

    /// Starts `up` without waiting for it.
    pub fn spawn(home: &Path, project: &Path, label: &str) -> Daemon {
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
        Daemon { child, stderr: rx }
    }

    /// kill -9.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (bounded) for a stderr line containing `needle`.
    pub fn wait_line(&self, needle: &str) -> String {
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

    pub fn stop(mut self) -> std::process::ExitStatus {
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

pub fn cli(home: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("LEANSPEC_PEER_HOME", home)
        .output()
        .expect("run")
}

pub fn cli_json(home: &Path, args: &[&str]) -> Value {
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

pub fn write_spec(root: &Path, name: &str, status: &str) {
    let d = root.join("specs").join(name);
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::write(
        d.join("README.md"),
        format!("---\nstatus: {status}\ncreated: '2025-01-01'\npriority: high\n---\n\n# {name}\n"),
    )
    .expect("write");
}

/// Re-runs `check` until it returns true, at most `WAIT`.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
