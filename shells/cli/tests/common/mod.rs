//! Helpers for tests that run `leanspec-peer` processes (over the shared
//! `leanspec_peer_tests::process` helpers).
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod http;

pub use leanspec_peer_tests::process::{MachineDirs, eventually, write_spec};
use leanspec_peer_tests::process::{Proc, run, run_json};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_leanspec-peer");

/// A running `up`; killed if the test fails before stopping it.
pub struct Daemon(Proc);

impl Daemon {
    /// Starts `up` and waits until it serves its control socket.
    pub fn start(home: &Path, project: &Path, label: &str) -> Daemon {
        let d = Daemon::spawn(home, project, label);
        d.wait_line("Ctrl-C to stop");
        d
    }

    /// Starts `up --no-ui` with `extra` arguments and waits until it serves.
    pub fn start_with(home: &Path, project: &Path, extra: &[&str]) -> Daemon {
        let d = Daemon(Proc::spawn(
            Command::new(BIN)
                .args(["up", "--bind", "127.0.0.1:0", "--no-ui"])
                .args(extra)
                .arg("--project")
                .arg(project)
                .env("LEANSPEC_PEER_HOME", home)
                .env("LEANSPEC_PEER_LOG", "info"),
        ));
        d.wait_line("Ctrl-C to stop");
        d
    }

    /// Wraps an `up` started with other arguments.
    pub fn from_proc(p: Proc) -> Daemon {
        Daemon(p)
    }

    /// Starts `up` without waiting for it.
    pub fn spawn(home: &Path, project: &Path, label: &str) -> Daemon {
        Daemon(Proc::spawn(
            Command::new(BIN)
                .args(["up", "--bind", "127.0.0.1:0", "--label", label, "--project"])
                .arg(project)
                .env("LEANSPEC_PEER_HOME", home)
                .env("LEANSPEC_PEER_LOG", "info"),
        ))
    }

    /// Starts `up` with no project (an always-on mirror) and waits for its control
    /// socket.
    pub fn mirror(home: &Path, label: &str) -> Daemon {
        let d = Daemon(Proc::spawn(
            Command::new(BIN)
                .args(["up", "--bind", "127.0.0.1:0", "--no-ui", "--label", label])
                .env("LEANSPEC_PEER_HOME", home)
                .env("LEANSPEC_PEER_LOG", "info"),
        ));
        d.wait_line("Ctrl-C to stop");
        d
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.0.child.id()
    }

    /// kill -9.
    pub fn kill9(self) {
        self.0.kill9();
    }

    /// Waits (bounded) for a stderr line containing `needle`.
    pub fn wait_line(&self, needle: &str) -> String {
        self.0.wait_line(needle)
    }

    /// Waits (bounded) for a stderr line containing `needle`.
    pub fn line_within(&self, needle: &str, wait: std::time::Duration) -> Option<String> {
        self.0.line_within(needle, wait)
    }

    /// SIGTERM and the exit status.
    pub fn stop(self) -> std::process::ExitStatus {
        self.0.stop()
    }
}

pub fn cli(home: &Path, args: &[&str]) -> Output {
    run(Path::new(BIN), home, args)
}

/// A ticket from `inviter` (its `up` running); the invite must succeed.
pub fn invite(inviter: &Path) -> String {
    let out = cli(inviter, &["invite"]);
    assert!(
        out.status.success(),
        "invite: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

/// `inviter` invites (its `up` running) and `joiner` joins with the ticket; both must
/// succeed.
pub fn pair(inviter: &Path, joiner: &Path) {
    let ticket = invite(inviter);
    let out = cli(joiner, &["join", &ticket]);
    assert!(
        out.status.success(),
        "join: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn cli_json(home: &Path, args: &[&str]) -> Value {
    run_json(Path::new(BIN), home, args)
}

/// `events --json` against the running `up` in `home`, subscribed: returns once a
/// change to `spec` of `project` (this machine's, rewritten with alternating statuses,
/// bounded) has come through the stream, so no later event can be missed.
pub fn events_json(home: &Path, project: &Path, spec: &str) -> Proc {
    let events = Proc::spawn_stdout(
        Command::new(BIN)
            .args(["events", "--json"])
            .env("LEANSPEC_PEER_HOME", home),
    );
    for round in 0..40 {
        let status = if round % 2 == 0 {
            "complete"
        } else {
            "planned"
        };
        write_spec(project, spec, status);
        if events
            .line_within(spec, std::time::Duration::from_millis(500))
            .is_some()
        {
            return events;
        }
    }
    panic!("`events --json` showed no change of {spec} within 40 rewrites");
}

/// Runs a shell script that changes test network namespaces (`set -e`); fails the test
/// with what is missing when it fails.
pub fn root_sh(script: &str) {
    let out = Command::new("sh")
        .args(["-c", &format!("set -e\n{script}")])
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "a root change failed (needs root; network tests need iproute2 and nftables, which .ci/run installs): {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An example program built beside the tests (`cargo test` builds `examples/`): the
/// hostile hosts and members of the security tests, never shipped.
pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let dir = exe.parent().and_then(Path::parent).expect("target folder");
    let p = dir.join("examples").join(name);
    assert!(
        p.exists(),
        "{} is built by `cargo test` (an example; `cargo build --example {name}` alone)",
        p.display()
    );
    p
}
