//! Issue 39, servers: a peer under `ulimit -n 256` whose UI (TLS) gets 1,000 idle TCP
//! connections and 200 stalled TLS handshakes while 20 of its spec files change. Its
//! paired machine sees no `spec removed` and every change; `status` and a logged-in
//! client (another address) still answer. The UI's slots (`shells/web/src/serve.rs`)
//! are what keeps the peer's own descriptors free.

mod common;

use common::{BIN, Daemon, MachineDirs, cli, cli_json, events_json, eventually, pair, write_spec};
use leanspec_peer_tests::process::Proc;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

/// `curl -k` from 127.0.0.2 with a cookie jar; returns (HTTP status, body, seconds).
fn curl(jar: &std::path::Path, url: &str) -> (u16, String, f64) {
    let out = Command::new("curl")
        .args(["-sk", "--interface", "127.0.0.2", "--max-time", "20"])
        .arg("-c")
        .arg(jar)
        .arg("-b")
        .arg(jar)
        .args(["-w", "\n%{http_code} %{time_total}", url])
        .output()
        .expect("curl (the test needs curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let mut parts = tail.split_whitespace();
    let code = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let secs = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::MAX);
    (code, body.to_string(), secs)
}

#[test]
fn a_flood_of_idle_clients_changes_nothing_the_peer_publishes() {
    // This test holds 1,200 sockets itself.
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut own = getrlimit(Resource::Nofile);
    own.current = own.maximum.map(|m| m.min(8192));
    setrlimit(Resource::Nofile, own).expect("raise the test's own descriptor limit");

    let a = MachineDirs::with_spec("001-spec", "planned");
    for i in 2..=20 {
        write_spec(a.project(), &format!("{i:03}-spec"), "planned");
    }
    let b = MachineDirs::with_spec("001-b", "planned");
    let up_a = Proc::spawn(
        Command::new("sh")
            .args(["-c", "ulimit -n 256 && exec \"$0\" \"$@\""])
            .arg(BIN)
            .args([
                "up",
                "--bind",
                "127.0.0.1:0",
                "--label",
                "alpha",
                "--ui",
                "127.0.0.1:0",
                "--tls-self-signed",
                "--project",
            ])
            .arg(a.project())
            .env("LEANSPEC_PEER_HOME", a.home())
            .env("LEANSPEC_PEER_LOG", "info"),
    );
    let line = up_a.wait_line("web UI at ");
    let ui = line
        .split("https://")
        .nth(1)
        .and_then(|r| r.split([' ', '/']).next())
        .unwrap_or_else(|| panic!("an https address: {line}"))
        .to_string();
    let up_a = Daemon::from_proc(up_a);
    let _up_b = Daemon::start(b.home(), b.project(), "beta");
    pair(a.home(), b.home());
    let on_b = |status: &str| {
        cli_json(
            b.home(),
            &["specs", "--machine", "alpha", "--status", status],
        )
        .as_array()
        .map_or(0, Vec::len)
    };
    eventually("B lists A's 20 specs", || on_b("planned") == 20);
    let events = events_json(b.home(), b.project(), "001-b");

    // A logged-in client on another address.
    let jar = tempfile::NamedTempFile::new().expect("jar");
    let out = cli(a.home(), &["ui"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (code, _, _) = curl(jar.path(), &url);
    assert!(code == 303 || code == 200, "login: {code}");
    let api = format!("https://{ui}/api/v1/specs");
    let (code, body, _) = curl(jar.path(), &api);
    assert_eq!(code, 200, "{body}");

    // The flood: 1,000 idle TCP connections, then 200 that would start a TLS handshake
    // and stall (they send nothing more).
    let mut held = Vec::with_capacity(1200);
    for _ in 0..1000 {
        if let Ok(s) = TcpStream::connect(&ui) {
            held.push(s);
        }
    }
    for _ in 0..200 {
        if let Ok(mut s) = TcpStream::connect(&ui) {
            use std::io::Write;
            let _ = s.write_all(&[0x16, 0x03, 0x01]); // the first bytes of a ClientHello
            held.push(s);
        }
    }
    assert!(
        held.len() >= 1000,
        "the flood connected {} sockets",
        held.len()
    );

    // While it lasts: 20 spec files change, status and the API answer.
    for i in 1..=20 {
        write_spec(a.project(), &format!("{i:03}-spec"), "complete");
    }
    let mut status_secs = Vec::new();
    let mut api_secs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let out = cli(a.home(), &["status", "--json"]);
        status_secs.push(t.elapsed().as_secs_f64());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (code, body, secs) = curl(jar.path(), &api);
        assert_eq!(code, 200, "the API during the flood: {body}");
        api_secs.push(secs);
    }
    eventually("B sees the 20 changes during the flood", || {
        on_b("complete") == 20
    });
    eprintln!("during the flood: status {status_secs:.3?} s, API {api_secs:.3?} s");
    for (what, secs) in [("status", &status_secs), ("the API", &api_secs)] {
        assert!(
            secs.iter().all(|s| *s < 1.0),
            "{what} took {secs:?} s during the flood"
        );
    }
    let unreadable = cli_json(a.home(), &["status"])["unreadable"].clone();
    drop(held);

    let mut seen = Vec::new();
    while let Some(l) = events.line_within("", Duration::from_millis(300)) {
        seen.push(l);
    }
    let removed: Vec<&String> = seen.iter().filter(|l| l.contains("spec_removed")).collect();
    assert!(removed.is_empty(), "B was told of removals: {removed:#?}");
    assert_eq!(on_b("complete"), 20);
    assert!(
        unreadable.as_array().is_none_or(Vec::is_empty),
        "A could not read its files during the flood: {unreadable}"
    );
    drop(up_a);
}
