//! Plain records that cross the FFI, converted from the core's types. Statuses and
//! priorities are their canonical spellings (`in-progress`, `high`); machine ids are hex.

use leanspec_peer_core as core;
use leanspec_peer_core::node::{MachineReport, StatusReport};
use std::collections::HashMap;

/// How a [`crate::Peer`] runs.
#[derive(Debug, Clone, uniffi::Record)]
pub struct PeerConfig {
    /// This machine's label when the home is new (default: the host name).
    #[uniffi(default = None)]
    pub label: Option<String>,
    /// Relay URLs (none by default: no public service is ever used).
    #[uniffi(default = [])]
    pub relays: Vec<String>,
    /// Token for relays that require one.
    #[uniffi(default = None)]
    pub relay_token: Option<String>,
    /// Address to bind, `ip:port` (default `0.0.0.0:0`).
    #[uniffi(default = None)]
    pub bind: Option<String>,
    /// Use direct IP paths (off: relay only).
    #[uniffi(default = true)]
    pub direct: bool,
    /// Watch project folders for changes.
    #[uniffi(default = true)]
    pub watch: bool,
}

/// A machine of the mesh (this one too) with its presence.
#[derive(Debug, Clone, uniffi::Record)]
pub struct MachineInfo {
    /// Machine id (hex).
    pub id: String,
    /// Label.
    pub label: String,
    /// This machine.
    pub is_self: bool,
    /// Connected now (always true for this machine).
    pub online: bool,
    /// Unix seconds of the last contact (0: never).
    pub last_seen: u64,
    /// Software version it runs.
    pub version: String,
    /// Its OS.
    pub os: String,
    /// Revoked from the mesh.
    pub revoked: bool,
    /// Projects in its document.
    pub projects: u64,
    /// Specs in its document.
    pub specs: u64,
    /// Both sides hold the same documents.
    pub in_sync: bool,
    /// `direct`, `relayed`, or empty when offline.
    pub path: String,
    /// Changes of this machine it has not acknowledged yet.
    pub pending: u64,
}

impl From<MachineReport> for MachineInfo {
    fn from(r: MachineReport) -> MachineInfo {
        MachineInfo {
            id: r.machine.id.to_string(),
            label: r.machine.label,
            is_self: r.machine.is_self,
            online: r.online,
            last_seen: r.last_seen,
            version: r.machine.version,
            os: r.machine.os,
            revoked: r.machine.revoked,
            projects: r.machine.projects as u64,
            specs: r.machine.specs as u64,
            in_sync: r.in_sync,
            path: r.path,
            pending: r.pending as u64,
        }
    }
}

/// Which specs to list; every field narrows the list.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct SpecQuery {
    /// Machine id, short id or label.
    #[uniffi(default = None)]
    pub machine: Option<String>,
    /// Project id or name.
    #[uniffi(default = None)]
    pub project: Option<String>,
    /// Status (`draft`, `planned`, `in-progress`, `complete`, `archived`).
    #[uniffi(default = None)]
    pub status: Option<String>,
    /// Priority (`low`, `medium`, `high`, `critical`).
    #[uniffi(default = None)]
    pub priority: Option<String>,
    /// Only specs with this tag.
    #[uniffi(default = None)]
    pub tag: Option<String>,
}

/// One spec on some machine.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SpecInfo {
    /// Machine id (hex).
    pub machine: String,
    /// Machine label.
    pub machine_label: String,
    /// Project id.
    pub project_id: String,
    /// Project name.
    pub project: String,
    /// Folder name (`005-structured-frontmatter`).
    pub name: String,
    /// Title.
    pub title: String,
    /// Status, if valid.
    pub status: Option<String>,
    /// Priority, if valid.
    pub priority: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Dependencies.
    pub depends_on: Vec<String>,
    /// Parent.
    pub parent: Option<String>,
    /// Assignee.
    pub assignee: Option<String>,
    /// `created`.
    pub created: Option<String>,
    /// SHA-256 of the README (hex): the base of an edit.
    pub file_hash: String,
    /// What could not be read, if anything.
    pub parse_error: Option<String>,
}

impl From<core::SpecRow> for SpecInfo {
    fn from(r: core::SpecRow) -> SpecInfo {
        let s = r.spec;
        SpecInfo {
            machine: r.machine,
            machine_label: r.machine_label,
            project_id: r.project_id,
            project: r.project,
            name: s.name,
            title: s.title,
            status: s.status.map(|v| v.as_str().to_string()),
            priority: s.priority.map(|v| v.as_str().to_string()),
            tags: s.tags,
            depends_on: s.depends_on,
            parent: s.parent,
            assignee: s.assignee,
            created: s.created,
            file_hash: s.file_hash,
            parse_error: s.parse_error,
        }
    }
}

/// A project of this machine.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ProjectInfo {
    /// Stable id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Identity across machines: the normalised git `origin` URL, else the name.
    pub fleet: String,
    /// Root folder.
    pub root: String,
    /// Specs folder, if found.
    pub specs_dir: Option<String>,
    /// Specs.
    pub specs: u64,
}

impl From<core::Project> for ProjectInfo {
    fn from(p: core::Project) -> ProjectInfo {
        ProjectInfo {
            id: p.id,
            name: p.name,
            fleet: p.fleet,
            root: p.root.display().to_string(),
            specs_dir: p.specs_dir.map(|d| d.display().to_string()),
            specs: p.specs as u64,
        }
    }
}

/// This machine, its projects and the other machines.
#[derive(Debug, Clone, uniffi::Record)]
pub struct StatusInfo {
    /// This machine's id (hex).
    pub machine_id: String,
    /// This machine's label.
    pub label: String,
    /// Software version.
    pub version: String,
    /// Home folder.
    pub home: String,
    /// Projects.
    pub projects: Vec<ProjectInfo>,
    /// Specs of this machine.
    pub specs: u64,
    /// Other machines.
    pub peers: Vec<MachineInfo>,
    /// The network part runs.
    pub running: bool,
    /// Changes of this machine some member has not acknowledged yet.
    pub pending: u64,
    /// Connections from machines that are not members, refused since the node opened.
    pub refused_strangers: u64,
    /// Connections from revoked machines, refused since the node opened.
    pub refused_revoked: u64,
    /// Operations refused for going over their sender's rate.
    pub refused_rate_limited: u64,
    /// Sync messages refused for going over a limit.
    pub refused_over_limit: u64,
    /// Join attempts refused.
    pub refused_joins: u64,
}

impl From<StatusReport> for StatusInfo {
    fn from(s: StatusReport) -> StatusInfo {
        StatusInfo {
            machine_id: s.machine.id.to_string(),
            label: s.machine.label,
            version: s.machine.version,
            home: s.home.display().to_string(),
            projects: s.projects.into_iter().map(Into::into).collect(),
            specs: s.specs as u64,
            peers: s.peers.into_iter().map(Into::into).collect(),
            running: s.running,
            pending: s.pending as u64,
            refused_strangers: s.refused.strangers,
            refused_revoked: s.refused.revoked,
            refused_rate_limited: s.refused.rate_limited,
            refused_over_limit: s.refused.over_limit,
            refused_joins: s.refused.joins,
        }
    }
}

/// An invitation.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Invite {
    /// The ticket text to give the other machine.
    pub ticket: String,
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
    /// Usable more than once (an auth key).
    pub reusable: bool,
}

/// One problem `check` found.
#[derive(Debug, Clone, uniffi::Record)]
pub struct CheckProblem {
    /// `duplicate_number`, `divergent`, `parse_error` or `dangling_dependency`.
    pub kind: String,
    /// What is wrong, naming the machines and specs.
    pub detail: String,
}

/// What `check` found across the fleet.
#[derive(Debug, Clone, uniffi::Record)]
pub struct CheckResult {
    /// Specs looked at (every machine's).
    pub specs: u64,
    /// Projects (across machines) looked at.
    pub projects: u64,
    /// The problems; empty when nothing is wrong.
    pub problems: Vec<CheckProblem>,
}

impl From<core::query::CheckReport> for CheckResult {
    fn from(r: core::query::CheckReport) -> CheckResult {
        CheckResult {
            specs: r.specs as u64,
            projects: r.projects as u64,
            problems: r
                .problems
                .iter()
                .map(|p| CheckProblem {
                    kind: p.kind().into(),
                    detail: p.to_string(),
                })
                .collect(),
        }
    }
}

/// A spec that matches a search, with its score (higher first).
#[derive(Debug, Clone, uniffi::Record)]
pub struct SearchHit {
    /// How well it matches (0 when the query only names fields).
    pub score: u32,
    /// The spec.
    pub spec: SpecInfo,
}

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum InviteState {
    /// Usable.
    Active,
    /// A one-time invitation its machine used.
    Used,
    /// Past its expiry.
    Expired,
    /// Revoked with `revoke_invite`.
    Revoked,
    /// A machine that used it was revoked since: refused for everyone.
    RevokedWithMachine,
}

impl From<core::machine::InviteState> for InviteState {
    fn from(s: core::machine::InviteState) -> InviteState {
        use core::machine::InviteState as S;
        match s {
            S::Active => InviteState::Active,
            S::Used => InviteState::Used,
            S::Expired => InviteState::Expired,
            S::Revoked => InviteState::Revoked,
            S::RevokedWithMachine => InviteState::RevokedWithMachine,
        }
    }
}

/// An invitation this machine made, as `invite list` shows it.
#[derive(Debug, Clone, uniffi::Record)]
pub struct InviteInfo {
    /// Its id (16 hex characters; `revoke_invite` takes it or a prefix of 4 or more).
    pub id: String,
    /// Unix seconds it was made (0: before this was recorded).
    pub created_at: u64,
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
    /// Usable by many machines.
    pub reusable: bool,
    /// Where it stands now.
    pub state: InviteState,
    /// Ids (hex) of the machines that joined with it.
    pub used_by: Vec<String>,
}

impl From<core::machine::InviteInfo> for InviteInfo {
    fn from(i: core::machine::InviteInfo) -> InviteInfo {
        InviteInfo {
            id: i.id,
            created_at: i.created_at,
            expires_at: i.expires_at,
            reusable: i.reusable,
            state: i.state.into(),
            used_by: i.used_by.iter().map(|u| u.id.to_string()).collect(),
        }
    }
}

/// A mesh joined.
#[derive(Debug, Clone, uniffi::Record)]
pub struct JoinResult {
    /// The inviter's id (hex).
    pub inviter: String,
    /// The inviter's label.
    pub inviter_label: String,
    /// Members now.
    pub members: u64,
}

/// A change to a spec's metadata; empty fields are left alone.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct SpecChange {
    /// New status.
    #[uniffi(default = None)]
    pub status: Option<String>,
    /// New priority.
    #[uniffi(default = None)]
    pub priority: Option<String>,
    /// Replace the tags.
    #[uniffi(default = None)]
    pub set_tags: Option<Vec<String>>,
    /// Tags to add.
    #[uniffi(default = [])]
    pub add_tags: Vec<String>,
    /// Tags to remove.
    #[uniffi(default = [])]
    pub remove_tags: Vec<String>,
    /// Dependencies to add.
    #[uniffi(default = [])]
    pub add_depends_on: Vec<String>,
    /// Dependencies to remove.
    #[uniffi(default = [])]
    pub remove_depends_on: Vec<String>,
    /// New parent ("" removes it).
    #[uniffi(default = None)]
    pub parent: Option<String>,
    /// New assignee ("" removes it).
    #[uniffi(default = None)]
    pub assignee: Option<String>,
}

impl From<SpecChange> for core::ops::Change {
    fn from(c: SpecChange) -> core::ops::Change {
        core::ops::Change {
            status: c.status,
            priority: c.priority,
            set_tags: c.set_tags,
            add_tags: c.add_tags,
            remove_tags: c.remove_tags,
            add_depends_on: c.add_depends_on,
            remove_depends_on: c.remove_depends_on,
            parent: c.parent,
            assignee: c.assignee,
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Outcome {
    /// The edit was applied to the file.
    Applied,
    /// The execution request was handed to the host.
    Delivered,
    /// The target refused; see `reason`.
    Rejected,
    /// The target could not be reached in time; nothing was queued.
    Unavailable,
}

/// The answer to an edit or execution request.
#[derive(Debug, Clone, uniffi::Record)]
pub struct EditResult {
    /// The operation id (hex).
    pub op_id: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Why, when rejected or unavailable (`stale`, `bad_signature`, ...).
    pub reason: Option<String>,
    /// A sentence for people.
    pub message: String,
    /// The file's hash after an applied edit.
    pub file_hash: Option<String>,
    /// The file's hash now, when the edit was stale.
    pub current_file_hash: Option<String>,
}

/// The snake_case name the core uses for a reason (the same as the CLI's JSON).
pub(crate) fn reason_name(r: Option<core::ops::Reason>) -> Option<String> {
    r.and_then(|r| serde_json::to_value(r).ok())
        .and_then(|v| v.as_str().map(str::to_string))
}

fn outcome(o: core::ops::Outcome) -> Outcome {
    match o {
        core::ops::Outcome::Applied => Outcome::Applied,
        core::ops::Outcome::Delivered => Outcome::Delivered,
        core::ops::Outcome::Rejected => Outcome::Rejected,
        core::ops::Outcome::Unavailable => Outcome::Unavailable,
    }
}

impl From<core::ops::Verdict> for EditResult {
    fn from(v: core::ops::Verdict) -> EditResult {
        EditResult {
            op_id: v.op_id,
            outcome: outcome(v.result),
            reason: reason_name(v.reason),
            message: v.message,
            file_hash: v.file_hash,
            current_file_hash: v.current_file_hash,
        }
    }
}

/// One audit log entry.
#[derive(Debug, Clone, uniffi::Record)]
pub struct AuditEntry {
    /// Position in the log.
    pub seq: u64,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// `sent` or `received`.
    pub direction: String,
    /// Operation id (hex).
    pub op_id: String,
    /// `edit`, `exec_request` or `unknown`.
    pub kind: String,
    /// Author machine id (hex).
    pub author: String,
    /// Target machine id (hex).
    pub target: String,
    /// Project id (edits).
    pub project: String,
    /// Spec name (edits).
    pub spec: String,
    /// The payload (execution requests).
    pub payload: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why, when rejected.
    pub reason: Option<String>,
    /// A sentence for people.
    pub message: String,
    /// The file's hash after an applied edit.
    pub file_hash: Option<String>,
    /// The file's hash at the time, when stale.
    pub current_file_hash: Option<String>,
}

impl From<core::ops::audit::AuditRecord> for AuditEntry {
    fn from(r: core::ops::audit::AuditRecord) -> AuditEntry {
        AuditEntry {
            seq: r.seq,
            at_ms: r.at_ms,
            direction: match r.direction {
                core::ops::audit::Direction::Sent => "sent".into(),
                core::ops::audit::Direction::Received => "received".into(),
            },
            op_id: r.op_id,
            kind: r.kind,
            author: r.author,
            target: r.target,
            project: r.project,
            spec: r.spec,
            payload: r.payload,
            outcome: outcome(r.result),
            reason: reason_name(r.reason),
            message: r.message,
            file_hash: r.file_hash,
            current_file_hash: r.current_file_hash,
        }
    }
}

/// Counts over a set of specs.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SpecCounts {
    /// Specs.
    pub specs: u64,
    /// By status (`none` for a spec without a readable one).
    pub by_status: HashMap<String, u64>,
    /// By priority (`none` when unset).
    pub by_priority: HashMap<String, u64>,
    /// By tag (a spec counts once per tag).
    pub by_tag: HashMap<String, u64>,
    /// `complete` over every spec that is not `archived`.
    pub completion_rate: f64,
}

impl From<core::query::Counts> for SpecCounts {
    fn from(c: core::query::Counts) -> SpecCounts {
        let map = |m: std::collections::BTreeMap<String, usize>| {
            m.into_iter().map(|(k, v)| (k, v as u64)).collect()
        };
        SpecCounts {
            specs: c.specs as u64,
            by_status: map(c.by_status),
            by_priority: map(c.by_priority),
            by_tag: map(c.by_tag),
            completion_rate: c.completion_rate,
        }
    }
}

/// One machine's counts.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct MachineCounts {
    /// Machine id (hex).
    pub machine: String,
    /// Its label.
    pub machine_label: String,
    /// Its specs' counts.
    pub counts: SpecCounts,
}

/// Counts per machine and for the fleet (each spec once, as its latest copy says).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct StatsInfo {
    /// Per machine.
    pub machines: Vec<MachineCounts>,
    /// The fleet.
    pub fleet: SpecCounts,
}

impl From<core::query::Stats> for StatsInfo {
    fn from(s: core::query::Stats) -> StatsInfo {
        StatsInfo {
            machines: s
                .machines
                .into_iter()
                .map(|m| MachineCounts {
                    machine: m.machine,
                    machine_label: m.machine_label,
                    counts: m.counts.into(),
                })
                .collect(),
            fleet: s.fleet.into(),
        }
    }
}

/// One board column.
#[derive(Debug, Clone, uniffi::Record)]
pub struct BoardColumn {
    /// The value it holds (`in-progress`, `high`, a tag, a machine label, a parent) or
    /// `none`.
    pub key: String,
    /// Its specs.
    pub specs: Vec<SpecInfo>,
}

/// Specs in columns.
#[derive(Debug, Clone, uniffi::Record)]
pub struct BoardInfo {
    /// What the columns are (`status`, `priority`, `assignee`, `tag`, `machine`,
    /// `parent`).
    pub group_by: String,
    /// The columns, in board order.
    pub columns: Vec<BoardColumn>,
}

impl From<core::query::Board> for BoardInfo {
    fn from(b: core::query::Board) -> BoardInfo {
        BoardInfo {
            group_by: b.group_by.as_str().into(),
            columns: b
                .columns
                .into_iter()
                .map(|c| BoardColumn {
                    key: c.key,
                    specs: c.specs.into_iter().map(Into::into).collect(),
                })
                .collect(),
        }
    }
}

/// A spec in a dependency tree, as its latest copy says.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DepSpecInfo {
    /// Spec name.
    pub name: String,
    /// Title.
    pub title: String,
    /// Status.
    pub status: Option<String>,
    /// Labels of the machines that hold it.
    pub machines: Vec<String>,
}

impl From<core::query::DepSpec> for DepSpecInfo {
    fn from(s: core::query::DepSpec) -> DepSpecInfo {
        DepSpecInfo {
            name: s.name,
            title: s.title,
            status: s.status.map(|v| v.as_str().into()),
            machines: s.machines,
        }
    }
}

/// One line of a dependency tree, depth first.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DepEntryInfo {
    /// Links from the spec asked for (1: direct).
    pub depth: u32,
    /// Upstream: the `depends_on` entry as written; downstream: the dependent's name.
    pub entry: String,
    /// The spec it names; none when no machine holds one.
    pub spec: Option<DepSpecInfo>,
    /// Already shown above (a diamond or a cycle).
    pub repeated: bool,
}

/// What a spec depends on and what depends on it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DepsInfo {
    /// The fleet project.
    pub fleet: String,
    /// The spec asked for.
    pub spec: DepSpecInfo,
    /// What it depends on (empty when not asked).
    pub upstream: Vec<DepEntryInfo>,
    /// What depends on it (empty when not asked).
    pub downstream: Vec<DepEntryInfo>,
}

impl From<core::query::Deps> for DepsInfo {
    fn from(d: core::query::Deps) -> DepsInfo {
        let list = |v: Option<Vec<core::query::DepEntry>>| {
            v.unwrap_or_default()
                .into_iter()
                .map(|e| DepEntryInfo {
                    depth: u32::try_from(e.depth).unwrap_or(u32::MAX),
                    entry: e.entry,
                    spec: e.spec.map(Into::into),
                    repeated: e.repeated,
                })
                .collect()
        };
        DepsInfo {
            fleet: d.fleet,
            spec: d.spec.into(),
            upstream: list(d.upstream),
            downstream: list(d.downstream),
        }
    }
}

/// A spec's README.md.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SpecBodyInfo {
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
    /// SHA-256 of the file (hex).
    pub file_hash: String,
    /// `local` (this machine's file), `owner` (read from it now) or `cache` (the copy
    /// kept from the last read; the owner is unavailable).
    pub source: String,
    /// When it was read (unix milliseconds).
    pub fetched_at: i64,
    /// Why the cached copy is shown.
    pub note: Option<String>,
}

impl From<core::machine::SpecBody> for SpecBodyInfo {
    fn from(b: core::machine::SpecBody) -> SpecBodyInfo {
        let source = match b.source {
            core::machine::BodySource::Local => "local",
            core::machine::BodySource::Owner => "owner",
            core::machine::BodySource::Cache => "cache",
        };
        SpecBodyInfo {
            machine: b.machine,
            machine_label: b.machine_label,
            project_id: b.project_id,
            spec: b.spec,
            text: b.text,
            file_hash: b.file_hash,
            source: source.into(),
            fetched_at: b.fetched_at,
            note: b.note,
        }
    }
}
