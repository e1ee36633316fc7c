//! A quiet `up` hands back the memory its startup left resident (code pages, free heap)
//! and keeps working: code runs again from the file, and the next quiet period after
//! more work trims again (`shells/cli/src/resident.rs`).

mod common;

use common::{Daemon, MachineDirs, cli_json, eventually, write_spec};

/// "resident 41.2 MB -> 12.3 MB" in a trim line → (41.2, 12.3).
fn resident(line: &str) -> (f64, f64) {
    let tail = line
        .split("resident ")
        .nth(1)
        .expect("resident in the line");
    let mut mbs = tail
        .split(" -> ")
        .map(|s| s.trim_end_matches(" MB").trim().parse::<f64>().expect("MB"));
    (mbs.next().expect("before"), mbs.next().expect("after"))
}

fn vm_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

#[test]
fn a_quiet_daemon_hands_back_startup_memory_and_keeps_working() {
    let m = MachineDirs::with_spec("001-alpha", "planned");
    let d = Daemon::start_with(m.home(), m.project(), &["--trim-after", "1s"]);
    let line = d.wait_line("unmapped");
    let (before, after) = resident(&line);
    eprintln!("{line}");
    // Measured from outside too: the daemon's resident set stays well under what it
    // was before the trim (the code it needs idle maps back, a fraction of startup's).
    let pid = d.pid();
    let now = vm_rss_mb(pid);
    assert!(
        after < before * 0.7 && now < before * 0.7,
        "resident {before} MB before the trim, {after} MB after, {now} MB now"
    );

    // Still works: a saved file is scanned and stored, and served to the CLI.
    write_spec(m.project(), "001-alpha", "in-progress");
    eventually("the edit is in the document", || {
        let rows = cli_json(m.home(), &["specs"]);
        rows[0]["status"] == "in-progress"
    });
    // The edit was work: the next quiet second trims again.
    d.wait_line("unmapped");
    assert!(d.stop().success());
}
