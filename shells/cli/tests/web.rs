//! The web UI's API served by a real `up --ui` process: login with the one-time URL from
//! `leanspec-peer ui`, session cookie, `Host`/`Origin` checks (DNS rebinding, other
//! sites), JSON answers. Plain HTTP/1.1 over a TCP socket: what a browser sends.

mod common;

use common::http::{get, header, http, login, ui_addr};
use common::{BIN, MachineDirs, cli};
use leanspec_peer_tests::process::Proc;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

#[test]
fn the_api_needs_a_login_and_refuses_other_hosts_and_origins() {
    let m = MachineDirs::with_spec("001-alpha", "planned");
    // Without a served UI, `ui` says how to get one (not_running, exit 5).
    assert!(cli(m.home(), &["init", "--label", "desk"]).status.success());
    let out = cli(m.home(), &["ui"]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let up = Proc::spawn(
        Command::new(BIN)
            .args([
                "up",
                "--bind",
                "127.0.0.1:0",
                "--ui",
                "127.0.0.1:0",
                "--project",
            ])
            .arg(m.project())
            .env("LEANSPEC_PEER_HOME", m.home())
            .env("LEANSPEC_PEER_LOG", "info"),
    );
    let addr = ui_addr(&up);

    let (status, _, body) = get(&addr, "/api/v1/specs", &[]);
    assert_eq!(status, 401, "{body}");

    let out = cli(m.home(), &["ui"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string();
    let path = url
        .strip_prefix(&format!("http://{addr}"))
        .expect("a URL on the UI's address")
        .to_string();
    let (status, head, _) = get(&addr, &path, &[]);
    assert_eq!(status, 303, "{head}");
    let cookie_line = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie");
    assert!(cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"));
    let cookie = cookie_line
        .split_once(':')
        .map(|(_, v)| v.trim())
        .and_then(|v| v.split(';').next())
        .expect("cookie")
        .to_string();
    let (status, _, _) = get(&addr, &path, &[]);
    assert_eq!(status, 403, "a login URL works once");

    let (status, _, body) = get(&addr, "/api/v1/specs", &[("Cookie", &cookie)]);
    assert_eq!(status, 200, "{body}");
    let rows: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(rows[0]["spec"], "001-alpha", "{rows}");
    let (status, _, body) = get(
        &addr,
        "/api/v1/search?q=status:planned",
        &[("Cookie", &cookie)],
    );
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = get(
        &addr,
        "/api/v1/search?q=status:planned%20(",
        &[("Cookie", &cookie)],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_argument"), "{body}");
    let (status, _, body) = get(
        &addr,
        "/api/v1/board?group_by=status",
        &[("Cookie", &cookie)],
    );
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = get(
        &addr,
        "/api/v1/specs",
        &[(
            "Cookie",
            &format!(
                "lsp_session_{}=forged",
                addr.rsplit(':').next().unwrap_or("")
            ),
        )],
    );
    assert_eq!(status, 401);

    // DNS rebinding: a page on another name that resolves here.
    let port = addr.rsplit(':').next().expect("port");
    let evil = format!("evil.example:{port}");
    let (status, _, _) = get(
        &addr,
        "/api/v1/specs",
        &[("Host", &evil), ("Cookie", &cookie)],
    );
    assert_eq!(status, 403);
    // Another site's script.
    let (status, _, _) = get(
        &addr,
        "/api/v1/specs",
        &[("Origin", "http://evil.example"), ("Cookie", &cookie)],
    );
    assert_eq!(status, 403);
    let own = format!("http://{addr}");
    let (status, _, _) = get(
        &addr,
        "/api/v1/specs",
        &[("Origin", &own), ("Cookie", &cookie)],
    );
    assert_eq!(status, 200, "its own origin is fine");

    // A spec's body (this machine's: from its disk), and the audit log.
    let project = rows[0]["project"].as_str().expect("project").to_string();
    let path = format!("/api/v1/body?project={project}&spec=001-alpha");
    let (status, _, b) = get(&addr, &path, &[("Cookie", &cookie)]);
    assert_eq!(status, 200, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).expect("JSON");
    assert_eq!(v["source"], "local");
    assert!(
        v["text"]
            .as_str()
            .is_some_and(|t| t.contains("status: planned"))
    );
    let (status, _, body) = get(&addr, "/api/v1/audit", &[("Cookie", &cookie)]);
    assert_eq!(status, 200, "{body}");

    // Live: a file saved shows on the open event stream, with its new values.
    let mut stream = TcpStream::connect(&addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .expect("timeout");
    let req = format!(
        "GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).expect("write");
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    let mut buf = [0u8; 4096];
    let mut rewrites = 0;
    while !(seen.contains("event: spec_changed") && seen.contains("\"status\":\"complete\"")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no spec_changed event within 40 s: {seen}"
        );
        // Rewrite until the stream (subscribed some time after the request) shows it.
        if seen.contains("200 OK") && rewrites < 20 && !seen.contains("spec_changed") {
            common::write_spec(m.project(), "001-alpha", "complete");
            rewrites += 1;
        }
        match stream.read(&mut buf) {
            Ok(0) => panic!("the event stream closed: {seen}"),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => {}
        }
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
    assert!(seen.contains("001-alpha"), "{seen}");
    up.stop();
}

#[test]
fn pages_are_locked_down_and_every_write_needs_the_csrf_token() {
    let m = MachineDirs::with_spec("001-alpha", "planned");
    assert!(cli(m.home(), &["init", "--label", "desk"]).status.success());
    // No --ui: served by default (the default port, or another when it is taken).
    let up = Proc::spawn(
        Command::new(BIN)
            .args(["up", "--bind", "127.0.0.1:0", "--project"])
            .arg(m.project())
            .env("LEANSPEC_PEER_HOME", m.home())
            .env("LEANSPEC_PEER_LOG", "info"),
    );
    let addr = ui_addr(&up);

    // `ui --open` hands the URL to the desktop's opener (a stand-in here).
    let bin_dir = tempfile::tempdir().expect("dir");
    let opened = bin_dir.path().join("opened");
    let opener = bin_dir.path().join("xdg-open");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > {}\n", opened.display()),
    )
    .expect("opener");
    std::fs::set_permissions(&opener, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let path = format!(
        "{}:{}",
        bin_dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(BIN)
        .args(["ui", "--open"])
        .env("LEANSPEC_PEER_HOME", m.home())
        .env("PATH", path)
        .output()
        .expect("ui --open");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_to_string(&opened).map_or(true, |s| s.is_empty()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the opener was not run"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(std::fs::read_to_string(&opened).expect("read"), printed);
    assert!(
        printed.starts_with(&format!("http://{addr}/login?token=")),
        "{printed}"
    );

    // A view without a session says how to log in.
    let (status, _, body) = get(&addr, "/board", &[]);
    assert_eq!(status, 401);
    assert!(body.contains("leanspec-peer ui"), "{body}");
    let cookie = login(m.home(), &addr);
    let (status, head, page) = get(&addr, "/board?status=planned", &[("Cookie", &cookie)]);
    assert_eq!(status, 200, "{head}");
    let csp = header(&head, "content-security-policy").expect("a CSP");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(header(&head, "x-frame-options"), Some("DENY"));
    assert!(page.contains("<script src=\"/assets/app.js\""), "{page}");
    assert_eq!(page.matches("<script").count(), 1, "no inline script");
    let (status, head, js) = get(&addr, "/assets/app.js", &[]);
    assert_eq!(status, 200);
    assert!(header(&head, "content-type").is_some_and(|t| t.starts_with("text/javascript")));
    assert!(!js.contains("innerHTML = r") && js.contains("textContent"));

    let (_, _, session) = get(&addr, "/api/v1/session", &[("Cookie", &cookie)]);
    let session: serde_json::Value = serde_json::from_str(&session).expect("JSON");
    let csrf = session["csrf"].as_str().expect("csrf").to_string();
    let (_, _, rows) = get(&addr, "/api/v1/specs", &[("Cookie", &cookie)]);
    let rows: serde_json::Value = serde_json::from_str(&rows).expect("JSON");
    let project = rows[0]["project_id"].as_str().expect("project").to_string();
    let hash = rows[0]["file_hash"].as_str().expect("hash").to_string();
    let machine = session["machine"].as_str().expect("machine").to_string();
    let readme = m.project().join("specs/001-alpha/README.md");
    let before = std::fs::read_to_string(&readme).expect("read");

    let edit = |base: &str| {
        serde_json::json!({
            "machine": machine, "project": project, "spec": "001-alpha",
            "base_file_hash": base, "change": { "status": "in-progress" }
        })
        .to_string()
    };
    // Refused: no session, no token, a wrong token, another site's origin.
    let e = edit(&hash);
    let (status, _, _) = http("POST", &addr, "/api/v1/edit", &[], &e);
    assert_eq!(status, 401);
    let (status, _, body) = http("POST", &addr, "/api/v1/edit", &[("Cookie", &cookie)], &e);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("CSRF"), "{body}");
    let wrong = [("Cookie", cookie.as_str()), ("X-CSRF-Token", "00")];
    let (status, _, _) = http("POST", &addr, "/api/v1/edit", &wrong, &e);
    assert_eq!(status, 403);
    let evil = [
        ("Cookie", cookie.as_str()),
        ("X-CSRF-Token", csrf.as_str()),
        ("Origin", "http://evil.example"),
    ];
    let (status, _, _) = http("POST", &addr, "/api/v1/edit", &evil, &e);
    assert_eq!(status, 403);
    assert_eq!(
        std::fs::read_to_string(&readme).expect("read"),
        before,
        "nothing written"
    );

    let ok = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    // A stale hash: rejected with the file's hash now; the file is untouched.
    let stale = "ab".repeat(32);
    let (status, _, body) = http("POST", &addr, "/api/v1/edit", &ok, &edit(&stale));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["result"], "rejected", "{v}");
    assert_eq!(v["reason"], "stale", "{v}");
    assert_eq!(v["current_file_hash"], hash.as_str(), "{v}");
    assert_eq!(std::fs::read_to_string(&readme).expect("read"), before);
    let (status, _, body) = http("POST", &addr, "/api/v1/edit", &ok, &e);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["result"], "applied", "{v}");
    assert!(
        std::fs::read_to_string(&readme)
            .expect("read")
            .contains("status: in-progress")
    );
    // A malformed body is a 4xx, not a crash.
    let (status, _, _) = http("POST", &addr, "/api/v1/edit", &ok, "{\"machine\":1}");
    assert!((400..500).contains(&status), "{status}");

    // Invite (with its QR code) and rename, as the Machines page does.
    let (status, _, body) = http("POST", &addr, "/api/v1/invite", &ok, "{\"ttl_secs\":600}");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert!(v["ticket"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    assert!(
        v["qr_svg"].as_str().is_some_and(|q| q.contains("<svg")),
        "{v}"
    );
    let (_, _, list) = get(&addr, "/api/v1/invites", &[("Cookie", &cookie)]);
    assert!(list.contains("\"active\""), "{list}");
    // An ephemeral auth key, as the dialog's "leave after 10 min away" makes it.
    let body = "{\"ttl_secs\":600,\"reusable\":true,\"ephemeral_after_secs\":600}";
    let (status, _, answer) = http("POST", &addr, "/api/v1/invite", &ok, body);
    assert_eq!(status, 200, "{answer}");
    let (_, _, list) = get(&addr, "/api/v1/invites", &[("Cookie", &cookie)]);
    let list: serde_json::Value = serde_json::from_str(&list).expect("JSON");
    let after: Vec<(bool, serde_json::Value)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|i| (i["reusable"] == true, i["ephemeral_after"].clone()))
        .collect();
    assert!(after.contains(&(true, 600.into())), "{list}");
    assert!(after.contains(&(false, serde_json::Value::Null)), "{list}");
    let rename = format!("{{\"machine\":\"{machine}\",\"label\":\"studio\"}}");
    let (status, _, body) = http("POST", &addr, "/api/v1/rename", &ok, &rename);
    assert_eq!(status, 200, "{body}");
    let (_, _, list) = get(&addr, "/api/v1/machines", &[("Cookie", &cookie)]);
    assert!(list.contains("\"studio\""), "{list}");
    up.stop();
}
