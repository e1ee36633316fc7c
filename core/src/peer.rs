//! The running peer: an iroh endpoint keyed by the machine key, a router with the sync
//! and join protocols, one dialer per known member (backoff with jitter, forever), the
//! spec watcher, presence and events. Hosts (the CLI daemon, the bindings) embed this.
//!
//! Concurrency: the [`Machine`] sits behind one mutex, held only for document work,
//! never across an await. Sessions learn about local changes through a broadcast of
//! document keys and generate their sync messages themselves.

mod addrs;
mod bucket;
mod deliver;
mod ephemeral;
mod exchange;
mod join;
mod lan;
mod maintain;
mod outbox;
mod read;

pub(crate) use read::ReadFailed;
mod relay;
mod session;
mod watch;

use crate::identity::MachineId;
use crate::machine::{DocChange, DocKey, Machine};
use crate::net::{self, JOIN_ALPN, OP_ALPN, READ_ALPN, SYNC_ALPN, Ticket};
use crate::ops::{self, OpBody, Operation, Verdict};
use crate::store::PeerRecord;
use iroh::endpoint::presets;
use iroh::protocol::Router;
use iroh::{Endpoint, EndpointAddr, RelayMode, RelayUrl, SecretKey};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, broadcast};

pub use session::Presence;

/// How a peer runs.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// Address to bind (default `0.0.0.0:0`).
    pub bind: Option<SocketAddr>,
    /// Relay URLs (none by default: no public service is ever used implicitly).
    pub relays: Vec<String>,
    /// Use direct (IP) paths.
    pub direct: bool,
    /// Watch project folders for changes.
    pub watch: bool,
    /// Full rescan period (catches events the watcher missed).
    pub rescan_every: Duration,
    /// Tell machines we pair with our addresses (off for short-lived endpoints, whose
    /// addresses die with them).
    pub advertise: bool,
    /// Exchange the address book with connected members, so machines paired through a
    /// third one connect directly. Off only to force multi-hop paths in tests.
    pub gossip_addresses: bool,
    /// How long to wait for a target's verdict on an operation before answering
    /// `unavailable` (nothing is queued).
    pub op_timeout: Duration,
    /// Token presented to every relay (`Authorization: Bearer`), for relays that
    /// require one.
    pub relay_token: Option<String>,
    /// Extra root certificate(s) (PEM file) to trust for relays, e.g. a self-signed one.
    pub relay_ca: Option<std::path::PathBuf>,
    /// Listen on the port of the last run when `bind` asks for any port (0), so members
    /// that know our address find us after a restart; when that port is taken now, any
    /// port. The port bound is remembered in the store. Off for short-lived endpoints.
    pub remember_port: bool,
    /// With no `relays` given, use the relays learned from tickets
    /// ([`Machine::learned_relays`]).
    pub learned_relays: bool,
    /// What members may make this machine spend (docs/limits.md).
    pub limits: crate::limits::Limits,
    /// Find members' current addresses on the local network by mDNS (off by default
    /// in the library; `up` turns it on unless `--no-lan`). Never on a loopback bind.
    pub lan: bool,
    /// How often the mesh's buckets are read for other members' changes.
    pub bucket_pull_every: Duration,
    /// How long after a local change its bucket object is written (changes made
    /// meanwhile go in the same object).
    pub bucket_push_delay: Duration,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            bind: None,
            relays: Vec::new(),
            direct: true,
            watch: true,
            rescan_every: Duration::from_secs(60),
            advertise: true,
            gossip_addresses: true,
            op_timeout: Duration::from_secs(5),
            relay_token: None,
            relay_ca: None,
            remember_port: false,
            learned_relays: false,
            lan: false,
            bucket_pull_every: Duration::from_secs(60),
            bucket_push_delay: Duration::from_secs(1),
            limits: crate::limits::Limits::default(),
        }
    }
}

/// Something that happened, for hosts and `leanspec-peer events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A spec was added or changed on some machine.
    SpecChanged {
        /// Machine id (hex).
        machine: String,
        /// Project id.
        project: String,
        /// Spec name.
        spec: String,
        /// Changed document fields (empty: the whole spec is new).
        fields: Vec<String>,
        /// The new value of each changed field (every set field when the spec is new),
        /// as JSON: a string, a list of strings, or null when unset.
        #[serde(default)]
        values: std::collections::BTreeMap<String, serde_json::Value>,
    },
    /// A spec was removed on some machine.
    SpecRemoved {
        /// Machine id (hex).
        machine: String,
        /// Project id.
        project: String,
        /// Spec name.
        spec: String,
    },
    /// A machine connected.
    MachineOnline {
        /// Machine id (hex).
        machine: String,
    },
    /// A machine disconnected.
    MachineOffline {
        /// Machine id (hex).
        machine: String,
    },
    /// Whether both sides' documents match, per peer.
    SyncState {
        /// Peer machine id (hex).
        machine: String,
        /// True when both sides hold the same heads of every shared document.
        in_sync: bool,
    },
    /// Members, labels or revocations changed (followed by the specific events below).
    MeshChanged,
    /// A machine joined the mesh.
    MachineAdded {
        /// Machine id (hex).
        machine: String,
        /// Its label.
        label: String,
    },
    /// A machine's label changed.
    MachineRenamed {
        /// Machine id (hex).
        machine: String,
        /// The new label.
        label: String,
    },
    /// A machine was revoked from the mesh.
    MachineRevoked {
        /// Machine id (hex).
        machine: String,
    },
    /// An ephemeral machine was removed from the mesh after staying away (it is no
    /// longer listed anywhere).
    MachineRemoved {
        /// Machine id (hex).
        machine: String,
        /// Its label.
        label: String,
    },
    /// An edit from some machine was decided here (applied or rejected).
    EditReceived {
        /// Author machine id (hex; the sender if the operation was undecodable).
        machine: String,
        /// Operation id (hex).
        op_id: String,
        /// Project id.
        project: String,
        /// Spec name.
        spec: String,
        /// `applied` or `rejected`.
        result: String,
        /// Why, when rejected.
        reason: String,
    },
    /// An execution request arrived and passed verification. The library never runs
    /// anything: the host application decides.
    ExecRequest {
        /// Author machine id (hex).
        machine: String,
        /// Operation id (hex).
        op_id: String,
        /// The payload, as sent.
        payload: String,
    },
    /// A relay's reachability changed (checked at start, a failing one again with
    /// backoff). [`Peer::subscribe_with_state`] also gives each relay's last status.
    RelayStatus {
        /// Relay URL.
        relay: String,
        /// The relay accepted this machine.
        connected: bool,
        /// What went wrong, with what to do ("" when connected).
        error: String,
    },
    /// A connection was refused.
    Refused {
        /// Remote machine id (hex).
        machine: String,
        /// Why.
        reason: String,
    },
}

impl Event {
    pub(crate) fn from_change(c: &DocChange) -> Event {
        match c {
            DocChange::SpecChanged {
                machine,
                project,
                spec,
                fields,
                values,
            } => Event::SpecChanged {
                machine: machine.to_string(),
                project: project.clone(),
                spec: spec.clone(),
                fields: fields.clone(),
                values: values.clone(),
            },
            DocChange::SpecRemoved {
                machine,
                project,
                spec,
            } => Event::SpecRemoved {
                machine: machine.to_string(),
                project: project.clone(),
                spec: spec.clone(),
            },
            DocChange::MeshChanged => Event::MeshChanged,
        }
    }
}

/// Errors of a node and its network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// Machine-level failure.
    #[error(transparent)]
    Machine(#[from] crate::machine::Error),
    /// The endpoint could not be bound.
    #[error("cannot start the network endpoint: {0}")]
    Bind(String),
    /// A ticket could not be used.
    #[error(transparent)]
    Ticket(#[from] net::TicketError),
    /// The inviter could not be reached.
    #[error(
        "cannot reach the inviter {machine}: {reason}; is `leanspec-peer up` running there, and is its address reachable from here?"
    )]
    Unreachable {
        /// Inviter short id.
        machine: String,
        /// What failed.
        reason: String,
    },
    /// The inviter refused.
    #[error("the inviter refused to pair: {0}")]
    JoinRefused(String),
    /// An invalid argument.
    #[error("{0}")]
    Invalid(String),
    /// The call needs the running network.
    #[error("{0}")]
    NotRunning(String),
    /// The machine holding what was asked for could not be reached, and no copy is
    /// kept here.
    #[error("{machine} is unavailable: {reason}")]
    Unavailable {
        /// Its label.
        machine: String,
        /// What failed.
        reason: String,
    },
    /// The other machine answered with an error.
    #[error("{machine} answered: {message}")]
    Remote {
        /// Its label.
        machine: String,
        /// The kind it gave.
        kind: crate::ErrorKind,
        /// Its message.
        message: String,
    },
    /// The network already runs.
    #[error("the network is already running")]
    AlreadyRunning,
}

pub(crate) struct Shared {
    /// The machine and the host-facing event stream, shared with the [`Node`](crate::Node).
    pub(crate) local: Arc<crate::node::Local>,
    pub(crate) me: MachineId,
    pub(crate) endpoint: Endpoint,
    /// Documents that changed locally or from a peer: sessions push them.
    pub(crate) changed: broadcast::Sender<DocKey>,
    pub(crate) sessions: Mutex<HashMap<MachineId, session::SessionHandle>>,
    /// The machines we hold a session with, told to every peer (`proto::sync`,
    /// invariant 5); set with the `sessions` lock held.
    pub(crate) links: tokio::sync::watch::Sender<HashSet<MachineId>>,
    pub(crate) presence: Mutex<HashMap<MachineId, Presence>>,
    pub(crate) session_changed: Notify,
    /// A member's address was learned (on the LAN): dialers waiting out a backoff try
    /// again now.
    pub(crate) addresses_changed: Notify,
    /// Addresses LAN announcements claimed for members (`lan::LanHints`): dialed,
    /// never stored unless a connection over one proves the member's key.
    pub(crate) lan_hints: Mutex<lan::LanHints>,
    pub(crate) dialers: Mutex<HashSet<MachineId>>,
    pub(crate) relays: Vec<String>,
    /// The last [`Event::RelayStatus`] of each relay: a state, not only a change, so a
    /// host that subscribes after the first check still learns it (see
    /// [`Peer::subscribe_with_state`]).
    pub(crate) relay_states: Mutex<std::collections::BTreeMap<String, Event>>,
    pub(crate) advertise: bool,
    pub(crate) gossip: bool,
    pub(crate) op_timeout: Duration,
    pub(crate) shutdown: tokio::sync::watch::Sender<bool>,
    /// This run's incarnation (see [`Machine::next_incarnation`]), sent in hellos.
    pub(crate) incarnation: u64,
    /// Every long-lived task (dialers, periodic rescan, relay check). Owned here so
    /// `shutdown` can end and await them, and taken (which aborts them) when the
    /// [`Peer`] is dropped without a shutdown: none outlives the peer holding the store.
    /// `None` once the peer stopped: nothing new starts.
    pub(crate) tasks: Mutex<Option<tokio::task::JoinSet<()>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

/// Locks a mutex, surviving a poisoned one (a panicked holder cannot leave the
/// documents half-written: every write is stored in one transaction).
#[track_caller]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    let t0 = std::time::Instant::now();
    let guard = m.lock().unwrap_or_else(|p| p.into_inner());
    // Document work under the lock takes milliseconds; a long wait means a bug.
    if t0.elapsed() > Duration::from_millis(500) {
        tracing::warn!(at = %std::panic::Location::caller(), waited = ?t0.elapsed(), "slow lock");
    }
    guard
}

impl Shared {
    /// The direct addresses we tell other machines; none for a short-lived endpoint,
    /// whose addresses die with it.
    pub(crate) fn advertised_addrs(&self) -> Vec<String> {
        if !self.advertise {
            return Vec::new();
        }
        self.endpoint
            .addr()
            .ip_addrs()
            .map(ToString::to_string)
            .collect()
    }

    /// Spawns a task the peer owns (see [`Shared::tasks`]); nothing once it stopped.
    pub(crate) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        if let Some(set) = tasks.as_mut() {
            // Reap finished ones so a long run does not accumulate them.
            while set.try_join_next().is_some() {}
            set.spawn(task);
        }
    }

    pub(crate) fn emit(&self, e: Event) {
        self.local.emit(e);
    }

    /// Records and emits a relay's status. Emitted under the lock that
    /// [`Peer::subscribe_with_state`] takes, so a subscriber sees each status exactly once:
    /// in its snapshot or as an event.
    pub(crate) fn emit_relay_status(&self, relay: &str, connected: bool, error: String) {
        let e = Event::RelayStatus {
            relay: relay.to_string(),
            connected,
            error,
        };
        let mut states = lock(&self.relay_states);
        states.insert(relay.to_string(), e.clone());
        self.emit(e);
    }

    /// Runs `f` on the machine (locked) and announces what it changed in this machine's
    /// document once the lock is released: the one path for local changes.
    pub(crate) fn change_own<R, E>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Machine) -> Result<R, E>,
    ) -> Result<R, E> {
        let (r, changed) = self.local.change_own(f)?;
        if let Some(changes) = changed {
            self.announce_own(&changes);
        }
        Ok(r)
    }

    /// [`Shared::change_own`] for the watcher's rescans: `f` commits without waiting
    /// for the disk, the sessions start making their messages, and the fsync runs
    /// meanwhile on this thread; they send once it is done (`machine::own_flush`).
    /// Saves a fsync's time on the way from a saved file to the peers.
    pub(crate) fn change_own_then_flush<R, E>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Machine) -> Result<R, E>,
    ) -> Result<R, E> {
        let (r, changed, flusher) = self.local.change_own_with(true, f)?;
        let key = DocKey::Machine(self.me);
        if changed.is_some() {
            let _ = self.changed.send(key);
        }
        if let Some(flusher) = flusher
            && let Err(e) = flusher.flush()
        {
            // The sessions wait; the store's retry reopens it and stores the changes
            // again (`Machine::recover_store`).
            tracing::warn!("cannot make this machine's changes durable: {e}");
        }
        if let Some(changes) = changed {
            self.local.announce(key, &changes);
        }
        Ok(r)
    }

    /// Announces a change of this machine's document: the document to every session
    /// (always), then events for what changed (if a host listens). Sessions first: the
    /// peers wait on them, and each event wakes a task on the same few threads.
    pub(crate) fn announce_own(self: &Arc<Self>, changes: &[DocChange]) {
        let key = DocKey::Machine(self.me);
        let _ = self.changed.send(key);
        self.local.announce(key, changes);
    }

    /// Announces changes: events for hosts, document keys for sessions, and after a mesh
    /// change what it means for connections.
    pub(crate) fn announce(self: &Arc<Self>, key: DocKey, changes: &[DocChange]) {
        self.local.announce(key, changes);
        if !changes.is_empty() {
            let _ = self.changed.send(key);
        }
        if key == DocKey::Mesh && !changes.is_empty() {
            self.after_mesh_change();
        }
    }

    /// Enforces revocations on open sessions, forgets removed machines' documents and
    /// starts dialers for new members.
    pub(crate) fn after_mesh_change(self: &Arc<Self>) {
        if let Err(e) = lock(&self.local.machine).forget_removed() {
            tracing::warn!("cannot forget removed machines' documents: {e}");
        }
        let (revoked, me_revoked) = {
            let members = lock(&self.local.machine).mesh().members();
            let revoked: Vec<MachineId> = members
                .iter()
                .filter(|x| x.revoked_at.is_some())
                .map(|x| x.id)
                .collect();
            (revoked.clone(), revoked.contains(&self.me))
        };
        let sessions = lock(&self.sessions);
        for (peer, s) in sessions.iter() {
            if me_revoked || revoked.contains(peer) {
                tracing::warn!(peer = %peer.short(), "closing the connection of a revoked machine");
                s.conn
                    .close(net::close::REVOKED.into(), b"revoked from the mesh");
            }
        }
        drop(sessions);
        if !me_revoked {
            spawn_dialers(self);
        }
    }
}

/// The network half of a [`Node`](crate::Node), running between its start and stop.
#[derive(Debug)]
pub(crate) struct Peer {
    shared: Arc<Shared>,
    router: Router,
    watcher: Mutex<Option<watch::Watcher>>,
}

impl Drop for Peer {
    /// A peer dropped without [`Peer::shutdown`] still lets go of the store: its tasks
    /// are aborted (the router and the watcher stop with their own drops). Connections
    /// are not closed politely: members see this machine offline after the idle timeout.
    fn drop(&mut self) {
        let tasks = lock(&self.shared.tasks).take();
        drop(tasks);
    }
}

/// What a join did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The inviter.
    pub inviter: MachineId,
    /// Members of the mesh now.
    pub members: usize,
}

pub(crate) fn endpoint_addr(record: &PeerRecord) -> Option<EndpointAddr> {
    let key = iroh::PublicKey::from_bytes(record.id.as_bytes()).ok()?;
    let mut addr = EndpointAddr::new(key);
    for a in &record.addrs {
        if let Ok(sa) = a.parse::<SocketAddr>() {
            addr = addr.with_ip_addr(sa);
        }
    }
    for r in &record.relays {
        if let Ok(url) = r.parse::<RelayUrl>() {
            addr = addr.with_relay_url(url);
        }
    }
    Some(addr)
}

/// Starts dial loops for members we have addresses for and no dialer yet.
pub(crate) fn spawn_dialers(shared: &Arc<Shared>) {
    let targets: Vec<MachineId> = {
        let m = lock(&shared.local.machine);
        let peers = match m.store().peers() {
            Ok(p) => p,
            Err(e) => {
                // Nothing to dial now; the next mesh change or start tries again.
                tracing::warn!("cannot read the address book: {e}");
                return;
            }
        };
        peers
            .into_iter()
            .filter(|p| p.id != shared.me && m.mesh().is_current_member(p.id))
            .map(|p| p.id)
            .chain(
                // Members found on the LAN only.
                lock(&shared.lan_hints)
                    .members()
                    .into_iter()
                    .filter(|id| *id != shared.me && m.mesh().is_current_member(*id)),
            )
            .collect()
    };
    let mut dialers = lock(&shared.dialers);
    // Checked under the dialers lock: once `shutdown` has signalled, no dialer starts
    // (it would hold the shared state, and so the store, while shutdown waits).
    if *shared.shutdown.borrow() {
        return;
    }
    for id in targets {
        if dialers.insert(id) {
            let task_shared = shared.clone();
            shared.spawn(async move {
                session::dial_loop(task_shared.clone(), id).await;
                lock(&task_shared.dialers).remove(&id);
            });
        }
    }
}

/// Binds as asked, or on the remembered port (see [`PeerOptions::remember_port`]).
async fn bind_remembered(
    local: &crate::node::Local,
    options: &mut PeerOptions,
) -> Result<Endpoint, PeerError> {
    let secret = lock(&local.machine).identity().secret_bytes();
    let asked = options
        .bind
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let remembered = if options.remember_port && asked.port() == 0 {
        lock(&local.machine).remembered_port()?
    } else {
        None
    };
    let endpoint = match remembered {
        Some(port) => {
            let mut bind = asked;
            bind.set_port(port);
            options.bind = Some(bind);
            match bind_endpoint(&secret, options).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!("port {port} of the last run is busy ({e}); using another");
                    options.bind = Some(asked);
                    bind_endpoint(&secret, options).await?
                }
            }
        }
        None => bind_endpoint(&secret, options).await?,
    };
    if options.remember_port
        && let Some(addr) = endpoint.addr().ip_addrs().next()
    {
        lock(&local.machine).remember_port(addr.port())?;
    }
    Ok(endpoint)
}

async fn bind_endpoint(secret: &[u8; 32], options: &PeerOptions) -> Result<Endpoint, PeerError> {
    let secret = SecretKey::from_bytes(secret);
    // A killed peer sends no close: keepalives and a 10 s idle timeout make it show
    // offline (and its dialer retry) within seconds instead of QUIC's default 30 s.
    let idle = Duration::from_secs(10)
        .try_into()
        .map_err(|e| PeerError::Bind(format!("idle timeout: {e}")))?;
    let transport = iroh::endpoint::QuicTransportConfig::builder()
        .keep_alive_interval(Duration::from_secs(2))
        .max_idle_timeout(Some(idle))
        .stream_receive_window(options.limits.stream_window.into())
        .build();
    let mut builder = Endpoint::builder(presets::Minimal)
        .secret_key(secret)
        .transport_config(transport)
        .ca_tls_config(relay::ca_config(options)?);
    let relays: Vec<RelayUrl> = options
        .relays
        .iter()
        .map(|r| {
            r.parse::<RelayUrl>()
                .map_err(|e| PeerError::Invalid(format!("invalid relay URL {r:?}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    builder = if relays.is_empty() {
        builder.relay_mode(RelayMode::Disabled)
    } else {
        let configs = relays.into_iter().map(|url| {
            let c = iroh::RelayConfig::new(url, None);
            match &options.relay_token {
                Some(t) => c.with_auth_token(t.clone()),
                None => c,
            }
        });
        builder.relay_mode(RelayMode::Custom(configs.collect()))
    };
    builder = builder.clear_ip_transports();
    if options.direct {
        let bind = options
            .bind
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        builder = builder
            .bind_addr(bind)
            .map_err(|e| PeerError::Bind(e.to_string()))?;
    }
    builder
        .bind()
        .await
        .map_err(|e| PeerError::Bind(e.to_string()))
}

impl Peer {
    /// Starts the network of a node: binds the endpoint, accepts members, dials known
    /// members, watches the projects.
    pub(crate) async fn start(
        local: Arc<crate::node::Local>,
        options: PeerOptions,
    ) -> Result<Peer, PeerError> {
        let mut options = options;
        if options.relays.is_empty() && options.learned_relays {
            options.relays = lock(&local.machine).learned_relays();
            // The token is for relays the user named, not ones a ticket named: a ticket
            // from a member could point at a relay that collects tokens.
            if options.relay_token.take().is_some() && !options.relays.is_empty() {
                tracing::warn!(
                    "the relay token is not sent to relays learned from tickets; name the relay with --relay to use it"
                );
            }
        }
        relay::check_token_transport(&options)?;
        if !options.direct && options.relays.is_empty() {
            return Err(PeerError::Invalid(
                "direct paths are off and there is no relay: give a relay URL (or join with a ticket that names one)".into(),
            ));
        }
        let incarnation = lock(&local.machine).next_incarnation()?;
        let endpoint = bind_remembered(&local, &mut options).await?;
        let me = local.me;
        let (changed, _) = broadcast::channel(1024);
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            local,
            me,
            endpoint: endpoint.clone(),
            changed,
            sessions: Mutex::new(HashMap::new()),
            links: tokio::sync::watch::Sender::new(HashSet::new()),
            presence: Mutex::new(HashMap::new()),
            session_changed: Notify::new(),
            addresses_changed: Notify::new(),
            lan_hints: Mutex::new(lan::LanHints::default()),
            dialers: Mutex::new(HashSet::new()),
            relays: options.relays.clone(),
            relay_states: Mutex::new(Default::default()),
            advertise: options.advertise,
            gossip: options.gossip_addresses,
            op_timeout: options.op_timeout,
            shutdown,
            incarnation,
            tasks: Mutex::new(Some(tokio::task::JoinSet::new())),
        });
        let router = Router::builder(endpoint)
            .accept(SYNC_ALPN, session::SyncProtocol(shared.clone()))
            .accept(JOIN_ALPN, join::JoinProtocol(shared.clone()))
            .accept(OP_ALPN, deliver::OpProtocol(shared.clone()))
            .accept(READ_ALPN, read::ReadProtocol(shared.clone()))
            .spawn();
        let watcher = if options.watch {
            Some(watch::Watcher::start(shared.clone())?)
        } else {
            None
        };
        let rescan = shared.clone();
        let every = options.rescan_every;
        shared.spawn(async move { watch::periodic_rescan(rescan, every).await });
        shared.spawn(watch::retry_failed_store(shared.clone()));
        lock(&shared.local.machine).defer_maintenance();
        shared.spawn(maintain::run(shared.clone()));
        if !options.relays.is_empty() {
            let secret =
                SecretKey::from_bytes(&lock(&shared.local.machine).identity().secret_bytes());
            shared.spawn(relay::watch(shared.clone(), options.clone(), secret));
        }
        shared.spawn(ephemeral::sweep(shared.clone()));
        shared.spawn(bucket::run(
            shared.clone(),
            options.bucket_pull_every,
            options.bucket_push_delay,
        ));
        if options.lan && options.direct && lan::wanted(options.bind) {
            match lan::start(&shared.endpoint) {
                Ok(mdns) => shared.spawn(lan::watch(shared.clone(), mdns)),
                // The mesh works without it (addresses from tickets, gossip, relays).
                Err(e) => tracing::warn!("LAN discovery is off: {e}"),
            }
        }
        spawn_dialers(&shared);
        Ok(Peer {
            shared,
            router,
            watcher: Mutex::new(watcher),
        })
    }

    /// The endpoint's direct addresses.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.shared.endpoint.addr().ip_addrs().copied().collect()
    }

    /// Events from now on, plus the current state that earlier events reported and that
    /// a host starting to listen now would otherwise miss (each relay's last
    /// [`Event::RelayStatus`]: the first check can finish before the host subscribes).
    /// Nothing is reported twice: the snapshot and the subscription are taken under the
    /// lock the emitter holds.
    pub(crate) fn subscribe_with_state(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let states = lock(&self.shared.relay_states);
        let rx = self.shared.local.subscribe();
        (states.values().cloned().collect(), rx)
    }

    /// Presence of every other known machine.
    pub(crate) fn presence(&self) -> HashMap<MachineId, Presence> {
        session::presence_snapshot(&self.shared)
    }

    /// UDP bytes `(sent, received)` on the current connection to each connected machine.
    pub(crate) fn wire_bytes(&self) -> HashMap<MachineId, (u64, u64)> {
        lock(&self.shared.sessions)
            .iter()
            .map(|(id, s)| {
                let st = s.conn.stats();
                (*id, (st.udp_tx.bytes, st.udp_rx.bytes))
            })
            .collect()
    }

    /// Announces a change made through the node (see [`Shared::announce`]).
    pub(crate) fn announce(&self, key: DocKey, changes: &[DocChange]) {
        self.shared.announce(key, changes);
    }

    /// Announces a change of this machine's document (see [`Shared::announce_own`]).
    pub(crate) fn announce_own(&self, changes: &[DocChange]) {
        self.shared.announce_own(changes);
    }

    /// Watches a specs folder added while running.
    pub(crate) fn watch(&self, specs_dir: &std::path::Path) {
        if let Some(w) = lock(&self.watcher).as_mut() {
            w.watch(specs_dir);
        }
    }

    /// Creates an invitation ticket valid for `ttl`; with `ephemeral_after`, an
    /// ephemeral one (its machines are removed after being away that long).
    pub(crate) fn invite(
        &self,
        ttl: Duration,
        reusable: bool,
        ephemeral_after: Option<Duration>,
    ) -> Result<Ticket, PeerError> {
        let (secret, expires_at) =
            lock(&self.shared.local.machine).new_invite(ttl, reusable, ephemeral_after)?;
        let addr = self.shared.endpoint.addr();
        Ok(Ticket {
            id: self.shared.me.to_string(),
            addrs: addr.ip_addrs().map(ToString::to_string).collect(),
            relays: addr
                .relay_urls()
                .map(ToString::to_string)
                .chain(self.shared.relays.iter().cloned())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect(),
            secret: hex::encode(secret),
            expires_at,
            reusable,
        })
    }

    /// Joins the mesh of a ticket's inviter.
    pub(crate) async fn join(&self, ticket: &Ticket) -> Result<Joined, PeerError> {
        join::join(&self.shared, ticket).await
    }

    /// Signs an operation of this machine for `target`, delivers it and records the
    /// answer in the audit log.
    pub(crate) async fn send_operation(
        &self,
        target: MachineId,
        body: OpBody,
        on_behalf_of: Option<String>,
    ) -> Result<Verdict, PeerError> {
        let mut op = Operation::new(
            self.shared.me,
            target,
            body,
            deliver::now_ms(),
            ops::DEFAULT_TTL,
        )
        .map_err(|e| PeerError::Invalid(e.to_string()))?;
        op.on_behalf_of = on_behalf_of;
        deliver::send(&self.shared, op, self.shared.op_timeout).await
    }

    /// The README of `owner`'s spec, from the owner (checked against its hash).
    pub(crate) async fn read_body(
        &self,
        owner: MachineId,
        project: &str,
        spec: &str,
    ) -> Result<(String, String), read::ReadFailed> {
        read::read(&self.shared, owner, project, spec, self.shared.op_timeout).await
    }

    /// Delivers bytes as an operation to `target`, unsigned by us and unaudited here.
    pub(crate) async fn deliver_raw(&self, target: MachineId, bytes: &[u8]) -> Verdict {
        deliver::deliver_bytes(&self.shared, target, "", bytes, self.shared.op_timeout).await
    }

    /// Stops everything: closes connections (saving sync states), the router, the
    /// endpoint.
    pub(crate) async fn shutdown(&self) {
        // `send_replace`, not `send`: `send` drops the value when no task is
        // listening at this instant, and a dialer started later would never see it.
        self.shared.shutdown.send_replace(true);
        // Every task holding the machine is stopped and awaited, so that when
        // `shutdown` returns and the peer is dropped the store is free to reopen.
        let watcher = lock(&self.watcher).take();
        if let Some(w) = watcher {
            w.stop().await;
        }
        // Each protocol's `shutdown` runs here (sync sessions are closed politely and
        // store their sync states), then the endpoint closes.
        if let Err(e) = self.router.shutdown().await {
            tracing::warn!("router shutdown: {e}");
        }
        // The owned tasks: dialers end on the signal by themselves (a session they run
        // has stored its sync states above); the rest is aborted. Taking the set also
        // keeps anything new from starting.
        let tasks = lock(&self.shared.tasks).take();
        if let Some(mut set) = tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while set.join_next().await.is_some() {}
            })
            .await;
            set.shutdown().await;
        }
        // Sessions and handlers ended with the router, the rest above: only this
        // handle is left, so the store closes when the peer is dropped.
        if Arc::strong_count(&self.shared) > 1 {
            tracing::warn!("some tasks still hold the machine after shutdown");
        }
    }
}

pub(crate) fn sha256(b: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    Sha256::digest(b).to_vec()
}

/// Resolves once the peer is shutting down, at once if it already is (a receiver made
/// after the signal has already "seen" it, so `changed()` alone would wait forever).
pub(crate) async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
