//! Signed operations: how one machine asks another to change a spec's metadata (or
//! hands it an execution request). The only path by which a spec file is written.
//!
//! An operation names its author, its target, the spec and the `file_hash` the author
//! saw, and is signed with the author's machine key. The target checks it in a fixed
//! order ([`verify`]), applies it with the format-preserving editor only if the file on
//! disk still has that hash, and both sides append to their audit log ([`audit`]).
//! Nothing is queued: an unreachable target is `unavailable`.

pub mod audit;
pub mod verify;
pub mod wire;

pub use audit::{AuditRecord, Direction};
pub use wire::{DecodeError, SignedOperation};

use crate::identity::MachineId;
use crate::spec::MetadataChange;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long an operation is valid by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);
/// The longest validity a target accepts (the replay table keeps ids this long).
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How far a target tolerates the author's clock being ahead of its own.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// One operation, before signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Random id; a target accepts each id once.
    pub id: [u8; 16],
    /// The machine that signs it.
    pub author: MachineId,
    /// The machine that must apply it.
    pub target: MachineId,
    /// Unix milliseconds when issued (author's clock).
    pub issued_at_ms: i64,
    /// Unix milliseconds after which the target refuses it.
    pub expires_at_ms: i64,
    /// What it asks.
    pub body: OpBody,
    /// The web UI account the author made it for (the author's word, covered by its
    /// signature: the target cannot check it, only record it). `None` for the machine's
    /// own user (CLI, bindings, MCP, the local UI login).
    pub on_behalf_of: Option<String>,
}

/// What an operation asks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // one per operation, never held in bulk
pub enum OpBody {
    /// Change a spec's frontmatter.
    Edit {
        /// Project id (as in the target's machine document).
        project: String,
        /// Spec name (folder path relative to the specs folder, `/`-separated).
        spec: String,
        /// SHA-256 of the whole file as the author saw it.
        base_file_hash: [u8; 32],
        /// The change.
        change: Change,
    },
    /// Hand a request to the target's host application (never executed by us).
    ExecRequest {
        /// Opaque, bounded payload.
        payload: String,
    },
}

/// A metadata change as it travels: values as the author wrote them. The target checks
/// them ([`Change::to_metadata_change`]) after deciding it may act at all, so an invalid
/// value is refused with its own reason rather than as undecodable bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// New status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// New priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    /// Replace the tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_tags: Option<Vec<String>>,
    /// Tags to add.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_tags: Vec<String>,
    /// Tags to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_tags: Vec<String>,
    /// Dependencies to add.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_depends_on: Vec<String>,
    /// Dependencies to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_depends_on: Vec<String>,
    /// New parent ("" removes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// New assignee ("" removes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
}

impl Change {
    /// True when it asks for nothing.
    pub fn is_empty(&self) -> bool {
        *self == Change::default()
    }

    /// The typed change, or why a value is invalid.
    pub fn to_metadata_change(&self) -> Result<MetadataChange, String> {
        let status = self
            .status
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: crate::spec::UnknownValue| e.to_string())?;
        let priority = self
            .priority
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: crate::spec::UnknownValue| e.to_string())?;
        Ok(MetadataChange {
            status,
            priority,
            set_tags: self.set_tags.clone(),
            add_tags: self.add_tags.clone(),
            remove_tags: self.remove_tags.clone(),
            add_depends_on: self.add_depends_on.clone(),
            remove_depends_on: self.remove_depends_on.clone(),
            parent: self.parent.clone(),
            assignee: self.assignee.clone(),
        })
    }
}

impl From<&MetadataChange> for Change {
    fn from(c: &MetadataChange) -> Change {
        Change {
            status: c.status.map(|s| s.as_str().to_string()),
            priority: c.priority.map(|p| p.as_str().to_string()),
            set_tags: c.set_tags.clone(),
            add_tags: c.add_tags.clone(),
            remove_tags: c.remove_tags.clone(),
            add_depends_on: c.add_depends_on.clone(),
            remove_depends_on: c.remove_depends_on.clone(),
            parent: c.parent.clone(),
            assignee: c.assignee.clone(),
        }
    }
}

impl Operation {
    /// A new operation with a random id, valid for `ttl` from `now_ms`.
    pub fn new(
        author: MachineId,
        target: MachineId,
        body: OpBody,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<Operation, crate::identity::IdentityError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id)
            .map_err(|e| crate::identity::IdentityError::Random(e.to_string()))?;
        Ok(Operation {
            id,
            author,
            target,
            issued_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64),
            body,
            on_behalf_of: None,
        })
    }

    /// The id as hex.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The edit was written to the file.
    Applied,
    /// The execution request was handed to the target's host application.
    Delivered,
    /// The target refused it; see the reason.
    Rejected,
    /// The target could not be reached in time; nothing was queued.
    Unavailable,
}

impl Outcome {
    /// The spelling used in JSON and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Delivered => "delivered",
            Outcome::Rejected => "rejected",
            Outcome::Unavailable => "unavailable",
        }
    }
}

/// Why an operation was rejected (or unavailable). The verification steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The frame was larger than allowed.
    TooLarge,
    /// The bytes are not an operation.
    Malformed,
    /// The signature is not the author's over these bytes.
    BadSignature,
    /// The author is not a member of the mesh.
    NotMember,
    /// The author was revoked.
    Revoked,
    /// The connection's machine is not the operation's author.
    WrongSender,
    /// The operation is for another machine.
    WrongTarget,
    /// It expired, or its validity is longer than allowed.
    Expired,
    /// It was issued in the future beyond the clock-skew window.
    NotYetValid,
    /// Its id was seen before.
    Replayed,
    /// The target has no such project.
    UnknownProject,
    /// The project has no such spec.
    UnknownSpec,
    /// The spec name would leave the specs folder (`..`, absolute, symlink).
    BadPath,
    /// A value is not valid (status/priority enums, empty or multi-line values).
    InvalidValue,
    /// The file changed since the author saw it.
    Stale,
    /// The editor refused or the write failed; the file is untouched.
    EditFailed,
    /// The target could not be reached.
    Unreachable,
    /// The sender went over its operation rate (see `proto::budget`); try again later.
    RateLimited,
}

/// The answer to an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The operation id (hex; empty if it could not be decoded).
    pub op_id: String,
    /// How it ended.
    pub result: Outcome,
    /// Why, when not applied or delivered.
    #[serde(default)]
    pub reason: Option<Reason>,
    /// A sentence for people.
    #[serde(default)]
    pub message: String,
    /// The file's hash after an applied edit.
    #[serde(default)]
    pub file_hash: Option<String>,
    /// The file's hash now, when the edit was stale.
    #[serde(default)]
    pub current_file_hash: Option<String>,
}

impl Verdict {
    /// A rejection.
    pub fn rejected(op_id: String, reason: Reason, message: impl Into<String>) -> Verdict {
        Verdict {
            op_id,
            result: Outcome::Rejected,
            reason: Some(reason),
            message: message.into(),
            file_hash: None,
            current_file_hash: None,
        }
    }

    /// The target could not be reached.
    pub fn unavailable(op_id: String, message: impl Into<String>) -> Verdict {
        Verdict {
            op_id,
            result: Outcome::Unavailable,
            reason: Some(Reason::Unreachable),
            message: message.into(),
            file_hash: None,
            current_file_hash: None,
        }
    }
}
