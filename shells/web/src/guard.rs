//! Who may talk to the UI server, checked before any handler runs:
//! - on loopback, `Host` names this server (a DNS-rebinding page names its own host);
//!   beyond loopback (HTTPS only) any name may reach it, and a rebinding page could
//!   not present our certificate for its own name;
//! - `Origin`, when sent, is this server's (a cross-site page sends its own origin);
//! - the API needs a live session cookie;
//! - every state-changing request (POST) also needs the session's CSRF token in the
//!   `X-CSRF-Token` header, which only a page of this origin can have read;
//! - every API route needs a role ([`required_role`]): a viewer's POST is refused here,
//!   whatever the page shows.
//!
//! Every answer carries a strict Content-Security-Policy (no inline script, nothing
//! loaded from elsewhere) and is never framed or cached.

use crate::{App, refuse};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use leanspec_peer_core::node::{Role, Who};
use std::time::Instant;

/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The session a request proved and who it is, for the handlers that need them.
#[derive(Clone)]
pub(crate) struct Session(pub String, pub Who);

/// The role an API route needs: reading is for everyone logged in; edits and execution
/// requests for editors; machines, invitations and accounts for admins.
pub(crate) fn required_role(method: &Method, path: &str) -> Role {
    let read = method == Method::GET || method == Method::HEAD;
    match path {
        "/invites" => Role::Admin,
        "/logout" => Role::Viewer,
        "/edit" | "/exec" if !read => Role::Editor,
        _ if read => Role::Viewer,
        _ => Role::Admin,
    }
}

pub(crate) async fn same_site(State(app): State<App>, req: Request, next: Next) -> Response {
    let port = app.addr.port();
    let scheme = if app.tls { "https" } else { "http" };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let loopback_hosts = [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ];
    if app.loopback() && !loopback_hosts.contains(&host) {
        return refuse(
            StatusCode::FORBIDDEN,
            "wrong Host: open the UI at the address `leanspec-peer ui` prints",
        );
    }
    if host.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "a Host header is required");
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let ok = origin
            .to_str()
            .is_ok_and(|o| o == format!("{scheme}://{host}"));
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
    // Not `no-referrer`: under it a browser sends `Origin: null` with a same-origin form
    // post (the login page), which the check above must refuse. `same-origin` still sends
    // nothing to any other site.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    if app.tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
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

/// The live session the request's cookie names, if any, and who it is.
pub(crate) fn live_session(app: &App, headers: &HeaderMap) -> Option<(String, Who)> {
    let s = cookie(headers, &app.cookie_name())?;
    let who = app.node.ui_logins().check(s, Instant::now())?;
    Some((s.to_string(), who))
}

pub(crate) async fn api(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let Some((session, who)) = live_session(&app, req.headers()) else {
        return crate::login::not_logged_in();
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let token = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !app.node.ui_logins().csrf_ok(&session, token) {
            return refuse(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token: reload the page",
            );
        }
    }
    let needed = required_role(req.method(), req.uri().path());
    if who.role < needed {
        return refuse(
            StatusCode::FORBIDDEN,
            &format!(
                "this needs the {} role; your account is {}",
                needed.as_str(),
                who.role.as_str()
            ),
        );
    }
    req.extensions_mut().insert(Session(session, who));
    next.run(req).await
}
