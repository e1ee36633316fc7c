//! A full disk (issue 15): machine A's project and home each on a small tmpfs, filled
//! while an edit is applied, while a scan stores a new spec and while sync brings B's
//! changes. Every failure is a clear error, A keeps running, no spec file is torn, and
//! once space returns A recovers by itself: what it scanned meanwhile reaches B, B's
//! change reaches A, edits apply again, and the store reopens intact after a restart.
//!
//! Needs root (mount). The mounts exist only for the test and are removed after it.

mod common;

use common::{Daemon, MachineDirs, cli, cli_json, eventually, pair, write_spec};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `mb` MiB at `dir`, unmounted on drop.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path, mb: u32) -> SmallDisk {
        std::fs::create_dir_all(dir).expect("mkdir");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mb}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs (the test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk {
            dir: dir.to_path_buf(),
        }
    }

    /// Writes zeros until the file system is full; returns the filler's path.
    fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let block = vec![0u8; 64 * 1024];
        // Bounded: a tmpfs of a few MiB fills within a few hundred blocks.
        for _ in 0..100_000 {
            if f.write_all(&block).is_err() {
                break;
            }
        }
        let small = [0u8; 512];
        for _ in 0..10_000 {
            if f.write_all(&small).is_err() {
                break;
            }
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Waits (bounded) for a line of `up` containing `needle`; panics with every line seen.
fn wait_logged(up: &Daemon, needle: &str, secs: u64) -> String {
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        match up.line_within("", std::time::Duration::from_millis(200)) {
            Some(l) if l.contains(needle) => return l,
            Some(l) => seen.push(l),
            None => {}
        }
    }
    panic!("no line with {needle:?} within {secs} s; the log: {seen:#?}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn spec_path(project: &Path, name: &str) -> PathBuf {
    project.join("specs").join(name).join("README.md")
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_full_disk_gives_clear_errors_loses_nothing_and_the_peer_recovers_by_itself() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home_disk = SmallDisk::mount(&tmp.path().join("home-disk"), 16);
    let project_disk = SmallDisk::mount(&tmp.path().join("project-disk"), 16);
    let home_a = home_disk.dir.join("home");
    let project_a = project_disk.dir.join("alpha");
    write_spec(&project_a, "001-alpha", "planned");
    let b = MachineDirs::with_spec("001-beta", "planned");
    let up_a = Daemon::start(&home_a, &project_a, "alpha");
    let up_b = Daemon::start(b.home(), b.project(), "beta");
    pair(&home_a, b.home());
    let project_id = cli_json(&home_a, &["project", "list"])[0]["id"]
        .as_str()
        .expect("project id")
        .to_string();
    eventually("B holds A's spec", || {
        cli_json(b.home(), &["specs", "--machine", "alpha"])
            .as_array()
            .is_some_and(|r| r.len() == 1)
    });

    // B asks A to complete 001-alpha; the verdict.
    let edit_from_b = || {
        let out = cli(
            b.home(),
            &[
                "edit",
                "alpha",
                &project_id,
                "001-alpha",
                "--status",
                "complete",
                "--json",
            ],
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", stderr_of(&out)))
    };

    // 1. The project's disk is full while an edit is applied: refused with the cause,
    //    the file untouched, no temporary file left.
    let readme = spec_path(&project_a, "001-alpha");
    let before = std::fs::read(&readme).expect("read");
    let filler = project_disk.fill();
    let verdict = edit_from_b();
    assert_eq!(verdict["result"], "rejected", "{verdict}");
    assert!(
        verdict["message"]
            .as_str()
            .is_some_and(|m| m.contains("No space left")),
        "the cause is said: {verdict}"
    );
    assert_eq!(
        std::fs::read(&readme).expect("read"),
        before,
        "file untouched"
    );
    let leftovers: Vec<_> = std::fs::read_dir(readme.parent().expect("dir"))
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "README.md")
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary file left: {leftovers:?}"
    );
    std::fs::remove_file(&filler).expect("free the project disk");

    // 2. The home's disk is full while a scan stores new specs (the LeanSpec corpus
    //    arrives: ~300 specs' metadata needs new pages) and while sync brings B's change.
    let filler = home_disk.fill();
    let corpus = leanspec_peer_tests::corpus_dir();
    copy_dir(&corpus, &project_a.join("specs"));
    write_spec(b.project(), "001-beta", "in-progress");
    let failed = wait_logged(&up_a, "free some space", 30);
    assert!(failed.contains("No space left on device"), "{failed}");
    // A still answers (the control socket), and says what is wrong.
    let status = cli(&home_a, &["status", "--json"]);
    assert!(
        status.status.success() || stderr_of(&status).contains("store"),
        "status fails only with the store's error: {}",
        stderr_of(&status)
    );

    // 3. Space returns: A recovers by itself.
    std::fs::remove_file(&filler).expect("free the home disk");
    wait_logged(&up_a, "the store is writable again", 30);
    let count = |home: &Path, machine: &str| {
        cli_json(home, &["specs", "--machine", machine])
            .as_array()
            .map_or(0, Vec::len)
    };
    let on_disk = std::fs::read_dir(project_a.join("specs"))
        .expect("specs")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("README.md").is_file())
        .count();
    eventually("A lists every spec on its disk", || {
        count(&home_a, "alpha") == on_disk
    });
    let scanned = on_disk;
    eventually(
        "B gets every spec A scanned while its disk was full",
        || count(b.home(), "alpha") == scanned,
    );
    eventually("A gets B's change made while its disk was full", || {
        cli_json(&home_a, &["specs", "--machine", "beta"])[0]["status"] == "in-progress"
    });
    let verdict = edit_from_b();
    assert_eq!(verdict["result"], "applied", "{verdict}");
    assert!(
        std::fs::read_to_string(&readme)
            .expect("read")
            .contains("status: complete")
    );

    // 4. Restarted, A's store opens and holds everything.
    assert!(up_a.stop().success());
    let rows = cli_json(&home_a, &["specs", "--machine", "alpha"]);
    assert_eq!(rows.as_array().map_or(0, Vec::len), scanned, "{rows}");
    assert_eq!(
        cli_json(&home_a, &["specs", "--machine", "beta"])[0]["status"],
        "in-progress"
    );
    assert!(up_b.stop().success());
}
