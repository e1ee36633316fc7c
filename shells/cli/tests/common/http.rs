//! Plain HTTP/1.1 over a TCP socket against a real `up --ui` (what a browser sends):
//! the web and local-files tests.

use super::cli;
use leanspec_peer_tests::process::Proc;
use std::io::{Read, Write};
use std::net::TcpStream;

/// Sends one GET and returns (status, headers, body).
pub fn get(addr: &str, path: &str, extra: &[(&str, &str)]) -> (u16, String, String) {
    http("GET", addr, path, extra, "")
}

/// Sends one request (a JSON body when not empty) and returns (status, headers, body).
pub fn http(
    method: &str,
    addr: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(40)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !extra.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// The UI's address from `up`'s "web UI at http://ADDR (...)" line.
pub fn ui_addr(up: &Proc) -> String {
    let line = up.wait_line("web UI at http://");
    line.split("http://")
        .nth(1)
        .and_then(|r| r.split([' ', '/']).next())
        .expect("address")
        .to_string()
}

/// Logs in with a fresh one-time URL; returns the `name=value` session cookie.
pub fn login(home: &std::path::Path, addr: &str) -> String {
    let out = cli(home, &["ui"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).expect("utf8");
    let path = url
        .trim()
        .strip_prefix(&format!("http://{addr}"))
        .expect("a URL on the UI's address")
        .to_string();
    let (status, head, _) = get(addr, &path, &[]);
    assert_eq!(status, 303, "{head}");
    head.lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .and_then(|l| l.split_once(':'))
        .and_then(|(_, v)| v.trim().split(';').next())
        .expect("a session cookie")
        .to_string()
}

pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
