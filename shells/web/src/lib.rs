//! The web UI's server, a thin host over the core's `Node`: the pages (`pages`), the
//! JSON API under `/api/v1` they use (`read`, `write`), and the checks in front of both
//! (`guard`). Loopback only.
//!
//! `/login?token=T` exchanges the one-time token from `leanspec-peer ui` for a session
//! cookie (HttpOnly, SameSite=Strict); every view and API call needs that cookie, and
//! every POST the session's CSRF token.

mod guard;
mod markdown;
mod pages;
mod read;
mod write;

pub use guard::CSRF_HEADER;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use leanspec_peer_core::{ErrorKind, Node};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The port `up` serves the UI on unless told otherwise (another free port when it is
/// taken: the URL is printed and `leanspec-peer ui` knows it).
pub const DEFAULT_PORT: u16 = 7434;

/// The cookie that carries the session id.
pub const SESSION_COOKIE: &str = "lsp_session";

#[derive(Clone)]
pub(crate) struct App {
    pub(crate) node: Arc<Node>,
    pub(crate) addr: SocketAddr,
}

/// A running UI server.
#[derive(Debug)]
pub struct Ui {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Ui {
    /// Stops serving.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Serves the UI for `node` on `addr` (port 0: any free port) and records the address
/// in the node (for `leanspec-peer ui`).
pub async fn serve(node: Arc<Node>, addr: SocketAddr) -> std::io::Result<Ui> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = App {
        node: node.clone(),
        addr,
    };
    let api = Router::new()
        .route("/session", get(read::session))
        .route("/machines", get(read::machines))
        .route("/projects", get(read::projects))
        .route("/specs", get(read::specs))
        .route("/spec", get(read::spec))
        .route("/search", get(read::search))
        .route("/board", get(read::board))
        .route("/deps", get(read::deps))
        .route("/stats", get(read::stats))
        .route("/check", get(read::check))
        .route("/body", get(read::body))
        .route("/audit", get(read::audit))
        .route("/events", get(read::events))
        .route("/invites", get(read::invites))
        .route("/edit", post(write::edit))
        .route("/rename", post(write::rename))
        .route("/revoke", post(write::revoke))
        .route("/invite", post(write::invite))
        .route("/invites/revoke", post(write::revoke_invite))
        .layer(middleware::from_fn_with_state(app.clone(), guard::api));
    let mut router = Router::new()
        .route("/login", get(login))
        .route("/assets/app.js", get(pages::app_js))
        .route("/assets/app.css", get(pages::app_css))
        .route("/assets/icon.svg", get(pages::icon))
        .nest("/api/v1", api);
    for view in pages::VIEWS {
        router = router.route(view, get(pages::view));
    }
    let router = router
        .layer(middleware::from_fn_with_state(
            app.clone(),
            guard::same_site,
        ))
        .with_state(app);
    node.set_ui_addr(Some(addr));
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!("the web UI stopped: {e}");
        }
    });
    Ok(Ui { addr, task })
}

pub(crate) fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "message": message } })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

async fn login(State(app): State<App>, Query(q): Query<Login>) -> Response {
    let Some(session) = app.node.ui_logins().redeem(&q.token, Instant::now()) else {
        return refuse(
            StatusCode::FORBIDDEN,
            "this login link was used or has expired: run `leanspec-peer ui` for a new one",
        );
    };
    let cookie = format!("{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/");
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// A core answer as JSON; a failure with its kind and the status that fits it.
pub(crate) fn answer<T: serde::Serialize>(
    r: Result<T, leanspec_peer_core::peer::PeerError>,
) -> Response {
    answer_with(r, |v| axum::Json(v).into_response())
}

/// A core answer shown by `show` (for documents that borrow from it); a failure as in
/// [`answer`].
pub(crate) fn answer_with<T>(
    r: Result<T, leanspec_peer_core::peer::PeerError>,
    show: impl FnOnce(&T) -> Response,
) -> Response {
    match r {
        Ok(v) => show(&v),
        Err(e) => {
            let status = match e.kind() {
                ErrorKind::NotFound => StatusCode::NOT_FOUND,
                ErrorKind::InvalidArgument | ErrorKind::Ambiguous => StatusCode::BAD_REQUEST,
                ErrorKind::Unreachable | ErrorKind::NotRunning => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let body = json!({ "error": { "kind": e.kind(), "message": e.to_string() } });
            (status, axum::Json(body)).into_response()
        }
    }
}
