//! The web UI served beyond loopback, by real `up` processes: it refuses to start
//! without TLS; with `--tls-self-signed` it serves HTTPS with the certificate whose
//! fingerprint it printed; accounts made with `ui-user` log in with a password; roles
//! are enforced by the API (a viewer gets 403 for every write); an editor's edit of
//! another machine's spec is signed by the serving machine and both audit logs name
//! the account; a password change logs the account out; failed logins are throttled
//! (429 with Retry-After).

mod common;

use common::{BIN, Daemon, MachineDirs, cli, cli_json, eventually, pair};
use leanspec_peer_tests::process::Proc;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

/// One HTTPS request to `addr`, trusting only the certificate in `ca`; returns
/// (status, head, body).
fn https(
    ca: &Path,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> (u16, String, String) {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("pem") {
        roots.add(c.expect("cert")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(40)))
        .expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some((kind, b)) = body {
        req.push_str(&format!(
            "Content-Type: {kind}\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some((_, b)) = body {
        req.push_str(b);
    }
    tls.write_all(req.as_bytes()).expect("write");
    let mut raw = Vec::new();
    // A server may close without TLS close_notify: what arrived is the answer.
    let _ = tls.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// `ui-user` with the password on stdin.
fn ui_user(home: &Path, args: &[&str], password: &str) -> std::process::Output {
    let mut child = Command::new(BIN)
        .arg("ui-user")
        .args(args)
        .env("LEANSPEC_PEER_HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write");
    child.wait_with_output().expect("wait")
}

/// The UI server's side of a test: its address and certificate.
struct Ui {
    addr: String,
    ca: PathBuf,
}

impl Ui {
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &str)>,
    ) -> (u16, String, String) {
        https(&self.ca, &self.addr, method, path, headers, body)
    }

    /// A password login: the answer's status and, on success, the cookie.
    fn login(&self, name: &str, password: &str) -> (u16, Option<String>, String) {
        let form = format!("name={name}&password={password}");
        let (status, head, body) = self.request(
            "POST",
            "/login",
            &[],
            Some(("application/x-www-form-urlencoded", &form)),
        );
        let cookie = header(&head, "set-cookie")
            .and_then(|c| c.split(';').next())
            .map(str::to_string);
        (status, cookie, format!("{head}\n\n{body}"))
    }

    fn json(&self, cookie: &str, path: &str) -> (u16, serde_json::Value) {
        let (status, _, body) = self.request("GET", path, &[("Cookie", cookie)], None);
        (status, serde_json::from_str(&body).unwrap_or_default())
    }

    fn post(
        &self,
        cookie: &str,
        csrf: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, String) {
        let (status, _, body) = self.request(
            "POST",
            path,
            &[("Cookie", cookie), ("X-CSRF-Token", csrf)],
            Some(("application/json", &body.to_string())),
        );
        (status, body)
    }
}

#[test]
fn a_network_ui_needs_tls() {
    let m = MachineDirs::with_spec("001-alpha", "planned");
    let out = Command::new(BIN)
        .args([
            "up",
            "--bind",
            "127.0.0.1:0",
            "--ui",
            "0.0.0.0:0",
            "--project",
        ])
        .arg(m.project())
        .env("LEANSPEC_PEER_HOME", m.home())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("refusing to serve the web UI on 0.0.0.0:0 without TLS")
            && stderr.contains("--tls-self-signed"),
        "{stderr}"
    );
    assert!(
        !m.home().join("store.redb").exists(),
        "refused before anything was made"
    );
}

#[test]
fn accounts_log_in_over_https_with_roles_audit_and_throttle() {
    // A owns the spec; S is the always-on peer that serves the UI to other devices.
    let a = MachineDirs::with_spec("001-alpha", "planned");
    let s = MachineDirs::with_spec("900-server", "planned");
    let a_up = Daemon::start(a.home(), a.project(), "desk");
    let s_up = Proc::spawn(
        Command::new(BIN)
            .args([
                "up",
                "--bind",
                "127.0.0.1:0",
                "--label",
                "server",
                "--ui",
                "0.0.0.0:0",
                "--tls-self-signed",
                "--project",
            ])
            .arg(s.project())
            .env("LEANSPEC_PEER_HOME", s.home())
            .env("LEANSPEC_PEER_LOG", "info"),
    );
    let line = s_up.wait_line("web UI at ");
    let port = line
        .split("https://0.0.0.0:")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("an https address on every interface: {line}"));
    let ui = Ui {
        addr: format!("127.0.0.1:{port}"),
        ca: s.home().join("ui-cert.pem"),
    };
    // The printed fingerprint is the served certificate's.
    let printed = s_up.wait_line("fingerprint");
    let der = CertificateDer::from_pem_file(&ui.ca).expect("the kept certificate");
    assert!(
        printed.contains(&leanspec_peer_web::fingerprint(&der)),
        "{printed}"
    );
    s_up.wait_line("no web UI accounts yet");
    pair(s.home(), a.home());

    // Accounts, made while `up` runs (through its control socket).
    for (name, role, password) in [
        ("ed", "editor", "editor-password-1"),
        ("vi", "viewer", "viewer-password-1"),
    ] {
        let out = ui_user(s.home(), &["add", name, "--role", role], password);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = ui_user(
        s.home(),
        &["add", "ed", "--role", "admin"],
        "another-password",
    );
    assert_eq!(out.status.code(), Some(9), "a second `ed` is refused");
    let out = ui_user(s.home(), &["add", "shorty", "--role", "viewer"], "short");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("too short"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = cli_json(s.home(), &["ui-user", "list"]);
    let names: Vec<_> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|a| {
            format!(
                "{}:{}",
                a["name"].as_str().unwrap_or(""),
                a["role"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(names, ["ed:editor", "vi:viewer"], "{list}");
    let raw = std::fs::read(s.home().join("store.redb")).unwrap_or_default();
    assert!(
        !raw.windows(17).any(|w| w == b"editor-password-1"),
        "no password is stored in clear"
    );

    // The login page over HTTPS; a wrong password and an unknown name answer alike.
    let (status, _, page) = ui.request("GET", "/login", &[], None);
    assert_eq!(status, 200);
    assert!(page.contains("name=\"password\""), "{page}");
    let (status, cookie, _) = ui.login("ed", "not-the-password");
    assert_eq!((status, cookie), (401, None));
    let (status, _, _) = ui.login("nobody", "not-the-password");
    assert_eq!(status, 401);

    // The viewer reads everything, writes nothing.
    let (status, vi, head) = ui.login("vi", "viewer-password-1");
    assert_eq!(status, 303, "{head}");
    let vi = vi.expect("a session cookie");
    assert!(
        head.contains("Secure") && head.contains("HttpOnly"),
        "{head}"
    );
    let (_, session) = ui.json(&vi, "/api/v1/session");
    assert_eq!(session["role"], "viewer", "{session}");
    assert_eq!(session["account"], "vi", "{session}");
    let vi_csrf = session["csrf"].as_str().expect("csrf").to_string();
    let a_id = cli_json(a.home(), &["status"])["machine"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let mut row = serde_json::Value::Null;
    eventually("the server holds A's spec", || {
        let (status, rows) = ui.json(&vi, &format!("/api/v1/specs?machine={a_id}"));
        assert_eq!(status, 200);
        row = rows
            .as_array()
            .and_then(|r| r.iter().find(|r| r["spec"] == "001-alpha").cloned())
            .unwrap_or_default();
        !row.is_null()
    });
    let edit = serde_json::json!({
        "machine": a_id, "project": row["project_id"], "spec": "001-alpha",
        "base_file_hash": row["file_hash"], "change": { "status": "in-progress" }
    });
    let readme = a.project().join("specs/001-alpha/README.md");
    let before = std::fs::read_to_string(&readme).expect("read");
    let writes = [
        ("/api/v1/edit", edit.clone()),
        (
            "/api/v1/rename",
            serde_json::json!({ "machine": a_id, "label": "x" }),
        ),
        ("/api/v1/revoke", serde_json::json!({ "machine": a_id })),
        ("/api/v1/invite", serde_json::json!({})),
        (
            "/api/v1/invites/revoke",
            serde_json::json!({ "id": "abcd" }),
        ),
    ];
    for (path, body) in &writes {
        let (status, answer) = ui.post(&vi, &vi_csrf, path, body);
        assert_eq!(status, 403, "{path}: {answer}");
        assert!(answer.contains("viewer"), "{answer}");
    }
    let (status, _) = ui.json(&vi, "/api/v1/invites");
    assert_eq!(status, 403);
    assert_eq!(std::fs::read_to_string(&readme).expect("read"), before);

    // The editor edits A's spec through the server; both audits name the account.
    let (status, ed, _) = ui.login("ed", "editor-password-1");
    assert_eq!(status, 303);
    let ed = ed.expect("cookie");
    let (_, session) = ui.json(&ed, "/api/v1/session");
    let ed_csrf = session["csrf"].as_str().expect("csrf").to_string();
    let (status, verdict) = ui.post(&ed, &ed_csrf, "/api/v1/edit", &edit);
    assert_eq!(status, 200, "{verdict}");
    assert!(verdict.contains("\"applied\""), "{verdict}");
    assert!(
        std::fs::read_to_string(&readme)
            .expect("read")
            .contains("status: in-progress")
    );
    for (home, direction) in [(a.home(), "received"), (s.home(), "sent")] {
        let audit = cli_json(home, &["audit"]);
        let rec = audit
            .as_array()
            .and_then(|r| r.iter().find(|r| r["spec"] == "001-alpha").cloned())
            .unwrap_or_else(|| panic!("no audit record: {audit}"));
        assert_eq!(rec["direction"], direction, "{rec}");
        assert_eq!(rec["account"], "ed", "{rec}");
        assert_eq!(rec["result"], "applied", "{rec}");
    }
    let text = String::from_utf8(cli(a.home(), &["audit"]).stdout).expect("utf8");
    assert!(text.contains("for web UI account ed"), "{text}");
    let (status, answer) = ui.post(&ed, &ed_csrf, "/api/v1/invite", &serde_json::json!({}));
    assert_eq!(status, 403, "an editor manages no invitations: {answer}");

    // A password change ends every session of the account; the new password works.
    let out = ui_user(s.home(), &["passwd", "ed"], "editor-password-2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, _) = ui.json(&ed, "/api/v1/session");
    assert_eq!(status, 401, "logged out by the password change");
    let (status, _, _) = ui.login("ed", "editor-password-1");
    assert_eq!(status, 401);
    let (status, ed2, _) = ui.login("ed", "editor-password-2");
    assert_eq!(status, 303);

    // Logout ends that session only.
    let (status, _) = ui.post(&vi, &vi_csrf, "/api/v1/logout", &serde_json::json!({}));
    assert_eq!(status, 200);
    let (status, _) = ui.json(&vi, "/api/v1/specs");
    assert_eq!(status, 401);
    let ed2 = ed2.expect("cookie");
    let (status, _) = ui.json(&ed2, "/api/v1/specs");
    assert_eq!(status, 200);

    // Issue 39: a viewer logging in 300 times ends no other account's session: its
    // successful logins are limited per account (429 after 30 in 10 minutes) and its
    // sessions are capped per account (its own oldest go).
    let mut answers = std::collections::BTreeMap::new();
    for _ in 0..300 {
        let (status, _, _) = ui.login("vi", "viewer-password-1");
        *answers.entry(status).or_insert(0) += 1;
    }
    assert_eq!(answers.get(&303), Some(&29), "{answers:?}"); // one login came earlier
    assert_eq!(answers.get(&429), Some(&271), "{answers:?}");
    let (status, _) = ui.json(&ed2, "/api/v1/specs");
    assert_eq!(status, 200, "the editor's session lives");

    // Removing an account refuses its logins.
    let out = cli(s.home(), &["ui-user", "remove", "vi"]);
    assert!(out.status.success());
    let (status, _, _) = ui.login("vi", "viewer-password-1");
    assert_eq!(status, 401);

    // Throttle: this address has 4 failures so far; up to 20 answer 401, then 429,
    // even for a right password, with the wait in Retry-After.
    for i in 4..20 {
        let (status, _, _) = ui.login("mallory", &format!("guess-{i}"));
        assert_eq!(status, 401, "attempt {i}");
    }
    let (status, cookie, answer) = ui.login("ed", "editor-password-2");
    assert_eq!(status, 429, "{answer}");
    assert!(cookie.is_none());
    let wait: u64 = answer
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After header: {answer}"));
    assert!(wait > 800 && wait <= 900, "about 15 minutes: {wait}");
    assert!(answer.contains("Too many failed logins"), "{answer}");

    drop(s_up);
    a_up.stop();
}
