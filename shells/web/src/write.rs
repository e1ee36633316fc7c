//! The state-changing API: every POST under `/api/v1` (the CSRF token is checked before
//! these run, see `guard`). Edits are signed operations with the file hash the page
//! showed: the answer is the owner's verdict, shown by the page whatever it is.

use crate::guard::Session;
use crate::{App, answer};
use axum::Json;
use axum::extract::{Extension, State};
use axum::response::Response;
use leanspec_peer_core::json;
use leanspec_peer_core::ops::Change;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// The longest invitation the UI makes (as the CLI: a week).
const MAX_INVITE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditBody {
    machine: String,
    project: String,
    spec: String,
    /// The file hash the page showed; required, so a page never edits blind.
    base_file_hash: String,
    change: Change,
}

/// A signed metadata edit: `{op_id, result, reason, message, file_hash,
/// current_file_hash}` as `edit --json` prints (stale, unavailable and rejected are
/// answers, not HTTP errors).
pub(crate) async fn edit(
    State(app): State<App>,
    Extension(Session(_, who)): Extension<Session>,
    Json(b): Json<EditBody>,
) -> Response {
    answer(
        app.node
            .edit_for(
                who.account.as_deref(),
                &b.machine,
                &b.project,
                &b.spec,
                b.change,
                Some(&b.base_file_hash),
            )
            .await
            .map(|v| json::verdict(&v)),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecBody {
    machine: String,
    payload: String,
}

/// An execution request for the host application on `machine` (nothing is run by
/// leanspec-peer): the owner's verdict, as `exec --json` prints it.
pub(crate) async fn exec(
    State(app): State<App>,
    Extension(Session(_, who)): Extension<Session>,
    Json(b): Json<ExecBody>,
) -> Response {
    answer(
        app.node
            .exec_request_for(who.account.as_deref(), &b.machine, &b.payload)
            .await
            .map(|v| json::verdict(&v)),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RenameBody {
    machine: String,
    label: String,
}

pub(crate) async fn rename(State(app): State<App>, Json(b): Json<RenameBody>) -> Response {
    answer(
        app.node
            .rename(&b.machine, &b.label)
            .map(|()| json!({ "renamed": b.machine, "label": b.label })),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeBody {
    machine: String,
}

pub(crate) async fn revoke(State(app): State<App>, Json(b): Json<RevokeBody>) -> Response {
    answer(
        app.node
            .revoke(&b.machine)
            .map(|()| json!({ "revoked": b.machine })),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InviteBody {
    /// Seconds the invitation is valid (default 1 hour).
    ttl_secs: Option<u64>,
    #[serde(default)]
    reusable: bool,
    /// An ephemeral key: its machines are removed after this many seconds away.
    #[serde(default)]
    ephemeral_after_secs: Option<u64>,
}

/// A new invitation: the ticket, its expiry, and the ticket as a QR code (SVG).
pub(crate) async fn invite(State(app): State<App>, Json(b): Json<InviteBody>) -> Response {
    let ttl = Duration::from_secs(
        b.ttl_secs
            .unwrap_or(3600)
            .clamp(60, MAX_INVITE_TTL.as_secs()),
    );
    // A minute at least (a runner between two jobs), 30 days at most.
    let ephemeral_after = b
        .ephemeral_after_secs
        .map(|s| Duration::from_secs(s.clamp(60, 30 * 86_400)));
    answer(
        app.node
            .invite_with(ttl, b.reusable, ephemeral_after)
            .map(|t| {
                let ticket = t.to_string();
                let mut v = json::ticket(&ticket, t.expires_at, t.reusable);
                v["qr_svg"] = qr_svg(&ticket).into();
                v
            }),
    )
}

fn qr_svg(text: &str) -> Option<String> {
    use qrcode::render::svg;
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<svg::Color<'_>>()
            .min_dimensions(240, 240)
            .quiet_zone(true)
            .build(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InviteRevokeBody {
    id: String,
}

pub(crate) async fn revoke_invite(
    State(app): State<App>,
    Json(b): Json<InviteRevokeBody>,
) -> Response {
    answer(app.node.revoke_invite(&b.id).map(|i| json::invite(&i)))
}
