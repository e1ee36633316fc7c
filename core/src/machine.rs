//! This machine: its home folder, identity, store and document, and the operations the
//! shells call (init, projects, scan, queries). The CLI and (later) the daemon and the
//! bindings go through this type only.

use crate::doc::{DocError, MachineDoc, MachineInfo};
use crate::identity::{Identity, IdentityError, MachineId};
use crate::spec::{self, Priority, Spec, Status};
use crate::store::{Batch, ProjectRecord, STORE_FILE, StatKey, Store, StoreError};
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
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A project of this machine, with its local paths.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Per project.
    pub projects: Vec<ProjectScan>,
    /// Bytes of the Automerge change this scan stored (0: nothing changed).
    pub change_bytes: usize,
}

/// Filter for [`Machine::specs`].
#[derive(Debug, Clone, Default)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// This machine.
#[derive(Debug)]
pub struct Machine {
    home: PathBuf,
    identity: Identity,
    store: Store,
    doc: MachineDoc,
    snapshot_bytes: u64,
}

/// The software version written into the document.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn now_secs() -> i64 {
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

fn check_label(label: &str) -> Result<()> {
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
        if !store.doc_chunks()?.is_empty() {
            // A store without its key: refuse rather than mix two identities.
            return Err(Error::Store(StoreError::Corrupt {
                path: store.path().to_path_buf(),
                detail: "it holds a machine document but the machine key is missing".into(),
            }));
        }
        identity.save_new(home)?;
        store.set_meta("machine_id", identity.id().as_bytes())?;
        let info = MachineInfo {
            id: identity.id().to_string(),
            label: label.map_or_else(default_label, str::to_string),
            version: VERSION.into(),
            os: std::env::consts::OS.into(),
        };
        let mut doc = MachineDoc::new(identity.id(), &info, now_secs());
        let full = doc.save();
        store.commit(Batch {
            chunk: Some(&full),
            ..Batch::default()
        })?;
        let snapshot_bytes = full.len() as u64;
        Ok((
            Machine {
                home: home.to_path_buf(),
                identity,
                store,
                doc,
                snapshot_bytes,
            },
            true,
        ))
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
        // The store remembers whose it is: a key copied from another machine (or a
        // store copied from one) must not be mixed into a second identity.
        if let Some(owner) = store.meta("machine_id")? {
            if owner.as_slice() != identity.id().as_bytes() {
                return Err(Error::Store(StoreError::Corrupt {
                    path: store.path().to_path_buf(),
                    detail: format!(
                        "it belongs to machine {}, but machine.key is machine {}",
                        hex::encode(owner.get(..5).unwrap_or(&owner)),
                        identity.id().short()
                    ),
                }));
            }
        }
        let chunks = store.doc_chunks()?;
        let snapshot_bytes = chunks.first().map_or(0, |c| c.len() as u64);
        let mut doc = MachineDoc::load(identity.id(), chunks.iter().map(Vec::as_slice))?;
        // Keep the software version current; a no-op write is not committed.
        let mut info = doc.machine_info();
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
            snapshot_bytes,
        };
        m.persist(&[], &[])?;
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
            label: info.label,
            version: info.version,
            os: info.os,
        }
    }

    /// The label.
    pub fn label(&self) -> String {
        self.doc.machine_info().label
    }

    /// Changes the label.
    pub fn set_label(&mut self, label: &str) -> Result<()> {
        check_label(label)?;
        let mut info = self.doc.machine_info();
        info.label = label.to_string();
        self.doc.set_machine_info(&info);
        self.persist(&[], &[])
    }

    /// Read access to the machine document.
    pub fn doc(&self) -> &MachineDoc {
        &self.doc
    }

    /// The store (sizes, for status and benchmarks).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Commits pending document writes and stores them with `stat_updates` and project
    /// removals in one transaction; compacts when the chunks outgrow the snapshot.
    fn persist(
        &mut self,
        stat_updates: &[(&str, &str, Option<StatKey>)],
        remove_projects: &[String],
    ) -> Result<()> {
        self.persist_sized(stat_updates, remove_projects)
            .map(|_| ())
    }

    fn persist_sized(
        &mut self,
        stat_updates: &[(&str, &str, Option<StatKey>)],
        remove_projects: &[String],
    ) -> Result<usize> {
        self.doc.commit(now_secs());
        let chunk = self.doc.save_incremental();
        if chunk.is_empty() && stat_updates.is_empty() && remove_projects.is_empty() {
            return Ok(0);
        }
        self.store.commit(Batch {
            chunk: Some(&chunk),
            remove_projects,
            stat_updates,
        })?;
        self.maybe_compact()?;
        Ok(chunk.len())
    }

    fn maybe_compact(&mut self) -> Result<()> {
        let stats = self.store.stats()?;
        let incremental = stats.chunk_bytes.saturating_sub(self.snapshot_bytes);
        if stats.chunks >= COMPACT_MAX_CHUNKS
            || incremental > self.snapshot_bytes.max(COMPACT_MIN_BYTES)
        {
            self.compact()?;
        }
        Ok(())
    }

    /// Folds every stored chunk into one full save of the document.
    pub fn compact(&mut self) -> Result<()> {
        let full = self.doc.save();
        self.store.replace_chunks(&full)?;
        self.snapshot_bytes = full.len() as u64;
        Ok(())
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
        self.persist(&[], &[])?;
        let scan = self.scan_project(&id, &mut |_| {})?;
        Ok((self.project(&id)?, scan))
    }

    /// Removes a project from this machine (the files are not touched).
    pub fn remove_project(&mut self, selector: &str) -> Result<Project> {
        let project = self.project(selector)?;
        self.doc.remove_project(&project.id);
        self.persist(&[], std::slice::from_ref(&project.id))?;
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
        let bytes = self.persist_sized(&updates, &[])?;
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
        self.persist_sized(&[(project_id, name, update)], &[])
    }

    /// Specs matching `filter`, sorted by project name then spec name.
    pub fn specs(&self, filter: &SpecFilter) -> Result<Vec<SpecRow>> {
        if let Some(m) = &filter.machine {
            self.check_machine(m)?;
        }
        let projects = match &filter.project {
            Some(sel) => vec![self.project(sel)?],
            None => self.projects()?,
        };
        let info = self.doc.machine_info();
        let mut out = Vec::new();
        for p in projects {
            for spec in self.doc.specs(&p.id) {
                if filter.status.is_some_and(|s| spec.status != Some(s))
                    || filter.priority.is_some_and(|pr| spec.priority != Some(pr))
                    || filter.tag.as_ref().is_some_and(|t| !spec.tags.contains(t))
                {
                    continue;
                }
                out.push(SpecRow {
                    machine: info.id.clone(),
                    machine_label: info.label.clone(),
                    project_id: p.id.clone(),
                    project: p.name.clone(),
                    spec,
                });
            }
        }
        Ok(out)
    }

    /// One spec by project (id, name or path) and spec (full name, number or slug).
    pub fn spec(&self, project: &str, selector: &str) -> Result<SpecRow> {
        let p = self.project(project)?;
        let names = self.doc.spec_names(&p.id);
        let name = resolve_spec(&names, selector, &p.name)?;
        let spec = self
            .doc
            .spec(&p.id, &name)
            .ok_or_else(|| Error::UnknownSpec {
                selector: selector.to_string(),
                project: p.name.clone(),
            })?;
        let info = self.doc.machine_info();
        Ok(SpecRow {
            machine: info.id,
            machine_label: info.label,
            project_id: p.id,
            project: p.name,
            spec,
        })
    }

    /// Checks a machine selector (id, short id or label). Until replication lands this
    /// machine is the only one known.
    pub fn check_machine(&self, selector: &str) -> Result<()> {
        let info = self.doc.machine_info();
        let id = self.id();
        if selector == info.id || selector == id.short() || selector == info.label {
            return Ok(());
        }
        Err(Error::UnknownMachine {
            selector: selector.to_string(),
            known: format!("{} ({})", info.label, id.short()),
        })
    }
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
