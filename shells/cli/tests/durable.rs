//! A change of ours is sent only once it is on disk, though its fsync runs while the
//! message is made (`core/src/machine/own_flush.rs`, docs/design.md store invariant 7).
//! Real processes; the disk is made slow for one of them by strace's fault injection
//! (every `fdatasync`/`fsync` of `up` on A waits before it runs), so a message sent
//! before its fsync would arrive seconds early, and a kill during the wait shows that a
//! change lost before reaching the disk was never sent; failed writes show that one
//! lost by the store is stored again before anyone gets it.

mod common;

use common::{Daemon, MachineDirs, cli_json, eventually, pair};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long every fsync of A waits.
const SLOW_DISK: Duration = Duration::from_millis(1500);

/// strace attached to every thread of `pid`, delaying its fsyncs; killed on drop.
struct SlowDisk(Child);

impl SlowDisk {
    fn attach(pid: u32) -> SlowDisk {
        let delay = format!(
            "inject=fdatasync,fsync:delay_enter={}",
            SLOW_DISK.as_micros()
        );
        let guard = SlowDisk(
            Command::new("strace")
                .args([
                    "-f",
                    "-qq",
                    "-o",
                    "/dev/null",
                    "-e",
                    "trace=fdatasync,fsync",
                ])
                .args(["-e", &delay, "-p", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("strace (scripts/test.sh installs it)"),
        );
        // Attached once every thread has a tracer (bounded).
        let traced = |tid: &std::fs::DirEntry| {
            std::fs::read_to_string(tid.path().join("status")).is_ok_and(|s| {
                s.lines().any(|l| {
                    l.starts_with("TracerPid:") && l.split_whitespace().nth(1) != Some("0")
                })
            })
        };
        let tasks = format!("/proc/{pid}/task");
        for _ in 0..500 {
            let all = std::fs::read_dir(&tasks)
                .expect("A's threads")
                .flatten()
                .all(|t| traced(&t));
            if all {
                return guard;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("strace did not attach to every thread of {pid} within 5 s");
    }
}

/// strace on A's watcher thread alone, failing its writes and fsyncs with EIO: the
/// flush of a saved change (redb writes the lazy commit's pages and the new header
/// then), nothing else; so that commit never reaches the file. Detached on drop.
struct FailingDisk(Child);

impl FailingDisk {
    fn attach(pid: u32) -> FailingDisk {
        let tid = thread_named(pid, "leanspec-watch").expect("A's watcher thread");
        let guard = FailingDisk(
            Command::new("strace")
                .args([
                    "-qq",
                    "-o",
                    "/dev/null",
                    "-e",
                    "trace=pwrite64,fdatasync,fsync",
                ])
                .args([
                    "-e",
                    "inject=pwrite64,fdatasync,fsync:error=EIO",
                    "-p",
                    &tid,
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("strace (scripts/test.sh installs it)"),
        );
        let status = format!("/proc/{pid}/task/{tid}/status");
        for _ in 0..500 {
            let traced = std::fs::read_to_string(&status).is_ok_and(|s| {
                s.lines().any(|l| {
                    l.starts_with("TracerPid:") && l.split_whitespace().nth(1) != Some("0")
                })
            });
            if traced {
                return guard;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("strace did not attach to A's watcher thread within 5 s");
    }
}

impl Drop for FailingDisk {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn thread_named(pid: u32, name: &str) -> Option<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .find(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .map(|t| t.file_name().to_string_lossy().into_owned())
}

impl Drop for SlowDisk {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Saves a spec as editors do: a temp file renamed over it (one watcher event, never
/// a half-written file).
fn save_spec(root: &std::path::Path, name: &str, status: &str) {
    let dir = root.join("specs").join(name);
    let tmp = dir.join(".README.md.tmp");
    std::fs::write(
        &tmp,
        format!("---\nstatus: {status}\ncreated: '2025-01-01'\n---\n\n# {name}\n"),
    )
    .expect("write the temp file");
    std::fs::rename(&tmp, dir.join("README.md")).expect("rename over README.md");
}

/// Whether A's watcher thread waits in `fsync`/`fdatasync` (x86_64 numbers 74, 75).
fn watcher_in_fsync(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|t| {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let call = std::fs::read_to_string(t.path().join("syscall")).unwrap_or_default();
        comm.trim() == "leanspec-watch"
            && matches!(call.split_whitespace().next(), Some("74" | "75"))
    })
}

fn status_on_b(home: &std::path::Path) -> serde_json::Value {
    let rows = cli_json(home, &["specs", "--machine", "alpha-box"]);
    rows[0]["status"].clone()
}

#[test]
fn a_saved_change_reaches_peers_only_once_on_disk_and_a_crash_before_loses_nothing_sent() {
    let m_a = MachineDirs::with_spec("001-alpha", "planned");
    let m_b = MachineDirs::with_spec("001-beta", "draft");
    let a = Daemon::start_with(m_a.home(), m_a.project(), &["--label", "alpha-box"]);
    let b = Daemon::start_with(m_b.home(), m_b.project(), &["--label", "beta-box"]);
    pair(m_a.home(), m_b.home());
    eventually("B lists A's spec", || status_on_b(m_b.home()) == "planned");
    let events = common::events_json(m_b.home(), m_b.project(), "001-beta");

    // 1. A slow disk on A: its save reaches B only after the fsync, never before.
    let slow = SlowDisk::attach(a.pid());
    let saved = Instant::now();
    save_spec(m_a.project(), "001-alpha", "in-progress");
    let line = events
        .line_within("\"001-alpha\"", SLOW_DISK * 10)
        .expect("B hears of A's save once A's fsync is done");
    let took = saved.elapsed();
    assert!(
        took >= SLOW_DISK,
        "B heard of the save after {took:?}, before A's fsync could end ({SLOW_DISK:?}): \
         a change was sent before it was on disk ({line})"
    );
    assert_eq!(status_on_b(m_b.home()), "in-progress");

    // 2. A crash while the fsync waits: the change never left A; A rescans it after
    // the restart and B converges (a sent-then-lost change would come back with other
    // content under the same sequence number, and B would refuse the new one).
    let pid = a.pid();
    save_spec(m_a.project(), "001-alpha", "complete");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !watcher_in_fsync(pid) {
        assert!(
            Instant::now() < deadline,
            "A's watcher never waited in fdatasync after the save"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    a.kill9();
    drop(slow);
    assert!(
        events
            .line_within("\"001-alpha\"", Duration::from_millis(300))
            .is_none(),
        "B heard of a change A had not stored"
    );
    assert_eq!(status_on_b(m_b.home()), "in-progress");
    let a = Daemon::start_with(m_a.home(), m_a.project(), &["--label", "alpha-box"]);
    eventually("B converges to A's file after A's restart", || {
        status_on_b(m_b.home()) == "complete"
    });
    let rows = cli_json(m_a.home(), &["specs"]);
    assert_eq!(rows[0]["status"], "complete", "A rescanned its file");

    // 3. The flush fails (EIO) after the lazy commit: the store is reopened as of its
    // last durable commit, which lost the change; A stores it again from memory (the
    // messages made meanwhile are dropped with their sessions), and only then does it
    // reach B. Without storing it again, A's store would lack a change B holds, and
    // after A's restart B would refuse A's next change (same sequence number).
    let failing = FailingDisk::attach(a.pid());
    save_spec(m_a.project(), "001-alpha", "planned");
    a.wait_line("cannot make this machine's changes durable");
    drop(failing);
    a.wait_line("storing them again");
    eventually("B gets the change A stored again", || {
        status_on_b(m_b.home()) == "planned"
    });
    assert_eq!(a.stop().code(), Some(0), "A stops cleanly");
    let a = Daemon::start_with(m_a.home(), m_a.project(), &["--label", "alpha-box"]);
    let rows = cli_json(m_a.home(), &["specs"]);
    assert_eq!(
        rows[0]["status"], "planned",
        "A serves its file after the restart"
    );
    save_spec(m_a.project(), "001-alpha", "in-progress");
    eventually("A and B still sync after it", || {
        status_on_b(m_b.home()) == "in-progress"
    });
    drop(events);
    a.stop();
    b.stop();
}
