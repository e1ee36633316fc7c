//! kill -9 in the middle of scanning and of syncing: after a restart nothing is lost
//! and everything converges. Each test loops `LEANSPEC_CRASH_TRIALS` times (default
//! 10) with kill points from a seeded generator (reproducible), and prints the count.

mod common;

use common::{Daemon, cli, cli_json, eventually};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const SPECS: usize = 1500;
const STATUSES: [&str; 4] = ["planned", "in-progress", "complete", "draft"];

fn trials() -> usize {
    std::env::var("LEANSPEC_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// Kill point for a trial, in ms: a fixed LCG so failures can be replayed.
fn kill_after(trial: usize, max_ms: u64) -> Duration {
    let mut x = (trial as u64)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    x ^= x >> 33;
    Duration::from_millis(x % max_ms)
}

fn write(root: &Path, i: usize, status: &str) {
    let d = root.join("specs").join(format!("{:04}-spec-{i}", i + 1));
    std::fs::create_dir_all(&d).expect("mkdir");
    let text = format!(
        "---\nstatus: {status}\ncreated: '2025-01-01'\npriority: high\ntags: [t{i}]\n---\n\n# Spec {i}\n\nBody of spec {i}.\n"
    );
    std::fs::write(d.join("README.md"), text).expect("write");
}

fn project(generation: usize) -> tempfile::TempDir {
    let p = tempfile::tempdir().expect("project");
    for i in 0..SPECS {
        write(p.path(), i, STATUSES[(i + generation) % 4]);
    }
    p
}

/// Every spec of `machine` on `home` has the status its file has now.
fn matches_files(rows: &Value, generation_of: impl Fn(usize) -> usize) -> bool {
    let Some(rows) = rows.as_array() else {
        return false;
    };
    rows.len() == SPECS
        && rows.iter().all(|r| {
            let name = r["spec"].as_str().unwrap_or("");
            let i: usize = name[..4].parse::<usize>().unwrap_or(0).saturating_sub(1);
            r["status"] == STATUSES[(i + generation_of(i)) % 4]
        })
}

#[test]
fn kill_9_while_scanning_loses_nothing() {
    let p = project(0);
    let n = trials();
    for trial in 0..n {
        let home = tempfile::tempdir().expect("home");
        let d = Daemon::spawn(home.path(), p.path(), "crashy");
        std::thread::sleep(kill_after(trial, 600));
        d.kill9();
        // Files change while the machine is down.
        for i in (trial..SPECS).step_by(97) {
            write(p.path(), i, STATUSES[(i + trial + 1) % 4]);
        }
        let out = cli(
            home.path(),
            &[
                "up",
                "--once",
                "--project",
                p.path().to_str().expect("utf8"),
            ],
        );
        assert!(
            out.status.success(),
            "trial {trial}: restart failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows = cli_json(home.path(), &["specs"]);
        let changed = |i: usize| {
            if i >= trial && (i - trial).is_multiple_of(97) {
                trial + 1
            } else {
                0
            }
        };
        assert!(
            matches_files(&rows, changed),
            "trial {trial}: the document does not match the files"
        );
        // Put the files back for the next trial.
        for i in (trial..SPECS).step_by(97) {
            write(p.path(), i, STATUSES[i % 4]);
        }
    }
    println!("kill -9 while scanning: {n} trials, all converged");
}

#[test]
fn kill_9_while_syncing_converges() {
    let (home_a, pa) = (tempfile::tempdir().expect("a"), project(0));
    let mut a = Daemon::start(home_a.path(), pa.path(), "sender");
    let ticket = {
        let out = cli(home_a.path(), &["invite", "--reusable", "--ttl", "1h"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_string()
    };
    let n = trials();
    let mut generation = 0;
    for trial in 0..n {
        let (home_b, pb) = (
            tempfile::tempdir().expect("b"),
            tempfile::tempdir().expect("pb"),
        );
        common::write_spec(pb.path(), "001-b", "draft");
        assert!(
            cli(
                home_b.path(),
                &["init", "--label", &format!("receiver-{trial}")]
            )
            .status
            .success()
        );
        let out = cli(home_b.path(), &["join", &ticket, "--bind", "127.0.0.1:0"]);
        assert!(
            out.status.success(),
            "trial {trial}: join: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let b = Daemon::spawn(home_b.path(), pb.path(), "receiver");
        std::thread::sleep(kill_after(trial, 500));
        let b = if trial % 2 == 0 {
            // Kill the receiver mid-sync, restart it.
            b.kill9();
            Daemon::start(home_b.path(), pb.path(), "receiver")
        } else {
            // Kill the sender mid-sync, change its files while it is down, restart it;
            // the receiver keeps running and must reconnect by itself.
            a.kill9();
            generation += 1;
            for i in (0..SPECS).step_by(50) {
                write(pa.path(), i, STATUSES[(i + generation) % 4]);
            }
            a = Daemon::start(home_a.path(), pa.path(), "sender");
            b
        };
        let g = generation;
        let gen_of = move |i: usize| if i.is_multiple_of(50) { g } else { 0 };
        eventually(&format!("trial {trial}: the receiver converges"), || {
            matches_files(
                &cli_json(home_b.path(), &["specs", "--machine", "sender"]),
                gen_of,
            )
        });
        assert!(b.stop().success());
    }
    assert!(a.stop().success());
    println!(
        "kill -9 while syncing: {n} trials (receiver killed in {}, sender in {}), all converged",
        n.div_ceil(2),
        n / 2
    );
}
