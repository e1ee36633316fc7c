//! The `Peer` object: one machine home, stopped (store open, queries only) or running
//! (network on). Async methods run on the library's own tokio runtime.

use crate::error::{ErrorKind, PeerError};
use crate::events::{EventListener, Subscription};
use crate::records::{
    AuditEntry, EditResult, Invite, JoinResult, MachineInfo, PeerConfig, ProjectInfo, SpecChange,
    SpecInfo, SpecQuery, StatusInfo,
};
use leanspec_peer_core as core;
use leanspec_peer_core::control;
use leanspec_peer_core::peer::{Peer as CorePeer, PeerOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

#[allow(clippy::large_enum_variant)] // exactly one per Peer
enum State {
    /// The store is open here; nothing runs.
    Stopped(core::Machine),
    /// The network runs; the machine lives inside the core peer.
    Running(Arc<CorePeer>),
    /// Between the two (a start or stop is under way).
    Changing,
}

/// One machine: its home folder (key, store), projects, and, once started, its network.
#[derive(uniffi::Object)]
pub struct Peer {
    home: PathBuf,
    options: PeerOptions,
    runtime: tokio::runtime::Runtime,
    state: Mutex<State>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("home", &self.home).finish()
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

fn not_running() -> PeerError {
    PeerError::new(
        ErrorKind::NotRunning,
        "the peer is not running: call start() first",
    )
}

impl Peer {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written (every
        // change is one assignment), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the machine, from the running peer or the open store.
    fn with_machine<R>(
        &self,
        f: impl FnOnce(
            &mut core::Machine,
            &HashMap<core::identity::MachineId, core::peer::Presence>,
            bool,
        ) -> Result<R, PeerError>,
    ) -> Result<R, PeerError> {
        let running = match &mut *self.state() {
            State::Stopped(m) => return f(m, &HashMap::new(), false),
            State::Running(p) => p.clone(),
            State::Changing => {
                return Err(PeerError::new(
                    ErrorKind::Busy,
                    "the peer is starting or stopping; try again when that call returns",
                ));
            }
        };
        let presence = running.presence();
        running.with_machine(|m| f(m, &presence, true))
    }

    fn running(&self) -> Result<Arc<CorePeer>, PeerError> {
        match &*self.state() {
            State::Running(p) => Ok(p.clone()),
            _ => Err(not_running()),
        }
    }

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
        let home = PathBuf::from(home);
        let (machine, _created) = core::Machine::init(&home, config.label.as_deref())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("leanspec-peer")
            .enable_all()
            .build()
            .map_err(|e| PeerError::new(ErrorKind::Io, format!("cannot start threads: {e}")))?;
        Ok(Arc::new(Peer {
            home,
            options,
            runtime,
            state: Mutex::new(State::Stopped(machine)),
        }))
    }

    /// This machine's id (hex).
    pub fn machine_id(&self) -> Result<String, PeerError> {
        self.with_machine(|m, _, _| Ok(m.id().to_string()))
    }

    /// The home folder.
    pub fn home(&self) -> String {
        self.home.display().to_string()
    }

    /// Whether the network part runs.
    pub fn is_running(&self) -> bool {
        matches!(&*self.state(), State::Running(_))
    }

    /// Starts the network: binds the endpoint, connects to members, watches projects.
    pub async fn start(&self) -> Result<(), PeerError> {
        let machine = {
            let mut state = self.state();
            match std::mem::replace(&mut *state, State::Changing) {
                State::Stopped(m) => m,
                other => {
                    *state = other;
                    return Err(PeerError::new(
                        ErrorKind::Busy,
                        "the peer is already running",
                    ));
                }
            }
        };
        let options = self.options.clone();
        let started = self
            .run(async move {
                CorePeer::start(machine, options)
                    .await
                    .map_err(PeerError::from)
            })
            .await;
        match started {
            Ok(peer) => {
                *self.state() = State::Running(Arc::new(peer));
                Ok(())
            }
            Err(e) => {
                // The machine went into the failed start: open it again.
                match core::Machine::open(&self.home) {
                    Ok(m) => *self.state() = State::Stopped(m),
                    Err(reopen) => {
                        return Err(PeerError::new(
                            ErrorKind::Store,
                            format!("{e}; then reopening the store failed: {reopen}"),
                        ));
                    }
                }
                Err(e)
            }
        }
    }

    /// Stops the network (connections closed, sync states saved); queries keep working.
    pub async fn stop(&self) -> Result<(), PeerError> {
        let peer = {
            let mut state = self.state();
            match std::mem::replace(&mut *state, State::Changing) {
                State::Running(p) => p,
                other => {
                    *state = other;
                    return Err(not_running());
                }
            }
        };
        let home = self.home.clone();
        let machine = self
            .run(async move {
                peer.shutdown().await;
                drop(peer);
                core::Machine::open(&home).map_err(PeerError::from)
            })
            .await;
        match machine {
            Ok(m) => {
                *self.state() = State::Stopped(m);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Adds a project folder (its specs folder is found inside), scans and watches it.
    pub fn add_project(&self, dir: String, name: Option<String>) -> Result<ProjectInfo, PeerError> {
        if let Ok(p) = self.running() {
            let (project, _) = p.add_project(Path::new(&dir), name.as_deref())?;
            return Ok(project.into());
        }
        self.with_machine(|m, _, _| {
            let (project, _) = m.add_project(Path::new(&dir), name.as_deref())?;
            Ok(project.into())
        })
    }

    /// Removes a project (id, name or folder) from this machine's document; files stay.
    pub fn remove_project(&self, project: String) -> Result<ProjectInfo, PeerError> {
        if let Ok(p) = self.running() {
            return Ok(p.remove_project(&project)?.into());
        }
        self.with_machine(|m, _, _| Ok(m.remove_project(&project)?.into()))
    }

    /// This machine's projects.
    pub fn projects(&self) -> Result<Vec<ProjectInfo>, PeerError> {
        self.with_machine(|m, _, _| Ok(m.projects()?.into_iter().map(Into::into).collect()))
    }

    /// Every machine of the mesh (this one too) with its presence.
    pub fn machines(&self) -> Result<Vec<MachineInfo>, PeerError> {
        self.with_machine(|m, presence, _| {
            Ok(control::machine_reports(m, presence)
                .into_iter()
                .map(Into::into)
                .collect())
        })
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
        self.with_machine(|m, _, _| Ok(m.specs(&filter)?.into_iter().map(Into::into).collect()))
    }

    /// One spec (`machine`: id, short id or label; `name`: folder name, number or slug).
    pub fn spec(
        &self,
        machine: String,
        project: String,
        name: String,
    ) -> Result<SpecInfo, PeerError> {
        self.with_machine(|m, _, _| Ok(m.spec_on(Some(&machine), &project, &name)?.into()))
    }

    /// This machine, its projects, the other machines and pending changes.
    pub fn status(&self) -> Result<StatusInfo, PeerError> {
        self.with_machine(|m, presence, running| {
            Ok(control::status_report(m, presence, running)?.into())
        })
    }

    /// Rescans every project now.
    pub fn scan(&self) -> Result<(), PeerError> {
        if let Ok(p) = self.running() {
            p.scan()?;
            return Ok(());
        }
        self.with_machine(|m, _, _| {
            m.scan(&mut |_| {})?;
            Ok(())
        })
    }

    /// An invitation for another machine (`ttl_secs` lifetime; `reusable` for CI keys).
    pub fn invite(&self, ttl_secs: u64, reusable: bool) -> Result<Invite, PeerError> {
        let t = self
            .running()?
            .invite(Duration::from_secs(ttl_secs), reusable)?;
        Ok(Invite {
            expires_at: t.expires_at,
            reusable: t.reusable,
            ticket: t.to_string(),
        })
    }

    /// Joins the mesh of the machine that made `ticket`.
    pub async fn join(&self, ticket: String) -> Result<JoinResult, PeerError> {
        let peer = self.running()?;
        let ticket: core::net::Ticket =
            ticket.trim().parse().map_err(|e: core::net::TicketError| {
                PeerError::new(ErrorKind::Ticket, e.to_string())
            })?;
        self.run(async move {
            let joined = peer.join(&ticket).await?;
            Ok(JoinResult {
                inviter: joined.inviter.to_string(),
                inviter_label: peer.with_machine(|m| m.machine_label(joined.inviter)),
                members: joined.members as u64,
            })
        })
        .await
    }

    /// Renames a machine (this one too); replicated to every member.
    pub fn rename(&self, machine: String, label: String) -> Result<(), PeerError> {
        if let Ok(p) = self.running() {
            let id = p.with_machine(|m| m.find_machine(&machine))?;
            return Ok(p.rename(id, &label)?);
        }
        self.with_machine(|m, _, _| {
            let id = m.find_machine(&machine)?;
            Ok(m.rename_machine(id, &label)?)
        })
    }

    /// Revokes another machine: every member disconnects and refuses it from then on.
    /// Works with the network stopped too (replicated at the next start).
    pub fn revoke(&self, machine: String) -> Result<(), PeerError> {
        if let Ok(p) = self.running() {
            let id = p.with_machine(|m| m.find_machine(&machine))?;
            return Ok(p.revoke(id)?);
        }
        // Stopped: recorded in the mesh now, replicated at the next start (as the CLI).
        self.with_machine(|m, _, _| {
            let id = m.find_machine(&machine)?;
            if id == m.id() {
                return Err(PeerError::new(
                    ErrorKind::InvalidArgument,
                    "a machine cannot revoke itself; revoke it from another member",
                ));
            }
            Ok(m.revoke_machine(id)?)
        })
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
        let peer = self.running()?;
        self.run(async move {
            let verdict = peer
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
        let peer = self.running()?;
        self.run(async move { Ok(peer.exec_request(&machine, &payload).await?.into()) })
            .await
    }

    /// The newest `limit` audit entries, newest first.
    pub fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, PeerError> {
        self.with_machine(|m, _, _| {
            let records = core::ops::audit::read(m, limit as usize)
                .map_err(|e| PeerError::from(core::Error::from(e)))?;
            Ok(records.into_iter().map(Into::into).collect())
        })
    }

    /// Delivers events to `listener` until the returned handle is cancelled or dropped,
    /// starting with each relay's last status (its first check may finish before this
    /// call).
    pub fn subscribe(
        &self,
        listener: Arc<dyn EventListener>,
    ) -> Result<Arc<Subscription>, PeerError> {
        let (earlier, events) = self.running()?.subscribe_with_state();
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
        // host thread; inside a runtime thread blocking is not allowed, and the runtime's
        // own drop then cancels everything.
        if let State::Running(p) = std::mem::replace(&mut *self.state(), State::Changing)
            && tokio::runtime::Handle::try_current().is_err()
        {
            self.runtime.block_on(p.shutdown());
        }
    }
}
