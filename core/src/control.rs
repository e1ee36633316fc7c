//! The control socket: how the CLI (and scripts) talk to a running `up`. One JSON line
//! per request, one JSON line per reply (a stream of them for `events`). The socket is
//! `control.sock` in the home folder, mode 0600: only this user can drive the peer.
//!
//! [`handle`] answers every [`Request`] on a [`Node`], running (the daemon) or not (a
//! command run with no daemon), so every command prints the same thing either way.

use crate::ErrorKind;
use crate::Node;
use crate::identity::MachineId;
use crate::machine::{Project, ProjectScan, ScanReport, SpecFilter, SpecRow};
use crate::ops::{AuditRecord, Change, Verdict};
use crate::peer::Event;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// File name of the socket in the home folder.
pub const SOCKET_FILE: &str = "control.sock";

/// Largest request line accepted (tickets and paths are far smaller).
const MAX_LINE: usize = 64 * 1024;

/// The most control connections at once (`events` streams included); more are closed
/// at once. Only this machine's user can connect (the socket is 0600), so this bounds
/// a runaway script, not an attacker.
const MAX_CONNECTIONS: usize = 64;

/// How long a connection may take to send its request line.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
    /// Specs of every machine matching a query.
    Search {
        /// LeanSpec's search language.
        query: String,
        /// At most this many.
        limit: usize,
    },
    /// What is wrong across the fleet.
    Check,
    /// Counts per machine and for the fleet.
    Stats,
    /// Specs in columns.
    Board {
        /// Only specs matching this query (LeanSpec's search language).
        #[serde(default)]
        query: Option<String>,
        /// What the columns are.
        #[serde(default)]
        group_by: crate::query::GroupBy,
    },
    /// Dependencies of one spec across machines.
    Deps {
        /// Project id, name or fleet identity; any project if absent.
        #[serde(default)]
        project: Option<String>,
        /// Spec name, number or slug.
        spec: String,
        /// Directions and depth.
        #[serde(default)]
        query: crate::query::DepsQuery,
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
    /// A spec's README.md, from its owner (or the copy kept here).
    Body {
        /// Machine (id, short id or label); this one if absent.
        machine: Option<String>,
        /// Project id or name.
        project: String,
        /// Spec name, number or slug.
        spec: String,
    },
    /// A one-time login URL for the web UI the running peer serves.
    UiLogin,
    /// Add a web UI account.
    UiUserAdd {
        /// Login name.
        name: String,
        /// What it may do.
        role: crate::node::Role,
        /// Its password (over the owner-only socket; stored only as a hash).
        password: String,
    },
    /// The web UI accounts.
    UiUserList,
    /// Remove a web UI account (and end its sessions).
    UiUserRemove {
        /// Login name.
        name: String,
    },
    /// Change a web UI account's password (and end its sessions).
    UiUserPasswd {
        /// Login name.
        name: String,
        /// The new password.
        password: String,
    },
    /// Record a bucket for the mesh.
    BucketAdd {
        /// `s3://BUCKET/PREFIX`.
        url: String,
        /// S3 endpoint URL.
        #[serde(default)]
        endpoint: Option<String>,
        /// Region.
        #[serde(default)]
        region: Option<String>,
        /// Chunks between snapshots.
        #[serde(default)]
        snapshot_every: Option<u64>,
        /// Snapshots kept.
        #[serde(default)]
        keep_snapshots: Option<u64>,
        /// Accept an `http://` endpoint on another host.
        #[serde(default)]
        allow_http: bool,
    },
    /// Accept a bucket another member proposed (this machine then uses it).
    BucketAccept {
        /// `s3://BUCKET/PREFIX`.
        url: String,
        /// Accept an `http://` endpoint on another host.
        #[serde(default)]
        allow_http: bool,
    },
    /// The mesh's buckets with this machine's state of each.
    BucketList,
    /// Remove a bucket from the mesh.
    BucketRemove {
        /// `s3://BUCKET/PREFIX`.
        url: String,
    },
    /// One round with every bucket now.
    BucketSync,
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
        /// Ephemeral: its machines are removed after this many seconds away.
        #[serde(default)]
        ephemeral_after_secs: Option<u64>,
    },
    /// The invitations this machine issued.
    InviteList,
    /// Revoke an invitation.
    InviteRevoke {
        /// Its id, or a prefix of 4 or more characters.
        id: String,
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

pub use crate::node::{MachineReport, StatusReport, StoreReport};

/// A reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", content = "data", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // one per call, never stored in bulk
pub enum Reply {
    /// Specs.
    Specs(Vec<SpecRow>),
    /// What `check` found.
    Check(crate::query::CheckReport),
    /// Counts.
    Stats(crate::query::Stats),
    /// Search hits, best first.
    Hits(Vec<crate::query::SearchHit>),
    /// A board.
    Board(crate::query::Board),
    /// A dependency tree.
    Deps(crate::query::Deps),
    /// One spec.
    Spec(SpecRow),
    /// A spec's README.md.
    Body(crate::machine::SpecBody),
    /// A URL to open.
    Url(String),
    /// A web UI account (added or changed).
    UiUser(crate::node::UiAccount),
    /// Web UI accounts.
    UiUsers(Vec<crate::node::UiAccount>),
    /// A web UI account was removed.
    UiUserRemoved {
        /// Its name.
        name: String,
    },
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
    /// Invitations.
    Invites(Vec<crate::machine::InviteInfo>),
    /// An invitation was revoked.
    InviteRevoked(crate::machine::InviteInfo),
    /// Joined a mesh.
    Joined {
        /// Inviter id.
        inviter: MachineId,
        /// Inviter label.
        inviter_label: String,
        /// Members now.
        members: usize,
    },
    /// Buckets.
    Buckets(Vec<crate::bucket::BucketReport>),
    /// What a bucket round did, per bucket.
    BucketRounds(Vec<crate::bucket::Round>),
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
    /// The running `up` closed the connection before answering: it stopped or was
    /// killed mid-way. Nothing it did not finish was kept half-done (its commits are
    /// atomic), so the same command can run again.
    #[error(
        "the running `leanspec-peer up` stopped before it answered (stopped or killed?): \
         start it again with `leanspec-peer up` and run the command again \
         (an interrupted `join` can use the same ticket again while it is valid)"
    )]
    Interrupted,
    /// The running `up` did not answer in time.
    #[error(
        "the running `leanspec-peer up` did not answer within {0} s; it may be busy \
         (see its log) — try again, or restart it"
    )]
    NoAnswer(u64),
    /// The conversation failed.
    #[error("control socket: {0}")]
    Io(String),
}

/// Answers a request on a node, running or not: the one dispatch for the daemon and for
/// a CLI command run with no daemon (a stopped node answers what needs no network, and
/// opens a short-lived endpoint for join, edit and execution requests).
pub async fn handle(node: &Node, req: Request) -> Reply {
    handle_inner(node, req)
        .await
        .unwrap_or_else(Failure::into_reply)
}

async fn handle_inner(node: &Node, req: Request) -> Result<Reply, Failure> {
    Ok(match req {
        Request::Specs { filter } => Reply::Specs(node.specs(&filter)?),
        Request::Search { query, limit } => Reply::Hits(node.search(&query, limit)?),
        Request::Check => Reply::Check(node.check()?),
        Request::Stats => Reply::Stats(node.stats()?),
        Request::Body {
            machine,
            project,
            spec,
        } => Reply::Body(node.spec_body(machine.as_deref(), &project, &spec).await?),
        Request::UiLogin => Reply::Url(node.ui_login_url()?),
        Request::UiUserAdd {
            name,
            role,
            password,
        } => Reply::UiUser(node.ui_user_add(&name, role, &password)?),
        Request::UiUserList => Reply::UiUsers(node.ui_users()?),
        Request::UiUserRemove { name } => {
            node.ui_user_remove(&name)?;
            Reply::UiUserRemoved { name }
        }
        Request::UiUserPasswd { name, password } => {
            Reply::UiUser(node.ui_user_passwd(&name, &password)?)
        }
        Request::Board { query, group_by } => Reply::Board(node.board(query.as_deref(), group_by)?),
        Request::Deps {
            project,
            spec,
            query,
        } => Reply::Deps(node.deps(project.as_deref(), &spec, query)?),
        Request::Show {
            machine,
            project,
            spec,
        } => Reply::Spec(node.spec(machine.as_deref(), &project, &spec)?),
        Request::Machines => Reply::Machines(node.machines()),
        Request::BucketAdd {
            url,
            endpoint,
            region,
            snapshot_every,
            keep_snapshots,
            allow_http,
        } => Reply::Buckets(vec![node.bucket_add(
            &url,
            endpoint.as_deref(),
            region.as_deref(),
            snapshot_every,
            keep_snapshots,
            allow_http,
        )?]),
        Request::BucketAccept { url, allow_http } => {
            Reply::Buckets(vec![node.bucket_accept(&url, allow_http)?])
        }
        Request::BucketList => Reply::Buckets(node.buckets()),
        Request::BucketRemove { url } => {
            node.bucket_remove(&url)?;
            Reply::Done
        }
        Request::BucketSync => Reply::BucketRounds(node.bucket_sync().await),
        Request::Status => Reply::Status(Box::new(node.status()?)),
        Request::Scan => Reply::Scan(node.scan(&mut |_| {})?),
        Request::ProjectAdd { dir, name } => {
            let (project, scan) = node.add_project(&dir, name.as_deref())?;
            Reply::ProjectAdded { project, scan }
        }
        Request::ProjectList => Reply::Projects(node.projects()?),
        Request::ProjectRemove { project } => Reply::ProjectRemoved(node.remove_project(&project)?),
        Request::Rename { machine, label } => {
            node.rename(&machine, &label)?;
            Reply::Done
        }
        Request::Revoke { machine } => {
            node.revoke(&machine)?;
            Reply::Done
        }
        Request::Audit { limit } => Reply::Audit(node.audit(limit)?),
        Request::Invite {
            ttl_secs,
            reusable,
            ephemeral_after_secs,
        } => {
            let t = node.invite_with(
                Duration::from_secs(ttl_secs),
                reusable,
                ephemeral_after_secs.map(Duration::from_secs),
            )?;
            Reply::Ticket {
                expires_at: t.expires_at,
                reusable: t.reusable,
                ticket: t.to_string(),
            }
        }
        Request::InviteList => Reply::Invites(node.invites()?),
        Request::InviteRevoke { id } => Reply::InviteRevoked(node.revoke_invite(&id)?),
        Request::Join { ticket } => {
            let j = node.join(&ticket).await?;
            Reply::Joined {
                inviter: j.inviter,
                inviter_label: node.machine_label(j.inviter),
                members: j.members,
            }
        }
        Request::Edit {
            machine,
            project,
            spec,
            change,
            base_file_hash,
        } => Reply::Verdict(
            node.edit(&machine, &project, &spec, change, base_file_hash.as_deref())
                .await?,
        ),
        Request::ExecRequest { machine, payload } => {
            Reply::Verdict(node.exec_request(&machine, &payload).await?)
        }
        Request::Events => {
            return Err(Failure::new(
                ErrorKind::NotRunning,
                "`events` streams from the running peer: start `leanspec-peer up` first",
            ));
        }
    })
}

/// Serves the control socket until the returned task is aborted (which ends its
/// connections too).
pub async fn serve(node: Arc<Node>, home: &Path) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use std::os::unix::fs::PermissionsExt;
    let path = home.join(SOCKET_FILE);
    // A socket file left by a crashed daemon: remove it only if nobody answers on it.
    if path.exists() && std::os::unix::net::UnixStream::connect(&path).is_err() {
        let _ = std::fs::remove_file(&path);
    }
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        // Connections are owned by this task: aborting the server ends them too (an
        // `events` stream would otherwise keep the node, and its store, alive).
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _)) => stream,
                        Err(e) => {
                            // Out of descriptors and the like: wait, do not spin.
                            tracing::debug!("control socket accept failed: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    if connections.len() >= MAX_CONNECTIONS {
                        tracing::warn!("control socket: {MAX_CONNECTIONS} connections open; closing a new one");
                        continue;
                    }
                    let node = node.clone();
                    connections.spawn(async move {
                        if let Err(e) = serve_one(node, stream).await {
                            tracing::debug!("control connection: {e}");
                        }
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }))
}

async fn serve_one(node: Arc<Node>, stream: tokio::net::UnixStream) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(read.take(MAX_LINE as u64));
    tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "no request line in time")
        })??;
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
        let (_, mut events) = node.subscribe();
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
    let r = handle(&node, req).await;
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
    let read = BufReader::new(stream).read_line(&mut reply).map_err(|e| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            ControlError::NoAnswer(timeout.as_secs())
        } else if e.kind() == std::io::ErrorKind::ConnectionReset {
            ControlError::Interrupted
        } else {
            ControlError::Io(e.to_string())
        }
    })?;
    // End of stream before a whole line: the daemon went away mid-request.
    if read == 0 || !reply.ends_with('\n') {
        return Err(ControlError::Interrupted);
    }
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
