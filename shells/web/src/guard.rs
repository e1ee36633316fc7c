//! Who may talk to the UI server, checked before any handler runs:
//! - `Host` names this server and `Origin`, when sent, is this server's (a DNS-rebinding
//!   page names its own host; a cross-site page sends its own origin);
//! - the API needs a live session cookie;
//! - every state-changing request (POST) also needs the session's CSRF token in the
//!   `X-CSRF-Token` header, which only a page of this origin can have read.
//!
//! Every answer carries a strict Content-Security-Policy (no inline script, nothing
//! loaded from elsewhere) and is never framed or cached.

use crate::{App, SESSION_COOKIE, refuse};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use leanspec_peer_core::UiLogins;
use std::time::Instant;

/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The session a request proved, for the handlers that need it.
#[derive(Clone)]
pub(crate) struct Session(pub String);

pub(crate) async fn same_site(State(app): State<App>, req: Request, next: Next) -> Response {
    let port = app.addr.port();
    let hosts = [format!("127.0.0.1:{port}"), format!("localhost:{port}")];
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if !host.is_some_and(|h| hosts.iter().any(|ok| ok == h)) {
        return refuse(
            StatusCode::FORBIDDEN,
            "wrong Host: open the UI at the address `leanspec-peer ui` prints",
        );
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let ok = origin
            .to_str()
            .is_ok_and(|o| hosts.iter().any(|h| o == format!("http://{h}")));
        if !ok {
            return refuse(StatusCode::FORBIDDEN, "cross-origin request refused");
        }
    }
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The live session the request's cookie names, if any.
pub(crate) fn live_session(app: &App, headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
        .filter(|s| app.node.ui_logins().check(s, Instant::now()))
        .map(str::to_string)
}

pub(crate) async fn api(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let Some(session) = live_session(&app, req.headers()) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "log in with the URL `leanspec-peer ui` prints",
        );
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let token = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !UiLogins::csrf_ok(&session, token) {
            return refuse(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token: reload the page",
            );
        }
    }
    req.extensions_mut().insert(Session(session));
    next.run(req).await
}
