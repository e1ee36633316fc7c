//! Audit records: what this machine sent (with the answer) and what it received (with
//! the decision and the reason). Appended to the store's audit table, never rewritten.

use super::{Change, OpBody, Operation, Outcome, Reason, Verdict};
use serde::{Deserialize, Serialize};

/// Which side of an operation this machine was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// This machine authored and sent it.
    Sent,
    /// This machine received and decided it.
    Received,
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the log (assigned on append; 0 before).
    #[serde(default)]
    pub seq: u64,
    /// Unix milliseconds when recorded.
    pub at_ms: i64,
    /// Sent or received.
    pub direction: Direction,
    /// Operation id (hex; empty if undecodable).
    pub op_id: String,
    /// `edit`, `exec_request`, or `unknown` (undecodable).
    pub kind: String,
    /// Author machine id the operation names (hex; for undecodable input, the sending
    /// machine). A claim: proven only when the reason is not `bad_signature`.
    pub author: String,
    /// The machine whose connection delivered it (hex; authenticated by the
    /// connection, empty for this machine's own calls and records sent).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sender: String,
    /// Target machine id (hex; empty if undecodable).
    pub target: String,
    /// The web UI account the author says it made the operation for (signed by the
    /// author, not checkable by the target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Project id, for edits.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub project: String,
    /// Spec name, for edits.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub spec: String,
    /// The file hash the author saw, for edits.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub base_file_hash: String,
    /// The change, for edits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    /// The payload, for execution requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// How it ended.
    pub result: Outcome,
    /// Why, when not applied or delivered.
    #[serde(default)]
    pub reason: Option<Reason>,
    /// The sentence given.
    #[serde(default)]
    pub message: String,
    /// File hash after an applied edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_hash: Option<String>,
    /// File hash now, for a stale edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_file_hash: Option<String>,
}

/// The newest `limit` records of `m`'s audit log, newest first. Records this build
/// cannot read (a newer format) are skipped with a warning.
pub fn read(
    m: &crate::machine::Machine,
    limit: usize,
) -> Result<Vec<AuditRecord>, crate::store::StoreError> {
    Ok(m.store()
        .audit(limit)?
        .into_iter()
        .filter_map(
            |(seq, bytes)| match serde_json::from_slice::<AuditRecord>(&bytes) {
                Ok(mut r) => {
                    r.seq = seq;
                    Some(r)
                }
                Err(e) => {
                    tracing::warn!(seq, "skipping an unreadable audit record: {e}");
                    None
                }
            },
        )
        .collect())
}

impl AuditRecord {
    /// The record of `op` ending with `verdict`.
    pub fn of(op: &Operation, direction: Direction, verdict: &Verdict, at_ms: i64) -> AuditRecord {
        let mut r = AuditRecord::blank(direction, verdict, at_ms);
        r.op_id = op.id_hex();
        r.author = op.author.to_string();
        r.target = op.target.to_string();
        r.account = op.on_behalf_of.clone();
        r.file_hash = verdict.file_hash.clone();
        r.current_file_hash = verdict.current_file_hash.clone();
        match &op.body {
            OpBody::Edit {
                project,
                spec,
                base_file_hash,
                change,
            } => {
                r.kind = "edit".into();
                r.project = project.clone();
                r.spec = spec.clone();
                r.base_file_hash = hex::encode(base_file_hash);
                r.change = Some(change.clone());
            }
            OpBody::ExecRequest { payload } => {
                r.kind = "exec_request".into();
                r.payload = Some(payload.clone());
            }
        }
        r
    }

    /// The record of input that could not be decoded, from `sender` (if known).
    pub fn undecodable(sender: Option<String>, verdict: &Verdict, at_ms: i64) -> AuditRecord {
        let mut r = AuditRecord::blank(Direction::Received, verdict, at_ms);
        r.kind = "unknown".into();
        r.author = sender.unwrap_or_default();
        r
    }

    /// A record with only the verdict filled in.
    fn blank(direction: Direction, verdict: &Verdict, at_ms: i64) -> AuditRecord {
        AuditRecord {
            seq: 0,
            at_ms,
            direction,
            op_id: String::new(),
            kind: String::new(),
            author: String::new(),
            sender: String::new(),
            target: String::new(),
            account: None,
            project: String::new(),
            spec: String::new(),
            base_file_hash: String::new(),
            change: None,
            payload: None,
            result: verdict.result,
            reason: verdict.reason,
            message: verdict.message.clone(),
            file_hash: None,
            current_file_hash: None,
        }
    }
}
