//! The web UI's server, a thin host over the core's `Node` (first part: the read-only
//! JSON API under `/api/v1` and the login; pages come next). Loopback by default.
//!
//! Every request must name this server in `Host` (`127.0.0.1:PORT` or
//! `localhost:PORT`: a DNS-rebinding page names its own host) and, when it has an
//! `Origin`, come from this server's origin. `/login?token=T` exchanges the one-time
//! token from `leanspec-peer ui` for a session cookie (HttpOnly, SameSite=Strict); every
//! API call needs that cookie.

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use leanspec_peer_core::query::{DepsQuery, GroupBy};
use leanspec_peer_core::spec::{Priority, Status};
use leanspec_peer_core::{ErrorKind, Node, SpecFilter};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The cookie that carries the session id.
pub const SESSION_COOKIE: &str = "lsp_session";

#[derive(Clone)]
struct App {
    node: Arc<Node>,
    addr: SocketAddr,
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
        .route("/machines", get(machines))
        .route("/specs", get(specs))
        .route("/search", get(search))
        .route("/board", get(board))
        .route("/deps", get(deps))
        .route("/stats", get(stats))
        .route("/check", get(check))
        .route("/body", get(body))
        .route("/audit", get(audit))
        .route("/events", get(events))
        .layer(middleware::from_fn_with_state(app.clone(), session));
    let router = Router::new()
        .route("/login", get(login))
        .nest("/api/v1", api)
        .layer(middleware::from_fn_with_state(app.clone(), same_site))
        .with_state(app);
    node.set_ui_addr(Some(addr));
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!("the web UI stopped: {e}");
        }
    });
    Ok(Ui { addr, task })
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "message": message } })),
    )
        .into_response()
}

/// `Host` names this server; `Origin`, when sent, is this server's.
async fn same_site(State(app): State<App>, req: Request, next: Next) -> Response {
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
    next.run(req).await
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

async fn session(State(app): State<App>, req: Request, next: Next) -> Response {
    let live = cookie(req.headers(), SESSION_COOKIE)
        .is_some_and(|s| app.node.ui_logins().check(s, Instant::now()));
    if !live {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "log in with the URL `leanspec-peer ui` prints",
        );
    }
    next.run(req).await
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
fn answer<T: serde::Serialize>(r: Result<T, leanspec_peer_core::peer::PeerError>) -> Response {
    match r {
        Ok(v) => axum::Json(v).into_response(),
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

async fn machines(State(app): State<App>) -> Response {
    axum::Json(app.node.machines()).into_response()
}

#[derive(Deserialize)]
struct SpecsQuery {
    machine: Option<String>,
    project: Option<String>,
    status: Option<Status>,
    priority: Option<Priority>,
    tag: Option<String>,
}

async fn specs(State(app): State<App>, Query(q): Query<SpecsQuery>) -> Response {
    answer(app.node.specs(&SpecFilter {
        machine: q.machine,
        project: q.project,
        status: q.status,
        priority: q.priority,
        tag: q.tag,
    }))
}

#[derive(Deserialize)]
struct SearchQuery {
    q: String,
    limit: Option<usize>,
}

async fn search(State(app): State<App>, Query(q): Query<SearchQuery>) -> Response {
    answer(app.node.search(&q.q, q.limit.unwrap_or(50).clamp(1, 1000)))
}

#[derive(Deserialize)]
struct BoardQuery {
    q: Option<String>,
    group_by: Option<GroupBy>,
}

async fn board(State(app): State<App>, Query(q): Query<BoardQuery>) -> Response {
    answer(
        app.node
            .board(q.q.as_deref(), q.group_by.unwrap_or_default()),
    )
}

#[derive(Deserialize)]
struct DepsArgs {
    spec: String,
    project: Option<String>,
    depth: Option<usize>,
}

async fn deps(State(app): State<App>, Query(q): Query<DepsArgs>) -> Response {
    let query = DepsQuery {
        depth: q
            .depth
            .unwrap_or(leanspec_peer_core::query::DEFAULT_DEPTH)
            .clamp(1, 50),
        ..DepsQuery::default()
    };
    answer(app.node.deps(q.project.as_deref(), &q.spec, query))
}

async fn stats(State(app): State<App>) -> Response {
    answer(app.node.stats())
}

async fn check(State(app): State<App>) -> Response {
    answer(app.node.check())
}

#[derive(Deserialize)]
struct BodyQuery {
    machine: Option<String>,
    project: String,
    spec: String,
}

/// A spec's README from its owner (or the copy kept here when it is offline).
async fn body(State(app): State<App>, Query(q): Query<BodyQuery>) -> Response {
    answer(
        app.node
            .spec_body(q.machine.as_deref(), &q.project, &q.spec)
            .await,
    )
}

#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<usize>,
}

async fn audit(State(app): State<App>, Query(q): Query<AuditQuery>) -> Response {
    answer(app.node.audit(q.limit.unwrap_or(100).clamp(1, 10_000)))
}

/// The node's events as Server-Sent Events (`event:` the event's kind, `data:` its JSON
/// as `events --json` prints it), starting with the state a late subscriber would miss
/// (each relay's last status); a comment every 15 s keeps proxies from closing it.
async fn events(State(app): State<App>) -> Response {
    use axum::response::sse::{Event as Sse, KeepAlive};
    use tokio::sync::broadcast::error::RecvError;
    fn to_sse(ev: &leanspec_peer_core::peer::Event) -> Sse {
        let value = serde_json::to_value(ev).unwrap_or_default();
        let kind = value["event"].as_str().unwrap_or("event").to_string();
        Sse::default().event(kind).data(value.to_string())
    }
    let (earlier, rx) = app.node.subscribe();
    let first = futures_util::stream::iter(
        earlier
            .iter()
            .map(|e| Ok::<_, std::convert::Infallible>(to_sse(e)))
            .collect::<Vec<_>>(),
    );
    let live = futures_util::stream::unfold(rx, |mut rx| async move {
        let ev = match rx.recv().await {
            Ok(ev) => to_sse(&ev),
            // A slow page missed events: tell it, so it reloads what it shows.
            Err(RecvError::Lagged(n)) => Sse::default()
                .event("lagged")
                .data(format!("{{\"missed\":{n}}}")),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(ev), rx))
    });
    use futures_util::StreamExt;
    axum::response::Sse::new(first.chain(live))
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response()
}
