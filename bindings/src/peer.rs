//! The `Peer` object: the core's `Node` for hosts (one machine home, network stopped or
//! running; every call answers the same in both states). Async methods run on the
//! library's own tokio runtime.

use crate::error::{ErrorKind, PeerError};
use crate::events::{EventListener, Subscription};
use crate::records::{
    AuditEntry, BoardInfo, CheckResult, DepsInfo, EditResult, Invite, InviteInfo, JoinResult,
    MachineInfo, PeerConfig, ProjectInfo, SearchHit, SpecBodyInfo, SpecChange, SpecInfo, SpecQuery,
    StatsInfo, StatusInfo,
};
use leanspec_peer_core as core;
use leanspec_peer_core::peer::PeerOptions;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// One machine: its home folder (key, store), projects, and, once started, its network.
/// A thin adapter over the core's [`core::Node`]: every call is one delegation.
#[derive(uniffi::Object)]
pub struct Peer {
    inner: Arc<core::Node>,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("home", &self.inner.home())
            .finish()
    }
}

fn options(config: &PeerConfig) -> Result<PeerOptions, PeerError> {
    let bind = match &config.bind {
        None => None,
        Some(b) => Some(b.parse().map_err(|_| {
            PeerError::new(
                ErrorKind::InvalidArgument,
                format!("bind address {b:?} is not ip:port (for example 127.0.0.1:0)"),
            )
        })?),
    };
    // The same policy as `leanspec-peer up`: last run's port, relays learned from
    // tickets; `start` refuses direct paths off with no relay at all.
    Ok(PeerOptions {
        bind,
        relays: config.relays.clone(),
        direct: config.direct,
        watch: config.watch,
        relay_token: config.relay_token.clone(),
        remember_port: true,
        learned_relays: true,
        ..PeerOptions::default()
    })
}

/// Parses an optional enum value (status, priority) with the core's error message.
fn parse_optional<T>(value: Option<&str>) -> Result<Option<T>, PeerError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value
        .map(|v| {
            v.parse()
                .map_err(|e: T::Err| PeerError::new(ErrorKind::InvalidArgument, e.to_string()))
        })
        .transpose()
}

impl Peer {
    /// Runs a future on the library's runtime and awaits it from the host's executor.
    async fn run<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = Result<T, PeerError>> + Send + 'static,
    ) -> Result<T, PeerError> {
        self.runtime
            .spawn(fut)
            .await
            .map_err(|e| PeerError::new(ErrorKind::Io, format!("the library's task failed: {e}")))?
    }
}

#[uniffi::export]
impl Peer {
    /// Opens the machine in `home` (created on first use: key, store, label). The store
    /// stays open, and locked against other processes, until the object is dropped.
    #[uniffi::constructor]
    pub fn open(home: String, config: PeerConfig) -> Result<Arc<Peer>, PeerError> {
        let options = options(&config)?;
        let (inner, _created) =
            core::Node::init(Path::new(&home), config.label.as_deref(), options)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("leanspec-peer")
            .enable_all()
            .build()
            .map_err(|e| PeerError::new(ErrorKind::Io, format!("cannot start threads: {e}")))?;
        Ok(Arc::new(Peer {
            inner: Arc::new(inner),
            runtime,
        }))
    }

    /// This machine's id (hex).
    pub fn machine_id(&self) -> Result<String, PeerError> {
        Ok(self.inner.id().to_string())
    }

    /// The home folder.
    pub fn home(&self) -> String {
        self.inner.home().display().to_string()
    }

    /// Whether the network part runs.
    pub fn is_running(&self) -> bool {
        self.inner.is_running()
    }

    /// Starts the network: binds the endpoint, connects to members, watches projects.
    pub async fn start(&self) -> Result<(), PeerError> {
        let node = self.inner.clone();
        self.run(async move { Ok(node.start().await?) }).await
    }

    /// Stops the network (connections closed, sync states saved); queries keep working.
    pub async fn stop(&self) -> Result<(), PeerError> {
        let node = self.inner.clone();
        self.run(async move { Ok(node.stop().await?) }).await
    }

    /// Adds a project folder (its specs folder is found inside), scans and watches it.
    pub fn add_project(&self, dir: String, name: Option<String>) -> Result<ProjectInfo, PeerError> {
        let (project, _) = self.inner.add_project(Path::new(&dir), name.as_deref())?;
        Ok(project.into())
    }

    /// Removes a project (id, name or folder) from this machine's document; files stay.
    pub fn remove_project(&self, project: String) -> Result<ProjectInfo, PeerError> {
        Ok(self.inner.remove_project(&project)?.into())
    }

    /// This machine's projects.
    pub fn projects(&self) -> Result<Vec<ProjectInfo>, PeerError> {
        Ok(self.inner.projects()?.into_iter().map(Into::into).collect())
    }

    /// Every machine of the mesh (this one too) with its presence.
    pub fn machines(&self) -> Result<Vec<MachineInfo>, PeerError> {
        Ok(self.inner.machines().into_iter().map(Into::into).collect())
    }

    /// Specs of every machine, narrowed by `query`.
    pub fn specs(&self, query: SpecQuery) -> Result<Vec<SpecInfo>, PeerError> {
        let filter = core::SpecFilter {
            status: parse_optional(query.status.as_deref())?,
            priority: parse_optional(query.priority.as_deref())?,
            machine: query.machine,
            project: query.project,
            tag: query.tag,
        };
        Ok(self
            .inner
            .specs(&filter)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Specs of every machine matching `query` (LeanSpec's search language: words,
    /// "phrases", `word~`, `status:` `tag:` `machine:` ... , `AND` `OR` `NOT`), best
    /// first, at most `limit`. A malformed query is `INVALID_ARGUMENT`, saying where.
    pub fn search(&self, query: String, limit: u32) -> Result<Vec<SearchHit>, PeerError> {
        Ok(self
            .inner
            .search(&query, limit as usize)?
            .into_iter()
            .map(|h| SearchHit {
                score: h.score,
                spec: h.row.into(),
            })
            .collect())
    }

    /// What is wrong across the fleet: a spec number used twice in one project, one spec
    /// with different metadata on different machines, unreadable specs, dangling
    /// dependencies.
    pub fn check(&self) -> Result<CheckResult, PeerError> {
        Ok(self.inner.check()?.into())
    }

    /// Counts by status, priority and tag, per machine and for the fleet (a spec held
    /// by several machines counts once), with the completion rate.
    pub fn stats(&self) -> Result<StatsInfo, PeerError> {
        Ok(self.inner.stats()?.into())
    }

    /// Specs of every machine in columns by `group_by` (`status`, `priority`,
    /// `assignee`, `tag`, `machine`, `parent`); only those matching `query` when given.
    pub fn board(&self, query: Option<String>, group_by: String) -> Result<BoardInfo, PeerError> {
        let group_by = group_by
            .parse()
            .map_err(|e: String| PeerError::new(ErrorKind::InvalidArgument, e))?;
        Ok(self.inner.board(query.as_deref(), group_by)?.into())
    }

    /// What `spec` (name, number or slug; in `project` when given: id, name or git
    /// origin) depends on and what depends on it, across every machine holding its
    /// project, `depth` links deep. Neither direction asked: both.
    pub fn deps(
        &self,
        project: Option<String>,
        spec: String,
        upstream: bool,
        downstream: bool,
        depth: u32,
    ) -> Result<DepsInfo, PeerError> {
        let query = core::query::DepsQuery {
            upstream: upstream || !downstream,
            downstream: downstream || !upstream,
            depth: depth as usize,
        };
        Ok(self.inner.deps(project.as_deref(), &spec, query)?.into())
    }

    /// One spec (`machine`: id, short id or label; `name`: folder name, number or slug).
    pub fn spec(
        &self,
        machine: String,
        project: String,
        name: String,
    ) -> Result<SpecInfo, PeerError> {
        Ok(self.inner.spec(Some(&machine), &project, &name)?.into())
    }

    /// This machine, its projects, the other machines and pending changes.
    pub fn status(&self) -> Result<StatusInfo, PeerError> {
        Ok(self.inner.status()?.into())
    }

    /// Rescans every project now.
    pub fn scan(&self) -> Result<(), PeerError> {
        self.inner.scan(&mut |_| {})?;
        Ok(())
    }

    /// An invitation for another machine (`ttl_secs` lifetime; `reusable` for CI keys).
    /// Needs the network running.
    pub fn invite(&self, ttl_secs: u64, reusable: bool) -> Result<Invite, PeerError> {
        let t = self.inner.invite(Duration::from_secs(ttl_secs), reusable)?;
        Ok(Invite {
            expires_at: t.expires_at,
            reusable: t.reusable,
            ticket: t.to_string(),
        })
    }

    /// The invitations this machine made, newest first.
    pub fn invites(&self) -> Result<Vec<InviteInfo>, PeerError> {
        Ok(self.inner.invites()?.into_iter().map(Into::into).collect())
    }

    /// Revokes the invitation whose id starts with `id` (4 or more hex characters):
    /// every later join with it is refused.
    pub fn revoke_invite(&self, id: String) -> Result<InviteInfo, PeerError> {
        Ok(self.inner.revoke_invite(&id)?.into())
    }

    /// Joins the mesh of the machine that made `ticket` (with the network stopped, a
    /// short-lived endpoint is used; `start` syncs afterwards).
    pub async fn join(&self, ticket: String) -> Result<JoinResult, PeerError> {
        let node = self.inner.clone();
        self.run(async move {
            let joined = node.join(&ticket).await?;
            Ok(JoinResult {
                inviter: joined.inviter.to_string(),
                inviter_label: node.machine_label(joined.inviter),
                members: joined.members as u64,
            })
        })
        .await
    }

    /// Renames a machine (this one too); replicated to every member.
    pub fn rename(&self, machine: String, label: String) -> Result<(), PeerError> {
        Ok(self.inner.rename(&machine, &label)?)
    }

    /// Revokes another machine: every member disconnects and refuses it from then on.
    /// Works with the network stopped too (replicated at the next start).
    pub fn revoke(&self, machine: String) -> Result<(), PeerError> {
        Ok(self.inner.revoke(&machine)?)
    }

    /// A spec's README.md (`machine`: id, short id or label; none: this one). Another
    /// machine's is read from it (members only) and a copy kept; when it is offline,
    /// that copy comes back with `source` `cache` and its `fetched_at`; with no copy, the
    /// error kind is `Unreachable`.
    pub async fn spec_body(
        &self,
        machine: Option<String>,
        project: String,
        name: String,
    ) -> Result<SpecBodyInfo, PeerError> {
        let node = self.inner.clone();
        self.run(async move {
            let body = node.spec_body(machine.as_deref(), &project, &name).await?;
            Ok(body.into())
        })
        .await
    }

    /// Asks `machine` (this one too) to change a spec's metadata. `base_hash` defaults
    /// to the file hash this machine has seen; the target applies the change only if
    /// its file still has it. Nothing is queued: an unreachable target is `Unavailable`.
    pub async fn edit(
        &self,
        machine: String,
        project: String,
        spec: String,
        change: SpecChange,
        base_hash: Option<String>,
    ) -> Result<EditResult, PeerError> {
        let node = self.inner.clone();
        self.run(async move {
            let verdict = node
                .edit(
                    &machine,
                    &project,
                    &spec,
                    change.into(),
                    base_hash.as_deref(),
                )
                .await?;
            Ok(verdict.into())
        })
        .await
    }

    /// Hands `payload` to `machine`'s host application as an execution request
    /// (verified and audited there; the library never runs anything).
    pub async fn exec_request(
        &self,
        machine: String,
        payload: String,
    ) -> Result<EditResult, PeerError> {
        let node = self.inner.clone();
        self.run(async move { Ok(node.exec_request(&machine, &payload).await?.into()) })
            .await
    }

    /// The newest `limit` audit entries, newest first.
    pub fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, PeerError> {
        let records = self.inner.audit(limit as usize)?;
        Ok(records.into_iter().map(Into::into).collect())
    }

    /// Delivers events to `listener` until the returned handle is cancelled or dropped,
    /// starting with each relay's last status (its first check may finish before this
    /// call). Local changes are delivered with the network stopped too.
    pub fn subscribe(
        &self,
        listener: Arc<dyn EventListener>,
    ) -> Result<Arc<Subscription>, PeerError> {
        let (earlier, events) = self.inner.subscribe();
        Ok(Arc::new(Subscription::spawn(
            self.runtime.handle(),
            earlier,
            events,
            listener,
        )))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Close connections politely (peers see us offline at once) when dropped from a
        // host thread; inside a runtime thread blocking is not allowed, and the node's
        // own drop then aborts its tasks.
        if self.inner.is_running() && tokio::runtime::Handle::try_current().is_err() {
            let _ = self.runtime.block_on(self.inner.stop());
        }
    }
}
