//! Logging in and out: the one-time token from `leanspec-peer ui`, or an account's name
//! and password through the login form (throttled per address and per name by the
//! core; wrong name and wrong password answer the same), and logout.

use crate::guard::Session;
use crate::{App, refuse};
use axum::Form;
use axum::extract::{ConnectInfo, Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use leanspec_peer_core::node::LoginOutcome;
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const LOGIN_PAGE: &str = include_str!("../assets/login.html");
/// How long a login waits for a free password check before answering "busy".
const CHECK_WAIT: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
pub(crate) struct TokenQuery {
    token: Option<String>,
}

/// The login page, or (with `?token=`) a one-time token login.
pub(crate) async fn page(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    let Some(token) = q.token else {
        if crate::guard::live_session(&app, &headers).is_some() {
            return redirect_home(None, &app);
        }
        return login_page(StatusCode::OK, None);
    };
    match app.node.ui_logins().redeem(&token, Instant::now()) {
        Some(session) => redirect_home(Some(&session), &app),
        None => login_page(
            StatusCode::FORBIDDEN,
            Some(
                "This login link was used or has expired: run `leanspec-peer ui` for a new one, or log in with an account.",
            ),
        ),
    }
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    name: String,
    password: String,
}

/// A password login from the form.
pub(crate) async fn password(
    State(app): State<App>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Form(f): Form<PasswordForm>,
) -> Response {
    let Ok(Ok(_slot)) =
        tokio::time::timeout(CHECK_WAIT, app.password_checks.clone().acquire_owned()).await
    else {
        return login_page(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("The server is busy checking other logins: try again in a moment."),
        );
    };
    let node = app.node.clone();
    let name = f.name.trim().to_string();
    let outcome =
        tokio::task::spawn_blocking(move || node.ui_login(&name, &f.password, from.ip())).await;
    match outcome {
        Ok(Ok(LoginOutcome::LoggedIn { session, .. })) => redirect_home(Some(&session), &app),
        Ok(Ok(LoginOutcome::Wrong)) => {
            login_page(StatusCode::UNAUTHORIZED, Some("Wrong name or password."))
        }
        Ok(Ok(LoginOutcome::Throttled(wait))) => {
            let secs = wait.as_secs().max(1);
            let mut r = login_page(
                StatusCode::TOO_MANY_REQUESTS,
                Some(&format!(
                    "Too many failed logins from this address or for this account: try again in {} minutes.",
                    secs.div_ceil(60)
                )),
            );
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Ok(Ok(_)) | Ok(Err(_)) | Err(_) => login_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("The login could not be checked; see the peer's log."),
        ),
    }
}

/// Ends this session.
pub(crate) async fn logout(
    State(app): State<App>,
    Extension(Session(session, _)): Extension<Session>,
) -> Response {
    app.node.ui_logins().end(&session);
    let mut r = axum::Json(json!({ "logged_out": true })).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie("", &app, true)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

fn cookie(session: &str, app: &App, clear: bool) -> String {
    let mut c = format!(
        "{}={session}; HttpOnly; SameSite=Strict; Path=/",
        app.cookie_name()
    );
    if app.tls {
        c.push_str("; Secure");
    }
    if clear {
        c.push_str("; Max-Age=0");
    }
    c
}

fn redirect_home(session: Option<&str>, app: &App) -> Response {
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Some(s) = session
        && let Ok(v) = HeaderValue::from_str(&cookie(s, app, false))
    {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

pub(crate) fn login_page(status: StatusCode, message: Option<&str>) -> Response {
    let note = message
        .map(|m| format!("<p class=\"warn\" role=\"alert\">{}</p>", escape(m)))
        .unwrap_or_default();
    (status, Html(LOGIN_PAGE.replace("<!--message-->", &note))).into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A JSON refusal for API callers that are not logged in.
pub(crate) fn not_logged_in() -> Response {
    refuse(
        StatusCode::UNAUTHORIZED,
        "log in: with an account at /login, or on this machine with the URL `leanspec-peer ui` prints",
    )
}
