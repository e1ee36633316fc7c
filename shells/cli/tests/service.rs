//! `service install|status|uninstall` as a user runs them, in a throwaway HOME: the
//! systemd user unit checked by `systemd-analyze verify --user`, secrets kept out of it
//! (0600 environment file), the launchd plist parsed by Python's plistlib, and
//! uninstall removing exactly what install wrote.

mod common;

use common::BIN;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn run(user_home: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("HOME", user_home)
        .env("XDG_CONFIG_HOME", user_home.join(".config"))
        .env_remove("LEANSPEC_PEER_AUTHKEY")
        .env_remove("LEANSPEC_PEER_RELAY_TOKEN")
        .output()
        .expect("run")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn install_writes_a_valid_unit_keeps_secrets_out_and_uninstall_removes_it() {
    let user = tempfile::tempdir().expect("home");
    let project = tempfile::tempdir().expect("project");
    std::fs::create_dir_all(project.path().join("specs/001-a")).expect("mkdir");
    let machine_home = user.path().join("peer home");
    let home = machine_home.to_str().expect("utf8");
    let proj = project.path().to_str().expect("utf8");

    let before: Vec<_> = walk(user.path());
    let out = run(
        user.path(),
        &[
            "--home",
            home,
            "--json",
            "service",
            "install",
            "--project",
            proj,
            "--label",
            "ci box",
            "--authkey",
            "lsp1-secret-key",
            "--relay-token",
            "relay-secret",
        ],
    );
    let v = json(&out);
    // Not started (a test must not start services): the note says what to run.
    assert_eq!(v["started"], false, "{v}");
    assert!(
        v["note"].as_str().is_some_and(|n| n.contains("systemctl")),
        "{v}"
    );
    let unit_path = user
        .path()
        .join(".config/systemd/user/leanspec-peer.service");
    assert_eq!(v["definition"], unit_path.display().to_string());
    let unit = std::fs::read_to_string(&unit_path).expect("unit");
    let canonical = std::fs::canonicalize(project.path()).expect("canonical");
    assert!(
        unit.contains(&format!(
            " --home \"{home}\" up --project {} --label \"ci box\"\n",
            canonical.display()
        )),
        "{unit}"
    );
    assert!(unit.contains("Restart=on-failure"), "{unit}");
    assert!(
        !unit.contains("secret"),
        "secrets stay out of the unit: {unit}"
    );
    let env_path = user.path().join(".config/leanspec-peer/service.env");
    let env = std::fs::read_to_string(&env_path).expect("env file");
    assert!(
        env.contains("LEANSPEC_PEER_AUTHKEY=lsp1-secret-key\n"),
        "{env}"
    );
    assert!(
        env.contains("LEANSPEC_PEER_RELAY_TOKEN=relay-secret\n"),
        "{env}"
    );
    let mode = std::fs::metadata(&env_path)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // systemd's own check of the unit, as a user manager would load it.
    let runtime = tempfile::tempdir().expect("runtime");
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--user"])
        .arg(&unit_path)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .env("HOME", user.path())
        .output()
        .expect("systemd-analyze (the test command installs systemd)");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    let status = json(&run(
        user.path(),
        &["--home", home, "--json", "service", "status"],
    ));
    assert_eq!(status["installed"], true, "{status}");

    // The launchd agent (macOS), checked here by parsing it.
    let dry = json(&run(
        user.path(),
        &[
            "--home",
            home,
            "--json",
            "service",
            "install",
            "--dry-run",
            "--manager",
            "launchd",
            "--project",
            proj,
            "--authkey",
            "k<&>",
        ],
    ));
    let plist = dry["text"].as_str().expect("plist");
    let check = Command::new("python3")
        .args([
            "-c",
            "import plistlib,sys,json; p=plistlib.loads(sys.stdin.buffer.read()); print(json.dumps(p))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(plist.as_bytes())?;
            c.wait_with_output()
        })
        .expect("python3");
    assert!(check.status.success(), "{plist}");
    let p: serde_json::Value = serde_json::from_slice(&check.stdout).expect("plist as JSON");
    assert_eq!(p["ProgramArguments"][2], home, "{p}");
    assert_eq!(p["ProgramArguments"][3], "up");
    assert_eq!(p["EnvironmentVariables"]["LEANSPEC_PEER_AUTHKEY"], "k<&>");
    assert_eq!(p["KeepAlive"]["SuccessfulExit"], false);
    assert!(
        !user.path().join("Library").exists(),
        "a dry run writes nothing"
    );

    let removed = json(&run(
        user.path(),
        &["--home", home, "--json", "service", "uninstall"],
    ));
    assert_eq!(
        removed["removed"].as_array().map(Vec::len),
        Some(2),
        "{removed}"
    );
    assert!(!unit_path.exists() && !env_path.exists());
    let status = json(&run(
        user.path(),
        &["--home", home, "--json", "service", "status"],
    ));
    assert_eq!(status["installed"], false);
    // Only empty folders are left of what install wrote.
    let after: Vec<_> = walk(user.path())
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(
        after,
        before
            .into_iter()
            .filter(|p| p.is_file())
            .collect::<Vec<_>>()
    );

    // --once makes no sense for a service.
    let out = run(
        user.path(),
        &["--home", home, "service", "install", "--once", "--no-start"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--once"));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out.sort();
    out
}
