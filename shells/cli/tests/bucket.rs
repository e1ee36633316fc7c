//! A bucket as rendezvous (docs/bucket.md), against a real S3 API server on 127.0.0.1
//! (`s3s-fs`, installed by `.ci/run`; `LEANSPEC_S3S_FS` names another binary): two
//! paired machines that are never up at the same time catch up through it alone, its
//! objects hold no spec name, title, tag or label, and a hostile or broken bucket
//! (replayed, tampered objects, wrong credentials, the endpoint down, a revoked reader)
//! gives clear errors and loses nothing.

mod common;

use common::{BIN, Daemon, MachineDirs, cli, cli_json, eventually, pair, write_spec};
use leanspec_peer_tests::process::Proc;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const KEY: &str = "lsp-test-key";
const SECRET: &str = "lsp-test-secret-0123456789";
const BUCKET: &str = "team-specs";

/// A real S3 server (s3s-fs) on 127.0.0.1 storing objects as files under `root`.
struct S3 {
    proc: Option<Proc>,
    port: u16,
    root: tempfile::TempDir,
}

fn s3s_fs() -> PathBuf {
    if let Some(p) = std::env::var_os("LEANSPEC_S3S_FS") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("HOME");
    let p = home.join("bin/s3s-fs");
    assert!(
        p.exists(),
        "the bucket tests need s3s-fs: `cargo install s3s-fs@0.14.1 --features binary --locked` (.ci/run does), or set LEANSPEC_S3S_FS"
    );
    p
}

impl S3 {
    fn start() -> S3 {
        let root = tempfile::tempdir().expect("root");
        std::fs::create_dir(root.path().join(BUCKET)).expect("bucket dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let mut s = S3 {
            proc: None,
            port,
            root,
        };
        s.restart();
        s
    }

    fn restart(&mut self) {
        self.proc = Some(Proc::spawn(
            Command::new(s3s_fs())
                .args(["--host", "127.0.0.1", "--port"])
                .arg(self.port.to_string())
                .args(["--access-key", KEY, "--secret-key", SECRET])
                .arg(self.root.path()),
        ));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(p) = self.proc.take() {
            p.kill9();
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every object file of the mesh (s3s-fs keeps objects as files; its own metadata
    /// lives apart).
    fn objects(&self) -> Vec<PathBuf> {
        fn walk(d: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "snap" || x == "chunk") {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root.path().join(BUCKET), &mut out);
        out.sort();
        out
    }
}

/// `leanspec-peer args` with credentials for the test bucket (`secret` may be wrong).
fn cli_with(home: &Path, secret: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("LEANSPEC_PEER_HOME", home)
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .output()
        .expect("run")
}

fn sync(home: &Path) -> (bool, serde_json::Value, String) {
    let out = cli_with(home, SECRET, &["bucket", "sync", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.success(), v, stderr)
}

fn up(home: &Path, project: &Path, label: &str) -> Daemon {
    let d = Daemon::from_proc(Proc::spawn(
        Command::new(BIN)
            .args([
                "up",
                "--bind",
                "127.0.0.1:0",
                "--no-ui",
                "--bucket-pull-every",
                "1s",
            ])
            .args(["--label", label, "--project"])
            .arg(project)
            .env("LEANSPEC_PEER_HOME", home)
            .env("LEANSPEC_PEER_LOG", "info")
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET),
    ));
    d.wait_line("Ctrl-C to stop");
    d
}

fn status_of(home: &Path, machine_label: &str, spec: &str) -> Option<String> {
    cli_json(home, &["specs"])
        .as_array()?
        .iter()
        .find(|r| r["machine_label"] == machine_label && r["spec"] == spec)
        .and_then(|r| r["status"].as_str().map(str::to_string))
}

fn bucket_state(home: &Path) -> serde_json::Value {
    cli_json(home, &["bucket", "status"])[0]["state"].clone()
}

/// Saves `spec` with `status` on a running machine and waits until its `up` stored an
/// object for it in the bucket.
fn change_and_store(m: &MachineDirs, spec: &str, status: &str) {
    let pushed = bucket_state(m.home())["objects_pushed"]
        .as_u64()
        .unwrap_or(0);
    write_spec(m.project(), spec, status);
    eventually("the change is stored in the bucket", || {
        bucket_state(m.home())["objects_pushed"].as_u64() > Some(pushed)
    });
}

/// Pairs A and B while both run, adds the bucket on A and waits until B has it too.
fn paired_with_bucket(a: &MachineDirs, b: &MachineDirs, s3: &S3) -> (Daemon, Daemon) {
    paired_with_bucket_and(a, b, s3, &[])
}

/// [`paired_with_bucket`] with more `bucket add` options.
fn paired_with_bucket_and(
    a: &MachineDirs,
    b: &MachineDirs,
    s3: &S3,
    options: &[&str],
) -> (Daemon, Daemon) {
    let up_a = up(a.home(), a.project(), "alpha-desk");
    let up_b = up(b.home(), b.project(), "beta-laptop");
    pair(a.home(), b.home());
    let url = format!("s3://{BUCKET}/office");
    let endpoint = s3.endpoint();
    let mut args = vec![
        "bucket",
        "add",
        url.as_str(),
        "--endpoint",
        endpoint.as_str(),
    ];
    args.extend_from_slice(options);
    let out = cli(a.home(), &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("B has the bucket from the mesh", || {
        cli_json(b.home(), &["bucket", "list"])[0]["url"] == url.as_str()
    });
    // Proposed on B until B's user accepts it (issue 39).
    assert!(cli_json(b.home(), &["bucket", "list"])[0]["state"]["accepted"].is_null());
    let out = cli(b.home(), &["bucket", "accept", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (up_a, up_b)
}

#[test]
fn machines_never_up_together_catch_up_through_the_bucket_which_reads_nothing() {
    let s3 = S3::start();
    let a = MachineDirs::with_spec("001-orchid-launch", "planned");
    let b = MachineDirs::with_spec("001-velvet-harbor", "planned");
    let corpus = std::env::var("LEANSPEC_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/lean-spec-specs")
        });
    let (up_a, up_b) = paired_with_bucket(&a, &b, &s3);
    // A also shares the LeanSpec corpus, so the objects can be searched for its strings.
    let corpus_root = tempfile::tempdir().expect("corpus root");
    let status = Command::new("cp")
        .arg("-r")
        .arg(&corpus)
        .arg(corpus_root.path().join("specs"))
        .status()
        .expect("cp");
    assert!(status.success());
    let out = cli(
        a.home(),
        &["project", "add", corpus_root.path().to_str().expect("utf8")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("both machines stored objects", || {
        bucket_state(a.home())["objects_pushed"].as_u64() >= Some(1)
            && bucket_state(b.home())["objects_pushed"].as_u64() >= Some(1)
    });
    assert_eq!(
        status_of(b.home(), "alpha-desk", "001-orchid-launch").as_deref(),
        Some("planned")
    );
    up_b.stop();

    // A changes a spec while B is away, and stores it in the bucket.
    change_and_store(&a, "001-orchid-launch", "complete");
    up_a.stop();

    // B comes up with A gone: the change can only come from the bucket.
    let up_b = up(b.home(), b.project(), "beta-laptop");
    eventually("B shows A's change", || {
        status_of(b.home(), "alpha-desk", "001-orchid-launch").as_deref() == Some("complete")
    });
    assert_eq!(
        status_of(b.home(), "alpha-desk", "001-orchid-launch").as_deref(),
        Some("complete")
    );
    // And back: B changes its spec and leaves; A comes up alone and sees it.
    change_and_store(&b, "001-velvet-harbor", "in-progress");
    up_b.stop();
    let up_a = up(a.home(), a.project(), "alpha-desk");
    eventually("A shows B's change", || {
        status_of(a.home(), "beta-laptop", "001-velvet-harbor").as_deref() == Some("in-progress")
    });
    let st = bucket_state(a.home());
    assert!(st["objects_pulled"].as_u64() >= Some(1), "{st}");
    assert_eq!(st["last_error"], serde_json::Value::Null, "{st}");
    up_a.stop();

    // Nothing readable in the bucket: no spec name, title, tag or label of the corpus
    // or of the test machines.
    let mut needles: Vec<String> = vec![
        "001-orchid-launch".into(),
        "001-velvet-harbor".into(),
        "alpha-desk".into(),
        "beta-laptop".into(),
    ];
    for row in cli_json(a.home(), &["specs"]).as_array().expect("rows") {
        for k in ["spec", "title"] {
            if let Some(s) = row[k].as_str().filter(|s| s.len() >= 6) {
                needles.push(s.to_string());
            }
        }
        for t in row["tags"].as_array().into_iter().flatten() {
            if let Some(s) = t.as_str().filter(|s| s.len() >= 6) {
                needles.push(s.to_string());
            }
        }
    }
    needles.sort();
    needles.dedup();
    assert!(
        needles.len() > 300,
        "the corpus is in A's specs: {}",
        needles.len()
    );
    let objects = s3.objects();
    assert!(objects.len() >= 4, "{objects:?}");
    for o in &objects {
        let bytes = std::fs::read(o).expect("object");
        for n in &needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == n.as_bytes()),
                "{} contains {n:?}",
                o.display()
            );
        }
    }
}

#[test]
fn replayed_tampered_unreachable_wrongly_credentialed_and_revoked_are_clear_errors() {
    let mut s3 = S3::start();
    let a = MachineDirs::with_spec("001-orchid-launch", "planned");
    let b = MachineDirs::with_spec("001-velvet-harbor", "planned");
    let (up_a, up_b) = paired_with_bucket(&a, &b, &s3);
    up_a.stop();
    up_b.stop();
    let (ok, v, err) = sync(a.home());
    assert!(ok, "{v} {err}");
    let (ok, v, err) = sync(b.home());
    assert!(ok, "{v} {err}");
    let a_id = cli_json(a.home(), &["status"])["machine"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let folder = s3.root.path().join(BUCKET).join("office").join(&a_id);

    // A chunk: A changes its spec.
    let change = |status: &str| {
        write_spec(a.project(), "001-orchid-launch", status);
        assert!(cli(a.home(), &["scan"]).status.success());
        let (ok, v, err) = sync(a.home());
        assert!(ok, "{v} {err}");
        v[0]["pushed"][0].as_u64().expect("pushed")
    };
    let seq = change("in-progress");
    let chunk = folder.join(format!("{seq:020}.chunk"));
    assert!(chunk.exists(), "{}", chunk.display());

    // Replayed: an old object under a newer number.
    let replay = folder.join(format!("{:020}.chunk", seq + 1));
    std::fs::copy(&chunk, &replay).expect("copy");
    let (ok, v, _) = sync(b.home());
    assert!(!ok);
    let refused = v[0]["refused"].to_string();
    assert!(refused.contains("replayed or moved"), "{v}");
    assert!(bucket_state(b.home())["refused"].as_u64() >= Some(1));
    std::fs::remove_file(&replay).expect("rm");
    assert_eq!(
        status_of(b.home(), "alpha-desk", "001-orchid-launch").as_deref(),
        Some("in-progress")
    );

    // Tampered: one byte of the next chunk flipped, then put back.
    let seq = change("complete");
    let chunk = folder.join(format!("{seq:020}.chunk"));
    let original = std::fs::read(&chunk).expect("read");
    let mut bad = original.clone();
    let at = bad.len() - 30;
    bad[at] ^= 0x40;
    std::fs::write(&chunk, &bad).expect("write");
    let (ok, v, _) = sync(b.home());
    assert!(!ok);
    assert!(
        v[0]["refused"].to_string().contains("does not decrypt"),
        "{v}"
    );
    assert_eq!(
        status_of(b.home(), "alpha-desk", "001-orchid-launch").as_deref(),
        Some("in-progress")
    );
    std::fs::write(&chunk, &original).expect("restore");

    // Wrong credentials: a clear error, nothing imported.
    let out = cli_with(b.home(), "not-the-secret", &["bucket", "sync"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("refused this machine's credentials"),
        "{text}"
    );
    // The endpoint down: a clear error; once it is back the machine converges.
    s3.stop();
    let (ok, v, _) = sync(b.home());
    assert!(!ok);
    assert!(
        v[0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("cannot reach"),
        "{v}"
    );
    s3.restart();
    let (ok, v, err) = sync(b.home());
    assert!(ok, "{v} {err}");
    assert_eq!(
        status_of(b.home(), "alpha-desk", "001-orchid-launch").as_deref(),
        Some("complete")
    );

    // Revoked: A revokes B and writes again; B cannot read what comes after.
    let b_id = cli_json(b.home(), &["status"])["machine"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(cli(a.home(), &["revoke", &b_id]).status.success());
    change("planned");
    let (ok, v, _) = sync(b.home());
    assert!(!ok);
    assert!(
        v[0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("not a recipient of this bucket's objects"),
        "{v}"
    );
    assert_eq!(
        status_of(b.home(), "alpha-desk", "001-orchid-launch").as_deref(),
        Some("complete")
    );
}

#[test]
fn compaction_leaves_one_snapshot_and_a_late_reader_still_catches_up() {
    let s3 = S3::start();
    let a = MachineDirs::with_spec("001-orchid-launch", "planned");
    let b = MachineDirs::with_spec("001-velvet-harbor", "planned");
    let (up_a, up_b) = paired_with_bucket_and(
        &a,
        &b,
        &s3,
        &["--snapshot-every", "3", "--keep-snapshots", "1"],
    );
    up_a.stop();
    up_b.stop();
    let a_id = cli_json(a.home(), &["status"])["machine"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let mut last = 0;
    for (i, status) in [
        "in-progress",
        "complete",
        "planned",
        "in-progress",
        "complete",
        "archived",
        "planned",
    ]
    .iter()
    .enumerate()
    {
        write_spec(a.project(), "001-orchid-launch", status);
        assert!(cli(a.home(), &["scan"]).status.success());
        let (ok, v, err) = sync(a.home());
        assert!(ok, "round {i}: {v} {err}");
        last = v[0]["pushed"][0].as_u64().unwrap_or(last);
    }
    let folder = s3.root.path().join(BUCKET).join("office").join(&a_id);
    let mut files: Vec<String> = std::fs::read_dir(&folder)
        .expect("folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".snap") || n.ends_with(".chunk"))
        .collect();
    files.sort();
    let snaps: Vec<&String> = files.iter().filter(|f| f.ends_with(".snap")).collect();
    assert_eq!(snaps.len(), 1, "{files:?}");
    assert!(
        files.len() <= 3,
        "a snapshot and the chunks after it: {files:?}"
    );
    assert_eq!(
        files[0], *snaps[0],
        "nothing older than the snapshot is left: {files:?}"
    );
    assert!(last >= 7, "objects were numbered on: {last}");
    // B was away for all of it: it reads the snapshot and the chunks after it.
    let (ok, v, err) = sync(b.home());
    assert!(ok, "{v} {err}");
    assert_eq!(
        status_of(b.home(), "alpha-desk", "001-orchid-launch").as_deref(),
        Some("planned")
    );
    // Removed for the mesh: gone from both machines' lists.
    let url = format!("s3://{BUCKET}/office");
    assert!(cli(b.home(), &["bucket", "remove", &url]).status.success());
    assert_eq!(
        cli_json(b.home(), &["bucket", "list"]),
        serde_json::json!([])
    );
    let out = cli(b.home(), &["bucket", "remove", &url]);
    assert_eq!(
        out.status.code(),
        Some(9),
        "no such bucket: invalid argument"
    );
}

#[test]
fn a_running_machine_retries_a_bucket_that_is_down_and_loses_nothing() {
    let mut s3 = S3::start();
    let a = MachineDirs::with_spec("001-orchid-launch", "planned");
    let b = MachineDirs::with_spec("001-velvet-harbor", "planned");
    let (up_a, up_b) = paired_with_bucket(&a, &b, &s3);
    eventually("A stored its first objects", || {
        bucket_state(a.home())["objects_pushed"].as_u64() >= Some(1)
    });
    up_b.stop();
    s3.stop();
    let pushed = bucket_state(a.home())["objects_pushed"]
        .as_u64()
        .unwrap_or(0);
    write_spec(a.project(), "001-orchid-launch", "complete");
    eventually("A reports the bucket down", || {
        bucket_state(a.home())["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot reach"))
    });
    s3.restart();
    // No command: `up` tries again by itself and stores what waited.
    eventually("A stored the change once the bucket is back", || {
        let st = bucket_state(a.home());
        st["objects_pushed"].as_u64() > Some(pushed) && st["last_error"].is_null()
    });
    up_a.stop();
    let (ok, v, err) = sync(b.home());
    assert!(ok, "{v} {err}");
    assert_eq!(
        status_of(b.home(), "alpha-desk", "001-orchid-launch").as_deref(),
        Some("complete")
    );
}

/// Issue 39: a bucket another member added is only proposed here. A listener the test
/// owns stands in for its endpoint: B (with credentials) sends it nothing, not even
/// from an explicit `bucket sync`, until B's user accepts it; then B's requests reach
/// it, signed with B's key id. An `http://` endpoint on another host is refused at
/// accept without `--allow-http` (no traffic is sent there by this test).
#[test]
fn a_bucket_another_member_added_gets_nothing_until_this_machine_accepts_it() {
    use std::io::Read;
    use std::sync::{Arc, Mutex};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (seen, stop) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(180);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = vec![0u8; 8192];
                        let n = s.read(&mut buf).unwrap_or(0);
                        seen.lock()
                            .expect("seen")
                            .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })
    };
    let a = MachineDirs::with_spec("001-a", "planned");
    let b = MachineDirs::with_spec("001-b", "planned");
    // A has no credentials: it never contacts the endpoint, so what the listener sees
    // comes from B.
    let _up_a = Daemon::from_proc(Proc::spawn(
        Command::new(BIN)
            .args([
                "up",
                "--bind",
                "127.0.0.1:0",
                "--no-ui",
                "--label",
                "alpha",
                "--project",
            ])
            .arg(a.project())
            .env("LEANSPEC_PEER_HOME", a.home())
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_SHARED_CREDENTIALS_FILE", a.home().join("none"))
            .env("LEANSPEC_PEER_LOG", "info"),
    ));
    _up_a.wait_line("Ctrl-C to stop");
    let _up_b = up(b.home(), b.project(), "beta");
    pair(a.home(), b.home());
    let url = "s3://consent/office";
    let out = cli(a.home(), &["bucket", "add", url, "--endpoint", &endpoint]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("B has the proposed bucket", || {
        cli_json(b.home(), &["bucket", "list"])[0]["url"] == url
    });
    let listed = cli(b.home(), &["bucket", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("PROPOSED"));
    let (_, rounds, _) = sync(b.home());
    assert!(
        rounds[0]["skipped"]
            .as_str()
            .is_some_and(|s| s.contains("bucket accept")),
        "{rounds}"
    );
    assert!(
        seen.lock().expect("seen").is_empty(),
        "B contacted a bucket it never accepted: {:?}",
        seen.lock().expect("seen")
    );

    let out = cli(b.home(), &["bucket", "accept", url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = sync(b.home());
    eventually("B's requests reach the endpoint once accepted", || {
        seen.lock().expect("seen").iter().any(|r| r.contains(KEY))
    });

    // http:// to another host: A adds it knowingly; B refuses it without the flag.
    let far = "s3://far/office";
    let out = cli(
        a.home(),
        &[
            "bucket",
            "add",
            far,
            "--endpoint",
            "http://10.255.255.1:9000",
        ],
    );
    assert!(!out.status.success(), "A's own add needs --allow-http too");
    let out = cli(
        a.home(),
        &[
            "bucket",
            "add",
            far,
            "--endpoint",
            "http://10.255.255.1:9000",
            "--allow-http",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("B has the second bucket", || {
        cli_json(b.home(), &["bucket", "list"])
            .as_array()
            .is_some_and(|l| l.len() == 2)
    });
    let out = cli(b.home(), &["bucket", "accept", far]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--allow-http"),
        "{err}"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    watcher.join().expect("watcher");
}
