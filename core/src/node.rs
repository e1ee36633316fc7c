//! [`Node`]: the one facade every host uses (the CLI and its daemon, the bindings, and
//! the HTTP and MCP servers to come). A node is one machine home: its store is open for
//! the node's whole life, and its network runs between [`Node::start`] and
//! [`Node::stop`]. Every query and every mutation works in both states and answers the
//! same; only what needs the network (invite; join, edit and execution requests, for
//! which a stopped node opens a short-lived endpoint) differs, and says so.
//!
//! Invariants:
//! - every mutation announces what it changed: events for hosts, and, while the network
//!   runs, the changed document to every session;
//! - at most one network runs per node (start/stop are serialised; a short-lived endpoint
//!   for a call holds the same lock);
//! - the store is closed when the node is dropped: the network's tasks are owned by it.

mod bucket;
mod local;
mod refusals;
mod report;
pub mod ui_accounts;
mod ui_login;
mod ui_throttle;
mod ui_users;

pub use refusals::RefusalReport;
pub(crate) use refusals::{Refusals, Refused};
pub use report::{MachineReport, StatusReport, StoreReport};
pub use ui_accounts::{Role, UiAccount};
pub use ui_login::{LOGIN_TOKEN_TTL, SESSION_IDLE, SESSION_MAX, UiLogins, Who};
pub use ui_throttle::{LOGIN_WINDOW, MAX_FAILURES_PER_ACCOUNT, MAX_FAILURES_PER_ADDRESS};
pub use ui_users::LoginOutcome;

pub(crate) use local::Local;

use crate::identity::MachineId;
use crate::machine::{
    DocKey, Machine, MachineSummary, Project, ProjectScan, ScanProgress, ScanReport, SpecFilter,
    SpecRow,
};
use crate::net::Ticket;
use crate::ops::{AuditRecord, Change, OpBody, Verdict};
use crate::peer::{Event, Joined, Peer, PeerError, PeerOptions, Presence, lock};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

type Result<T, E = PeerError> = std::result::Result<T, E>;

/// One machine home: store, projects, queries and mutations, and its network.
#[derive(Debug)]
pub struct Node {
    home: PathBuf,
    local: Arc<Local>,
    options: PeerOptions,
    /// The running network, if any.
    network: Mutex<Option<Arc<Peer>>>,
    /// Held while the network starts or stops, and while a short-lived endpoint runs.
    lifecycle: tokio::sync::Mutex<()>,
    /// The web UI's address (and whether over TLS) while a host serves it.
    ui: Mutex<Option<(SocketAddr, bool)>>,
    ui_logins: UiLogins,
}

impl Node {
    /// Opens the machine in `home`, creating it on first use (key, store, `label` or the
    /// host name). Returns whether it was created. The network is not started.
    pub fn init(home: &Path, label: Option<&str>, options: PeerOptions) -> Result<(Node, bool)> {
        let (machine, created) = Machine::init(home, label)?;
        Ok((Node::with_machine(machine, options), created))
    }

    /// Opens the existing machine in `home` (`not_initialized` if there is none). A store
    /// held by another process for a moment is waited for, bounded.
    pub fn open(home: &Path, options: PeerOptions) -> Result<Node> {
        Ok(Node::with_machine(Machine::open(home)?, options))
    }

    fn with_machine(mut machine: Machine, options: PeerOptions) -> Node {
        machine.set_limits(options.limits.clone());
        Node {
            home: machine.home().to_path_buf(),
            local: Arc::new(Local::new(machine, &options.limits)),
            options,
            network: Mutex::new(None),
            lifecycle: tokio::sync::Mutex::new(()),
            ui: Mutex::new(None),
            ui_logins: UiLogins::default(),
        }
    }

    /// Records where a host serves the web UI (`None`: not served) and whether over TLS.
    pub fn set_ui_addr(&self, addr: Option<SocketAddr>, tls: bool) {
        *lock(&self.ui) = addr.map(|a| (a, tls));
    }

    /// A one-time login URL for the web UI (valid [`LOGIN_TOKEN_TTL`]), for a browser
    /// on this machine; `NotRunning` when no UI is served.
    pub fn ui_login_url(&self) -> Result<String> {
        let (addr, tls) = (*lock(&self.ui)).ok_or_else(|| {
            PeerError::NotRunning(
                "the web UI is not served: start `leanspec-peer up --ui 127.0.0.1:0` (or an address)".into(),
            )
        })?;
        let token = self
            .ui_logins
            .new_token(std::time::Instant::now())
            .ok_or_else(|| {
                PeerError::Invalid("no randomness available for a login token".into())
            })?;
        // Served on every interface: this machine reaches it on loopback.
        let host = match addr.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::from(([127, 0, 0, 1], addr.port()))
            }
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
            }
            _ => addr,
        };
        let scheme = if tls { "https" } else { "http" };
        Ok(format!("{scheme}://{host}/login?token={token}"))
    }

    /// Who may use the web UI (for the host that serves it).
    pub fn ui_logins(&self) -> &UiLogins {
        &self.ui_logins
    }

    /// This machine's id.
    pub fn id(&self) -> MachineId {
        self.local.me
    }

    /// The home folder.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// This machine's id, label and version.
    pub fn summary(&self) -> MachineSummary {
        self.read(Machine::summary)
    }

    /// Runs a read-only query on the machine.
    fn read<R>(&self, f: impl FnOnce(&Machine) -> R) -> R {
        f(&lock(&self.local.machine))
    }

    fn running(&self) -> Option<Arc<Peer>> {
        lock(&self.network).clone()
    }

    /// Whether the network runs.
    pub fn is_running(&self) -> bool {
        self.running().is_some()
    }

    // ---- network lifecycle -------------------------------------------------------

    /// Starts the network: binds the endpoint (the last run's port when free), accepts
    /// and dials members, watches the projects. `busy` if it already runs.
    pub async fn start(&self) -> Result<()> {
        let _guard = self.lifecycle.lock().await;
        if self.is_running() {
            return Err(PeerError::AlreadyRunning);
        }
        let peer = Peer::start(self.local.clone(), self.options.clone()).await?;
        *lock(&self.network) = Some(Arc::new(peer));
        Ok(())
    }

    /// Stops the network: connections closed (members see this machine offline at once),
    /// sync states saved, every task ended. Queries keep working. `not_running` if it
    /// does not run.
    pub async fn stop(&self) -> Result<()> {
        let _guard = self.lifecycle.lock().await;
        let peer = lock(&self.network).take().ok_or_else(|| {
            PeerError::NotRunning("the network is not running: nothing to stop".into())
        })?;
        peer.shutdown().await;
        Ok(())
    }

    /// The running network, or a short-lived one for this call (no watcher, addresses not
    /// advertised, port not remembered), stopped by [`Borrowed::done`].
    async fn network_for_call(&self) -> Result<Borrowed<'_>> {
        if let Some(peer) = self.running() {
            return Ok(Borrowed { peer, guard: None });
        }
        let guard = self.lifecycle.lock().await;
        if let Some(peer) = self.running() {
            return Ok(Borrowed { peer, guard: None });
        }
        let options = PeerOptions {
            watch: false,
            advertise: false,
            remember_port: false,
            ..self.options.clone()
        };
        let peer = Arc::new(Peer::start(self.local.clone(), options).await?);
        Ok(Borrowed {
            peer,
            guard: Some(guard),
        })
    }

    /// The endpoint's direct addresses (none while stopped).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.running().map(|p| p.addrs()).unwrap_or_default()
    }

    /// Events from now on, plus the state earlier events reported that a host starting
    /// to listen now would otherwise miss (each relay's last status). Works while
    /// stopped too: local changes (scans, project and mesh edits) are events as well.
    pub fn subscribe(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        match self.running() {
            Some(p) => p.subscribe_with_state(),
            None => (Vec::new(), self.local.subscribe()),
        }
    }

    /// How long since the last event (since the node was opened, before any): for a
    /// host's idle policy to poll, instead of waking for every event.
    pub fn quiet_for(&self) -> std::time::Duration {
        self.local.quiet_for()
    }

    /// Presence of every other known machine (empty while stopped).
    pub fn presence(&self) -> HashMap<MachineId, Presence> {
        self.running().map(|p| p.presence()).unwrap_or_default()
    }

    /// UDP bytes `(sent, received)` on the current connection to each connected machine
    /// (for benchmarks and diagnostics).
    pub fn wire_bytes(&self) -> HashMap<MachineId, (u64, u64)> {
        self.running().map(|p| p.wire_bytes()).unwrap_or_default()
    }

    // ---- queries -----------------------------------------------------------------

    /// This machine, its projects and store, the other machines with presence.
    pub fn status(&self) -> Result<StatusReport> {
        let presence = self.presence();
        let running = self.is_running();
        let mut m = lock(&self.local.machine);
        Ok(report::status_report(
            &mut m,
            &presence,
            running,
            self.local.refusals.report(),
        )?)
    }

    /// Every machine of the mesh (this one too) with its presence.
    pub fn machines(&self) -> Vec<MachineReport> {
        let presence = self.presence();
        report::machine_reports(&mut lock(&self.local.machine), &presence)
    }

    /// A machine's label (its short id if unknown).
    pub fn machine_label(&self, id: MachineId) -> String {
        self.read(|m| m.machine_label(id))
    }

    /// Whether `id` is a member of this machine's mesh and not revoked.
    pub fn is_member(&self, id: MachineId) -> bool {
        self.read(|m| m.mesh().is_current_member(id))
    }

    /// This machine's projects.
    pub fn projects(&self) -> Result<Vec<Project>> {
        Ok(self.read(Machine::projects)?)
    }

    /// Specs of every machine matching `filter`.
    pub fn specs(&self, filter: &SpecFilter) -> Result<Vec<SpecRow>> {
        Ok(self.read(|m| m.specs(filter))?)
    }

    /// Specs of every machine matching `query` (LeanSpec's search language, see
    /// [`crate::query`]), best first, at most `limit`.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<crate::query::SearchHit>> {
        let q = parse_query(query)?;
        // The lock is held only to share the cached tables; matching runs without it.
        // One machine's kept bodies at a time (read from the store, dropped after its
        // turn): a search never holds every cached body at once.
        let tables = self.read(|m| m.spec_tables_bare(None))?;
        let mut hits = Vec::new();
        for mut table in tables {
            if let Ok(id) = table.machine.parse::<crate::identity::MachineId>() {
                table.bodies = self.read(|m| m.body_texts(id));
            }
            hits.extend(crate::query::search(&q, table.views(), limit));
        }
        Ok(crate::query::best(hits, limit))
    }

    /// Specs of every machine in columns by `group_by`; only those matching `query`
    /// when given (see [`crate::query::board`]).
    pub fn board(
        &self,
        query: Option<&str>,
        group_by: crate::query::GroupBy,
    ) -> Result<crate::query::Board> {
        let q = query.map(parse_query).transpose()?;
        let tables = self.read(|m| m.spec_tables(None))?;
        let views = crate::query::all_views(&tables);
        Ok(crate::query::board(
            crate::query::filter(q.as_ref(), views),
            group_by,
        ))
    }

    /// What `spec` (name, number or slug, in `project` if given) depends on and what
    /// depends on it, across every machine holding its project (see
    /// [`crate::query::deps`]).
    pub fn deps(
        &self,
        project: Option<&str>,
        spec: &str,
        query: crate::query::DepsQuery,
    ) -> Result<crate::query::Deps> {
        let tables = self.read(|m| m.spec_tables(None))?;
        Ok(crate::query::deps(
            crate::query::all_views(&tables),
            project,
            spec,
            query,
        )?)
    }

    /// Counts by status, priority and tag, per machine and for the fleet (each spec
    /// once; see [`crate::query::stats`]).
    pub fn stats(&self) -> Result<crate::query::Stats> {
        Ok(crate::query::stats(&self.specs(&SpecFilter::default())?))
    }

    /// What is wrong across the fleet: duplicate spec numbers in one project across
    /// machines, one spec with different metadata on different machines, unreadable
    /// specs, dangling dependencies (see [`crate::query::check`]).
    pub fn check(&self) -> Result<crate::query::CheckReport> {
        Ok(crate::query::check(&self.specs(&SpecFilter::default())?))
    }

    /// One spec: `machine` (id, short id or label; this one if `None`), project id or
    /// name, spec name, number or slug.
    pub fn spec(&self, machine: Option<&str>, project: &str, spec: &str) -> Result<SpecRow> {
        Ok(self.read(|m| m.spec_on(machine, project, spec))?)
    }

    /// The newest `limit` audit records, newest first.
    pub fn audit(&self, limit: usize) -> Result<Vec<AuditRecord>> {
        self.read(|m| crate::ops::audit::read(m, limit))
            .map_err(|e| PeerError::Machine(e.into()))
    }

    // ---- mutations ---------------------------------------------------------------

    /// Runs a change of this machine's document and announces it.
    fn change_own<R>(
        &self,
        f: impl FnOnce(&mut Machine) -> crate::machine::Result<R>,
    ) -> Result<R> {
        let (r, changed) = self.local.change_own(f)?;
        if let Some(changes) = changed {
            match self.running() {
                Some(p) => p.announce_own(&changes),
                None => self
                    .local
                    .announce(DocKey::Machine(self.local.me), &changes),
            }
        }
        Ok(r)
    }

    fn announce(&self, key: DocKey, changes: &[crate::machine::DocChange]) {
        match self.running() {
            Some(p) => p.announce(key, changes),
            None => self.local.announce(key, changes),
        }
    }

    /// Adds a project folder (its specs folder is found inside), scans it, watches it
    /// while the network runs, and pushes its specs.
    pub fn add_project(&self, dir: &Path, name: Option<&str>) -> Result<(Project, ProjectScan)> {
        let (project, scan) = self.change_own(|m| m.add_project(dir, name))?;
        if let (Some(p), Some(specs_dir)) = (self.running(), project.specs_dir.as_ref()) {
            p.watch(specs_dir);
        }
        Ok((project, scan))
    }

    /// Removes a project (id, name or folder) and pushes the removal (an event per
    /// spec); its files stay.
    pub fn remove_project(&self, selector: &str) -> Result<Project> {
        self.change_own(|m| m.remove_project(selector))
    }

    /// Rescans every project now and pushes what changed; `progress` is called as files
    /// are read.
    pub fn scan(&self, progress: &mut dyn FnMut(ScanProgress<'_>)) -> Result<ScanReport> {
        self.change_own(|m| m.scan(progress))
    }

    /// Renames a machine (this one too); replicated through the mesh.
    pub fn rename(&self, machine: &str, label: &str) -> Result<()> {
        let mut m = lock(&self.local.machine);
        let id = m.find_machine(machine)?;
        m.rename_machine(id, label)?;
        drop(m);
        self.announce(DocKey::Mesh, &[crate::machine::DocChange::MeshChanged]);
        Ok(())
    }

    /// Revokes another machine: every member disconnects it and refuses it from then
    /// on. Recorded at once; replicated now or at the next start.
    pub fn revoke(&self, machine: &str) -> Result<()> {
        let mut m = lock(&self.local.machine);
        let id = m.find_machine(machine)?;
        if id == self.local.me {
            return Err(PeerError::Invalid(
                "a machine cannot revoke itself; revoke it from another member".into(),
            ));
        }
        m.revoke_machine(id)?;
        drop(m);
        self.announce(DocKey::Mesh, &[crate::machine::DocChange::MeshChanged]);
        Ok(())
    }

    /// An invitation ticket valid for `ttl` (needs the running network: the joiner
    /// connects to it).
    pub fn invite(&self, ttl: Duration, reusable: bool) -> Result<Ticket> {
        self.invite_with(ttl, reusable, None)
    }

    /// An invitation ticket valid for `ttl`; with `ephemeral_after`, an ephemeral one:
    /// the machines that join with it are removed from the mesh (everywhere, with a
    /// `machine_removed` event) once this machine has not heard from them for that long.
    pub fn invite_with(
        &self,
        ttl: Duration,
        reusable: bool,
        ephemeral_after: Option<Duration>,
    ) -> Result<Ticket> {
        let peer = self.running().ok_or_else(|| {
            PeerError::NotRunning(
                "an invitation is answered by the running peer: start it first (`leanspec-peer up`), then invite".into(),
            )
        })?;
        peer.invite(ttl, reusable, ephemeral_after)
    }

    /// Every invitation this machine issued, newest first, with where each stands.
    pub fn invites(&self) -> Result<Vec<crate::machine::InviteInfo>> {
        Ok(lock(&self.local.machine).invites()?)
    }

    /// Revokes the invitation whose id starts with `id` (4 or more hex characters).
    pub fn revoke_invite(&self, id: &str) -> Result<crate::machine::InviteInfo> {
        Ok(lock(&self.local.machine).revoke_invite(id)?)
    }

    /// Joins the mesh of the machine that made `ticket` (text as `invite` prints it).
    pub async fn join(&self, ticket: &str) -> Result<Joined> {
        let ticket: Ticket = ticket.trim().parse()?;
        let net = self.network_for_call().await?;
        if let Ok(inviter) = ticket.machine() {
            tracing::info!("joining the mesh of {} (dialing it)", inviter.short());
        }
        let joined = net.peer.join(&ticket).await;
        net.done().await;
        joined
    }

    /// Joins with a reusable auth key unless already a member of its mesh (`None`).
    pub async fn join_authkey(&self, key: &str) -> Result<Option<Joined>> {
        let ticket: Ticket = key.trim().parse()?;
        if self.is_member(ticket.machine()?) {
            return Ok(None);
        }
        self.join(key).await.map(Some)
    }

    /// Asks `machine` (id, short id or label; this machine too) to change a spec's
    /// metadata. `base_file_hash` defaults to the file hash in the replicated document:
    /// the target applies the change only if its file still has that hash. Nothing is
    /// queued: an unreachable target answers `unavailable`.
    pub async fn edit(
        &self,
        machine: &str,
        project: &str,
        spec: &str,
        change: Change,
        base_file_hash: Option<&str>,
    ) -> Result<Verdict> {
        self.edit_for(None, machine, project, spec, change, base_file_hash)
            .await
    }

    /// [`Node::edit`] made for a web UI `account` of this machine: the operation names
    /// it (signed by this machine) and both audit logs record it.
    pub async fn edit_for(
        &self,
        account: Option<&str>,
        machine: &str,
        project: &str,
        spec: &str,
        change: Change,
        base_file_hash: Option<&str>,
    ) -> Result<Verdict> {
        if account.is_some_and(|a| a.is_empty() || a.len() > crate::ops::wire::MAX_ACCOUNT_BYTES) {
            return Err(PeerError::Invalid(
                "an account name is 1 to 64 bytes".into(),
            ));
        }
        if change.is_empty() {
            return Err(PeerError::Invalid(
                "nothing to change: give at least one of --status, --priority, --add-tag, --remove-tag, --add-dep, --remove-dep, --parent, --assignee".into(),
            ));
        }
        let (target, row) = self.read(|m| -> crate::machine::Result<_> {
            let target = m.find_machine(machine)?;
            let row = m.spec_on(Some(&target.to_string()), project, spec)?;
            Ok((target, row))
        })?;
        let hash = base_file_hash.unwrap_or(&row.spec.file_hash);
        let base: [u8; 32] = hex::decode(hash)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                PeerError::Invalid(format!(
                    "{hash:?} is not a file hash (64 hex digits, as `show --json` prints)"
                ))
            })?;
        let body = OpBody::Edit {
            project: row.project_id,
            spec: row.spec.name,
            base_file_hash: base,
            change,
        };
        self.send_operation_for(account, target, body).await
    }

    /// A spec's README.md: this machine's from disk; another machine's from its owner
    /// over the read protocol (kept here with its hash), or, when the owner cannot be
    /// reached, the copy kept from the last read, marked with its age and why. With no
    /// copy kept, an offline owner is an `Unavailable` error.
    pub async fn spec_body(
        &self,
        machine: Option<&str>,
        project: &str,
        spec: &str,
    ) -> Result<crate::machine::SpecBody> {
        use crate::machine::{BodySource, SpecBody};
        let (row, me, path) = self.read(|m| -> crate::machine::Result<_> {
            let row = m.spec_on(machine, project, spec)?;
            let me = m.id();
            let path = (row.machine == me.to_string())
                .then(|| m.body_path(&row.project_id, &row.spec.name))
                .transpose()?;
            Ok((row, me, path))
        })?;
        let body = |text: String, file_hash: String, source, fetched_at, note| SpecBody {
            machine: row.machine.clone(),
            machine_label: row.machine_label.clone(),
            project_id: row.project_id.clone(),
            spec: row.spec.name.clone(),
            text,
            file_hash,
            source,
            fetched_at,
            note,
        };
        let now = crate::time::now_ms();
        if let Some(path) = path {
            let (text, hash) = crate::machine::read_body(&path)?;
            return Ok(body(text, hash, BodySource::Local, now, None));
        }
        let owner: MachineId = row
            .machine
            .parse()
            .map_err(|_| PeerError::Invalid(format!("bad machine id {}", row.machine)))?;
        debug_assert_ne!(owner, me);
        let net = self.network_for_call().await?;
        let fetched = net
            .peer
            .read_body(owner, &row.project_id, &row.spec.name)
            .await;
        net.done().await;
        let cached = || {
            self.read(|m| {
                m.store()
                    .cached_body(owner, &row.project_id, &row.spec.name)
            })
            .map_err(|e| PeerError::Machine(e.into()))
        };
        match fetched {
            Ok((text, file_hash)) => {
                let copy = crate::store::CachedBody {
                    file_hash: file_hash.clone(),
                    fetched_at: now,
                    text: text.clone(),
                };
                // A copy not kept is only a miss later; the answer stands.
                if let Err(e) =
                    self.read(|m| m.keep_body(owner, &row.project_id, &row.spec.name, &copy))
                {
                    tracing::warn!("could not keep a copy of {}: {e}", row.spec.name);
                }
                Ok(body(text, file_hash, BodySource::Owner, now, None))
            }
            Err(crate::peer::ReadFailed::Unavailable(why)) => match cached()? {
                Some(c) => Ok(body(
                    c.text,
                    c.file_hash,
                    BodySource::Cache,
                    c.fetched_at,
                    Some(format!("{} is unavailable: {why}", row.machine_label)),
                )),
                None => Err(PeerError::Unavailable {
                    machine: row.machine_label.clone(),
                    reason: format!("{why}; no copy of {} is kept here", row.spec.name),
                }),
            },
            Err(crate::peer::ReadFailed::Answered(kind, message)) => Err(PeerError::Remote {
                machine: row.machine_label.clone(),
                kind,
                message,
            }),
        }
    }

    /// Hands `payload` to the host application on `machine` as an execution request
    /// (verified and audited like an edit; nothing is executed by leanspec-peer).
    pub async fn exec_request(&self, machine: &str, payload: &str) -> Result<Verdict> {
        self.exec_request_for(None, machine, payload).await
    }

    /// [`Node::exec_request`] made for a web UI account: the signed operation carries
    /// its name, and both audit logs record it.
    pub async fn exec_request_for(
        &self,
        account: Option<&str>,
        machine: &str,
        payload: &str,
    ) -> Result<Verdict> {
        if payload.len() > crate::ops::wire::MAX_PAYLOAD_BYTES {
            return Err(PeerError::Invalid(format!(
                "the payload is {} bytes; the limit is {}",
                payload.len(),
                crate::ops::wire::MAX_PAYLOAD_BYTES
            )));
        }
        let target = self.read(|m| m.find_machine(machine))?;
        let body = OpBody::ExecRequest {
            payload: payload.to_string(),
        };
        self.send_operation_for(account, target, body).await
    }

    /// Signs an operation of this machine for `target`, delivers it and records the
    /// answer in the audit log.
    pub async fn send_operation(&self, target: MachineId, body: OpBody) -> Result<Verdict> {
        self.send_operation_for(None, target, body).await
    }

    /// [`Node::send_operation`] made for a web UI `account` (named in the signed
    /// operation and in both audit logs).
    async fn send_operation_for(
        &self,
        account: Option<&str>,
        target: MachineId,
        body: OpBody,
    ) -> Result<Verdict> {
        let net = self.network_for_call().await?;
        let verdict = net
            .peer
            .send_operation(target, body, account.map(str::to_string))
            .await;
        net.done().await;
        verdict
    }

    /// Delivers bytes as an operation to `target`, unsigned by us and unaudited here:
    /// for tests and tools that check how targets treat hand-made or damaged operations.
    pub async fn deliver_raw(&self, target: MachineId, bytes: &[u8]) -> Result<Verdict> {
        let net = self.network_for_call().await?;
        let verdict = net.peer.deliver_raw(target, bytes).await;
        net.done().await;
        Ok(verdict)
    }
}

/// The network a call uses: the running one, or a short-lived one it stops after.
struct Borrowed<'a> {
    peer: Arc<Peer>,
    /// Held for a short-lived network, so no start runs a second endpoint meanwhile.
    guard: Option<tokio::sync::MutexGuard<'a, ()>>,
}

impl Borrowed<'_> {
    async fn done(self) {
        if self.guard.is_some() {
            self.peer.shutdown().await;
        }
    }
}

fn parse_query(query: &str) -> Result<crate::query::Query> {
    crate::query::parse(query).map_err(|e| PeerError::Invalid(format!("invalid query: {e}")))
}

#[cfg(test)]
mod tests {
    use super::Node;
    use crate::peer::PeerOptions;
    use std::time::{Duration, Instant};

    /// A host polls `quiet_for` instead of waking for each event: it grows while
    /// nothing happens and starts again at each event.
    #[test]
    fn quiet_for_grows_while_nothing_happens_and_restarts_at_an_event() {
        let home = tempfile::tempdir().expect("home");
        let project = tempfile::tempdir().expect("project");
        let spec = project.path().join("specs/001-a");
        std::fs::create_dir_all(&spec).expect("mkdir");
        std::fs::write(spec.join("README.md"), "---\nstatus: draft\n---\n# A\n").expect("write");
        let (node, _) = Node::init(home.path(), Some("t"), PeerOptions::default()).expect("init");
        // Events are made for listeners only.
        let (_, _events) = node.subscribe();
        let idle = Duration::from_millis(30);
        std::thread::sleep(idle);
        assert!(node.quiet_for() >= idle);
        let start = Instant::now();
        node.add_project(project.path(), None).expect("add");
        // The project's events came after `start`.
        assert!(node.quiet_for() <= start.elapsed());
    }
}
