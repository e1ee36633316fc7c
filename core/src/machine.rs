//! This machine with no network: its home folder, identity, store, its own document,
//! the mesh and the replicas of the other members. Hosts reach it through
//! [`crate::Node`]. One concern per submodule: `persist` (commits, compaction, meta),
//! `scan` (projects and scans), `query`, `replication` (sync steps, the one-writer
//! check), `membership`; `rows` and `error` are what they return.
//!
//! Invariant: every change to a document is committed to the store, with the writes
//! that go with it, in one transaction ([`persist`]'s `commit`) before a call returns.

use crate::doc::{DocError, MachineDoc, MachineInfo};
use crate::identity::{Identity, MachineId};
use crate::mesh::MeshDoc;
use crate::store::{MetaKey, STORE_FILE, Store, StoreError};
use persist::Commit;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

mod body;
mod bucket;
mod error;
mod home;
mod invites;
mod membership;
mod own_flush;
mod persist;
mod proofs;
mod query;
mod replication;
mod rows;
mod scan;
mod scan_memo;
mod unreadable;

pub use body::{BodyAt, BodyTexts, read_body};
pub use error::{Error, Result};
pub use invites::{InviteInfo, InviteState, InviteUser};
pub use own_flush::SendGate;
pub use replication::{DocChange, DocKey, SyncError};
pub use rows::{
    BodySource, MachineRow, MachineSummary, Project, ProjectScan, ScanProgress, ScanReport,
    SpecBody, SpecFilter, SpecRow,
};
pub use unreadable::Unreadable;

/// This machine: its identity, its store, its own document, the mesh, and the
/// last-known documents of the other members.
#[derive(Debug)]
pub struct Machine {
    home: PathBuf,
    identity: Identity,
    store: Store,
    doc: MachineDoc,
    mesh: MeshDoc,
    replicas: BTreeMap<MachineId, MachineDoc>,
    /// Size of the first (full) stored chunk of each document, for compaction.
    snapshot_bytes: HashMap<DocKey, u64>,
    /// What received messages may cost (see [`crate::limits`]).
    limits: crate::limits::Limits,
    /// Per document: stored bytes as of the last commit, and changes received that wait
    /// for missing dependencies (bounded by `limits.max_orphans`).
    received: HashMap<DocKey, replication::Received>,
    /// Documents holding received changes that a failed store write did not keep: they
    /// are reloaded as stored before their next use ([`Machine::fresh`]), so nothing
    /// unproven or unstored stays in memory.
    stale: std::collections::BTreeSet<DocKey>,
    /// Documents whose new changes a failed write left unsaved (their save cursors
    /// rewound): [`Machine::retry_unsaved`] stores them once the store works again.
    unsaved: std::collections::BTreeSet<DocKey>,
    /// A store write failed and none has succeeded since.
    write_failed: bool,
    /// A write succeeded after failed ones, and the host has not been told (see
    /// [`Machine::take_recovered`]): whichever write comes first after space returns
    /// (a rescan, a received change, the retry) recovers the store.
    recovered: bool,
    /// Documents due for compaction, when [`Machine::defer_maintenance`] moved it off
    /// the commit path; [`Machine::maintain`] compacts them.
    compact_due: Option<std::collections::BTreeSet<DocKey>>,
    /// When the oldest of `compact_due` became due (see [`Machine::compaction_waited`]).
    compact_due_since: Option<std::time::Instant>,
    /// What the last full scan saw, when a later one can be answered from it.
    scan_memo: Option<scan_memo::ScanMemo>,
    /// What scans could not read (kept in its last known state meanwhile).
    unreadable: unreadable::Unreadables,
    /// Set while the caller flushes our commits itself ([`Machine::defer_own_flush`]).
    own_flush_deferred: bool,
    /// Our lazy commits the disk may not hold yet (see `own_flush`).
    own_lazy: Option<own_flush::OwnLazy>,
    #[cfg(test)]
    scan_memo_hits: u64,
}

/// The software version written into the document.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Unix seconds now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn default_label() -> String {
    let h = gethostname::gethostname()
        .to_string_lossy()
        .trim()
        .to_string();
    if h.is_empty() { "machine".into() } else { h }
}

/// Checks a machine or project label.
pub fn check_label(label: &str) -> Result<()> {
    let n = label.chars().count();
    if n == 0 || n > 64 || label.chars().any(char::is_control) || label.trim() != label {
        return Err(Error::InvalidLabel(label.chars().take(80).collect()));
    }
    Ok(())
}

impl Machine {
    /// Creates the machine in `home` (key, store, document) or opens it if it exists.
    /// Returns the machine and whether it was created now.
    pub fn init(home: &Path, label: Option<&str>) -> Result<(Machine, bool)> {
        if let Some(l) = label {
            check_label(l)?;
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(home)
            .map_err(|source| Error::Io {
                path: home.to_path_buf(),
                source,
            })?;
        home::secure(home)?;
        if Identity::load(home)?.is_some() {
            let mut m = Machine::open(home)?;
            if let Some(l) = label {
                m.set_label(l)?;
            }
            return Ok((m, false));
        }
        let identity = Identity::generate()?;
        // Store first: if it cannot be created we leave no key behind.
        let store = Store::open(&home.join(STORE_FILE))?;
        if !store.doc_keys()?.is_empty() {
            // A store without its key: refuse rather than mix two identities.
            return Err(Error::Store(StoreError::Corrupt {
                path: store.path().to_path_buf(),
                detail: "it holds a machine document but the machine key is missing".into(),
            }));
        }
        identity.save_new(home)?;
        store.set_meta(MetaKey::MachineId, identity.id().as_bytes())?;
        let label = label.map_or_else(default_label, str::to_string);
        let info = MachineInfo {
            id: identity.id().to_string(),
            label: label.clone(),
            version: VERSION.into(),
            os: std::env::consts::OS.into(),
        };
        let doc = MachineDoc::new(identity.id(), &info, now_secs());
        let mesh = MeshDoc::new(identity.id(), &label, now_secs());
        let mut m = Machine {
            home: home.to_path_buf(),
            identity,
            store,
            doc,
            mesh,
            replicas: BTreeMap::new(),
            snapshot_bytes: HashMap::new(),
            limits: Default::default(),
            received: HashMap::new(),
            stale: Default::default(),
            unsaved: Default::default(),
            write_failed: false,
            recovered: false,
            compact_due: None,
            compact_due_since: None,
            scan_memo: None,
            unreadable: unreadable::Unreadables::default(),
            own_flush_deferred: false,
            own_lazy: None,
            #[cfg(test)]
            scan_memo_hits: 0,
        };
        m.commit(Commit::docs(&[DocKey::Machine(m.id()), DocKey::Mesh]))?;
        Ok((m, true))
    }

    /// Opens the machine in `home`.
    pub fn open(home: &Path) -> Result<Machine> {
        if home.exists() {
            home::secure(home)?;
        }
        let identity = Identity::load(home)?.ok_or_else(|| Error::NotInitialized {
            home: home.to_path_buf(),
        })?;
        let store_path = home.join(STORE_FILE);
        if !store_path.exists() {
            return Err(Error::NotInitialized {
                home: home.to_path_buf(),
            });
        }
        let store = Store::open(&store_path)?;
        let me = identity.id();
        // The store remembers whose it is: a key copied from another machine (or a
        // store copied from one) must not be mixed into a second identity.
        if let Some(owner) = store.meta(MetaKey::MachineId)?
            && owner.as_slice() != me.as_bytes()
        {
            return Err(Error::Store(StoreError::Corrupt {
                path: store.path().to_path_buf(),
                detail: format!(
                    "it belongs to machine {}, but machine.key is machine {}",
                    hex::encode(owner.get(..5).unwrap_or(&owner)),
                    me.short()
                ),
            }));
        }
        let mut snapshot_bytes = HashMap::new();
        let mut doc = None;
        let mut mesh = None;
        let mut replicas = BTreeMap::new();
        for key_bytes in store.doc_keys()? {
            let Some(key) = DocKey::from_bytes(&key_bytes) else {
                tracing::warn!("skipping stored document with an unknown key");
                continue;
            };
            let chunks = store.doc_chunks(&key_bytes)?;
            snapshot_bytes.insert(key, chunks.first().map_or(0, |c| c.len() as u64));
            let slices = chunks.iter().map(Vec::as_slice);
            match key {
                DocKey::Mesh => mesh = Some(MeshDoc::load(me, slices).map_err(DocError::from)?),
                DocKey::Machine(id) if id == me => doc = Some(MachineDoc::load(me, slices)?),
                DocKey::Machine(id) => match MachineDoc::load(id, slices) {
                    Ok(d) => {
                        replicas.insert(id, d);
                    }
                    // Another machine's copy can be fetched again; ours cannot.
                    Err(e) => {
                        tracing::warn!(machine = %id.short(), "dropping unreadable replica: {e}")
                    }
                },
            }
        }
        let fresh = doc.is_none() && mesh.is_none() && replicas.is_empty();
        let mut doc = match doc {
            Some(d) => d,
            // `init` was cut off between writing the key and the first commit: finish it.
            None if fresh => MachineDoc::new(
                me,
                &MachineInfo {
                    id: me.to_string(),
                    label: default_label(),
                    version: VERSION.into(),
                    os: std::env::consts::OS.into(),
                },
                now_secs(),
            ),
            None => {
                return Err(Error::Doc(DocError::Malformed(
                    "this machine's document is missing",
                )));
            }
        };
        let mut info = doc.machine_info();
        let mut mesh = mesh.unwrap_or_else(|| MeshDoc::new(me, &info.label, now_secs()));
        mesh.pin(&Machine::stored_revocations(&store));
        // Keep the software version current; a no-op write is not committed.
        if info.version != VERSION || info.os != std::env::consts::OS {
            info.version = VERSION.into();
            info.os = std::env::consts::OS.into();
            doc.set_machine_info(&info);
        }
        let mut m = Machine {
            home: home.to_path_buf(),
            identity,
            store,
            doc,
            mesh,
            replicas,
            snapshot_bytes,
            limits: Default::default(),
            received: HashMap::new(),
            stale: Default::default(),
            unsaved: Default::default(),
            write_failed: false,
            recovered: false,
            compact_due: None,
            compact_due_since: None,
            scan_memo: None,
            unreadable: unreadable::Unreadables::default(),
            own_flush_deferred: false,
            own_lazy: None,
            #[cfg(test)]
            scan_memo_hits: 0,
        };
        m.commit(Commit::docs(&[DocKey::Machine(me), DocKey::Mesh]))?;
        match m.store.schema_version()? {
            v if v < 2 => m.sign_history()?,
            v if v < crate::store::SCHEMA_VERSION => {
                m.store.set_schema_version(crate::store::SCHEMA_VERSION)?
            }
            _ => {}
        }
        Ok(m)
    }

    /// The home folder.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The machine id.
    pub fn id(&self) -> MachineId {
        self.identity.id()
    }

    /// The machine identity (key pair).
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The machine's description.
    pub fn summary(&self) -> MachineSummary {
        let info = self.doc.machine_info();
        MachineSummary {
            id: self.id(),
            label: self.label(),
            version: info.version,
            os: info.os,
        }
    }

    /// The label (the mesh's, which `rename` changes, else the document's).
    pub fn label(&self) -> String {
        self.mesh
            .member(self.id())
            .map(|m| m.label)
            .unwrap_or_else(|| self.doc.machine_info().label)
    }

    /// Changes this machine's label (in its document and in the mesh).
    pub fn set_label(&mut self, label: &str) -> Result<()> {
        check_label(label)?;
        self.fresh(DocKey::Mesh)?;
        let mut info = self.doc.machine_info();
        info.label = label.to_string();
        self.doc.set_machine_info(&info);
        self.mesh.rename(self.id(), label);
        self.commit(Commit::docs(&[DocKey::Machine(self.id()), DocKey::Mesh]))
            .map(|_| ())
    }

    /// Read access to the machine document.
    pub fn doc(&self) -> &MachineDoc {
        &self.doc
    }

    /// Read access to the mesh.
    pub fn mesh(&self) -> &MeshDoc {
        &self.mesh
    }

    /// The last-known document of another machine.
    pub fn replica(&self, id: MachineId) -> Option<&MachineDoc> {
        self.replicas.get(&id)
    }

    /// The store (sizes, for status and benchmarks).
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Short helper for a map of projects by id (used by the shells for lookups).
pub fn by_id(projects: &[Project]) -> HashMap<&str, &Project> {
    projects.iter().map(|p| (p.id.as_str(), p)).collect()
}
