//! What `status` and `machines` report: the documents joined with the network's view of
//! each member (presence, path, acknowledged changes). Computed the same way whether or
//! not the network runs; when it does not, presence is empty and pending changes come
//! from the stored sync states.

use crate::identity::MachineId;
use crate::machine::{Machine, MachineRow, MachineSummary, Project};
use crate::peer::Presence;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;

/// A machine with its presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineReport {
    /// What the documents say.
    pub machine: MachineRow,
    /// Connected now.
    pub online: bool,
    /// Unix seconds of the last contact (0: never; now for this machine).
    pub last_seen: u64,
    /// Both sides hold the same document heads.
    pub in_sync: bool,
    /// `direct`, `relayed`, or empty.
    pub path: String,
    /// Changes to this machine's document it has not acknowledged (0 for this machine
    /// and revoked ones).
    pub pending: usize,
}

/// Sizes of this machine's stored document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreReport {
    /// Store file path.
    pub path: PathBuf,
    /// Store file size.
    pub file_bytes: u64,
    /// Chunks of this machine's document.
    pub doc_chunks: u64,
    /// Bytes of this machine's document.
    pub doc_bytes: u64,
}

/// `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// This machine.
    pub machine: MachineSummary,
    /// Home folder.
    pub home: PathBuf,
    /// Projects.
    pub projects: Vec<Project>,
    /// Specs of this machine.
    pub specs: usize,
    /// Store sizes.
    pub store: StoreReport,
    /// Other machines.
    pub peers: Vec<MachineReport>,
    /// Whether the answer comes from a running `up`.
    pub running: bool,
    /// Changes to this machine's document that some member has not acknowledged yet
    /// (the largest count over members).
    pub pending: usize,
    /// What this process refused without storing it (strangers, revoked machines,
    /// rate and size limits), counted since the node was opened.
    pub refused: super::RefusalReport,
    /// What scans could not read (EMFILE, EACCES, an unmounted disk, ...): kept in its
    /// last known state meanwhile, never published as removed.
    #[serde(default)]
    pub unreadable: Vec<crate::machine::Unreadable>,
}

/// This machine, its projects and store, and every other machine with its presence
/// (`presence` is empty when no peer runs).
pub(crate) fn status_report(
    m: &mut Machine,
    presence: &HashMap<MachineId, Presence>,
    running: bool,
    refused: super::RefusalReport,
) -> Result<StatusReport, crate::machine::Error> {
    let projects = m.projects()?;
    let stats = m.doc_stats()?;
    let peers: Vec<MachineReport> = machine_reports(m, presence)
        .into_iter()
        .filter(|r| !r.machine.is_self)
        .collect();
    let pending = peers.iter().map(|p| p.pending).max().unwrap_or(0);
    Ok(StatusReport {
        machine: m.summary(),
        home: m.home().to_path_buf(),
        specs: projects.iter().map(|p| p.specs).sum(),
        projects,
        store: StoreReport {
            path: m.store().path().to_path_buf(),
            file_bytes: stats.file_bytes,
            doc_chunks: stats.chunks,
            doc_bytes: stats.chunk_bytes,
        },
        peers,
        running,
        pending,
        refused,
        unreadable: m.unreadable(),
    })
}

/// Every known machine (this one included) with its presence.
pub(crate) fn machine_reports(
    m: &mut Machine,
    presence: &HashMap<MachineId, Presence>,
) -> Vec<MachineReport> {
    m.machines()
        .into_iter()
        .map(|row| {
            let p = presence.get(&row.id).cloned().unwrap_or_default();
            let me = row.is_self;
            let pending = if me || row.revoked {
                0
            } else if p.online {
                p.pending
            } else {
                m.unacknowledged(row.id, None)
            };
            MachineReport {
                pending,
                online: me || p.online,
                last_seen: if me {
                    crate::machine::now_secs().max(0) as u64
                } else {
                    p.last_seen
                },
                in_sync: me || p.in_sync,
                path: p.path,
                machine: row,
            }
        })
        .collect()
}
