//! This machine's projects and scans: adding and removing project folders, the full
//! and single-spec scans (stat cache first, parallel parsing), and their commits.

use super::persist::Commit;
use super::query::known;
use super::scan_memo::ProjectMemo;
use super::{
    DocKey, Error, Machine, Project, ProjectScan, Result, ScanProgress, ScanReport, check_label,
    now_ns,
};
use crate::spec;
use crate::store::{ProjectRecord, StatKey};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

impl Machine {
    pub(super) fn project_id(&self, root: &Path) -> String {
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
                fleet: spec::fleet_id(&r.root, &r.name),
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
        self.doc
            .put_project(&id, &name, &spec::fleet_id(&root, &name));
        self.commit(Commit::docs(&[DocKey::Machine(self.id())]))?;
        let scan = self.scan_project(&id, &mut |_| {})?;
        Ok((self.project(&id)?, scan))
    }

    /// Removes a project from this machine (the files are not touched).
    pub fn remove_project(&mut self, selector: &str) -> Result<Project> {
        let project = self.project(selector)?;
        self.forget_scan();
        self.unreadable.forget_project(&project.id);
        self.doc.remove_project(&project.id);
        self.commit(
            Commit::docs(&[DocKey::Machine(self.id())]).removing(std::slice::from_ref(&project.id)),
        )?;
        Ok(project)
    }

    /// Scans every project.
    /// When nothing changed since the last scan (by stat, with this machine's document
    /// unchanged too), that is known without reading the store or the document
    /// ([`super::scan_memo`]).
    pub fn scan(&mut self, progress: &mut dyn FnMut(ScanProgress<'_>)) -> Result<ScanReport> {
        if let Some(report) = self.scan_unchanged(progress) {
            return Ok(report);
        }
        self.forget_scan();
        let mut report = ScanReport::default();
        let mut memo = Some(Vec::new());
        for p in self.store.projects()? {
            let (scan, bytes, seen) = self.scan_inner(&p, progress)?;
            report.change_bytes += bytes;
            match (memo.as_mut(), seen) {
                (Some(m), Some((specs_dir, stats))) => m.push(ProjectMemo {
                    record: p,
                    specs_dir,
                    stats,
                    report: scan.clone(),
                }),
                _ => memo = None,
            }
            report.projects.push(scan);
        }
        if let Some(m) = memo {
            self.remember_scan(m);
        }
        Ok(report)
    }

    /// Scans one project by id.
    pub fn scan_project(
        &mut self,
        id: &str,
        progress: &mut dyn FnMut(ScanProgress<'_>),
    ) -> Result<ProjectScan> {
        let record = self.project_record(id)?;
        self.forget_scan();
        Ok(self.scan_inner(&record, progress)?.0)
    }

    /// Scans one project; with the report and the stored change's size, what it saw
    /// (the specs folder and every spec folder's stat) when every stat was trusted.
    pub(super) fn scan_inner(
        &mut self,
        p: &ProjectRecord,
        progress: &mut dyn FnMut(ScanProgress<'_>),
    ) -> Result<(ProjectScan, usize, Option<Seen>)> {
        let mut scan = ProjectScan {
            id: p.id.clone(),
            name: p.name.clone(),
            ..ProjectScan::default()
        };
        self.doc
            .put_project(&p.id, &p.name, &spec::fleet_id(&p.root, &p.name));
        // A missing folder is most often an unmounted disk or a moved checkout: keep the
        // last known specs rather than announce them all deleted (unreadable.rs).
        let keep_all = |this: &mut Self, scan: &mut ProjectScan, why: String| {
            scan.warnings
                .push(format!("{why}; keeping the last scanned specs, will retry"));
            scan.specs = this.doc.spec_count(&p.id);
            this.unreadable
                .replace_project(&p.id, &p.name, vec![(None, why)]);
        };
        let Some(specs_dir) = spec::find_specs_dir(&p.root) else {
            let why = format!(
                "{} has no specs folder now (moved or unmounted?)",
                p.root.display()
            );
            keep_all(self, &mut scan, why);
            return Ok((scan, 0, None));
        };
        let specs = match spec::SpecsDir::open(&specs_dir) {
            Ok(s) => s,
            Err(e) => {
                let why = format!("cannot open {}: {e}", specs_dir.display());
                keep_all(self, &mut scan, why);
                return Ok((scan, 0, None));
            }
        };
        let walk = spec::walk(&specs);
        scan.warnings.extend(walk.warnings.iter().cloned());
        let mut failed: Vec<(Option<String>, String)> = walk
            .unlisted
            .iter()
            .map(|(u, e)| {
                let spec = (!u.is_empty()).then(|| u.clone());
                (
                    spec,
                    format!("cannot list {}: {e}", specs_dir.join(u).display()),
                )
            })
            .collect();
        scan.specs = walk.specs.len();
        let cache = self.store.stat_cache(&p.id)?;
        let in_doc: std::collections::HashSet<String> =
            self.doc.spec_names(&p.id).into_iter().collect();
        let now = now_ns();

        // Decide, by stat alone, which folders must be read.
        let mut to_read: Vec<(usize, Option<StatKey>)> = Vec::new();
        // A walk that could not list everything is not a picture to answer later scans
        // from.
        let mut seen: Option<Vec<(String, StatKey)>> = walk
            .unlisted
            .is_empty()
            .then(|| Vec::with_capacity(walk.specs.len()));
        for (i, folder) in walk.specs.iter().enumerate() {
            let key = stat_key(&folder.dir);
            let trusted = key.filter(|k| !k.is_racy(now));
            match (seen.as_mut(), trusted) {
                (Some(s), Some(k)) => s.push((folder.name.clone(), k)),
                _ => seen = None,
            }
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
        let loaded = load_parallel(&specs, &walk.specs, &to_read, &mut |done| {
            progress(ScanProgress {
                project: &p.name,
                done: total - to_read.len() + done,
                total,
            })
        });
        let mut updates: Vec<(&str, &str, Option<StatKey>)> = Vec::new();
        let mut warnings = Vec::new();
        let mut new_specs = Vec::new();
        for ((i, key), (loaded, w)) in to_read.iter().zip(loaded) {
            warnings.extend(w);
            let name = walk.specs[*i].name.as_str();
            let spec = match loaded {
                spec::Loaded::Spec(spec) => *spec,
                // Gone since the walk: the next scan (or the watcher) confirms it.
                spec::Loaded::NotFound => {
                    seen = None;
                    continue;
                }
                // Unknown now: the document keeps what it holds; read again later.
                spec::Loaded::Unreadable(why) => {
                    warnings.push(format!(
                        "{name}: {why} (keeping its last known state; will retry)"
                    ));
                    failed.push((Some(name.to_string()), why));
                    seen = None;
                    updates.push((&p.id, name, None));
                    continue;
                }
            };
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
            // Absent only where a listing succeeded and showed it gone.
            if !on_disk.contains(name.as_str()) && !walk.unknown(name) {
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
        self.unreadable.replace_project(&p.id, &p.name, failed);
        let bytes = self.commit(Commit::docs(&[DocKey::Machine(self.id())]).stats(&updates))?;
        Ok((scan, bytes, seen.map(|s| (specs_dir, s))))
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
        self.rescan_spec_in(project_id, &specs_dir, name)
    }

    /// [`Machine::rescan_spec`] when the caller has found the project's specs folder
    /// already (the watcher, for a batch of events).
    pub fn rescan_spec_in(
        &mut self,
        project_id: &str,
        specs_dir: &std::path::Path,
        name: &str,
    ) -> Result<usize> {
        let project_name = self
            .project_record(project_id)
            .map(|r| r.name)
            .unwrap_or_default();
        let specs = match spec::SpecsDir::open(specs_dir) {
            Ok(s) => s,
            Err(e) => {
                let why = format!("cannot open {}: {e}", specs_dir.display());
                self.unreadable
                    .set_spec(project_id, &project_name, name, Some(why));
                return Ok(0);
            }
        };
        let dir = specs_dir.join(name);
        let mut warnings = Vec::new();
        let update = match spec::load(&specs, name, &mut warnings) {
            spec::Loaded::Spec(spec) => {
                self.unreadable
                    .set_spec(project_id, &project_name, name, None);
                self.doc.put_spec(project_id, &spec);
                stat_key(&dir).filter(|k| !k.is_racy(now_ns()))
            }
            // The filesystem says README.md (or its folder) is not there: gone, or a
            // folder that is no spec any more.
            spec::Loaded::NotFound => {
                self.unreadable
                    .set_spec(project_id, &project_name, name, None);
                self.doc.remove_spec(project_id, name);
                None
            }
            // Unknown: keep the last known state; the retry reads it again.
            spec::Loaded::Unreadable(why) => {
                tracing::warn!("{name}: {why} (keeping its last known state; will retry)");
                self.unreadable
                    .set_spec(project_id, &project_name, name, Some(why));
                self.forget_scan();
                return Ok(0);
            }
        };
        self.commit(
            Commit::docs(&[DocKey::Machine(self.id())]).stats(&[(project_id, name, update)]),
        )
    }

    /// What scans could not read now (kept in its last known state meanwhile).
    pub fn unreadable(&self) -> Vec<super::Unreadable> {
        self.unreadable.list()
    }

    /// Whether anything is unreadable (the peer then rescans with backoff).
    pub fn has_unreadable(&self) -> bool {
        !self.unreadable.is_empty()
    }

    /// The local record (name, root) of project `id`.
    pub(super) fn project_record(&self, id: &str) -> Result<ProjectRecord> {
        self.store
            .projects()?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| Error::UnknownProject {
                selector: id.to_string(),
                known: String::new(),
            })
    }

    /// Local project records (with their paths), for the watcher.
    pub fn project_records(&self) -> Result<Vec<ProjectRecord>> {
        Ok(self.store.projects()?)
    }
}
pub(super) fn stat_key(dir: &Path) -> Option<StatKey> {
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

type Loaded = (spec::Loaded, Vec<String>);

/// What a scan saw of a project: its specs folder and every spec folder's stat.
pub(super) type Seen = (std::path::PathBuf, Vec<(String, StatKey)>);

/// Loads the selected folders on all cores; results come back in input order.
pub(super) fn load_parallel(
    specs: &spec::SpecsDir,
    folders: &[spec::SpecFolder],
    selected: &[(usize, Option<StatKey>)],
    progress: &mut dyn FnMut(usize),
) -> Vec<Loaded> {
    let load_one = |i: usize| {
        let mut w = Vec::new();
        let f = &folders[i];
        (spec::load(specs, &f.name, &mut w), w)
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
