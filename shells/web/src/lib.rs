//! The web UI's server, a thin host over the core's `Node`: the pages (`pages`), the
//! JSON API under `/api/v1` they use (`read`, `write`), the checks in front of both
//! (`guard`), logins (`login`) and HTTPS (`tls`).
//!
//! Two ways to log in, both ending in a session cookie (HttpOnly, SameSite=Strict, and
//! Secure over HTTPS): `/login?token=T` with the one-time token from `leanspec-peer ui`
//! (this machine's own user, admin), or the login form with a web UI account's name and
//! password (`leanspec-peer ui-user add`). Every view and API call needs the cookie,
//! every POST the session's CSRF token, and every API route the role it names.
//! Beyond loopback the UI is served only over HTTPS ([`UiConfig::check`]).

mod guard;
mod login;
mod markdown;
mod pages;
mod read;
mod serve;
mod tls;
mod write;

pub use guard::CSRF_HEADER;
pub use tls::{Tls, TlsError, TlsSource, fingerprint};

use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use leanspec_peer_core::{ErrorKind, Node};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// The port `up` serves the UI on unless told otherwise (another free port when it is
/// taken: the URL is printed and `leanspec-peer ui` knows it).
pub const DEFAULT_PORT: u16 = 7434;

/// The cookie that carries the session id.
pub const SESSION_COOKIE: &str = "lsp_session";

#[derive(Clone)]
pub(crate) struct App {
    pub(crate) node: Arc<Node>,
    pub(crate) addr: SocketAddr,
    /// Served over HTTPS.
    pub(crate) tls: bool,
    /// Password checks running now are bounded by this (each takes tens of
    /// milliseconds of one core and 19 MiB).
    pub(crate) password_checks: Arc<tokio::sync::Semaphore>,
    /// Live event streams (open pages) now are bounded by this (`serve.rs` rule 5).
    pub(crate) live: Arc<tokio::sync::Semaphore>,
}

impl App {
    /// The session cookie's name: [`SESSION_COOKIE`] and the port. Browsers send a
    /// host's cookies to every port of it; with the port in the name, two peers on one
    /// machine (or a peer and another server) never overwrite or read each other's
    /// session as their own.
    pub(crate) fn cookie_name(&self) -> String {
        format!("{SESSION_COOKIE}_{}", self.addr.port())
    }

    /// Served on loopback only (then `Host` must name loopback: DNS rebinding).
    pub(crate) fn loopback(&self) -> bool {
        self.addr.ip().is_loopback()
    }
}

/// Where and how to serve the UI.
#[derive(Debug, Clone)]
pub struct UiConfig {
    /// Address to listen on (port 0: any free port).
    pub addr: SocketAddr,
    /// HTTPS certificate; required beyond loopback.
    pub tls: Option<Tls>,
}

impl UiConfig {
    /// Refuses to serve the UI beyond loopback without TLS: passwords and session
    /// cookies would cross the network in clear.
    pub fn check(&self) -> Result<(), String> {
        if !self.addr.ip().is_loopback() && self.tls.is_none() {
            return Err(format!(
                "refusing to serve the web UI on {} without TLS: passwords and session cookies would cross the network in clear. Add --tls-self-signed (a certificate kept in the home folder) or --tls-cert FILE --tls-key FILE, or serve on 127.0.0.1",
                self.addr
            ));
        }
        Ok(())
    }
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

/// Serves the UI for `node` as `config` says (see [`UiConfig::check`]) and records the
/// address in the node (for `leanspec-peer ui`).
pub async fn serve(node: Arc<Node>, config: UiConfig) -> std::io::Result<Ui> {
    config
        .check()
        .map_err(|m| std::io::Error::new(std::io::ErrorKind::PermissionDenied, m))?;
    let tcp = tokio::net::TcpListener::bind(config.addr).await?;
    let addr = tcp.local_addr()?;
    let limits = serve::Limits::from_descriptors();
    tracing::debug!(?limits, "web UI connection limits");
    let listener = tls::UiListener::new(tcp, config.tls.as_ref(), serve::Slots::new(limits))?;
    let app = App {
        node: node.clone(),
        addr,
        tls: config.tls.is_some(),
        password_checks: Arc::new(tokio::sync::Semaphore::new(2)),
        live: Arc::new(tokio::sync::Semaphore::new(serve::MAX_LIVE)),
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
        .route("/exec", post(write::exec))
        .route("/rename", post(write::rename))
        .route("/revoke", post(write::revoke))
        .route("/invite", post(write::invite))
        .route("/invites/revoke", post(write::revoke_invite))
        .route("/logout", post(login::logout))
        .layer(middleware::from_fn_with_state(app.clone(), guard::api));
    let mut router = Router::new()
        .route("/login", get(login::page).post(login::password))
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
        .layer(axum::extract::DefaultBodyLimit::max(serve::MAX_BODY))
        .with_state(app);
    node.set_ui_addr(Some(addr), config.tls.is_some());
    let task = tokio::spawn(serve_connections(listener, router));
    Ok(Ui { addr, task })
}

/// Serves every admitted connection with HTTP/1.1, each head within
/// [`serve::HEADER_READ`] (`serve.rs` rule 3). Connections end with the task.
async fn serve_connections(mut listener: tls::UiListener, router: Router) {
    use axum::serve::Listener as _;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt as _;
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            (io, peer) = listener.accept() => {
                let router = router.clone();
                connections.spawn(async move {
                    // What `into_make_service_with_connect_info` gives handlers.
                    let service = hyper::service::service_fn(move |req: axum::http::Request<hyper::body::Incoming>| {
                        let mut req = req.map(axum::body::Body::new);
                        req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                        router.clone().oneshot(req)
                    });
                    let served = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(serve::HEADER_READ)
                        .serve_connection(TokioIo::new(io), service)
                        .await;
                    if let Err(e) = served {
                        tracing::debug!(%peer, "web UI connection: {e}");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

pub(crate) fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "message": message } })),
    )
        .into_response()
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
