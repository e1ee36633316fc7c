//! The typed spec record and the two enums LeanSpec normalises (status, priority).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A spec's lifecycle status, normalised as LeanSpec does (case-insensitive;
/// `in_progress`, `inprogress` and `completed` are accepted aliases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// `draft`
    Draft,
    /// `planned`
    Planned,
    /// `in-progress`
    InProgress,
    /// `complete`
    Complete,
    /// `archived`
    Archived,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 5] = [
        Status::Draft,
        Status::Planned,
        Status::InProgress,
        Status::Complete,
        Status::Archived,
    ];

    /// The canonical spelling written to files and documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Planned => "planned",
            Status::InProgress => "in-progress",
            Status::Complete => "complete",
            Status::Archived => "archived",
        }
    }
}

/// A spec's priority (`med` and `urgent` are accepted aliases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    /// `low`
    Low,
    /// `medium`
    Medium,
    /// `high`
    High,
    /// `critical`
    Critical,
}

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Medium,
        Priority::High,
        Priority::Critical,
    ];

    /// The canonical spelling written to files and documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }
}

/// A value that is not one of an enum's spellings; the message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {field} {value:?} (expected one of: {expected})")]
pub struct UnknownValue {
    /// Which field was being parsed (`status` or `priority`).
    pub field: &'static str,
    /// The value as written.
    pub value: String,
    /// The valid spellings, comma separated.
    pub expected: &'static str,
}

fn normalise(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

impl FromStr for Status {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match normalise(s).as_str() {
            "draft" => Ok(Status::Draft),
            "planned" => Ok(Status::Planned),
            "in-progress" | "in_progress" | "inprogress" => Ok(Status::InProgress),
            "complete" | "completed" => Ok(Status::Complete),
            "archived" => Ok(Status::Archived),
            _ => Err(UnknownValue {
                field: "status",
                value: s.to_string(),
                expected: "draft, planned, in-progress, complete, archived",
            }),
        }
    }
}

impl FromStr for Priority {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match normalise(s).as_str() {
            "low" => Ok(Priority::Low),
            "medium" | "med" => Ok(Priority::Medium),
            "high" => Ok(Priority::High),
            "critical" | "urgent" => Ok(Priority::Critical),
            _ => Err(UnknownValue {
                field: "priority",
                value: s.to_string(),
                expected: "low, medium, high, critical",
            }),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One spec as this machine sees it on disk: what goes into the machine document.
///
/// Invariants:
/// 1. `name` is the spec folder's path relative to the specs folder, `/`-separated,
///    valid UTF-8, every component starting with an ASCII digit for the last one.
/// 2. `file_hash` is the lowercase hex SHA-256 of the whole `README.md` as read; it is
///    empty only when the file could not be read at all (see `parse_error`).
/// 3. `content_hash` is LeanSpec's body-only hash; empty when the body is unknown.
/// 4. `parse_error` is `None` exactly when every field was read without a problem.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// Folder path relative to the specs folder (`005-structured-frontmatter`).
    pub name: String,
    /// First `# ` line of the body, else the folder's last component.
    pub title: String,
    /// `status`, normalised; `None` if missing or unknown (see `parse_error`).
    pub status: Option<Status>,
    /// `priority`, normalised; `None` if missing or unknown.
    pub priority: Option<Priority>,
    /// `tags`, in file order.
    pub tags: Vec<String>,
    /// `depends_on`, in file order.
    pub depends_on: Vec<String>,
    /// `parent`.
    pub parent: Option<String>,
    /// `assignee`.
    pub assignee: Option<String>,
    /// `created` (a date, as written, `YYYY-MM-DD` when it was an 8-digit integer).
    pub created: Option<String>,
    /// `created_at` (RFC 3339, as written).
    pub created_at: Option<String>,
    /// `updated_at` (RFC 3339, as written).
    pub updated_at: Option<String>,
    /// `completed_at` (RFC 3339, as written).
    pub completed_at: Option<String>,
    /// LeanSpec's body hash (lowercase hex SHA-256).
    pub content_hash: String,
    /// SHA-256 of the whole README.md (lowercase hex); guards edits.
    pub file_hash: String,
    /// Other `.md` files in the spec folder, sorted by name.
    pub sub_files: Vec<String>,
    /// What could not be read, if anything (the rest of the record is still filled).
    pub parse_error: Option<String>,
}

impl Spec {
    /// Every document key a spec can hold (see `doc`'s schema).
    pub const FIELDS: [&'static str; 15] = [
        "title",
        "status",
        "priority",
        "parent",
        "assignee",
        "created",
        "created_at",
        "updated_at",
        "completed_at",
        "parse_error",
        "tags",
        "depends_on",
        "sub_files",
        "content_hash",
        "file_hash",
    ];

    /// The value of document key `field` as JSON: a string, a list of strings, or
    /// null when unset (`None` for a key a spec does not have).
    pub fn field_json(&self, field: &str) -> Option<serde_json::Value> {
        use serde_json::Value;
        let text = |v: Option<&str>| v.map_or(Value::Null, |s| Value::String(s.to_string()));
        let hash = |h: &str| text(Some(h).filter(|h| !h.is_empty()));
        let list = |l: &[String]| Value::from(l.to_vec());
        Some(match field {
            "title" => text(Some(&self.title)),
            "status" => text(self.status.map(Status::as_str)),
            "priority" => text(self.priority.map(Priority::as_str)),
            "parent" => text(self.parent.as_deref()),
            "assignee" => text(self.assignee.as_deref()),
            "created" => text(self.created.as_deref()),
            "created_at" => text(self.created_at.as_deref()),
            "updated_at" => text(self.updated_at.as_deref()),
            "completed_at" => text(self.completed_at.as_deref()),
            "parse_error" => text(self.parse_error.as_deref()),
            "tags" => list(&self.tags),
            "depends_on" => list(&self.depends_on),
            "sub_files" => list(&self.sub_files),
            "content_hash" => hash(&self.content_hash),
            "file_hash" => hash(&self.file_hash),
            _ => return None,
        })
    }
}
