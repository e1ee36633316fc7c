//! This machine: its home folder, identity, store and document, and the operations the
//! shells call (init, projects, scan, queries). The CLI and (later) the daemon and the
//! bindings go through this type only.

use crate::doc::{DocError, MachineDoc, MachineInfo};
use crate::identity::{Identity, IdentityError, MachineId};
use crate::mesh::MeshDoc;
use crate::spec::{self, Priority, Spec, Status};
use crate::store::{Batch, ProjectRecord, STORE_FILE, StatKey, Store, StoreError};
use crate::tracked::Tracked;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Errors of machine operations. Each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `init` has not been run for this home.
    #[error("no machine in {} yet: run `leanspec-peer init` (or pass --home)", home.display())]
    NotInitialized {
        /// The home folder.
        home: PathBuf,
    },
    /// Identity failure.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Document failure.
    #[error("{0}; the store may be damaged: move it aside and run `leanspec-peer init`")]
    Doc(#[from] DocError),
    /// A folder could not be used.
    #[error("cannot use {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No specs folder in a project folder.
    #[error("no specs folder in {}: expected one of specs/, .lean-spec/specs/, docs/specs/, doc/specs/ or specsDir in .lean-spec/config.json", root.display())]
    NoSpecsDir {
        /// The project root.
        root: PathBuf,
    },
    /// Another project already has this name.
    #[error("a project named {name:?} already exists ({}); pass --name to choose another", root.display())]
    NameTaken {
        /// The name.
        name: String,
        /// The other project's root.
        root: PathBuf,
    },
    /// No project matches.
    #[error(
        "no project {selector:?} on this machine (projects: {known}); see `leanspec-peer project list`"
    )]
    UnknownProject {
        /// What was asked for.
        selector: String,
        /// Known project names.
        known: String,
    },
    /// No machine matches.
    #[error("no machine {selector:?} (known: {known}); see `leanspec-peer status`")]
    UnknownMachine {
        /// What was asked for.
        selector: String,
        /// Known machines.
        known: String,
    },
    /// No spec matches.
    #[error(
        "no spec {selector:?} in project {project}; see `leanspec-peer specs --project {project}`"
    )]
    UnknownSpec {
        /// What was asked for.
        selector: String,
        /// The project name.
        project: String,
    },
    /// Several specs match.
    #[error("{selector:?} matches several specs: {candidates}; use the full name")]
    AmbiguousSpec {
        /// What was asked for.
        selector: String,
        /// The matches.
        candidates: String,
    },
    /// A label that cannot be used.
    #[error("invalid label {0:?}: use 1 to 64 characters without control characters")]
    InvalidLabel(String),
    /// Joining another mesh while this machine already has peers.
    #[error(
        "this machine is already paired with {members} other machine(s); two meshes are not merged: revoke them first or use another --home"
    )]
    AlreadyInMesh {
        /// Other members.
        members: usize,
    },
}

/// One machine as this machine knows it (presence comes from the network layer).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MachineRow {
    /// Machine id.
    pub id: MachineId,
    /// Label.
    pub label: String,
    /// This machine.
    pub is_self: bool,
    /// Revoked from the mesh.
    pub revoked: bool,
    /// Software version in its document.
    pub version: String,
    /// OS in its document.
    pub os: String,
    /// Projects in its document.
    pub projects: usize,
    /// Specs in its document.
    pub specs: usize,
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A project of this machine, with its local paths.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Project {
    /// Stable id (also the key in the replicated document).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Root folder on this machine.
    pub root: PathBuf,
    /// The specs folder found now, if any.
    pub specs_dir: Option<PathBuf>,
    /// Specs in the document.
    pub specs: usize,
}

/// Progress of a scan, reported to a callback.
#[derive(Debug, Clone, Copy)]
pub struct ScanProgress<'a> {
    /// Project being scanned.
    pub project: &'a str,
    /// Spec folders handled so far.
    pub done: usize,
    /// Spec folders found.
    pub total: usize,
}

/// What a scan of one project did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProjectScan {
    /// Project id.
    pub id: String,
    /// Project name.
    pub name: String,
    /// Specs found on disk.
    pub specs: usize,
    /// Specs new to the document.
    pub added: usize,
    /// Specs whose record changed.
    pub updated: usize,
    /// Specs removed from the document.
    pub removed: usize,
    /// Specs whose files were read (the rest were unchanged by their stat).
    pub read: usize,
    /// Specs with a parse error.
    pub parse_errors: usize,
    /// Skipped folders and files, with the reason.
    pub warnings: Vec<String>,
}

/// What a scan did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanReport {
    /// Per project.
    pub projects: Vec<ProjectScan>,
    /// Bytes of the Automerge change this scan stored (0: nothing changed).
    pub change_bytes: usize,
}

/// Filter for [`Machine::specs`].
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SpecFilter {
    /// Machine id, short id or label.
    pub machine: Option<String>,
    /// Project id or name.
    pub project: Option<String>,
    /// Only this status.
    pub status: Option<Status>,
    /// Only this priority.
    pub priority: Option<Priority>,
    /// Only specs with this tag.
    pub tag: Option<String>,
}

/// One spec with the machine and project it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpecRow {
    /// Machine id (hex).
    pub machine: String,
    /// Machine label.
    pub machine_label: String,
    /// Project id.
    pub project_id: String,
    /// Project name.
    pub project: String,
    /// The spec.
    pub spec: Spec,
}

/// The machine's description for `status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MachineSummary {
    /// Full id.
    pub id: MachineId,
    /// Label.
    pub label: String,
    /// Software version.
    pub version: String,
    /// OS.
    pub os: String,
}

/// When to fold the incremental chunks into one full save: once they outweigh the
/// snapshot (so the stored size stays within ~2x a full save) or there are many.
/// Small documents are not compacted below this many incremental bytes.
const COMPACT_MIN_BYTES: u64 = 4096;
const COMPACT_MAX_CHUNKS: u64 = 512;

/// Which document: the mesh or one machine's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocKey {
    /// The membership document.
    Mesh,
    /// A machine's document.
    Machine(MachineId),
}

impl DocKey {
    /// The store and wire form: `b"mesh"` or the 32-byte machine id.
    pub fn to_bytes(self) -> Vec<u8> {
        match self {
            DocKey::Mesh => b"mesh".to_vec(),
            DocKey::Machine(id) => id.as_bytes().to_vec(),
        }
    }

    /// Parses [`DocKey::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Option<DocKey> {
        if b == b"mesh" {
            return Some(DocKey::Mesh);
        }
        <[u8; 32]>::try_from(b)
            .ok()
            .map(|a| DocKey::Machine(MachineId::from_bytes(a)))
    }
}

/// Why a sync message from a peer was not applied (the document is unchanged).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The document is not one this machine shares with members.
    #[error("unknown document")]
    UnknownDoc,
    /// The message was malformed or carried changes that are not allowed.
    #[error(transparent)]
    Refused(#[from] crate::tracked::ReceiveError),
    /// Storing the result failed.
    #[error(transparent)]
    Machine(#[from] Error),
}

/// A change seen in a document, for events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocChange {
    /// A spec was added or changed (`fields`: the document keys that changed; empty when
    /// the spec was added whole).
    SpecChanged {
        /// Machine that owns the spec.
        machine: MachineId,
        /// Project id.
        project: String,
        /// Spec name.
        spec: String,
        /// Changed fields.
        fields: Vec<String>,
    },
    /// A spec was removed.
    SpecRemoved {
        /// Machine that owns the spec.
        machine: MachineId,
        /// Project id.
        project: String,
        /// Spec name.
        spec: String,
    },
    /// The mesh changed (members, labels, revocations).
    MeshChanged,
}

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
        store.set_meta("machine_id", identity.id().as_bytes())?;
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
        };
        m.store_docs(&[DocKey::Machine(m.id()), DocKey::Mesh], &[], &[], &[])?;
        Ok((m, true))
    }

    /// Opens the machine in `home`.
    pub fn open(home: &Path) -> Result<Machine> {
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
        if let Some(owner) = store.meta("machine_id")?
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
        let mesh = mesh.unwrap_or_else(|| MeshDoc::new(me, &info.label, now_secs()));
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
        };
        m.store_docs(&[DocKey::Machine(me), DocKey::Mesh], &[], &[], &[])?;
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
        let mut info = self.doc.machine_info();
        info.label = label.to_string();
        self.doc.set_machine_info(&info);
        self.mesh.rename(self.id(), label);
        self.store_docs(&[DocKey::Machine(self.id()), DocKey::Mesh], &[], &[], &[])
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

    fn tracked(&mut self, key: DocKey) -> Option<&mut Tracked> {
        match key {
            DocKey::Mesh => Some(self.mesh.tracked()),
            DocKey::Machine(id) if id == self.identity.id() => Some(self.doc.tracked()),
            DocKey::Machine(id) => self.replicas.get_mut(&id).map(MachineDoc::tracked),
        }
    }

    /// Commits pending writes of our own documents, and stores the new chunks of `keys`
    /// with the stat cache updates, project removals and sync states in one
    /// transaction; compacts documents whose chunks outgrow their snapshot. Returns the
    /// bytes of the chunks written.
    fn store_docs(
        &mut self,
        keys: &[DocKey],
        stat_updates: &[(&str, &str, Option<StatKey>)],
        remove_projects: &[String],
        sync_states: &[(&[u8], &[u8], &[u8])],
    ) -> Result<usize> {
        let now = now_secs();
        self.doc.commit(now);
        self.mesh.commit(now);
        let mut owned: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for key in keys {
            if let Some(t) = self.tracked(*key) {
                let chunk = t.save_incremental();
                if !chunk.is_empty() {
                    owned.push((key.to_bytes(), chunk));
                }
            }
        }
        if owned.is_empty()
            && stat_updates.is_empty()
            && remove_projects.is_empty()
            && sync_states.is_empty()
        {
            return Ok(0);
        }
        let chunks: Vec<(&[u8], &[u8])> = owned
            .iter()
            .map(|(k, c)| (k.as_slice(), c.as_slice()))
            .collect();
        self.store.commit(Batch {
            chunks: &chunks,
            sync_states,
            remove_projects,
            stat_updates,
        })?;
        let bytes = owned.iter().map(|(_, c)| c.len()).sum();
        for key in keys {
            self.maybe_compact(*key)?;
        }
        Ok(bytes)
    }

    fn maybe_compact(&mut self, key: DocKey) -> Result<()> {
        let stats = self.store.stats(&key.to_bytes())?;
        let snapshot = self.snapshot_bytes.get(&key).copied().unwrap_or(0);
        let incremental = stats.chunk_bytes.saturating_sub(snapshot);
        if stats.chunks >= COMPACT_MAX_CHUNKS || incremental > snapshot.max(COMPACT_MIN_BYTES) {
            self.compact_doc(key)?;
        }
        Ok(())
    }

    fn compact_doc(&mut self, key: DocKey) -> Result<()> {
        let Some(t) = self.tracked(key) else {
            return Ok(());
        };
        let full = t.save();
        self.store.replace_chunks(&key.to_bytes(), &full)?;
        self.snapshot_bytes.insert(key, full.len() as u64);
        Ok(())
    }

    /// Folds every stored chunk of this machine's document into one full save.
    pub fn compact(&mut self) -> Result<()> {
        self.compact_doc(DocKey::Machine(self.id()))
    }

    /// Stats of this machine's stored document.
    pub fn doc_stats(&self) -> Result<crate::store::StoreStats> {
        Ok(self.store.stats(self.id().as_bytes())?)
    }

    fn project_id(&self, root: &Path) -> String {
        let mut bytes = self.id().as_bytes().to_vec();
        bytes.extend_from_slice(root.as_os_str().as_encoded_bytes());
        spec::sha256_hex(&bytes)[..16].to_string()
    }

    /// Every project, sorted by name.
    pub fn projects(&self) -> Result<Vec<Project>> {
        let mut out: Vec<Project> = self
            .store
            .projects()?
            .into_iter()
            .map(|r| Project {
                specs: self.doc.spec_count(&r.id),
                specs_dir: spec::find_specs_dir(&r.root),
                id: r.id,
                name: r.name,
                root: r.root,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// A project by id, name or root path.
    pub fn project(&self, selector: &str) -> Result<Project> {
        let projects = self.projects()?;
        let as_path = fs::canonicalize(selector).ok();
        projects
            .iter()
            .find(|p| {
                p.id == selector
                    || p.name == selector
                    || as_path.as_deref() == Some(p.root.as_path())
            })
            .cloned()
            .ok_or_else(|| Error::UnknownProject {
                selector: selector.to_string(),
                known: known(projects.iter().map(|p| p.name.as_str())),
            })
    }

    /// Adds a project folder (idempotent for the same folder) and scans it.
    pub fn add_project(
        &mut self,
        dir: &Path,
        name: Option<&str>,
    ) -> Result<(Project, ProjectScan)> {
        let root = fs::canonicalize(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        if !root.is_dir() {
            return Err(Error::Io {
                path: root,
                source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a folder"),
            });
        }
        if spec::find_specs_dir(&root).is_none() {
            return Err(Error::NoSpecsDir { root });
        }
        let id = self.project_id(&root);
        let name = match name {
            Some(n) => {
                check_label(n)?;
                n.to_string()
            }
            None => root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "project".into()),
        };
        if let Some(other) = self
            .projects()?
            .into_iter()
            .find(|p| p.name == name && p.id != id)
        {
            return Err(Error::NameTaken {
                name,
                root: other.root,
            });
        }
        self.store.put_project(&ProjectRecord {
            id: id.clone(),
            name: name.clone(),
            root: root.clone(),
        })?;
        self.doc.put_project(&id, &name);
        self.store_docs(&[DocKey::Machine(self.id())], &[], &[], &[])?;
        let scan = self.scan_project(&id, &mut |_| {})?;
        Ok((self.project(&id)?, scan))
    }

    /// Removes a project from this machine (the files are not touched).
    pub fn remove_project(&mut self, selector: &str) -> Result<Project> {
        let project = self.project(selector)?;
        self.doc.remove_project(&project.id);
        self.store_docs(
            &[DocKey::Machine(self.id())],
            &[],
            std::slice::from_ref(&project.id),
            &[],
        )?;
        Ok(project)
    }

    /// Scans every project.
    pub fn scan(&mut self, progress: &mut dyn FnMut(ScanProgress<'_>)) -> Result<ScanReport> {
        let mut report = ScanReport::default();
        for p in self.store.projects()? {
            let (scan, bytes) = self.scan_inner(&p, progress)?;
            report.change_bytes += bytes;
            report.projects.push(scan);
        }
        Ok(report)
    }

    /// Scans one project by id.
    pub fn scan_project(
        &mut self,
        id: &str,
        progress: &mut dyn FnMut(ScanProgress<'_>),
    ) -> Result<ProjectScan> {
        let record = self
            .store
            .projects()?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| Error::UnknownProject {
                selector: id.to_string(),
                known: String::new(),
            })?;
        Ok(self.scan_inner(&record, progress)?.0)
    }

    fn scan_inner(
        &mut self,
        p: &ProjectRecord,
        progress: &mut dyn FnMut(ScanProgress<'_>),
    ) -> Result<(ProjectScan, usize)> {
        let mut scan = ProjectScan {
            id: p.id.clone(),
            name: p.name.clone(),
            ..ProjectScan::default()
        };
        self.doc.put_project(&p.id, &p.name);
        // A missing folder is most often an unmounted disk or a moved checkout: keep the
        // last known specs rather than announce them all deleted.
        let Some(specs_dir) = spec::find_specs_dir(&p.root) else {
            scan.warnings.push(format!(
                "{} has no specs folder now (moved or unmounted?); keeping the last scanned specs",
                p.root.display()
            ));
            scan.specs = self.doc.spec_count(&p.id);
            return Ok((scan, 0));
        };
        let walk = spec::walk(&specs_dir);
        scan.warnings.extend(walk.warnings);
        scan.specs = walk.specs.len();
        let cache = self.store.stat_cache(&p.id)?;
        let in_doc: std::collections::HashSet<String> =
            self.doc.spec_names(&p.id).into_iter().collect();
        let now = now_ns();

        // Decide, by stat alone, which folders must be read.
        let mut to_read: Vec<(usize, Option<StatKey>)> = Vec::new();
        for (i, folder) in walk.specs.iter().enumerate() {
            let key = stat_key(&folder.dir);
            let trusted = key.filter(|k| !k.is_racy(now));
            let unchanged = in_doc.contains(&folder.name)
                && trusted.is_some()
                && cache.get(&folder.name) == trusted.as_ref();
            if !unchanged {
                to_read.push((i, trusted));
            }
        }
        scan.read = to_read.len();
        let total = walk.specs.len();
        progress(ScanProgress {
            project: &p.name,
            done: total - to_read.len(),
            total,
        });

        // Read and parse in parallel (pure work), then write to the document in order.
        let loaded = load_parallel(&walk.specs, &to_read, &mut |done| {
            progress(ScanProgress {
                project: &p.name,
                done: total - to_read.len() + done,
                total,
            })
        });
        let mut updates: Vec<(&str, &str, Option<StatKey>)> = Vec::new();
        let mut warnings = Vec::new();
        let mut new_specs = Vec::new();
        for ((i, key), (spec, w)) in to_read.iter().zip(loaded) {
            warnings.extend(w);
            let name = walk.specs[*i].name.as_str();
            scan.parse_errors += usize::from(spec.parse_error.is_some());
            if !in_doc.contains(name) {
                scan.added += 1;
                new_specs.push(spec);
            } else if self.doc.put_spec(&p.id, &spec) > 0 {
                scan.updated += 1;
            }
            updates.push((&p.id, name, *key));
        }
        self.doc.insert_specs(&p.id, &new_specs);
        scan.warnings.extend(warnings);
        let on_disk: std::collections::HashSet<&str> =
            walk.specs.iter().map(|f| f.name.as_str()).collect();
        for name in &in_doc {
            if !on_disk.contains(name.as_str()) {
                self.doc.remove_spec(&p.id, name);
                scan.removed += 1;
                updates.push((&p.id, name, None));
            }
        }
        // Specs not read this time keep the parse error the document holds.
        let read: std::collections::HashSet<usize> = to_read.iter().map(|(i, _)| *i).collect();
        scan.parse_errors += walk
            .specs
            .iter()
            .enumerate()
            .filter(|(i, f)| !read.contains(i) && self.doc.has_parse_error(&p.id, &f.name))
            .count();
        let bytes = self.store_docs(&[DocKey::Machine(self.id())], &updates, &[], &[])?;
        Ok((scan, bytes))
    }

    /// Rescans one spec folder (the watcher's path): reads it, writes what changed,
    /// removes it if the folder is gone. Returns the bytes of the stored change.
    pub fn rescan_spec(&mut self, project_id: &str, name: &str) -> Result<usize> {
        let record = self
            .store
            .projects()?
            .into_iter()
            .find(|p| p.id == project_id)
            .ok_or_else(|| Error::UnknownProject {
                selector: project_id.to_string(),
                known: String::new(),
            })?;
        let Some(specs_dir) = spec::find_specs_dir(&record.root) else {
            return Ok(0);
        };
        let dir = specs_dir.join(name);
        let update = if dir.join("README.md").symlink_metadata().is_ok() {
            let mut warnings = Vec::new();
            let spec = spec::load(name, &dir, &mut warnings);
            self.doc.put_spec(project_id, &spec);
            stat_key(&dir).filter(|k| !k.is_racy(now_ns()))
        } else {
            self.doc.remove_spec(project_id, name);
            None
        };
        self.store_docs(
            &[DocKey::Machine(self.id())],
            &[(project_id, name, update)],
            &[],
            &[],
        )
    }

    /// The machine document of `id` (ours or a replica).
    fn machine_doc(&self, id: MachineId) -> Option<&MachineDoc> {
        if id == self.id() {
            Some(&self.doc)
        } else {
            self.replicas.get(&id)
        }
    }

    /// The label of machine `id`: the mesh's, else its document's, else its short id.
    pub fn machine_label(&self, id: MachineId) -> String {
        self.mesh
            .member(id)
            .map(|m| m.label)
            .or_else(|| {
                self.machine_doc(id)
                    .map(|d| d.machine_info().label)
                    .filter(|l| !l.is_empty())
            })
            .unwrap_or_else(|| id.short())
    }

    /// Every machine this one knows (itself first, then by label).
    pub fn machines(&self) -> Vec<MachineRow> {
        let mut ids: Vec<MachineId> = vec![self.id()];
        for m in self.mesh.members() {
            if !ids.contains(&m.id) {
                ids.push(m.id);
            }
        }
        for id in self.replicas.keys() {
            if !ids.contains(id) {
                ids.push(*id);
            }
        }
        let mut rows: Vec<MachineRow> = ids
            .into_iter()
            .map(|id| {
                let doc = self.machine_doc(id);
                let info = doc.map(MachineDoc::machine_info);
                let projects = doc.map(MachineDoc::projects).unwrap_or_default();
                MachineRow {
                    id,
                    label: self.machine_label(id),
                    is_self: id == self.id(),
                    revoked: self.mesh.member(id).is_some_and(|m| m.revoked_at.is_some()),
                    version: info.as_ref().map(|i| i.version.clone()).unwrap_or_default(),
                    os: info.map(|i| i.os).unwrap_or_default(),
                    specs: doc.map_or(0, |d| projects.iter().map(|p| d.spec_count(&p.id)).sum()),
                    projects: projects.len(),
                }
            })
            .collect();
        rows[1..].sort_by(|a, b| a.label.cmp(&b.label));
        rows
    }

    /// A machine by full id, short id or label.
    pub fn find_machine(&self, selector: &str) -> Result<MachineId> {
        let rows = self.machines();
        let hits: Vec<&MachineRow> = rows
            .iter()
            .filter(|r| {
                r.id.to_string() == selector || r.id.short() == selector || r.label == selector
            })
            .collect();
        match hits.as_slice() {
            [one] => Ok(one.id),
            _ => Err(Error::UnknownMachine {
                selector: selector.to_string(),
                known: rows
                    .iter()
                    .map(|r| format!("{} ({})", r.label, r.id.short()))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Specs matching `filter` on every known machine (this one first), sorted by
    /// project name then spec name within each machine.
    pub fn specs(&self, filter: &SpecFilter) -> Result<Vec<SpecRow>> {
        let machines = match &filter.machine {
            Some(sel) => vec![self.find_machine(sel)?],
            None => self.machines().into_iter().map(|r| r.id).collect(),
        };
        let mut out = Vec::new();
        for id in machines {
            let Some(doc) = self.machine_doc(id) else {
                continue;
            };
            let label = self.machine_label(id);
            let mut projects = doc.projects();
            projects.sort_by(|a, b| a.name.cmp(&b.name));
            if let Some(sel) = &filter.project {
                projects.retain(|p| p.id == *sel || p.name == *sel);
                if projects.is_empty()
                    && (filter.machine.is_some() || id == self.id())
                    && self.machines().len() == 1
                {
                    return Err(Error::UnknownProject {
                        selector: sel.clone(),
                        known: known(doc.projects().iter().map(|p| p.name.as_str())),
                    });
                }
            }
            for p in projects {
                for spec in doc.specs(&p.id) {
                    if filter.status.is_some_and(|s| spec.status != Some(s))
                        || filter.priority.is_some_and(|pr| spec.priority != Some(pr))
                        || filter.tag.as_ref().is_some_and(|t| !spec.tags.contains(t))
                    {
                        continue;
                    }
                    out.push(SpecRow {
                        machine: id.to_string(),
                        machine_label: label.clone(),
                        project_id: p.id.clone(),
                        project: p.name.clone(),
                        spec,
                    });
                }
            }
        }
        Ok(out)
    }

    /// One spec by project (id, name or path) and spec (full name, number or slug), on
    /// this machine or, with `machine`, on another.
    pub fn spec_on(&self, machine: Option<&str>, project: &str, selector: &str) -> Result<SpecRow> {
        let id = match machine {
            Some(m) => self.find_machine(m)?,
            None => self.id(),
        };
        let doc = self.machine_doc(id).ok_or_else(|| Error::UnknownMachine {
            selector: id.short(),
            known: String::new(),
        })?;
        let projects = doc.projects();
        let canonical = fs::canonicalize(project).ok();
        let local_root = |pid: &str| {
            (id == self.id())
                .then(|| self.store.projects().ok())
                .flatten()
                .and_then(|ps| ps.into_iter().find(|p| p.id == pid))
                .map(|p| p.root)
        };
        let p = projects
            .iter()
            .find(|p| {
                p.id == project
                    || p.name == project
                    || (canonical.is_some() && local_root(&p.id) == canonical)
            })
            .ok_or_else(|| Error::UnknownProject {
                selector: project.to_string(),
                known: known(projects.iter().map(|p| p.name.as_str())),
            })?;
        let names = doc.spec_names(&p.id);
        let name = resolve_spec(&names, selector, &p.name)?;
        let spec = doc.spec(&p.id, &name).ok_or_else(|| Error::UnknownSpec {
            selector: selector.to_string(),
            project: p.name.clone(),
        })?;
        Ok(SpecRow {
            machine: id.to_string(),
            machine_label: self.machine_label(id),
            project_id: p.id.clone(),
            project: p.name.clone(),
            spec,
        })
    }

    /// One spec of this machine.
    pub fn spec(&self, project: &str, selector: &str) -> Result<SpecRow> {
        self.spec_on(None, project, selector)
    }

    // ---- replication -------------------------------------------------------------

    /// The documents shared with members: the mesh, then every member's document.
    pub fn sync_keys(&self) -> Vec<DocKey> {
        let mut keys = vec![DocKey::Mesh, DocKey::Machine(self.id())];
        for m in self.mesh.members() {
            if m.id != self.id() {
                keys.push(DocKey::Machine(m.id));
            }
        }
        keys
    }

    pub(crate) fn is_shared(&self, key: DocKey) -> bool {
        match key {
            DocKey::Mesh => true,
            DocKey::Machine(id) => id == self.id() || self.mesh.member(id).is_some(),
        }
    }

    /// The stored sync state with `peer` for `key` (a fresh one if none or unreadable).
    pub fn sync_state(&self, peer: MachineId, key: DocKey) -> automerge::sync::State {
        self.store
            .sync_state(peer.as_bytes(), &key.to_bytes())
            .ok()
            .flatten()
            .and_then(|b| automerge::sync::State::decode(&b).ok())
            .unwrap_or_default()
    }

    /// Stores sync states (at the end of a session, so a reconnect sends only what is
    /// missing).
    pub fn save_sync_states(
        &mut self,
        peer: MachineId,
        states: &[(DocKey, Vec<u8>)],
    ) -> Result<()> {
        let keys: Vec<Vec<u8>> = states.iter().map(|(k, _)| k.to_bytes()).collect();
        let rows: Vec<(&[u8], &[u8], &[u8])> = states
            .iter()
            .zip(&keys)
            .map(|((_, s), k)| (peer.as_bytes().as_slice(), k.as_slice(), s.as_slice()))
            .collect();
        self.store_docs(&[], &[], &[], &rows).map(|_| ())
    }

    fn ensure_replica(&mut self, key: DocKey) {
        if let DocKey::Machine(id) = key
            && id != self.id()
            && !self.replicas.contains_key(&id)
        {
            self.replicas.insert(id, MachineDoc::empty_replica());
        }
    }

    /// The heads of a document (hex), for presence ("in sync").
    pub fn heads(&mut self, key: DocKey) -> Vec<automerge::ChangeHash> {
        self.tracked(key).map(|t| t.heads()).unwrap_or_default()
    }

    /// The next sync message for `key` to a peer, if there is anything to say.
    pub fn generate_sync(
        &mut self,
        key: DocKey,
        state: &mut automerge::sync::State,
    ) -> Option<Vec<u8>> {
        if !self.is_shared(key) {
            return None;
        }
        self.ensure_replica(key);
        self.tracked(key)?.generate_sync(state)
    }

    /// Applies a sync message from `peer` for `key`. Changes to a machine document must
    /// be authored by that machine; changes to the mesh by a machine in it. A refused
    /// message leaves the document as stored. Returns what changed.
    pub fn receive_sync(
        &mut self,
        peer: MachineId,
        key: DocKey,
        state: &mut automerge::sync::State,
        message: &[u8],
    ) -> Result<Vec<DocChange>, SyncError> {
        if !self.is_shared(key) {
            return Err(SyncError::UnknownDoc);
        }
        self.ensure_replica(key);
        let t = self.tracked(key).ok_or(SyncError::UnknownDoc)?;
        let before = t.heads();
        let actors = match t.receive_sync(state, message) {
            Ok(a) => a,
            Err(e) => {
                self.reload(key)?;
                return Err(e.into());
            }
        };
        if actors.is_empty() {
            return Ok(Vec::new());
        }
        let allowed = match key {
            DocKey::Mesh => actors.iter().all(|a| self.mesh.allows_actor(a)),
            DocKey::Machine(id) => actors.iter().all(|a| a.to_bytes() == id.actor_bytes()),
        };
        if !allowed {
            let actor = actors
                .iter()
                .find(|a| match key {
                    DocKey::Mesh => !self.mesh.allows_actor(a),
                    DocKey::Machine(id) => a.to_bytes() != id.actor_bytes(),
                })
                .map(|a| a.to_hex_string())
                .unwrap_or_default();
            self.reload(key)?;
            tracing::warn!(peer = %peer.short(), %actor, "refused changes not authored by the document's owner");
            return Err(crate::tracked::ReceiveError::Unauthorized { actor }.into());
        }
        let changes = match key {
            DocKey::Mesh => vec![DocChange::MeshChanged],
            // A first sync fills an empty replica: list its specs instead of diffing
            // its whole history (the diff costs seconds at 10,000 specs).
            DocKey::Machine(id) if before.is_empty() => self
                .replicas
                .get(&id)
                .map(|d| {
                    d.projects()
                        .into_iter()
                        .flat_map(|p| {
                            d.spec_names(&p.id).into_iter().map(move |spec| {
                                DocChange::SpecChanged {
                                    machine: id,
                                    project: p.id.clone(),
                                    spec,
                                    fields: Vec::new(),
                                }
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            DocKey::Machine(id) => {
                let t = self.tracked(key).ok_or(SyncError::UnknownDoc)?;
                let after = t.heads();
                doc_changes(t, id, &before, &after)
            }
        };
        let state_bytes = state.encode();
        let key_bytes = key.to_bytes();
        self.store_docs(
            &[key],
            &[],
            &[],
            &[(
                peer.as_bytes().as_slice(),
                key_bytes.as_slice(),
                state_bytes.as_slice(),
            )],
        )?;
        Ok(changes)
    }

    /// Reloads one document from the store, dropping anything not stored.
    fn reload(&mut self, key: DocKey) -> Result<()> {
        let chunks = self.store.doc_chunks(&key.to_bytes())?;
        let slices = chunks.iter().map(Vec::as_slice);
        match key {
            DocKey::Mesh => self.mesh = MeshDoc::load(self.id(), slices).map_err(DocError::from)?,
            DocKey::Machine(id) if id == self.id() => self.doc = MachineDoc::load(id, slices)?,
            DocKey::Machine(id) => {
                if chunks.is_empty() {
                    self.replicas.insert(id, MachineDoc::empty_replica());
                } else {
                    self.replicas.insert(id, MachineDoc::load(id, slices)?);
                }
            }
        }
        Ok(())
    }

    /// Changes to this machine's document that `peer` has not acknowledged: counted
    /// from `shared_heads` of a live session, else from the stored sync state.
    pub fn unacknowledged(
        &mut self,
        peer: MachineId,
        shared_heads: Option<&[automerge::ChangeHash]>,
    ) -> usize {
        let stored;
        let heads = match shared_heads {
            Some(h) => h,
            None => {
                stored = self
                    .sync_state(peer, DocKey::Machine(self.id()))
                    .shared_heads;
                &stored
            }
        };
        self.doc.tracked().changes_after(heads)
    }

    /// Counts this machine's starts (store meta `incarnation`, u64 big-endian) and
    /// returns the new count. Peers compare incarnations to replace the connection of
    /// a crashed run at once instead of waiting for it to time out; a counter in the
    /// store, not the clock, so it only ever grows.
    pub fn next_incarnation(&mut self) -> Result<u64> {
        let current = self
            .store
            .meta("incarnation")?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        let next = current.saturating_add(1);
        self.store.set_meta("incarnation", &next.to_be_bytes())?;
        Ok(next)
    }

    /// The port the peer listened on last time (store meta `bind_port`), if any.
    pub fn remembered_port(&self) -> Result<Option<u16>> {
        Ok(self
            .store
            .meta("bind_port")?
            .and_then(|b| <[u8; 2]>::try_from(b.as_slice()).ok())
            .map(u16::from_le_bytes)
            .filter(|p| *p != 0))
    }

    /// Remembers the port the peer listened on (see [`Machine::remembered_port`]).
    pub fn remember_port(&mut self, port: u16) -> Result<()> {
        Ok(self.store.set_meta("bind_port", &port.to_le_bytes())?)
    }

    /// Relay URLs learned from tickets this machine joined with (store meta `relays`).
    pub fn learned_relays(&self) -> Vec<String> {
        self.store
            .meta("relays")
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Remembers relay URLs from a ticket, so `up` uses them without `--relay`.
    pub fn learn_relays(&mut self, relays: &[String]) -> Result<()> {
        let mut all = self.learned_relays();
        for r in relays {
            if !all.contains(r) {
                all.push(r.clone());
            }
        }
        let bytes = serde_json::to_vec(&all).unwrap_or_default();
        Ok(self.store.set_meta("relays", &bytes)?)
    }

    /// The heads of this machine's document (to diff against later).
    pub fn own_heads(&mut self) -> Vec<automerge::ChangeHash> {
        self.doc.tracked().heads()
    }

    /// Spec-level changes to this machine's document since `before`.
    pub fn own_changes_since(&mut self, before: &[automerge::ChangeHash]) -> Vec<DocChange> {
        let me = self.id();
        let t = self.doc.tracked();
        let after = t.heads();
        if after == before {
            return Vec::new();
        }
        doc_changes(t, me, before, &after)
    }

    /// Local project records (with their paths), for the watcher.
    pub fn project_records(&self) -> Result<Vec<ProjectRecord>> {
        Ok(self.store.projects()?)
    }

    // ---- membership --------------------------------------------------------------

    /// Adds a machine to the mesh (after it proved an invitation).
    pub fn add_member(&mut self, id: MachineId, label: &str) -> Result<()> {
        self.mesh.add_member(id, label, self.id(), now_secs());
        self.store_docs(&[DocKey::Mesh], &[], &[], &[]).map(|_| ())
    }

    /// Renames a machine (any member may), replicated through the mesh.
    pub fn rename_machine(&mut self, id: MachineId, label: &str) -> Result<()> {
        check_label(label)?;
        if id == self.id() {
            return self.set_label(label);
        }
        self.mesh.rename(id, label);
        self.store_docs(&[DocKey::Mesh], &[], &[], &[]).map(|_| ())
    }

    /// Revokes a machine, replicated through the mesh.
    pub fn revoke_machine(&mut self, id: MachineId) -> Result<()> {
        self.mesh.revoke(id, self.id(), now_secs());
        self.store_docs(&[DocKey::Mesh], &[], &[], &[]).map(|_| ())
    }

    /// Replaces this machine's mesh by `mesh_bytes` (a full save received when joining).
    /// Allowed only while this machine is alone in its mesh: two meshes are not merged.
    pub fn adopt_mesh(&mut self, mesh_bytes: &[u8]) -> Result<()> {
        let others = self
            .mesh
            .members()
            .iter()
            .filter(|m| m.id != self.id())
            .count();
        if others > 0 {
            return Err(Error::AlreadyInMesh { members: others });
        }
        let mesh = MeshDoc::load(self.id(), [mesh_bytes]).map_err(DocError::from)?;
        self.mesh = mesh;
        let full = self.mesh.tracked().save();
        self.store.replace_chunks(b"mesh", &full)?;
        self.snapshot_bytes.insert(DocKey::Mesh, full.len() as u64);
        Ok(())
    }

    /// A full save of the mesh (sent to a joiner).
    pub fn mesh_bytes(&mut self) -> Vec<u8> {
        self.mesh.tracked().doc.save()
    }
}

/// The spec-level changes of machine `machine`'s document between two heads.
fn doc_changes(
    t: &mut Tracked,
    machine: MachineId,
    before: &[automerge::ChangeHash],
    after: &[automerge::ChangeHash],
) -> Vec<DocChange> {
    t.spec_changes(before, after)
        .into_iter()
        .map(|(project, spec, fields)| match fields {
            Some(fields) => DocChange::SpecChanged {
                machine,
                project,
                spec,
                fields,
            },
            None => DocChange::SpecRemoved {
                machine,
                project,
                spec,
            },
        })
        .collect()
}

fn known<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = names.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Resolves a spec selector: exact name, else the number (`5`, `005`), else the slug
/// or last path component.
fn resolve_spec(names: &[String], selector: &str, project: &str) -> Result<String> {
    if names.iter().any(|n| n == selector) {
        return Ok(selector.to_string());
    }
    let last = |n: &str| n.rsplit('/').next().unwrap_or(n).to_string();
    let matches: Vec<&String> =
        if !selector.is_empty() && selector.bytes().all(|b| b.is_ascii_digit()) {
            let want: u64 = selector.parse().unwrap_or(u64::MAX);
            names
                .iter()
                .filter(|n| {
                    let l = last(n);
                    let digits: String = l.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse::<u64>().ok() == Some(want)
                })
                .collect()
        } else {
            names
                .iter()
                .filter(|n| {
                    let l = last(n);
                    l == selector || l.split_once('-').is_some_and(|(_, slug)| slug == selector)
                })
                .collect()
        };
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::UnknownSpec {
            selector: selector.to_string(),
            project: project.to_string(),
        }),
        many => Err(Error::AmbiguousSpec {
            selector: selector.to_string(),
            candidates: many
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn stat_key(dir: &Path) -> Option<StatKey> {
    let readme = fs::metadata(dir.join("README.md")).ok()?;
    let d = fs::metadata(dir).ok()?;
    Some(StatKey {
        mtime_ns: readme.mtime() * 1_000_000_000 + readme.mtime_nsec(),
        ctime_ns: readme.ctime() * 1_000_000_000 + readme.ctime_nsec(),
        size: readme.size(),
        ino: readme.ino(),
        dir_mtime_ns: d.mtime() * 1_000_000_000 + d.mtime_nsec(),
    })
}

type Loaded = (Spec, Vec<String>);

/// Loads the selected folders on all cores; results come back in input order.
fn load_parallel(
    folders: &[spec::SpecFolder],
    selected: &[(usize, Option<StatKey>)],
    progress: &mut dyn FnMut(usize),
) -> Vec<Loaded> {
    let load_one = |i: usize| {
        let mut w = Vec::new();
        let f = &folders[i];
        (spec::load(&f.name, &f.dir, &mut w), w)
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads <= 1 || selected.len() < 64 {
        let out: Vec<Loaded> = selected.iter().map(|(i, _)| load_one(*i)).collect();
        progress(out.len());
        return out;
    }
    let chunk = selected.len().div_ceil(threads);
    let results: Vec<Vec<Loaded>> = std::thread::scope(|s| {
        let handles: Vec<_> = selected
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|(i, _)| load_one(*i)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let out: Vec<Loaded> = results.into_iter().flatten().collect();
    progress(out.len());
    out
}

/// Short helper for a map of projects by id (used by the shells for lookups).
pub fn by_id(projects: &[Project]) -> HashMap<&str, &Project> {
    projects.iter().map(|p| (p.id.as_str(), p)).collect()
}
