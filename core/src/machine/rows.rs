//! What machine queries and scans return.

use crate::identity::MachineId;
use crate::spec::{Priority, Spec, Status};
use std::path::PathBuf;

/// One machine as this machine knows it (presence comes from the network layer).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MachineRow {
    /// Machine id.
    pub id: MachineId,
    /// Label.
    pub label: String,
    /// This machine.
    pub is_self: bool,
    /// Revoked from the mesh.
    pub revoked: bool,
    /// Software version in its document.
    pub version: String,
    /// OS in its document.
    pub os: String,
    /// Projects in its document.
    pub projects: usize,
    /// Specs in its document.
    pub specs: usize,
}

/// A project of this machine, with its local paths.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Project {
    /// Stable id (also the key in the replicated document).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Identity across machines: the normalised git `origin` URL, else the name.
    pub fleet: String,
    /// Root folder on this machine.
    pub root: PathBuf,
    /// The specs folder found now, if any.
    pub specs_dir: Option<PathBuf>,
    /// Specs in the document.
    pub specs: usize,
}

/// Progress of a scan, reported to a callback.
#[derive(Debug, Clone, Copy)]
pub struct ScanProgress<'a> {
    /// Project being scanned.
    pub project: &'a str,
    /// Spec folders handled so far.
    pub done: usize,
    /// Spec folders found.
    pub total: usize,
}

/// What a scan of one project did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProjectScan {
    /// Project id.
    pub id: String,
    /// Project name.
    pub name: String,
    /// Specs found on disk.
    pub specs: usize,
    /// Specs new to the document.
    pub added: usize,
    /// Specs whose record changed.
    pub updated: usize,
    /// Specs removed from the document.
    pub removed: usize,
    /// Specs whose files were read (the rest were unchanged by their stat).
    pub read: usize,
    /// Specs with a parse error.
    pub parse_errors: usize,
    /// Skipped folders and files, with the reason.
    pub warnings: Vec<String>,
}

/// What a scan did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanReport {
    /// Per project.
    pub projects: Vec<ProjectScan>,
    /// Bytes of the Automerge change this scan stored (0: nothing changed).
    pub change_bytes: usize,
}

/// Filter for [`Machine::specs`].
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SpecFilter {
    /// Machine id, short id or label.
    pub machine: Option<String>,
    /// Project id, name or fleet identity.
    pub project: Option<String>,
    /// Only this status.
    pub status: Option<Status>,
    /// Only this priority.
    pub priority: Option<Priority>,
    /// Only specs with this tag.
    pub tag: Option<String>,
}

/// One spec with the machine and project it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpecRow {
    /// Machine id (hex).
    pub machine: String,
    /// Machine label.
    pub machine_label: String,
    /// Project id.
    pub project_id: String,
    /// Project name.
    pub project: String,
    /// The project's identity across machines (see [`Project::fleet`]).
    #[serde(default)]
    pub fleet: String,
    /// The spec.
    pub spec: Spec,
}

/// The machine's description for `status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MachineSummary {
    /// Full id.
    pub id: MachineId,
    /// Label.
    pub label: String,
    /// Software version.
    pub version: String,
    /// OS.
    pub os: String,
}

/// Where a spec body shown came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodySource {
    /// This machine's own file.
    Local,
    /// Fetched from its owner just now.
    Owner,
    /// The last copy fetched, shown because the owner could not be reached.
    Cache,
}

/// A spec's README.md (frontmatter and body, as on its owner's disk).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpecBody {
    /// Owner machine id (hex).
    pub machine: String,
    /// Owner label.
    pub machine_label: String,
    /// Project id.
    pub project_id: String,
    /// Spec name.
    pub spec: String,
    /// The file's text.
    pub text: String,
    /// SHA-256 of the file (hex): compare with the spec's `file_hash` to see whether
    /// the metadata shown and this text are of the same version.
    pub file_hash: String,
    /// Where it came from.
    pub source: BodySource,
    /// When it was read (unix milliseconds): for a cached copy, its age.
    pub fetched_at: i64,
    /// Why the cached copy is shown (the owner's error), if it is.
    #[serde(default)]
    pub note: Option<String>,
}
