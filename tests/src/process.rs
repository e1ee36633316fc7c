//! Helpers for tests that run real processes (`leanspec-peer`, `leanspec-relay`): a
//! child with its stderr lines on a channel (killed on drop), bounded waits for a line,
//! SIGTERM stops, CLI calls with a home folder.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a process test waits for a line or a condition.
pub const PROC_WAIT: Duration = Duration::from_secs(40);

/// A running child process; killed (kill -9) if still running when dropped.
#[derive(Debug)]
pub struct Proc {
    /// The child.
    pub child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Spawns `cmd` with stdout discarded and stderr captured line by line.
    pub fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        Proc::reading(child, stderr)
    }

    /// Spawns `cmd` with stdout captured line by line (stderr inherited): for
    /// `events --json`.
    pub fn spawn_stdout(cmd: &mut Command) -> Proc {
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        Proc::reading(child, stdout)
    }

    fn reading(child: Child, stream: impl std::io::Read + Send + 'static) -> Proc {
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Proc { child, lines }
    }

    /// The next captured line containing `needle` within `wait`, if any.
    pub fn line_within(&self, needle: &str, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Waits (bounded) for a captured line containing `needle` and returns it.
    pub fn wait_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + PROC_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no stderr line containing {needle:?} within {PROC_WAIT:?}"),
            }
        }
    }

    /// kill -9 and reap.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (bounded) for the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(ok.success());
        let deadline = Instant::now() + PROC_WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "did not stop on SIGTERM");
            let _ = self.lines.recv_timeout(Duration::from_millis(100));
        }
    }
}

/// Runs `bin args` with `LEANSPEC_PEER_HOME=home`.
pub fn run(bin: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("LEANSPEC_PEER_HOME", home)
        .output()
        .expect("run")
}

/// Runs `bin args --json`, asserts success and parses stdout.
pub fn run_json(bin: &Path, home: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = run(bin, home, &all);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Re-runs `check` until it returns true, at most [`PROC_WAIT`].
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PROC_WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes `specs/<name>/README.md` under `root` with `status`.
pub fn write_spec(root: &Path, name: &str, status: &str) {
    let d = root.join("specs").join(name);
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::write(
        d.join("README.md"),
        format!("---\nstatus: {status}\ncreated: '2025-01-01'\npriority: high\n---\n\n# {name}\n"),
    )
    .expect("write");
}

/// One test machine's folders: a home (store, key, socket) and a project with one spec.
#[derive(Debug)]
pub struct MachineDirs {
    /// `LEANSPEC_PEER_HOME`.
    pub home: tempfile::TempDir,
    /// The project root (holds `specs/`).
    pub project: tempfile::TempDir,
}

impl MachineDirs {
    /// Fresh folders with the spec `spec` at `status`.
    pub fn with_spec(spec: &str, status: &str) -> MachineDirs {
        let dirs = MachineDirs {
            home: tempfile::tempdir().expect("home"),
            project: tempfile::tempdir().expect("project"),
        };
        write_spec(dirs.project.path(), spec, status);
        dirs
    }

    /// The home folder.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The project folder.
    pub fn project(&self) -> &Path {
        self.project.path()
    }
}
