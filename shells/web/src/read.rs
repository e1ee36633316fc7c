//! The read-only API: every GET under `/api/v1`, the same JSON shapes as the CLI's
//! `--json`.

use crate::guard::Session;
use crate::{App, answer, answer_with, markdown};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use leanspec_peer_core::query::{DepsQuery, GroupBy};
use leanspec_peer_core::spec::{Priority, Status};
use leanspec_peer_core::{SpecFilter, json};
use serde::Deserialize;
use serde_json::json;

/// What a page needs to know first: who serves it and the CSRF token of its session.
pub(crate) async fn session(
    State(app): State<App>,
    Extension(Session(session, who)): Extension<Session>,
) -> Response {
    let me = app.node.summary();
    axum::Json(json!({
        "csrf": app.node.ui_logins().csrf_token(&session),
        "account": who.account,
        "role": who.role,
        "machine": me.id.to_string(),
        "label": me.label,
        "version": me.version,
    }))
    .into_response()
}

pub(crate) async fn machines(State(app): State<App>) -> Response {
    let rows: Vec<_> = app
        .node
        .machines()
        .iter()
        .map(json::machine_report)
        .collect();
    axum::Json(rows).into_response()
}

#[derive(Deserialize)]
pub(crate) struct SpecsQuery {
    machine: Option<String>,
    project: Option<String>,
    status: Option<Status>,
    priority: Option<Priority>,
    tag: Option<String>,
}

pub(crate) async fn specs(State(app): State<App>, Query(q): Query<SpecsQuery>) -> Response {
    let rows = app.node.specs(&SpecFilter {
        machine: q.machine,
        project: q.project,
        status: q.status,
        priority: q.priority,
        tag: q.tag,
    });
    answer_with(rows, |rows| {
        Json(rows.iter().map(json::spec_row).collect::<Vec<_>>()).into_response()
    })
}

#[derive(Deserialize)]
pub(crate) struct SearchQuery {
    q: String,
    limit: Option<usize>,
}

pub(crate) async fn search(State(app): State<App>, Query(q): Query<SearchQuery>) -> Response {
    answer_with(
        app.node.search(&q.q, q.limit.unwrap_or(50).clamp(1, 1000)),
        |h| Json(json::hits(h)).into_response(),
    )
}

#[derive(Deserialize)]
pub(crate) struct BoardQuery {
    q: Option<String>,
    group_by: Option<GroupBy>,
}

pub(crate) async fn board(State(app): State<App>, Query(q): Query<BoardQuery>) -> Response {
    answer_with(
        app.node
            .board(q.q.as_deref(), q.group_by.unwrap_or_default()),
        |b| Json(json::board(b)).into_response(),
    )
}

#[derive(Deserialize)]
pub(crate) struct DepsArgs {
    spec: String,
    project: Option<String>,
    depth: Option<usize>,
}

pub(crate) async fn deps(State(app): State<App>, Query(q): Query<DepsArgs>) -> Response {
    let query = DepsQuery {
        depth: q
            .depth
            .unwrap_or(leanspec_peer_core::query::DEFAULT_DEPTH)
            .clamp(1, 50),
        ..DepsQuery::default()
    };
    answer(app.node.deps(q.project.as_deref(), &q.spec, query))
}

pub(crate) async fn stats(State(app): State<App>) -> Response {
    answer(app.node.stats())
}

pub(crate) async fn check(State(app): State<App>) -> Response {
    answer(app.node.check())
}

#[derive(Deserialize)]
pub(crate) struct BodyQuery {
    machine: Option<String>,
    project: String,
    spec: String,
}

/// A spec's README from its owner (or the copy kept here when it is offline), with its
/// body rendered (sanitised) and its status history for the detail page.
pub(crate) async fn body(State(app): State<App>, Query(q): Query<BodyQuery>) -> Response {
    let got = app
        .node
        .spec_body(q.machine.as_deref(), &q.project, &q.spec)
        .await;
    answer(got.map(|b| {
        let rendered = markdown::render(&b.text);
        let mut v = serde_json::to_value(&b).unwrap_or_default();
        v["html"] = rendered.html.into();
        v["transitions"] = serde_json::to_value(rendered.transitions).unwrap_or_default();
        v
    }))
}

#[derive(Deserialize)]
pub(crate) struct SpecQuery {
    machine: Option<String>,
    project: String,
    spec: String,
}

/// One spec as the replicated document has it now.
pub(crate) async fn spec(State(app): State<App>, Query(q): Query<SpecQuery>) -> Response {
    answer_with(
        app.node.spec(q.machine.as_deref(), &q.project, &q.spec),
        |r| Json(json::spec_detail(r)).into_response(),
    )
}

/// This machine's projects (every machine's are in its specs' rows).
pub(crate) async fn projects(State(app): State<App>) -> Response {
    answer(
        app.node
            .projects()
            .map(|p| p.iter().map(json::project).collect::<Vec<_>>()),
    )
}

pub(crate) async fn invites(State(app): State<App>) -> Response {
    answer(
        app.node
            .invites()
            .map(|l| l.iter().map(json::invite).collect::<Vec<_>>()),
    )
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    limit: Option<usize>,
}

pub(crate) async fn audit(State(app): State<App>, Query(q): Query<AuditQuery>) -> Response {
    answer(
        app.node
            .audit(q.limit.unwrap_or(100).clamp(1, 10_000))
            .map(|r| r.iter().map(json::audit).collect::<Vec<_>>()),
    )
}

/// The node's events as Server-Sent Events (`event:` the event's kind, `data:` its JSON
/// as `events --json` prints it), starting with the state a late subscriber would miss
/// (each relay's last status); a comment every 15 s keeps proxies from closing it.
pub(crate) async fn events(State(app): State<App>) -> Response {
    use axum::response::sse::{Event as Sse, KeepAlive};
    use tokio::sync::broadcast::error::RecvError;
    fn to_sse(ev: &leanspec_peer_core::peer::Event) -> Sse {
        let value = serde_json::to_value(ev).unwrap_or_default();
        let kind = value["event"].as_str().unwrap_or("event").to_string();
        Sse::default().event(kind).data(value.to_string())
    }
    // Bounded like connections (`serve.rs` rule 5); the permit lives with the stream.
    let Ok(permit) = app.live.clone().try_acquire_owned() else {
        return crate::refuse(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "too many open pages on this peer; close one and reload",
        );
    };
    let (earlier, rx) = app.node.subscribe();
    let first = futures_util::stream::iter(
        earlier
            .iter()
            .map(|e| Ok::<_, std::convert::Infallible>(to_sse(e)))
            .collect::<Vec<_>>(),
    );
    let live = futures_util::stream::unfold((rx, permit), |(mut rx, permit)| async move {
        let ev = match rx.recv().await {
            Ok(ev) => to_sse(&ev),
            // A slow page missed events: tell it, so it reloads what it shows.
            Err(RecvError::Lagged(n)) => Sse::default()
                .event("lagged")
                .data(format!("{{\"missed\":{n}}}")),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(ev), (rx, permit)))
    });
    use futures_util::StreamExt;
    axum::response::Sse::new(first.chain(live))
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response()
}
