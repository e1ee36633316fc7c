//! Issue 39, files: a spec's README.md is read only beneath the project's specs folder
//! (a symlink out of it is listed as refused, never read or served, even when swapped
//! in between a scan and a read), and a read that failed (a folder made unreadable, a
//! projects disk unmounted) is never published as a removal.
//!
//! The second test needs root (mount); as root, the peer runs without the capabilities
//! that read through mode 000 (`setpriv`), as a user's peer would.

mod common;

use common::http::{get, login};
use common::{
    BIN, Daemon, MachineDirs, cli, cli_json, events_json, eventually, pair, root_sh, write_spec,
};
use leanspec_peer_tests::process::Proc;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What must never leave machine A.
const SECRET: &str = "AWS_SECRET_ACCESS_KEY=never-leaves-this-machine-39";

/// `up` with its loopback UI; returns the daemon and the UI's address.
fn up_with_ui(home: &Path, project: &Path, label: &str) -> (Daemon, String) {
    let p = Proc::spawn(
        Command::new(BIN)
            .args(["up", "--bind", "127.0.0.1:0", "--label", label, "--project"])
            .arg(project)
            .env("LEANSPEC_PEER_HOME", home)
            .env("LEANSPEC_PEER_LOG", "info"),
    );
    let line = p.wait_line("web UI at http://");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split([' ', '/']).next())
        .expect("address")
        .to_string();
    (Daemon::from_proc(p), addr)
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_readme_that_links_out_of_the_project_is_never_read_or_served() {
    let outside = tempfile::tempdir().expect("outside");
    let secret = outside.path().join("secret.env");
    std::fs::write(&secret, format!("{SECRET}\n")).expect("secret");
    let a = MachineDirs::with_spec("001-ok", "planned");
    let specs = a.project().join("specs");
    std::fs::create_dir_all(specs.join("002-leak")).expect("mkdir");
    std::os::unix::fs::symlink(&secret, specs.join("002-leak/README.md")).expect("symlink");
    write_spec(a.project(), "003-race", "planned");
    let b = MachineDirs::with_spec("001-b", "planned");
    let (_up_a, ui) = up_with_ui(a.home(), a.project(), "alpha");
    let _up_b = Daemon::start(b.home(), b.project(), "beta");
    pair(a.home(), b.home());
    let project = cli_json(a.home(), &["project", "list"])[0]["name"]
        .as_str()
        .expect("project name")
        .to_string();
    eventually("B lists A's three specs", || {
        cli_json(b.home(), &["specs", "--machine", "alpha"])
            .as_array()
            .is_some_and(|r| r.len() == 3)
    });

    // Listed on every member as refused, with the reason.
    let rows = cli_json(b.home(), &["specs", "--machine", "alpha"]);
    let leak = rows
        .as_array()
        .and_then(|r| r.iter().find(|s| s["spec"] == "002-leak"))
        .expect("002-leak listed");
    let why = leak["parse_error"].as_str().unwrap_or_default();
    assert!(why.contains("outside the specs folder"), "{leak}");

    // `body` from B (A reads it for B), locally on A, and the UI's body view.
    let from_b = cli(
        b.home(),
        &["body", "--machine", "alpha", &project, "002-leak"],
    );
    assert!(!from_b.status.success(), "{}", text(&from_b));
    assert!(!text(&from_b).contains(SECRET), "{}", text(&from_b));
    assert!(
        text(&from_b).contains("outside the specs folder"),
        "{}",
        text(&from_b)
    );
    let on_a = cli(a.home(), &["body", &project, "002-leak"]);
    assert!(
        !on_a.status.success() && !text(&on_a).contains(SECRET),
        "{}",
        text(&on_a)
    );
    let cookie = login(a.home(), &ui);
    let ui_body = |spec: &str| {
        get(
            &ui,
            &format!("/api/v1/body?project={project}&spec={spec}"),
            &[("Cookie", &cookie)],
        )
    };
    let (status, _, body) = ui_body("002-leak");
    assert!(status >= 400 && !body.contains(SECRET), "{status} {body}");

    // The race: 003-race's README.md flips between its real text and a link to the
    // secret while B and the UI read it.
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, dir, secret) = (stop.clone(), specs.join("003-race"), secret.clone());
        let real = std::fs::read(dir.join("README.md")).expect("real text");
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut swaps = 0u32;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && swaps < 200_000 {
                let link = dir.join(".swap-link");
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(&secret, &link).expect("link");
                std::fs::rename(&link, dir.join("README.md")).expect("swap in the link");
                std::fs::write(dir.join(".swap-real"), &real).expect("real");
                std::fs::rename(dir.join(".swap-real"), dir.join("README.md")).expect("swap back");
                swaps += 1;
            }
            swaps
        })
    };
    let mut served = 0;
    for _ in 0..20 {
        let out = cli(
            b.home(),
            &["body", "--machine", "alpha", &project, "003-race"],
        );
        assert!(
            !text(&out).contains(SECRET),
            "B was served the secret: {}",
            text(&out)
        );
        served += usize::from(out.status.success());
        let (status, _, body) = ui_body("003-race");
        assert!(!body.contains(SECRET), "the UI served the secret: {body}");
        served += usize::from(status == 200);
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().expect("swapper");
    assert!(swaps > 20, "the race ran ({swaps} swaps)");
    assert!(
        served > 0,
        "some reads saw the real file: they were real reads"
    );
    // Nothing of the secret was kept anywhere on B either.
    let cached = cli(b.home(), &["search", "never-leaves-this-machine"]);
    assert!(!text(&cached).contains(SECRET), "{}", text(&cached));
}

/// A's `up`: as root, without the capabilities that read through mode 000.
fn up_without_dac(home: &Path, project: &Path) -> Daemon {
    let mut cmd = if rustix_is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--bounding-set", "-dac_override,-dac_read_search", "--"])
            .arg(BIN);
        c
    } else {
        Command::new(BIN)
    };
    cmd.args([
        "up",
        "--bind",
        "127.0.0.1:0",
        "--no-ui",
        "--label",
        "alpha",
        "--project",
    ])
    .arg(project)
    .env("LEANSPEC_PEER_HOME", home)
    .env("LEANSPEC_PEER_LOG", "info");
    let d = Daemon::from_proc(Proc::spawn(&mut cmd));
    d.wait_line("Ctrl-C to stop");
    d
}

fn rustix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Every event line B has printed so far (bounded wait for each).
fn drain(events: &Proc, into: &mut Vec<String>) {
    while let Some(line) = events.line_within("", Duration::from_millis(300)) {
        into.push(line);
    }
}

/// A's unreadable entries, from `status --json`.
fn unreadable(home: &Path) -> Vec<serde_json::Value> {
    cli_json(home, &["status"])["unreadable"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn an_unreadable_folder_or_an_unmounted_disk_is_not_a_removal() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (store, disk) = (tmp.path().join("tmpfs"), tmp.path().join("disk"));
    std::fs::create_dir_all(&disk).expect("mkdir");
    std::fs::create_dir_all(&store).expect("mkdir");
    root_sh(&format!(
        "mount -t tmpfs -o size=16m tmpfs '{s}'\nmount --bind '{s}' '{d}'",
        s = store.display(),
        d = disk.display()
    ));
    struct Unmount(std::path::PathBuf, std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.1).status();
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _mounts = Unmount(store.clone(), disk.clone());
    let project = disk.join("alpha");
    for i in 1..=5 {
        write_spec(&project, &format!("00{i}-spec"), "planned");
    }
    let home_a = tempfile::tempdir().expect("home a");
    let b = MachineDirs::with_spec("001-b", "planned");
    let up_a = up_without_dac(home_a.path(), &project);
    let _up_b = Daemon::start(b.home(), b.project(), "beta");
    pair(home_a.path(), b.home());
    let five = || {
        cli_json(b.home(), &["specs", "--machine", "alpha"])
            .as_array()
            .is_some_and(|r| r.len() == 5)
    };
    eventually("B lists A's five specs", five);
    let events = events_json(b.home(), b.project(), "001-b");
    let mut seen = Vec::new();

    // 1. A spec folder made unreadable: kept, named in A's status, and the scan goes on
    //    (a change to another spec still arrives).
    root_sh(&format!(
        "chmod 000 '{}'",
        project.join("specs/002-spec").display()
    ));
    assert!(cli(home_a.path(), &["scan"]).status.success());
    eventually("A's status names 002-spec unreadable", || {
        unreadable(home_a.path()).iter().any(|u| {
            u["spec"] == "002-spec"
                && u["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("ermission denied"))
        })
    });
    write_spec(&project, "003-spec", "complete");
    eventually("B sees 003-spec complete", || {
        cli_json(
            b.home(),
            &["specs", "--machine", "alpha", "--status", "complete"],
        )
        .as_array()
        .is_some_and(|r| r.len() == 1)
    });
    let status = cli(home_a.path(), &["status"]);
    assert!(text(&status).contains("unreadable"), "{}", text(&status));
    assert!(five(), "B still lists five specs while 002 is unreadable");
    root_sh(&format!(
        "chmod 755 '{}'",
        project.join("specs/002-spec").display()
    ));
    eventually("A reads 002-spec again", || {
        unreadable(home_a.path()).is_empty()
    });

    // 2. The projects disk unmounted: nothing removed, A says why; mounted again:
    //    everything as before.
    root_sh(&format!("umount -l '{}'", disk.display()));
    assert!(cli(home_a.path(), &["scan"]).status.success());
    eventually("A's status names the project unreadable", || {
        unreadable(home_a.path()).iter().any(|u| {
            u["spec"].is_null()
                && u["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("no specs folder"))
        })
    });
    assert!(five(), "B still lists five specs while the disk is away");
    root_sh(&format!(
        "mount --bind '{}' '{}'",
        store.display(),
        disk.display()
    ));
    eventually("A reads the project again", || {
        unreadable(home_a.path()).is_empty()
    });
    drain(&events, &mut seen);
    let removed: Vec<&String> = seen.iter().filter(|l| l.contains("spec_removed")).collect();
    assert!(removed.is_empty(), "B was told of removals: {removed:#?}");
    assert!(five(), "B lists five specs after");
    let rows = cli_json(b.home(), &["specs", "--machine", "alpha"]);
    let two = rows
        .as_array()
        .and_then(|r| r.iter().find(|s| s["spec"] == "002-spec"))
        .expect("002-spec");
    assert_eq!(two["status"], "planned", "{two}");
    assert!(two["parse_error"].is_null(), "{two}");
    drop(up_a);
}
