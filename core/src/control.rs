//! The control socket: how the CLI (and scripts) talk to a running `up`. One JSON line
//! per request, one JSON line per reply (a stream of them for `events`). The socket is
//! `control.sock` in the home folder, mode 0600: only this user can drive the peer.
//!
//! The same [`Request`]s are answered without a daemon by [`handle_local`] on a
//! [`Machine`] opened directly, so every command prints the same thing either way.

use crate::ErrorKind;
use crate::identity::MachineId;
use crate::machine::{
    Machine, MachineRow, MachineSummary, Project, ProjectScan, ScanReport, SpecFilter, SpecRow,
};
use crate::ops::{AuditRecord, Change, Verdict};
use crate::peer::{Event, Peer, Presence};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// File name of the socket in the home folder.
pub const SOCKET_FILE: &str = "control.sock";

/// Largest request line accepted (tickets and paths are far smaller).
const MAX_LINE: usize = 64 * 1024;

/// A request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // one per call, never stored in bulk
pub enum Request {
    /// Specs matching a filter.
    Specs {
        /// The filter.
        filter: SpecFilter,
    },
    /// One spec.
    Show {
        /// Machine (id, short id or label); this one if absent.
        machine: Option<String>,
        /// Project id or name.
        project: String,
        /// Spec name, number or slug.
        spec: String,
    },
    /// This machine, projects, peers.
    Status,
    /// Every known machine with presence.
    Machines,
    /// Rescan now.
    Scan,
    /// Add a project folder.
    ProjectAdd {
        /// Folder.
        dir: PathBuf,
        /// Display name.
        name: Option<String>,
    },
    /// List projects.
    ProjectList,
    /// Remove a project.
    ProjectRemove {
        /// Project id, name or folder.
        project: String,
    },
    /// Create an invitation ticket.
    Invite {
        /// Lifetime in seconds.
        ttl_secs: u64,
        /// Usable more than once.
        reusable: bool,
    },
    /// Join a mesh.
    Join {
        /// The ticket.
        ticket: String,
    },
    /// Rename a machine.
    Rename {
        /// Machine selector.
        machine: String,
        /// New label.
        label: String,
    },
    /// Revoke a machine.
    Revoke {
        /// Machine selector.
        machine: String,
    },
    /// Stream events.
    Events,
    /// Ask a machine to change a spec's metadata (a signed operation).
    Edit {
        /// Machine selector (this one too).
        machine: String,
        /// Project id or name.
        project: String,
        /// Spec name, number or slug.
        spec: String,
        /// The change.
        change: Change,
        /// The file hash the change is based on (default: the replicated one).
        base_file_hash: Option<String>,
    },
    /// Hand an execution request to a machine's host application.
    ExecRequest {
        /// Machine selector.
        machine: String,
        /// The payload.
        payload: String,
    },
    /// The newest audit records.
    Audit {
        /// How many.
        limit: usize,
    },
}

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
}

/// A reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", content = "data", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // one per call, never stored in bulk
pub enum Reply {
    /// Specs.
    Specs(Vec<SpecRow>),
    /// One spec.
    Spec(SpecRow),
    /// Status.
    Status(Box<StatusReport>),
    /// Machines.
    Machines(Vec<MachineReport>),
    /// A scan's report.
    Scan(ScanReport),
    /// A project was added and scanned.
    ProjectAdded {
        /// The project.
        project: Project,
        /// Its first scan.
        scan: ProjectScan,
    },
    /// Projects.
    Projects(Vec<Project>),
    /// A project was removed.
    ProjectRemoved(Project),
    /// An invitation.
    Ticket {
        /// The ticket text.
        ticket: String,
        /// Unix seconds.
        expires_at: u64,
        /// Reusable.
        reusable: bool,
    },
    /// Joined a mesh.
    Joined {
        /// Inviter id.
        inviter: MachineId,
        /// Inviter label.
        inviter_label: String,
        /// Members now.
        members: usize,
    },
    /// Done, nothing to report.
    Done,
    /// An event (for `events`).
    Event(Event),
    /// The answer to an edit or execution request.
    Verdict(Verdict),
    /// Audit records, newest first.
    Audit(Vec<AuditRecord>),
    /// The request failed; the message says what to do.
    Error {
        /// What kind of failure (scripts branch on it; the CLI's exit code follows it).
        kind: ErrorKind,
        /// What went wrong.
        message: String,
    },
}

/// A failed request: its kind and what to do. Kept typed up to the control socket, so
/// a host never classifies a failure by its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The kind.
    pub kind: ErrorKind,
    /// What went wrong and what to do.
    pub message: String,
}

impl Failure {
    /// A failure of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// This failure as a reply.
    pub fn into_reply(self) -> Reply {
        Reply::Error {
            kind: self.kind,
            message: self.message,
        }
    }
}

impl From<crate::machine::Error> for Failure {
    fn from(e: crate::machine::Error) -> Failure {
        Failure::new(e.kind(), e.to_string())
    }
}

impl From<crate::peer::PeerError> for Failure {
    fn from(e: crate::peer::PeerError) -> Failure {
        Failure::new(e.kind(), e.to_string())
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Failure {
        crate::machine::Error::from(e).into()
    }
}

/// Control socket errors (client side).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// No daemon listens.
    #[error("leanspec-peer is not running for this home (start it with `leanspec-peer up`)")]
    NotRunning,
    /// The conversation failed.
    #[error("control socket: {0}")]
    Io(String),
}

/// Answers a request that needs no network from a machine (opened directly, or the
/// daemon's own). `presence` is empty without a daemon.
pub fn handle_local(
    m: &mut Machine,
    presence: &HashMap<MachineId, Presence>,
    req: Request,
    running: bool,
) -> Result<Reply, Failure> {
    let e = Failure::from;
    Ok(match req {
        Request::Specs { filter } => Reply::Specs(m.specs(&filter).map_err(e)?),
        Request::Show {
            machine,
            project,
            spec,
        } => Reply::Spec(m.spec_on(machine.as_deref(), &project, &spec).map_err(e)?),
        Request::Machines => Reply::Machines(machine_reports(m, presence)),
        Request::Status => Reply::Status(Box::new(status_report(m, presence, running).map_err(e)?)),
        Request::Scan => Reply::Scan(m.scan(&mut |_| {}).map_err(e)?),
        Request::ProjectAdd { dir, name } => {
            let (project, scan) = m.add_project(&dir, name.as_deref()).map_err(e)?;
            Reply::ProjectAdded { project, scan }
        }
        Request::ProjectList => Reply::Projects(m.projects().map_err(e)?),
        Request::ProjectRemove { project } => {
            Reply::ProjectRemoved(m.remove_project(&project).map_err(e)?)
        }
        Request::Rename { machine, label } => {
            let id = m.find_machine(&machine).map_err(e)?;
            m.rename_machine(id, &label).map_err(e)?;
            Reply::Done
        }
        Request::Revoke { machine } => {
            let id = m.find_machine(&machine).map_err(e)?;
            if id == m.id() {
                return Err(Failure::new(
                    ErrorKind::InvalidArgument,
                    "a machine cannot revoke itself; revoke it from another member",
                ));
            }
            m.revoke_machine(id).map_err(e)?;
            Reply::Done
        }
        Request::Audit { limit } => {
            Reply::Audit(crate::ops::audit::read(m, limit).map_err(Failure::from)?)
        }
        Request::Invite { .. }
        | Request::Join { .. }
        | Request::Events
        | Request::Edit { .. }
        | Request::ExecRequest { .. } => {
            return Err(Failure::new(
                ErrorKind::NotRunning,
                "this needs the network: start the peer (`leanspec-peer up`)",
            ));
        }
    })
}

/// This machine, its projects and store, and every other machine with its presence
/// (`presence` is empty when no peer runs).
pub fn status_report(
    m: &mut Machine,
    presence: &HashMap<MachineId, Presence>,
    running: bool,
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
    })
}

/// Every known machine (this one included) with its presence.
pub fn machine_reports(
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

/// Answers a request on the running peer.
pub async fn handle(peer: &Peer, req: Request) -> Reply {
    let result = match req {
        Request::Invite { ttl_secs, reusable } => peer
            .invite(Duration::from_secs(ttl_secs), reusable)
            .map(|t| Reply::Ticket {
                expires_at: t.expires_at,
                reusable: t.reusable,
                ticket: t.to_string(),
            })
            .map_err(Failure::from),
        Request::Join { ticket } => match ticket.parse::<crate::net::Ticket>() {
            Err(e) => Err(Failure::new(ErrorKind::Ticket, e.to_string())),
            Ok(t) => match peer.join(&t).await {
                Ok(j) => Ok(Reply::Joined {
                    inviter: j.inviter,
                    inviter_label: peer.with_machine(|m| m.machine_label(j.inviter)),
                    members: j.members,
                }),
                Err(e) => Err(Failure::from(e)),
            },
        },
        Request::Rename { machine, label } => peer
            .with_machine(|m| m.find_machine(&machine))
            .map_err(Failure::from)
            .and_then(|id| {
                peer.rename(id, &label)
                    .map(|_| Reply::Done)
                    .map_err(Failure::from)
            }),
        Request::Revoke { machine } => peer
            .with_machine(|m| m.find_machine(&machine))
            .map_err(Failure::from)
            .and_then(|id| peer.revoke(id).map(|_| Reply::Done).map_err(Failure::from)),
        Request::Edit {
            machine,
            project,
            spec,
            change,
            base_file_hash,
        } => peer
            .edit(&machine, &project, &spec, change, base_file_hash.as_deref())
            .await
            .map(Reply::Verdict)
            .map_err(Failure::from),
        Request::ExecRequest { machine, payload } => peer
            .exec_request(&machine, &payload)
            .await
            .map(Reply::Verdict)
            .map_err(Failure::from),
        Request::Scan => peer.scan().map(Reply::Scan).map_err(Failure::from),
        Request::ProjectAdd { dir, name } => peer
            .add_project(&dir, name.as_deref())
            .map(|(project, scan)| Reply::ProjectAdded { project, scan })
            .map_err(Failure::from),
        Request::ProjectRemove { project } => peer
            .remove_project(&project)
            .map(Reply::ProjectRemoved)
            .map_err(Failure::from),
        other => {
            let presence = peer.presence();
            peer.with_machine(|m| handle_local(m, &presence, other, true))
        }
    };
    result.unwrap_or_else(Failure::into_reply)
}

/// Serves the control socket until the task is aborted.
pub async fn serve(peer: Arc<Peer>, home: &Path) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use std::os::unix::fs::PermissionsExt;
    let path = home.join(SOCKET_FILE);
    // A socket file left by a crashed daemon: remove it only if nobody answers on it.
    if path.exists() && std::os::unix::net::UnixStream::connect(&path).is_err() {
        let _ = std::fs::remove_file(&path);
    }
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let peer = peer.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_one(peer, stream).await {
                    tracing::debug!("control connection: {e}");
                }
            });
        }
    }))
}

async fn serve_one(peer: Arc<Peer>, stream: tokio::net::UnixStream) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(read.take(MAX_LINE as u64));
    reader.read_line(&mut line).await?;
    let reply = |r: &Reply| {
        serde_json::to_string(r).map(|mut s| {
            s.push('\n');
            s
        })
    };
    let req = match serde_json::from_str::<Request>(&line) {
        Ok(r) => r,
        Err(e) => {
            let r = reply(&Reply::Error {
                kind: ErrorKind::InvalidArgument,
                message: format!("malformed request: {e}"),
            })?;
            return write.write_all(r.as_bytes()).await;
        }
    };
    if let Request::Events = req {
        let mut events = peer.subscribe();
        loop {
            match events.recv().await {
                Ok(ev) => {
                    write
                        .write_all(reply(&Reply::Event(ev))?.as_bytes())
                        .await?
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!("events client lagged by {n}")
                }
                Err(_) => return Ok(()),
            }
        }
    }
    let r = handle(&peer, req).await;
    write.write_all(reply(&r)?.as_bytes()).await
}

fn connect(home: &Path) -> Result<std::os::unix::net::UnixStream, ControlError> {
    let path = home.join(SOCKET_FILE);
    std::os::unix::net::UnixStream::connect(&path).map_err(|_| ControlError::NotRunning)
}

/// Whether a daemon answers for `home`.
pub fn is_running(home: &Path) -> bool {
    connect(home).is_ok()
}

/// Sends one request to the running daemon and returns its reply.
pub fn call(home: &Path, req: &Request, timeout: Duration) -> Result<Reply, ControlError> {
    let mut stream = connect(home)?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| ControlError::Io(e.to_string()))?;
    let mut line = serde_json::to_string(req).map_err(|e| ControlError::Io(e.to_string()))?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| ControlError::Io(e.to_string()))?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(|e| ControlError::Io(e.to_string()))?;
    serde_json::from_str(&reply).map_err(|e| ControlError::Io(format!("bad reply: {e}")))
}

/// Streams events from the running daemon until `f` returns false or it stops.
pub fn stream_events(home: &Path, mut f: impl FnMut(Event) -> bool) -> Result<(), ControlError> {
    let mut stream = connect(home)?;
    stream
        .write_all(b"{\"op\":\"events\"}\n")
        .map_err(|e| ControlError::Io(e.to_string()))?;
    for line in BufReader::new(stream).lines() {
        let line = line.map_err(|e| ControlError::Io(e.to_string()))?;
        if let Ok(Reply::Event(ev)) = serde_json::from_str::<Reply>(&line)
            && !f(ev)
        {
            break;
        }
    }
    Ok(())
}
