//! The JSON documents hosts hand out: the CLI's `--json` and the web UI's API use these,
//! so a spec or a machine has one shape in both. (The MCP server still answers with the
//! core types' own serde shapes.)
//! Stable: documented in docs/cli-json.md; keys are only ever added.

use crate::control::{MachineReport, StatusReport};
use crate::machine::{InviteInfo, MachineSummary};
use crate::ops::{AuditRecord, Reason, Verdict};
use crate::query::SearchHit;
use crate::{Project, ProjectScan, ScanReport, SpecRow};
use serde::Serialize;
use serde_json::{Value, json};

/// A machine as `init --json` and `status --json` describe it.
pub fn machine_summary(m: &MachineSummary) -> Value {
    json!({
        "id": m.id.to_string(),
        "short_id": m.id.short(),
        "label": m.label,
        "version": m.version,
        "os": m.os,
    })
}

/// `project list --json` rows.
pub fn project(p: &Project) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "fleet": p.fleet,
        "root": p.root.display().to_string(),
        "specs_dir": p.specs_dir.as_ref().map(|d| d.display().to_string()),
        "specs": p.specs,
    })
}

/// One project's scan.
pub fn scan(s: &ProjectScan) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "specs": s.specs,
        "added": s.added,
        "updated": s.updated,
        "removed": s.removed,
        "read": s.read,
        "parse_errors": s.parse_errors,
        "warnings": s.warnings,
    })
}

/// The `specs --json` row: exactly these keys. Borrowed and serialized straight to text
/// (a board of 10,000 rows is megabytes: no intermediate `Value` tree).
#[derive(Debug, Serialize)]
pub struct SpecRowJson<'a> {
    machine: &'a str,
    machine_label: &'a str,
    project: &'a str,
    project_id: &'a str,
    fleet: &'a str,
    spec: &'a str,
    title: &'a str,
    status: Option<&'static str>,
    priority: Option<&'static str>,
    tags: &'a [String],
    depends_on: &'a [String],
    parent: Option<&'a str>,
    assignee: Option<&'a str>,
    created: Option<&'a str>,
    updated_at: Option<&'a str>,
    content_hash: &'a str,
    file_hash: &'a str,
    parse_error: Option<&'a str>,
}

/// The `specs --json` row of `r`.
pub fn spec_row(r: &SpecRow) -> SpecRowJson<'_> {
    let s = &r.spec;
    SpecRowJson {
        machine: &r.machine,
        machine_label: &r.machine_label,
        project: &r.project,
        project_id: &r.project_id,
        fleet: &r.fleet,
        spec: &s.name,
        title: &s.title,
        status: s.status.map(|v| v.as_str()),
        priority: s.priority.map(|v| v.as_str()),
        tags: &s.tags,
        depends_on: &s.depends_on,
        parent: s.parent.as_deref(),
        assignee: s.assignee.as_deref(),
        created: s.created.as_deref(),
        updated_at: s.updated_at.as_deref(),
        content_hash: &s.content_hash,
        file_hash: &s.file_hash,
        parse_error: s.parse_error.as_deref(),
    }
}

/// The `show --json` object: the row keys plus the rest of the record.
#[derive(Debug, Serialize)]
pub struct SpecDetailJson<'a> {
    #[serde(flatten)]
    row: SpecRowJson<'a>,
    created_at: Option<&'a str>,
    completed_at: Option<&'a str>,
    sub_files: &'a [String],
}

/// The `show --json` object of `r`.
pub fn spec_detail(r: &SpecRow) -> SpecDetailJson<'_> {
    SpecDetailJson {
        row: spec_row(r),
        created_at: r.spec.created_at.as_deref(),
        completed_at: r.spec.completed_at.as_deref(),
        sub_files: &r.spec.sub_files,
    }
}

/// `board --json`: columns with their count and spec rows.
#[derive(Debug, Serialize)]
pub struct BoardJson<'a> {
    group_by: crate::query::GroupBy,
    columns: Vec<ColumnJson<'a>>,
}

/// One column of [`BoardJson`].
#[derive(Debug, Serialize)]
pub struct ColumnJson<'a> {
    key: &'a str,
    count: usize,
    specs: Vec<SpecRowJson<'a>>,
}

/// The `board --json` document of `b`.
pub fn board(b: &crate::query::Board) -> BoardJson<'_> {
    BoardJson {
        group_by: b.group_by,
        columns: b
            .columns
            .iter()
            .map(|c| ColumnJson {
                key: &c.key,
                count: c.specs.len(),
                specs: c.specs.iter().map(spec_row).collect(),
            })
            .collect(),
    }
}

/// `invite list --json` rows.
pub fn invite(i: &InviteInfo) -> Value {
    json!({
        "id": i.id,
        "created_at": i.created_at,
        "expires_at": i.expires_at,
        "reusable": i.reusable,
        "ephemeral_after": i.ephemeral_after,
        "state": i.state,
        "used_by": i.used_by.iter().map(|u| json!({"id": u.id.to_string(), "label": u.label, "revoked": u.revoked, "removed": u.removed})).collect::<Vec<_>>(),
    })
}

/// `scan --json`.
pub fn scan_report(r: &ScanReport) -> Value {
    json!({"projects": r.projects.iter().map(scan).collect::<Vec<_>>(), "change_bytes": r.change_bytes})
}

/// `machines --json` rows: exactly these keys.
pub fn machine_report(r: &MachineReport) -> Value {
    json!({
        "id": r.machine.id.to_string(),
        "label": r.machine.label,
        "self": r.machine.is_self,
        "online": r.online,
        "last_seen": r.last_seen,
        "version": r.machine.version,
        "os": r.machine.os,
        "revoked": r.machine.revoked,
        "projects": r.machine.projects,
        "specs": r.machine.specs,
        "in_sync": r.in_sync,
        "path": r.path,
        "pending": r.pending,
    })
}

/// `status --json`.
pub fn status(s: &StatusReport) -> Value {
    let peers: Vec<Value> = s.peers.iter().map(machine_report).collect();
    json!({
        "machine": machine_summary(&s.machine),
        "home": s.home.display().to_string(),
        "running": s.running,
        "projects": s.projects.iter().map(project).collect::<Vec<_>>(),
        "specs": s.specs,
        "store": {"path": s.store.path.display().to_string(), "file_bytes": s.store.file_bytes, "doc_chunks": s.store.doc_chunks, "doc_bytes": s.store.doc_bytes},
        "peers": peers,
        "pending": s.pending,
        "refused": s.refused,
        "unreadable": s.unreadable,
    })
}

/// `edit --json` and `exec-request --json`: how an operation ended.
pub fn verdict(v: &Verdict) -> Value {
    json!({
        "result": v.result.as_str(),
        "reason": v.reason.map(reason),
        "message": v.message,
        "op_id": v.op_id,
        "file_hash": v.file_hash,
        "current_file_hash": v.current_file_hash,
    })
}

/// A rejection reason's spelling (`stale`, `bad_signature`, ...).
pub fn reason(r: Reason) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `audit --json` records.
pub fn audit(r: &AuditRecord) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

/// A `search --json` entry: a spec row with its `score`.
#[derive(Debug, Serialize)]
pub struct HitJson<'a> {
    #[serde(flatten)]
    row: SpecRowJson<'a>,
    score: u32,
}

/// `search --json`: spec rows with their `score`, best first.
pub fn hits(hits: &[SearchHit]) -> Vec<HitJson<'_>> {
    hits.iter()
        .map(|h| HitJson {
            row: spec_row(&h.row),
            score: h.score,
        })
        .collect()
}

/// `invite --json`: the ticket text, its expiry (unix seconds) and kind.
pub fn ticket(ticket: &str, expires_at: u64, reusable: bool) -> Value {
    json!({"ticket": ticket, "expires_at": expires_at, "reusable": reusable})
}
