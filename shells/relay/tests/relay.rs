//! A real `leanspec-relay` process and real `leanspec-peer up` processes with direct
//! paths disabled: pairing and sync only through the relay, the relay killed and
//! restarted mid-session, a wrong token refused with a clear error.
//!
//! Needs the `leanspec-peer` binary beside this package's binary: `cargo test
//! --workspace` builds both.

use leanspec_peer_tests::process::{MachineDirs, Proc, eventually, run, run_json, write_spec};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const RELAY: &str = env!("CARGO_BIN_EXE_leanspec-relay");
const TOKEN: &str = "test-token-0123456789abcdef";

fn peer_bin() -> PathBuf {
    let p = Path::new(RELAY).with_file_name("leanspec-peer");
    assert!(
        p.exists(),
        "{} is missing: run `cargo test --workspace` (or build -p leanspec-peer first)",
        p.display()
    );
    p
}

fn relay(http_bind: &str, token: Option<&str>) -> (Proc, String) {
    let mut cmd = Command::new(RELAY);
    cmd.args(["--dev", "--http-bind", http_bind])
        .env("LEANSPEC_RELAY_LOG", "info");
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    let p = Proc::spawn(&mut cmd);
    let line = p.wait_line("relay url ");
    let url = line.rsplit(' ').next().expect("url").trim().to_string();
    (p, url)
}

fn up(home: &Path, project: &Path, label: &str, relay: &str, token: &str) -> Proc {
    let p = Proc::spawn(
        Command::new(peer_bin())
            .args([
                "up",
                "--no-direct",
                "--relay",
                relay,
                "--relay-token",
                token,
            ])
            .args(["--label", label, "--project"])
            .arg(project)
            .env("LEANSPEC_PEER_HOME", home)
            .env("LEANSPEC_PEER_LOG", "info"),
    );
    p.wait_line("Ctrl-C to stop");
    p
}

fn cli(home: &Path, args: &[&str]) -> std::process::Output {
    run(&peer_bin(), home, args)
}

fn cli_json(home: &Path, args: &[&str]) -> Value {
    run_json(&peer_bin(), home, args)
}

fn status_on(home: &Path, machine: &str) -> Value {
    cli_json(home, &["specs", "--machine", machine])[0]["status"].clone()
}

/// A free TCP port on loopback (for a relay that must come back on the same address).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[test]
fn peers_pair_and_sync_only_through_the_relay_and_survive_its_restart() {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let (relay_proc, url) = relay(&bind, Some(TOKEN));
    let m_a = MachineDirs::with_spec("001-alpha", "planned");
    let m_b = MachineDirs::with_spec("001-beta", "planned");
    let a = up(m_a.home(), m_a.project(), "alpha", &url, TOKEN);
    let b = up(m_b.home(), m_b.project(), "beta", &url, TOKEN);
    a.wait_line("relay ok");

    // The ticket carries the relay and no direct address.
    let ticket = String::from_utf8(cli(m_a.home(), &["invite"]).stdout).expect("utf8");
    let joined = cli_json(m_b.home(), &["join", ticket.trim()]);
    assert_eq!(joined["inviter_label"], "alpha");
    eventually("B lists A's spec through the relay", || {
        status_on(m_b.home(), "alpha") == "planned"
    });
    write_spec(m_a.project(), "001-alpha", "in-progress");
    eventually("B sees A's edit through the relay", || {
        status_on(m_b.home(), "alpha") == "in-progress"
    });
    eventually("status says relayed", || {
        let s = cli_json(m_a.home(), &["status"]);
        s["peers"][0]["online"] == true && s["peers"][0]["path"] == "relayed"
    });

    // The relay dies and comes back on the same address: the peers reconnect and
    // converge without any manual step.
    drop(relay_proc);
    write_spec(m_a.project(), "001-alpha", "complete");
    let (relay_proc, url2) = relay(&bind, Some(TOKEN));
    assert_eq!(url, url2);
    eventually("B sees A's edit made while the relay was down", || {
        status_on(m_b.home(), "alpha") == "complete"
    });
    write_spec(m_b.project(), "001-beta", "in-progress");
    eventually("A sees B's edit after the relay restart", || {
        status_on(m_a.home(), "beta") == "in-progress"
    });
    a.stop();
    b.stop();
    relay_proc.stop();
}

#[test]
fn a_peer_with_the_wrong_token_is_refused_with_a_clear_error() {
    let (_relay_proc, url) = relay("127.0.0.1:0", Some(TOKEN));
    let home = tempfile::tempdir().expect("home");
    let proj = tempfile::tempdir().expect("project");
    write_spec(proj.path(), "001-x", "planned");
    let p = up(
        home.path(),
        proj.path(),
        "x",
        &url,
        "wrong-token-0123456789",
    );
    let line = p.wait_line("relay refused");
    assert!(line.contains("not authorized"), "{line}");
    assert!(line.contains("--relay-token"), "{line}");
    p.stop();
}

/// Issue 11: the relay token goes only to relays the user named (`--relay`), never to
/// one learned from a ticket (a member's ticket could name a relay that collects
/// tokens), and never in clear text to a relay elsewhere.
#[test]
fn the_relay_token_goes_only_to_relays_the_user_named() {
    let (_relay_proc, url) = relay("127.0.0.1:0", Some(TOKEN));
    let m_a = MachineDirs::with_spec("001-alpha", "planned");
    let m_b = MachineDirs::with_spec("001-beta", "planned");
    // A: direct paths and the relay, so its ticket names both.
    let a = Proc::spawn(
        Command::new(peer_bin())
            .args([
                "up",
                "--bind",
                "127.0.0.1:0",
                "--relay",
                &url,
                "--relay-token",
                TOKEN,
            ])
            .args(["--label", "alpha", "--project"])
            .arg(m_a.project())
            .env("LEANSPEC_PEER_HOME", m_a.home())
            .env("LEANSPEC_PEER_LOG", "info"),
    );
    a.wait_line("Ctrl-C to stop");
    let ticket = String::from_utf8(cli(m_a.home(), &["invite"]).stdout).expect("utf8");
    assert!(cli(m_b.home(), &["init"]).status.success());
    cli_json(m_b.home(), &["join", ticket.trim()]);
    // B names no relay: it uses the one it learned from the ticket, without the token.
    let b = Proc::spawn(
        Command::new(peer_bin())
            .args(["up", "--no-direct", "--relay-token", TOKEN])
            .args(["--label", "beta", "--project"])
            .arg(m_b.project())
            .env("LEANSPEC_PEER_HOME", m_b.home())
            .env("LEANSPEC_PEER_LOG", "info"),
    );
    b.wait_line("not sent to relays learned from tickets");
    let line = b.wait_line("relay refused");
    assert!(line.contains("not authorized"), "{line}");
    b.stop();
    a.stop();
    // A token with a plain-http relay that is not on this machine: refused at start.
    let out = cli(
        m_b.home(),
        &[
            "up",
            "--no-lan",
            "--relay",
            "http://relay.example.com",
            "--relay-token",
            TOKEN,
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("clear text"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_relay_with_an_untrusted_certificate_is_refused_with_a_clear_error() {
    use rcgen::{CertificateParams, KeyPair};
    let tmp = tempfile::tempdir().expect("tmp");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let (cert_path, key_path) = (tmp.path().join("relay.pem"), tmp.path().join("relay.key"));
    std::fs::write(&cert_path, cert.pem()).expect("write");
    std::fs::write(&key_path, key.serialize_pem()).expect("write");
    let relay_proc = Proc::spawn(
        Command::new(RELAY)
            .args(["--https-bind", "127.0.0.1:0", "--http-bind", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(&cert_path)
            .arg("--tls-key")
            .arg(&key_path),
    );
    let line = relay_proc.wait_line("relay url https://");
    let url = line.rsplit(' ').next().expect("url").trim().to_string();
    let home = tempfile::tempdir().expect("home");
    let proj = tempfile::tempdir().expect("project");
    write_spec(proj.path(), "001-x", "planned");
    // No --relay-ca: the relay's self-signed certificate is not trusted (TLS fails
    // before any token is looked at).
    let p = up(home.path(), proj.path(), "x", &url, "any-token-0123456789");
    let line = p.wait_line("relay refused");
    assert!(line.contains("--relay-ca"), "{line}");
    p.stop();
    relay_proc.stop();
}

#[test]
fn the_relay_refuses_a_bad_config_and_serves_health() {
    let out = Command::new(RELAY)
        .args(["--http-bind", "0.0.0.0:0"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-cert"));
    let metrics = format!("127.0.0.1:{}", free_port());
    let p = Proc::spawn(Command::new(RELAY).args([
        "--dev",
        "--http-bind",
        "127.0.0.1:0",
        "--metrics-bind",
        &metrics,
    ]));
    let line = p.wait_line("relay url ");
    let addr = line
        .rsplit(' ')
        .next()
        .expect("url")
        .trim()
        .trim_start_matches("http://")
        .to_string();
    p.wait_line("metrics on");
    assert!(http_get(&addr, "/healthz").starts_with("HTTP/1.1 200"));
    let m = http_get(&metrics, "/metrics");
    assert!(
        m.starts_with("HTTP/1.1 200") && m.contains("relayserver_bytes_sent"),
        "{m}"
    );
    p.stop();
}

/// A plain HTTP/1.1 GET; the whole response as text.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("write");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}
