//! The store: one redb file in the home folder. The only module that knows redb.
//!
//! Crash safety comes from redb's commits: every write below is one transaction, so a
//! crash leaves the store as of the last commit. A damaged file or a store written by a
//! newer leanspec-peer is reported with what to do; the store is never silently reset.

mod bodies;
mod durable;
mod tables;

pub use bodies::CachedBody;
pub use durable::Durable;

use crate::identity::MachineId;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tables::{
    AUDIT, CHANGE_SIGS, CHECKPOINTS, DOC_CHUNKS, INVITES, META, OPS_SEEN, OPS_SEEN_BY_EXPIRY,
    PEERS, PROJECTS, STAT_CACHE, SYNC_STATES, UI_ACCOUNTS,
};

/// The store format this build reads and writes. History: 1 = first format; 2 = change
/// signatures (table `change_sigs`); 3 = checkpoints (table `checkpoints`; a compaction
/// drops the change signatures a checkpoint covers, which a format-2 build would need).
/// A format-1 store is upgraded when its machine opens (`Machine::open`: the owner signs
/// its own history, unsigned replicas are dropped to be fetched again), a format-2 one
/// is only marked 3 (nothing to convert); a newer format is refused, so a build from
/// before checkpoints refuses a store that may have dropped signatures.
pub const SCHEMA_VERSION: u32 = 3;

/// File name of the store inside the home folder.
pub const STORE_FILE: &str = "store.redb";

/// Store errors. Each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file is damaged or is not a store.
    #[error("the store {} is damaged ({detail}); nothing was changed. Move it aside (mv {} {}.broken) and run `leanspec-peer init` to start over; projects must then be added again", path.display(), path.display(), path.display())]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What redb reported.
        detail: String,
    },
    /// Written by a newer version.
    #[error("the store {} has format version {found}, newer than this leanspec-peer understands ({supported}); upgrade leanspec-peer", path.display())]
    NewerVersion {
        /// The store file.
        path: PathBuf,
        /// Version found.
        found: u32,
        /// Version supported.
        supported: u32,
    },
    /// Another process holds the store.
    #[error("the store {} is in use by another leanspec-peer process; stop it or use another --home", path.display())]
    InUse {
        /// The store file.
        path: PathBuf,
    },
    /// Any other storage failure (disk full, I/O error).
    #[error("store {} failed: {detail}", path.display())]
    Io {
        /// The store file.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
}

/// The keys of the meta table, each with its encoding (docs/design.md, "meta").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetaKey {
    /// u32 LE: the store's schema version.
    SchemaVersion,
    /// 32 bytes: the machine whose store this is (checked against the key on open).
    MachineId,
    /// u64 BE: the last run's incarnation.
    Incarnation,
    /// u16 LE: the port the last run listened on.
    BindPort,
    /// JSON list of strings: relay URLs learned from tickets.
    Relays,
    /// u64 LE: bytes of the audit records kept (maintained with each append).
    AuditBytes,
    /// JSON object `{machine id hex: unix seconds}`: every revocation this machine has
    /// seen. Never synced, never cleared: revocation is final here whatever a document
    /// says later.
    Revocations,
    /// JSON object `{bucket url: bucket::BucketState}`: this machine's sequence, what
    /// it pushed and imported per bucket.
    Buckets,
}

impl MetaKey {
    /// The key as stored (never changes: stores written by older versions use it).
    pub fn name(self) -> &'static str {
        match self {
            MetaKey::SchemaVersion => "schema_version",
            MetaKey::MachineId => "machine_id",
            MetaKey::Incarnation => "incarnation",
            MetaKey::BindPort => "bind_port",
            MetaKey::Relays => "relays",
            MetaKey::Revocations => "revocations",
            MetaKey::AuditBytes => "audit_bytes",
            MetaKey::Buckets => "buckets",
        }
    }
}

/// How much of the audit log is kept: the oldest records go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditRetention {
    /// Records kept.
    pub max_records: u64,
    /// Bytes of records kept.
    pub max_bytes: u64,
}

/// A project as stored locally (with its local paths).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRecord {
    /// Stable id (also the key in the machine document).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Project root on this machine.
    pub root: PathBuf,
}

/// What this machine knows of another machine (local only). Keyed by the machine id's
/// bytes; the id is also in the value, stored as its 32 bytes (the format of format 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// Machine id.
    #[serde(with = "id_as_bytes")]
    pub id: MachineId,
    /// Direct addresses (`ip:port`) learned from tickets and connections.
    pub addrs: Vec<String>,
    /// Relay URLs learned from tickets.
    pub relays: Vec<String>,
    /// Unix seconds of the last frame received, 0 if never.
    pub last_seen: u64,
}

impl PeerRecord {
    /// A record with nothing known yet.
    pub fn new(id: MachineId) -> PeerRecord {
        PeerRecord {
            id,
            addrs: Vec::new(),
            relays: Vec::new(),
            last_seen: 0,
        }
    }
}

/// A machine id as the sequence of its 32 bytes (how peer records have always stored it).
mod id_as_bytes {
    use crate::identity::MachineId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(id: &MachineId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(id.as_bytes())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MachineId, D::Error> {
        let bytes = Vec::<u8>::deserialize(d)?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("a machine id has 32 bytes"))?;
        Ok(MachineId::from_bytes(bytes))
    }
}

/// An invitation this machine issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
    /// Usable more than once (the headless/CI auth key).
    pub reusable: bool,
    /// Machines that used it (hex ids).
    pub used_by: Vec<String>,
    /// Revoked by the issuer.
    pub revoked: bool,
    /// Unix seconds it was made (0 for invitations stored before this field).
    #[serde(default)]
    pub created_at: u64,
    /// An ephemeral key: its machines are removed after this many seconds away.
    #[serde(default)]
    pub ephemeral_after: Option<u64>,
}

/// What a scan saw of one spec's files: enough to tell, without reading, that nothing
/// changed. `racy` entries (files written in the last second) are never trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatKey {
    /// README.md modification time (ns since the epoch).
    pub mtime_ns: i64,
    /// README.md status-change time (ns): catches edits that restore the mtime.
    pub ctime_ns: i64,
    /// README.md size.
    pub size: u64,
    /// README.md inode (an atomic rename changes it).
    pub ino: u64,
    /// Spec folder modification time (ns): changes when sub-files come or go.
    pub dir_mtime_ns: i64,
}

/// Files modified within this window are not trusted by their stat: a write in the same
/// clock tick as our read would leave the same mtime (git's "racily clean" problem).
const RACY_NS: i64 = 2_000_000_000;

impl StatKey {
    /// True when the file or folder changed so recently (relative to `now_ns`) that an
    /// unchanged stat does not prove unchanged content.
    pub fn is_racy(&self, now_ns: i64) -> bool {
        now_ns - self.mtime_ns.max(self.dir_mtime_ns) < RACY_NS
    }

    fn encode(&self) -> [u8; 40] {
        let mut b = [0u8; 40];
        b[0..8].copy_from_slice(&self.mtime_ns.to_le_bytes());
        b[8..16].copy_from_slice(&self.ctime_ns.to_le_bytes());
        b[16..24].copy_from_slice(&self.size.to_le_bytes());
        b[24..32].copy_from_slice(&self.ino.to_le_bytes());
        b[32..40].copy_from_slice(&self.dir_mtime_ns.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<StatKey> {
        let f = |i: usize| b.get(i..i + 8).and_then(|s| <[u8; 8]>::try_from(s).ok());
        Some(StatKey {
            mtime_ns: i64::from_le_bytes(f(0)?),
            ctime_ns: i64::from_le_bytes(f(8)?),
            size: u64::from_le_bytes(f(16)?),
            ino: u64::from_le_bytes(f(24)?),
            dir_mtime_ns: i64::from_le_bytes(f(32)?),
        })
    }
}

/// Sizes, for `status` and the benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// Number of document chunks.
    pub chunks: u64,
    /// Total bytes of document chunks.
    pub chunk_bytes: u64,
    /// Size of the redb file on disk.
    pub file_bytes: u64,
}

/// The open store.
///
/// Invariant: after an I/O error (a full disk, say) redb refuses every later operation
/// until the database is opened again; such an error sets `failed`, and
/// [`Store::recover`] (called before each write by the machine) reopens it. In between,
/// calls fail with the first error's message, never a panic.
#[derive(Debug)]
pub struct Store {
    /// `None` only while [`Store::recover`] reopens it (or failed to). Shared only
    /// with a [`Flusher`] while it runs.
    db: Option<Arc<Database>>,
    path: PathBuf,
    failed: Arc<AtomicBool>,
    /// Which commits are durable (see [`Batch::lazy`]); [`Store::flush`] makes the
    /// lazy ones durable.
    gens: Arc<durable::Tracker>,
}

/// Makes a store's lazy commits durable without holding the store (nor the machine
/// that owns it): the fsync of a change of ours runs while sessions make its message,
/// and they send it once [`Durable::covers`] its commit.
#[derive(Debug)]
pub struct Flusher {
    db: Arc<Database>,
    path: PathBuf,
    failed: Arc<AtomicBool>,
    gens: Arc<durable::Tracker>,
}

impl Flusher {
    /// One empty durable commit (redb persists every commit before it). Cheap when
    /// everything is durable already.
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut gens = self.gens.lock();
        if !durable::Tracker::has_unflushed(&gens) {
            return Ok(());
        }
        let upto = gens.written;
        let err = |e: redb::Error| classify(&self.path, &self.failed, e);
        let tx = self.db.begin_write().map_err(|e| err(e.into()))?;
        tx.commit().map_err(|e| err(e.into()))?;
        self.gens.durable_up_to(&mut gens, upto);
        Ok(())
    }
}

/// A redb error as a [`StoreError`]; an I/O error marks the store `failed` (it must be
/// reopened, see [`Store::recover`]).
fn classify(path: &Path, failed: &AtomicBool, e: impl Into<redb::Error>) -> StoreError {
    let path = path.to_path_buf();
    match e.into() {
        redb::Error::Corrupted(detail) => StoreError::Corrupt { path, detail },
        redb::Error::Io(io) => {
            failed.store(true, Ordering::Release);
            let detail = if io.kind() == std::io::ErrorKind::StorageFull {
                format!("{io}: free some space; leanspec-peer retries by itself")
            } else {
                io.to_string()
            };
            StoreError::Io { path, detail }
        }
        redb::Error::PreviousIo => {
            failed.store(true, Ordering::Release);
            StoreError::Io {
                path,
                detail: "an earlier write failed (disk full or I/O error); the store is reopened at the next write".into(),
            }
        }
        other => StoreError::Io {
            path,
            detail: other.to_string(),
        },
    }
}

fn cache_key(project: &str, spec: &str) -> String {
    format!("{project}\0{spec}")
}

impl Store {
    /// Opens (creating if absent) the store at `path`, checking its integrity and
    /// format version. A store held by another process is waited for, at most
    /// [`Store::OPEN_WAIT`]: a read-only command (`status` in a status bar's loop) holds
    /// it for milliseconds, and `up` must not fail because it started at that moment.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + Self::OPEN_WAIT;
        loop {
            match Self::open_once(path) {
                Err(StoreError::InUse { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                other => return other,
            }
        }
    }

    /// How long [`Store::open`] waits for another process to release the store.
    pub const OPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

    fn open_once(path: &Path) -> Result<Store, StoreError> {
        let p = path.to_path_buf();
        Self::private_file(path)?;
        // redb checks page checksums with this on; without it a damaged file may panic.
        // The panic guard is belt and braces: a damaged store must be an error.
        let opened = std::panic::catch_unwind(|| {
            Database::builder()
                .set_check_integrity_on_open(true)
                .create(&p)
        });
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(Self::open_error(path, e)),
            Err(_) => {
                return Err(StoreError::Corrupt {
                    path: p,
                    detail: "the storage engine could not read it".into(),
                });
            }
        };
        let store = Store {
            db: Some(Arc::new(db)),
            path: p,
            failed: Default::default(),
            gens: Default::default(),
        };
        store.check_version()?;
        Ok(store)
    }

    fn db(&self) -> Result<&Database, StoreError> {
        self.db.as_deref().ok_or_else(|| self.closed())
    }

    fn closed(&self) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            detail: "the store is closed after an I/O error; it is reopened at the next write"
                .into(),
        }
    }

    /// Whether an I/O error left the store needing [`Store::recover`].
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// After an I/O error, reopens the database (redb repairs it from its last durable
    /// commit) so that writes work again once the cause is gone (space freed). Returns
    /// whether it reopened having lost lazy commits ([`Batch::lazy`]): their documents
    /// must be reloaded. An error while the cause persists.
    pub fn recover(&mut self) -> Result<Recovered, StoreError> {
        if !self.has_failed() {
            return Ok(Recovered::NotNeeded);
        }
        // The failed database must be closed (releasing its file lock) before the file
        // is opened again.
        self.db = None;
        let reopened = std::panic::catch_unwind(|| Database::builder().create(&self.path));
        match reopened {
            Ok(Ok(db)) => {
                self.db = Some(Arc::new(db));
                self.failed.store(false, Ordering::Release);
                tracing::info!(path = %self.path.display(), "reopened the store after an I/O error");
                let lost = self.gens.reopened(&mut self.gens.lock());
                Ok(Recovered::Reopened {
                    lost_lazy_commits: lost,
                })
            }
            Ok(Err(e)) => Err(self.err(e)),
            Err(_) => Err(StoreError::Corrupt {
                path: self.path.clone(),
                detail: "the storage engine could not read it".into(),
            }),
        }
    }

    /// The store holds local paths and every member's specs: only this user may read it.
    /// A new store file is created 0600 (redb initialises an empty file); an existing one
    /// readable by others (written by an older version, or copied) is made 0600.
    fn private_file(path: &Path) -> Result<(), StoreError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let io = |e: std::io::Error| StoreError::Io {
            path: path.to_path_buf(),
            detail: e.to_string(),
        };
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
                if mode & 0o077 != 0 {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                        .map_err(io)?;
                }
                Ok(())
            }
            Err(e) => Err(io(e)),
        }
    }

    fn open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
        use redb::{DatabaseError as D, StorageError as S};
        let path = path.to_path_buf();
        match e {
            D::DatabaseAlreadyOpen | D::LockProtocolMismatch => StoreError::InUse { path },
            D::Storage(S::Corrupted(detail)) => StoreError::Corrupt { path, detail },
            D::Storage(S::Io(io)) if io.kind() == std::io::ErrorKind::InvalidData => {
                StoreError::Corrupt {
                    path,
                    detail: io.to_string(),
                }
            }
            D::UpgradeRequired(v) => StoreError::Corrupt {
                path,
                detail: format!("redb file format {v} is not supported"),
            },
            other => StoreError::Io {
                path,
                detail: other.to_string(),
            },
        }
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        classify(&self.path, &self.failed, e)
    }

    fn check_version(&self) -> Result<(), StoreError> {
        let found = self
            .meta(MetaKey::SchemaVersion)?
            .and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok())
            .map(u32::from_le_bytes);
        match found {
            Some(v) if v > SCHEMA_VERSION => Err(StoreError::NewerVersion {
                path: self.path.clone(),
                found: v,
                supported: SCHEMA_VERSION,
            }),
            Some(_) => Ok(()),
            None => {
                // A new store: write the version and create every table, so that readers
                // never meet a missing table.
                let tx = self.db()?.begin_write().map_err(|e| self.err(e))?;
                {
                    let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
                    meta.insert(
                        MetaKey::SchemaVersion.name(),
                        SCHEMA_VERSION.to_le_bytes().as_slice(),
                    )
                    .map_err(|e| self.err(e))?;
                    tx.open_table(PROJECTS).map_err(|e| self.err(e))?;
                    tx.open_table(DOC_CHUNKS).map_err(|e| self.err(e))?;
                    tx.open_table(STAT_CACHE).map_err(|e| self.err(e))?;
                    tx.open_table(SYNC_STATES).map_err(|e| self.err(e))?;
                    tx.open_table(PEERS).map_err(|e| self.err(e))?;
                    tx.open_table(INVITES).map_err(|e| self.err(e))?;
                    tx.open_table(AUDIT).map_err(|e| self.err(e))?;
                    tx.open_table(OPS_SEEN).map_err(|e| self.err(e))?;
                    tx.open_table(OPS_SEEN_BY_EXPIRY).map_err(|e| self.err(e))?;
                    tx.open_table(CHANGE_SIGS).map_err(|e| self.err(e))?;
                    tx.open_table(CHECKPOINTS).map_err(|e| self.err(e))?;
                }
                tx.commit().map_err(|e| self.err(e))
            }
        }
    }

    /// Path of the store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The format of the data in this store (1 for a store written before format 2).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self
            .meta(MetaKey::SchemaVersion)?
            .and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok())
            .map_or(1, u32::from_le_bytes))
    }

    /// Marks the data as upgraded to `version`.
    pub fn set_schema_version(&self, version: u32) -> Result<(), StoreError> {
        self.set_meta(MetaKey::SchemaVersion, &version.to_le_bytes())
    }

    /// A value of the meta table.
    pub fn meta(&self, key: MetaKey) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.name();
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = match tx.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let value = table.get(key).map_err(|e| self.err(e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// Sets a value of the meta table.
    pub fn set_meta(&self, key: MetaKey, value: &[u8]) -> Result<(), StoreError> {
        let key = key.name();
        let tx = self.db()?.begin_write().map_err(|e| self.err(e))?;
        tx.open_table(META)
            .map_err(|e| self.err(e))?
            .insert(key, value)
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Every project, sorted by id. Records that cannot be decoded are skipped with a
    /// warning in the log (they would need a newer version).
    pub fn projects(&self) -> Result<Vec<ProjectRecord>, StoreError> {
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(PROJECTS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            match serde_json::from_slice::<ProjectRecord>(v.value()) {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!(
                    project = k.value(),
                    "skipping unreadable project record: {e}"
                ),
            }
        }
        Ok(out)
    }

    /// Adds or replaces a project record.
    pub fn put_project(&self, record: &ProjectRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).map_err(|e| StoreError::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        let tx = self.db()?.begin_write().map_err(|e| self.err(e))?;
        tx.open_table(PROJECTS)
            .map_err(|e| self.err(e))?
            .insert(record.id.as_str(), bytes.as_slice())
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// One document's chunks, in order.
    pub fn doc_chunks(&self, doc: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(DOC_CHUNKS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in table
            .range((doc, 0u64)..=(doc, u64::MAX))
            .map_err(|e| self.err(e))?
        {
            let (_, v) = row.map_err(|e| self.err(e))?;
            out.push(v.value().to_vec());
        }
        Ok(out)
    }

    /// The keys of every stored document.
    pub fn doc_keys(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(DOC_CHUNKS).map_err(|e| self.err(e))?;
        let mut out: Vec<Vec<u8>> = Vec::new();
        for row in table.iter().map_err(|e| self.err(e))? {
            let (k, _) = row.map_err(|e| self.err(e))?;
            let key = k.value().0;
            if out.last().map(Vec::as_slice) != Some(key) {
                out.push(key.to_vec());
            }
        }
        Ok(out)
    }

    /// The sync state with `peer` for `doc`, if any.
    pub fn sync_state(&self, peer: &[u8], doc: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(SYNC_STATES).map_err(|e| self.err(e))?;
        Ok(table
            .get((peer, doc))
            .map_err(|e| self.err(e))?
            .map(|v| v.value().to_vec()))
    }

    /// Every peer record. A record that does not decode is skipped with a warning:
    /// addresses are hints, relearned on the next connection.
    pub fn peers(&self) -> Result<Vec<PeerRecord>, StoreError> {
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(PEERS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| self.err(e))? {
            let (_, v) = row.map_err(|e| self.err(e))?;
            match serde_json::from_slice::<PeerRecord>(v.value()) {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!("skipping an unreadable address-book record: {e}"),
            }
        }
        Ok(out)
    }

    /// The peer record of one machine (`None` when there is none, or it does not decode).
    pub fn peer(&self, id: MachineId) -> Result<Option<PeerRecord>, StoreError> {
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(PEERS).map_err(|e| self.err(e))?;
        let Some(v) = table
            .get(id.as_bytes().as_slice())
            .map_err(|e| self.err(e))?
        else {
            return Ok(None);
        };
        Ok(serde_json::from_slice::<PeerRecord>(v.value())
            .inspect_err(|e| tracing::warn!("unreadable address-book record: {e}"))
            .ok())
    }

    /// Adds or replaces a peer record.
    pub fn put_peer(&self, record: &PeerRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).map_err(|e| StoreError::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        let tx = self.db()?.begin_write().map_err(|e| self.err(e))?;
        tx.open_table(PEERS)
            .map_err(|e| self.err(e))?
            .insert(record.id.as_bytes().as_slice(), bytes.as_slice())
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Appends one record to the audit log (its own transaction, committed before the
    /// call returns) and drops the oldest records beyond `keep`, in the same
    /// transaction; the newest record always stays. Returns its sequence number.
    pub fn append_audit(&self, record: &[u8], keep: AuditRetention) -> Result<u64, StoreError> {
        let tx = self.db()?.begin_write().map_err(|e| self.err(e))?;
        let seq = {
            let mut table = tx.open_table(AUDIT).map_err(|e| self.err(e))?;
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            let stored = meta
                .get(MetaKey::AuditBytes.name())
                .map_err(|e| self.err(e))?
                .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
                .map(u64::from_le_bytes);
            // A store from before retention: count once.
            let mut total = match stored {
                Some(t) => t,
                None => {
                    let mut t = 0u64;
                    for row in table.iter().map_err(|e| self.err(e))? {
                        let (_, v) = row.map_err(|e| self.err(e))?;
                        t += v.value().len() as u64;
                    }
                    t
                }
            };
            let next = table
                .last()
                .map_err(|e| self.err(e))?
                .map_or(1, |(k, _)| k.value() + 1);
            table.insert(next, record).map_err(|e| self.err(e))?;
            total += record.len() as u64;
            let mut count = redb::ReadableTableMetadata::len(&table).map_err(|e| self.err(e))?;
            while count > 1 && (count > keep.max_records || total > keep.max_bytes) {
                let Some((_, v)) = table.pop_first().map_err(|e| self.err(e))? else {
                    break;
                };
                total = total.saturating_sub(v.value().len() as u64);
                count -= 1;
            }
            meta.insert(MetaKey::AuditBytes.name(), total.to_le_bytes().as_slice())
                .map_err(|e| self.err(e))?;
            next
        };
        tx.commit().map_err(|e| self.err(e))?;
        Ok(seq)
    }

    /// The newest `limit` audit records, newest first, with their sequence numbers.
    pub fn audit(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = match tx.open_table(AUDIT) {
            Ok(t) => t,
            // A store created before the audit log existed.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| self.err(e))?.rev().take(limit) {
            let (k, v) = row.map_err(|e| self.err(e))?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Records that operation `id` (valid until `expires_at_ms`) was accepted for
    /// checking. Returns `false`, writing nothing, if it was recorded before: a replay.
    /// Ids of operations expired before `forget_before_ms` are forgotten (an expired
    /// operation is refused before this check, so they can never be replayed).
    pub fn mark_op_seen(
        &self,
        id: &[u8],
        expires_at_ms: u64,
        forget_before_ms: u64,
    ) -> Result<bool, StoreError> {
        let tx = self.db()?.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = tx.open_table(OPS_SEEN).map_err(|e| self.err(e))?;
            if table.get(id).map_err(|e| self.err(e))?.is_some() {
                return Ok(false);
            }
            let mut index = tx.open_table(OPS_SEEN_BY_EXPIRY).map_err(|e| self.err(e))?;
            if index.is_empty().map_err(|e| self.err(e))?
                && !table.is_empty().map_err(|e| self.err(e))?
            {
                // A store from before the index: built once.
                for row in table.iter().map_err(|e| self.err(e))? {
                    let (k, v) = row.map_err(|e| self.err(e))?;
                    index
                        .insert((v.value(), k.value()), ())
                        .map_err(|e| self.err(e))?;
                }
            }
            // The expired ids are the index's first rows: O(log n) plus what goes.
            let mut expired: Vec<Vec<u8>> = Vec::new();
            index
                .retain_in(
                    (0u64, [].as_slice())..(forget_before_ms, [].as_slice()),
                    |(_, old), ()| {
                        expired.push(old.to_vec());
                        false
                    },
                )
                .map_err(|e| self.err(e))?;
            for old in &expired {
                table.remove(old.as_slice()).map_err(|e| self.err(e))?;
            }
            table.insert(id, expires_at_ms).map_err(|e| self.err(e))?;
            index
                .insert((expires_at_ms, id), ())
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(true)
    }

    /// Records many operation ids as seen in one transaction, with no check and no
    /// expiry (a benchmark's setup: a guard holding millions of live ids).
    #[doc(hidden)]
    pub fn mark_ops_seen_unchecked(
        &self,
        ids: impl IntoIterator<Item = (Vec<u8>, u64)>,
    ) -> Result<(), StoreError> {
        let tx = self.db()?.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = tx.open_table(OPS_SEEN).map_err(|e| self.err(e))?;
            let mut index = tx.open_table(OPS_SEEN_BY_EXPIRY).map_err(|e| self.err(e))?;
            for (id, expires) in ids {
                table
                    .insert(id.as_slice(), expires)
                    .map_err(|e| self.err(e))?;
                index
                    .insert((expires, id.as_slice()), ())
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// An invitation by the SHA-256 of its secret.
    pub fn invite(&self, secret_hash: &[u8]) -> Result<Option<InviteRecord>, StoreError> {
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(INVITES).map_err(|e| self.err(e))?;
        Ok(table
            .get(secret_hash)
            .map_err(|e| self.err(e))?
            .and_then(|v| serde_json::from_slice(v.value()).ok()))
    }

    /// Every invitation, by the SHA-256 of its secret (unreadable records skipped).
    pub fn invites(&self) -> Result<Vec<(Vec<u8>, InviteRecord)>, StoreError> {
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = match tx.open_table(INVITES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            if let Ok(r) = serde_json::from_slice(v.value()) {
                out.push((k.value().to_vec(), r));
            }
        }
        Ok(out)
    }

    /// Adds or replaces an invitation.
    pub fn put_invite(&self, secret_hash: &[u8], record: &InviteRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).map_err(|e| StoreError::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        let tx = self.db()?.begin_write().map_err(|e| self.err(e))?;
        tx.open_table(INVITES)
            .map_err(|e| self.err(e))?
            .insert(secret_hash, bytes.as_slice())
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Every web UI account record, by name.
    pub fn ui_accounts(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = match tx.open_table(UI_ACCOUNTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// One web UI account record.
    pub fn ui_account(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = match tx.open_table(UI_ACCOUNTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        Ok(table
            .get(name)
            .map_err(|e| self.err(e))?
            .map(|v| v.value().to_vec()))
    }

    /// Adds or replaces (`Some`) or removes (`None`) a web UI account record; returns
    /// whether one was there before.
    pub fn set_ui_account(&self, name: &str, record: Option<&[u8]>) -> Result<bool, StoreError> {
        let tx = self.db()?.begin_write().map_err(|e| self.err(e))?;
        let existed = {
            let mut table = tx.open_table(UI_ACCOUNTS).map_err(|e| self.err(e))?;
            match record {
                Some(r) => table.insert(name, r).map_err(|e| self.err(e))?.is_some(),
                None => table.remove(name).map_err(|e| self.err(e))?.is_some(),
            }
        };
        tx.commit().map_err(|e| self.err(e))?;
        Ok(existed)
    }

    /// The stat cache of one project.
    pub fn stat_cache(&self, project: &str) -> Result<HashMap<String, StatKey>, StoreError> {
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(STAT_CACHE).map_err(|e| self.err(e))?;
        let start = cache_key(project, "");
        let end = format!("{project}\u{1}");
        let mut out = HashMap::new();
        for row in table
            .range(start.as_str()..end.as_str())
            .map_err(|e| self.err(e))?
        {
            let (k, v) = row.map_err(|e| self.err(e))?;
            if let (Some(name), Some(key)) =
                (k.value().split_once('\0'), StatKey::decode(v.value()))
            {
                out.insert(name.1.to_string(), key);
            }
        }
        Ok(out)
    }

    /// Records one commit of the machine: a document chunk (if any), project records to
    /// put or delete, and stat cache updates (`None` deletes), all in one transaction so
    /// the cache never claims what the document does not hold.
    pub fn commit(&self, batch: Batch<'_>) -> Result<u64, StoreError> {
        let mut gens = self.gens.lock();
        let mut tx = self.db()?.begin_write().map_err(|e| self.err(e))?;
        if batch.lazy {
            tx.set_durability(redb::Durability::None)
                .map_err(|e| StoreError::Io {
                    path: self.path.clone(),
                    detail: e.to_string(),
                })?;
        }
        {
            let mut chunks = tx.open_table(DOC_CHUNKS).map_err(|e| self.err(e))?;
            for (doc, chunk) in batch.chunks.iter().filter(|(_, c)| !c.is_empty()) {
                let next = chunks
                    .range((*doc, 0u64)..=(*doc, u64::MAX))
                    .map_err(|e| self.err(e))?
                    .next_back()
                    .transpose()
                    .map_err(|e| self.err(e))?
                    .map_or(0, |(k, _)| k.value().1 + 1);
                chunks
                    .insert((*doc, next), *chunk)
                    .map_err(|e| self.err(e))?;
            }
            if !batch.sync_states.is_empty() {
                let mut states = tx.open_table(SYNC_STATES).map_err(|e| self.err(e))?;
                for (peer, doc, state) in batch.sync_states {
                    states
                        .insert((*peer, *doc), *state)
                        .map_err(|e| self.err(e))?;
                }
            }
            if !batch.signatures.is_empty() {
                let mut sigs = tx.open_table(CHANGE_SIGS).map_err(|e| self.err(e))?;
                for (doc, hash, sig) in batch.signatures {
                    sigs.insert((*doc, hash.as_slice()), sig.as_slice())
                        .map_err(|e| self.err(e))?;
                }
            }
            if !batch.checkpoints.is_empty() {
                let mut table = tx.open_table(CHECKPOINTS).map_err(|e| self.err(e))?;
                for (doc, checkpoint) in batch.checkpoints {
                    table.insert(*doc, *checkpoint).map_err(|e| self.err(e))?;
                }
            }
            let mut projects = tx.open_table(PROJECTS).map_err(|e| self.err(e))?;
            let mut cache = tx.open_table(STAT_CACHE).map_err(|e| self.err(e))?;
            for id in batch.remove_projects {
                projects.remove(id.as_str()).map_err(|e| self.err(e))?;
                let start = cache_key(id, "");
                let end = format!("{id}\u{1}");
                cache
                    .retain_in(start.as_str()..end.as_str(), |_, _| false)
                    .map_err(|e| self.err(e))?;
            }
            for (project, spec, key) in batch.stat_updates {
                let k = cache_key(project, spec);
                match key {
                    Some(key) => cache
                        .insert(k.as_str(), key.encode().as_slice())
                        .map(|_| ()),
                    None => cache.remove(k.as_str()).map(|_| ()),
                }
                .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(self.gens.committed(&mut gens, !batch.lazy))
    }

    /// Whether lazy commits wait for [`Store::flush`].
    pub fn has_unflushed(&self) -> bool {
        durable::Tracker::has_unflushed(&self.gens.lock())
    }

    /// Makes the lazy commits durable (one empty durable commit: redb persists every
    /// commit before it). Cheap when there is none.
    pub fn flush(&self) -> Result<(), StoreError> {
        match self.flusher()? {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }

    /// A [`Flusher`] for the lazy commits so far, to run without holding the store;
    /// `None` when every commit is durable.
    pub fn flusher(&self) -> Result<Option<Flusher>, StoreError> {
        if !self.has_unflushed() {
            return Ok(None);
        }
        let db = self.db.clone().ok_or_else(|| self.closed())?;
        Ok(Some(Flusher {
            db,
            path: self.path.clone(),
            failed: self.failed.clone(),
            gens: self.gens.clone(),
        }))
    }

    /// What is on disk now.
    pub fn durable(&self) -> Durable {
        self.gens.now()
    }

    /// Tells of every change of [`Store::durable`] (kept across reopens).
    pub fn durable_watch(&self) -> tokio::sync::watch::Receiver<Durable> {
        self.gens.subscribe()
    }

    /// The stored signatures (signer ‖ signature) of these changes of `doc`, in order;
    /// `None` where there is none.
    pub fn change_signatures(
        &self,
        doc: &[u8],
        hashes: &[[u8; 32]],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        // Most sync messages (acknowledgements) carry no change: no read transaction.
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = match tx.open_table(CHANGE_SIGS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![None; hashes.len()]),
            Err(e) => return Err(self.err(e)),
        };
        hashes
            .iter()
            .map(|h| {
                table
                    .get((doc, h.as_slice()))
                    .map(|v| v.map(|v| v.value().to_vec()))
                    .map_err(|e| self.err(e))
            })
            .collect()
    }

    /// The stored checkpoint of `doc` (stored form), if any.
    pub fn checkpoint(&self, doc: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        // A store from before checkpoints has no such table until the first one.
        let table = match tx.open_table(CHECKPOINTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let found = table.get(doc).map_err(|e| self.err(e))?;
        Ok(found.map(|v| v.value().to_vec()))
    }

    /// The hashes of the changes of `doc` that have a stored signature.
    pub fn signed_changes(&self, doc: &[u8]) -> Result<Vec<[u8; 32]>, StoreError> {
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = match tx.open_table(CHANGE_SIGS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        for row in table
            .range((doc, [0u8; 0].as_slice())..=(doc, [0xffu8; 33].as_slice()))
            .map_err(|e| self.err(e))?
        {
            let (k, _) = row.map_err(|e| self.err(e))?;
            if let Ok(h) = <[u8; 32]>::try_from(k.value().1) {
                out.push(h);
            }
        }
        Ok(out)
    }

    /// Drops every change signature (what a format-1 store looks like), for upgrade tests.
    #[cfg(test)]
    pub(crate) fn forget_signatures(&self) -> Result<(), StoreError> {
        let tx = self.db()?.begin_write().map_err(|e| self.err(e))?;
        tx.delete_table(CHANGE_SIGS).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Forgets a document: its chunks, its change signatures and every sync state for it
    /// (a replica dropped to be fetched again), in one transaction.
    pub fn remove_doc(&self, doc: &[u8]) -> Result<(), StoreError> {
        let tx = self.db()?.begin_write().map_err(|e| self.err(e))?;
        {
            let mut chunks = tx.open_table(DOC_CHUNKS).map_err(|e| self.err(e))?;
            chunks
                .retain_in((doc, 0u64)..=(doc, u64::MAX), |_, _| false)
                .map_err(|e| self.err(e))?;
            let mut sigs = tx.open_table(CHANGE_SIGS).map_err(|e| self.err(e))?;
            sigs.retain(|(d, _), _| d != doc).map_err(|e| self.err(e))?;
            let mut checkpoints = tx.open_table(CHECKPOINTS).map_err(|e| self.err(e))?;
            checkpoints.remove(doc).map_err(|e| self.err(e))?;
            let mut states = tx.open_table(SYNC_STATES).map_err(|e| self.err(e))?;
            states
                .retain(|(_, d), _| d != doc)
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Replaces every chunk of one document by one full save (compaction), in one
    /// transaction; with a checkpoint, stores it and drops the change signatures it
    /// covers (`covered`) in the same transaction, so a crash never leaves a change
    /// with neither proof.
    pub fn replace_chunks(
        &mut self,
        doc: &[u8],
        full: &[u8],
        checkpoint: Option<&[u8]>,
        dropped_signatures: &[[u8; 32]],
    ) -> Result<(), StoreError> {
        let tx = self.db()?.begin_write().map_err(|e| self.err(e))?;
        {
            let mut chunks = tx.open_table(DOC_CHUNKS).map_err(|e| self.err(e))?;
            chunks
                .retain_in((doc, 0u64)..=(doc, u64::MAX), |_, _| false)
                .map_err(|e| self.err(e))?;
            chunks.insert((doc, 0u64), full).map_err(|e| self.err(e))?;
            if let Some(checkpoint) = checkpoint {
                let mut table = tx.open_table(CHECKPOINTS).map_err(|e| self.err(e))?;
                table.insert(doc, checkpoint).map_err(|e| self.err(e))?;
            }
            if !dropped_signatures.is_empty() {
                let mut sigs = tx.open_table(CHANGE_SIGS).map_err(|e| self.err(e))?;
                for h in dropped_signatures {
                    sigs.remove((doc, h.as_slice())).map_err(|e| self.err(e))?;
                }
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        // Give the freed pages back to the file system; harmless if it cannot run now.
        // A running flusher shares the database: then the next compaction does it.
        if let Some(db) = self.db.as_mut().and_then(Arc::get_mut)
            && let Err(e) = db.compact()
        {
            tracing::debug!("redb compaction skipped: {e}");
        }
        Ok(())
    }

    /// Chunk count and sizes of one document, and the store file's size.
    pub fn stats(&self, doc: &[u8]) -> Result<StoreStats, StoreError> {
        let (chunks, chunk_bytes) = self.chunk_stats(doc)?;
        Ok(StoreStats {
            chunks,
            chunk_bytes,
            file_bytes: std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0),
        })
    }

    /// Chunk count and bytes of one document (what every commit checks to decide on
    /// compaction: no file metadata).
    pub fn chunk_stats(&self, doc: &[u8]) -> Result<(u64, u64), StoreError> {
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(DOC_CHUNKS).map_err(|e| self.err(e))?;
        let (mut chunks, mut chunk_bytes) = (0u64, 0u64);
        for row in table
            .range((doc, 0u64)..=(doc, u64::MAX))
            .map_err(|e| self.err(e))?
        {
            let (_, v) = row.map_err(|e| self.err(e))?;
            chunks += 1;
            chunk_bytes += v.value().len() as u64;
        }
        Ok((chunks, chunk_bytes))
    }
}

/// What [`Store::recover`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// Nothing had failed.
    NotNeeded,
    /// The store was reopened as of its last durable commit.
    Reopened {
        /// Lazy commits ([`Batch::lazy`]) made after it are gone.
        lost_lazy_commits: bool,
    },
}

/// One atomic write to the store; see [`Store::commit`].
#[derive(Debug, Default)]
pub struct Batch<'a> {
    /// `(document key, chunk)`: chunks to append.
    pub chunks: &'a [(&'a [u8], &'a [u8])],
    /// `(peer, document key, state)`: sync states to store.
    pub sync_states: &'a [(&'a [u8], &'a [u8], &'a [u8])],
    /// Projects to delete (with their stat cache).
    pub remove_projects: &'a [String],
    /// `(project, spec, key)`: stat cache entries to set (`Some`) or delete (`None`).
    pub stat_updates: &'a [(&'a str, &'a str, Option<StatKey>)],
    /// `(document key, change hash, signer ‖ signature)`: change signatures to store.
    pub signatures: &'a [(&'a [u8], [u8; 32], [u8; 96])],
    /// `(document key, checkpoint)`: received checkpoints to store (replacing one).
    pub checkpoints: &'a [(&'a [u8], &'a [u8])],
    /// Commit without waiting for the disk (`Durability::None`): a crash may lose it,
    /// with every lazy commit after the last durable one, and the store is then as of
    /// that durable commit (consistent). Only for what can be fetched again from its
    /// owner: replicas of other machines' documents, their signatures, sync states;
    /// and for this machine's own changes only when nothing can send them before they
    /// are durable (`machine::own_flush`: a lost, already sent change would come back
    /// under the same sequence number with other content). Never for the mesh.
    pub lazy: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_records_keep_the_format_they_always_had() {
        // A record as format 1 wrote it (the id as a byte array) still reads, and a
        // record written now is byte-for-byte in that format.
        let id = MachineId::from_bytes([7; 32]);
        let old = format!(
            r#"{{"id":{:?},"addrs":["127.0.0.1:1"],"relays":[],"last_seen":5}}"#,
            [7u8; 32]
        )
        .replace(' ', "");
        let record: PeerRecord = serde_json::from_str(&old).expect("old record");
        assert_eq!(record.id, id);
        assert_eq!(record.last_seen, 5);
        assert_eq!(serde_json::to_string(&record).expect("json"), old);
        let short = r#"{"id":[1,2,3],"addrs":[],"relays":[],"last_seen":0}"#;
        assert!(serde_json::from_str::<PeerRecord>(short).is_err());
    }

    /// Issue 38: the replay guard forgets expired ids through its expiry index, and a
    /// store from before the index gets it built on first use.
    #[test]
    fn the_replay_guard_forgets_by_expiry_and_indexes_an_old_store() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("store.redb");
        let store = Store::open(&path).expect("open");
        assert!(store.mark_op_seen(b"a", 100, 0).expect("mark"));
        assert!(!store.mark_op_seen(b"a", 100, 0).expect("mark"), "a replay");
        assert!(store.mark_op_seen(b"b", 300, 0).expect("mark"));
        // At 200, "a" has expired: forgotten (it may be seen again), "b" is kept.
        assert!(store.mark_op_seen(b"c", 400, 200).expect("mark"));
        assert!(
            store.mark_op_seen(b"a", 500, 200).expect("mark"),
            "forgotten"
        );
        assert!(!store.mark_op_seen(b"b", 500, 200).expect("mark"), "kept");
        // An old store: rows in `ops_seen` only.
        {
            let tx = store.db().expect("db").begin_write().expect("tx");
            tx.open_table(OPS_SEEN_BY_EXPIRY)
                .expect("index")
                .retain(|_, ()| false)
                .expect("empty");
            tx.commit().expect("commit");
        }
        assert!(store.mark_op_seen(b"d", 900, 450).expect("mark"));
        for (id, seen) in [(b"a", true), (b"b", false), (b"c", false), (b"d", true)] {
            assert_eq!(
                !store.mark_op_seen(id, 900, 450).expect("mark"),
                seen,
                "{}",
                String::from_utf8_lossy(id)
            );
        }
    }

    /// Child half of the crash test: commits, then dies without closing the store.
    fn crash_child(path: &Path, flush: bool) -> ! {
        let store = Store::open(path).expect("child opens");
        let durable = Batch {
            chunks: &[(b"d".as_slice(), b"durable".as_slice())],
            ..Default::default()
        };
        store.commit(durable).expect("durable commit");
        assert!(!store.has_unflushed());
        let lazy = Batch {
            chunks: &[(b"d".as_slice(), b"lazy".as_slice())],
            lazy: true,
            ..Default::default()
        };
        store.commit(lazy).expect("lazy commit");
        assert!(store.has_unflushed());
        // Visible at once in this process, before any flush.
        assert_eq!(store.doc_chunks(b"d").expect("read").len(), 2);
        if flush {
            store.flush().expect("flush");
            assert!(!store.has_unflushed());
        }
        std::process::abort()
    }

    #[test]
    fn a_crash_keeps_every_durable_and_flushed_commit_and_the_store_opens() {
        const CHILD: &str = "LEANSPEC_STORE_CRASH_CHILD";
        if let Some(path) = std::env::var_os(CHILD) {
            crash_child(Path::new(&path), std::env::var_os("FLUSH").is_some());
        }
        let dir = tempfile::tempdir().expect("dir");
        for flush in [false, true] {
            let path = dir.path().join(format!("s{flush}.redb"));
            let mut child = std::process::Command::new(std::env::current_exe().expect("exe"));
            child
                .args([
                    "--exact",
                    "store::tests::a_crash_keeps_every_durable_and_flushed_commit_and_the_store_opens",
                    "--test-threads=1",
                ])
                .env(CHILD, &path)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            if flush {
                child.env("FLUSH", "1");
            }
            let status = child.status().expect("child runs");
            use std::os::unix::process::ExitStatusExt;
            // SIGABRT: the child got through every assertion and died without closing.
            assert_eq!(status.signal(), Some(6), "child: {status:?}");
            let store = Store::open(&path).expect("the store opens after a crash");
            let chunks = store.doc_chunks(b"d").expect("read");
            assert_eq!(
                chunks.first().map(Vec::as_slice),
                Some(b"durable".as_slice())
            );
            if flush {
                assert_eq!(chunks.len(), 2, "a flushed lazy commit survives a crash");
            } else {
                // Unflushed: either gone or kept (the page cache may have it); never
                // anything else.
                assert!(chunks.len() <= 2);
            }
        }
    }

    #[test]
    fn one_peer_is_found_by_its_id() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("store.redb")).expect("open");
        let (a, b) = (
            MachineId::from_bytes([1; 32]),
            MachineId::from_bytes([2; 32]),
        );
        store
            .put_peer(&PeerRecord {
                last_seen: 9,
                ..PeerRecord::new(a)
            })
            .expect("put");
        assert_eq!(store.peer(a).expect("read").map(|r| r.last_seen), Some(9));
        assert_eq!(store.peer(b).expect("read"), None);
        assert_eq!(store.peers().expect("all").len(), 1);
    }
}
