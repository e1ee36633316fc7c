//! The spec watcher: notify (inotify on Linux) on every project's specs folder. The
//! first event is handled at once (no fixed debounce: save → visible is the latency
//! that matters); events that arrive meanwhile are coalesced into one rescan per spec.
//! A periodic full (stat-only) rescan catches anything the watcher missed.
//!
//! Rescans run on one thread of their own, fed by notify's: file reads, parsing and
//! the store's fsync are blocking work, and each hand-off between threads costs a
//! wake-up (tens of microseconds on a small VM) on the way from a save to the peers.

use super::{PeerError, Shared, lock};
use crate::spec;
use notify::{RecursiveMode, Watcher as _};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

/// Keeps the OS watch and the rescan thread alive; dropping it stops both (the thread
/// after the rescan in progress, if any).
pub(crate) struct Watcher {
    inner: notify::RecommendedWatcher,
    tx: mpsc::Sender<Seen>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watcher")
    }
}

/// What the rescan thread is told.
enum Seen {
    Path(PathBuf),
    Stop,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.tx.send(Seen::Stop);
    }
}

/// What to rescan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Spec {
        project: String,
        specs_dir: PathBuf,
        name: String,
    },
    Project(String),
}

impl Watcher {
    pub(crate) fn start(shared: Arc<Shared>) -> Result<Watcher, PeerError> {
        let (tx, rx) = mpsc::channel::<Seen>();
        let events = tx.clone();
        let mut inner =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
                // Reads are not changes: our own rescans open every file they read, and
                // inotify reports those opens; reacting to them would loop forever.
                Ok(event) if matters(&event.kind) => {
                    for p in event.paths.into_iter().filter(|p| !is_temp_file(p)) {
                        let _ = events.send(Seen::Path(p));
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("watcher error: {e}"),
            })
            .map_err(|e| PeerError::Invalid(format!("cannot watch files: {e}")))?;
        let projects = lock(&shared.local.machine)
            .project_records()
            .map_err(PeerError::from)?;
        for p in &projects {
            if let Some(dir) = spec::find_specs_dir(&p.root)
                && let Err(e) = inner.watch(&dir, RecursiveMode::Recursive)
            {
                tracing::warn!(dir = %dir.display(), "cannot watch: {e}; relying on the periodic rescan");
            }
        }
        let thread = std::thread::Builder::new()
            .name("leanspec-watch".into())
            .spawn(move || run(&shared, &rx))
            .map_err(|e| PeerError::Invalid(format!("cannot start the watcher: {e}")))?;
        Ok(Watcher {
            inner,
            tx,
            thread: Some(thread),
        })
    }

    /// Stops the OS watch and waits for the rescan thread to end.
    pub(crate) async fn stop(mut self) {
        let thread = self.thread.take();
        drop(self);
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }

    /// Watches one more specs folder.
    pub(crate) fn watch(&mut self, dir: &Path) {
        if let Err(e) = self.inner.watch(dir, RecursiveMode::Recursive) {
            tracing::warn!(dir = %dir.display(), "cannot watch: {e}; relying on the periodic rescan");
        }
    }
}

/// Whether an event can mean changed content: creations, writes, renames, removals.
fn matters(kind: &notify::EventKind) -> bool {
    use notify::event::{EventKind, MetadataKind, ModifyKind};
    !matches!(
        kind,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime))
    )
}

/// An editor's (or our writer's) temporary file: never part of a spec, and reacting to
/// it costs a rescan that delays the one the following rename needs. A `.md` name always
/// counts (hidden sub-files are sub-files).
fn is_temp_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.ends_with(".md")
        && (name.starts_with('.')
            || name.starts_with('#')
            || name.ends_with('~')
            || [
                ".tmp",
                ".swp",
                ".swx",
                ".lsp-tmp",
                "___jb_tmp___",
                "___jb_old___",
            ]
            .iter()
            .any(|s| name.ends_with(s)))
}

/// Rescans what each batch of events touched, until told to stop (or every sender is
/// gone). A batch is the first path and whatever came meanwhile.
fn run(shared: &Arc<Shared>, rx: &mpsc::Receiver<Seen>) {
    while let Ok(Seen::Path(first)) = rx.recv() {
        let mut paths = vec![first];
        loop {
            match rx.try_recv() {
                Ok(Seen::Path(p)) => paths.push(p),
                Ok(Seen::Stop) => return,
                Err(_) => break,
            }
        }
        handle(shared, &paths);
    }
}

fn handle(shared: &Arc<Shared>, paths: &[PathBuf]) {
    let rescanned = shared.change_own_then_flush(|m| rescan_paths(m, paths));
    if let Err(e) = rescanned {
        tracing::warn!("cannot read the projects to rescan: {e}");
    }
}

/// Rescans what `paths` touched: each spec folder once, a whole project when a path is
/// not in a spec folder. A failed rescan of one target is logged; the others go on.
fn rescan_paths(m: &mut crate::Machine, paths: &[PathBuf]) -> crate::machine::Result<()> {
    let projects = m.project_records()?;
    let mut targets = BTreeSet::new();
    let dirs: Vec<(&str, PathBuf)> = projects
        .iter()
        .filter_map(|p| spec::find_specs_dir(&p.root).map(|d| (p.id.as_str(), d)))
        .collect();
    for path in paths {
        for (id, dir) in &dirs {
            if let Ok(rel) = path.strip_prefix(dir) {
                targets.insert(target_of(id, dir, &|name| m.doc().has_spec(id, name), rel));
            }
        }
    }
    for t in targets {
        let r = match &t {
            Target::Spec {
                project,
                specs_dir,
                name,
            } => m.rescan_spec_in(project, specs_dir, name).map(|_| ()),
            Target::Project(project) => m.scan_project(project, &mut |_| {}).map(|_| ()),
        };
        if let Err(e) = r {
            tracing::warn!("rescan failed: {e}");
        }
    }
    Ok(())
}

/// The spec folder an event path belongs to: the deepest prefix (up to 3 levels) that
/// is a spec folder on disk or in the document (`in_doc`, asked only when the folder is
/// gone: a removed spec); else the whole project.
fn target_of(project: &str, specs_dir: &Path, in_doc: &dyn Fn(&str) -> bool, rel: &Path) -> Target {
    let comps: Vec<&str> = rel
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .collect();
    for depth in (1..=comps.len().min(spec::MAX_DEPTH)).rev() {
        let name = comps[..depth].join("/");
        if !comps[depth - 1].starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        if specs_dir
            .join(&name)
            .join("README.md")
            .symlink_metadata()
            .is_ok()
            || in_doc(&name)
        {
            return Target::Spec {
                project: project.to_string(),
                specs_dir: specs_dir.to_path_buf(),
                name,
            };
        }
    }
    Target::Project(project.to_string())
}

/// Rescans every project and pushes what changed.
pub(crate) fn full_rescan(shared: &Arc<Shared>) -> crate::machine::Result<crate::ScanReport> {
    shared.change_own(|m| m.scan(&mut |_| {}))
}

/// The first retry of something a scan could not read; doubled each time it still
/// fails, up to the periodic rescan's interval.
const UNREADABLE_RETRY: Duration = Duration::from_secs(1);

/// Rescans every `every`; sooner, with backoff from [`UNREADABLE_RETRY`], while
/// something could not be read (machine/unreadable.rs): descriptors or a disk coming
/// back are seen within seconds, and nothing is published as removed meanwhile. Looks
/// at the unreadable flag once a second (a lock and a check, no I/O).
pub(crate) async fn periodic_rescan(shared: Arc<Shared>, every: Duration) {
    let mut shutdown = shared.shutdown.subscribe();
    let tick = UNREADABLE_RETRY.min(every);
    let mut retry = UNREADABLE_RETRY;
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = super::stopping(&mut shutdown) => return,
        }
        let waited = last.elapsed();
        // Never wait for the machine on an async worker: busy means a scan or a sync
        // holds it, and this tick can pass.
        let unreadable = match shared.local.machine.try_lock() {
            Ok(m) => m.has_unreadable(),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().has_unreadable(),
            Err(std::sync::TryLockError::WouldBlock) => continue,
        };
        let due = if unreadable {
            waited >= retry
        } else {
            retry = UNREADABLE_RETRY;
            waited >= every
        };
        if !due {
            continue;
        }
        retry = (retry * 2).min(every);
        last = tokio::time::Instant::now();
        let s = shared.clone();
        match tokio::task::spawn_blocking(move || full_rescan(&s)).await {
            Ok(Err(e)) => tracing::warn!("periodic rescan failed: {e}"),
            Err(e) => tracing::warn!("periodic rescan task failed: {e}"),
            Ok(Ok(_)) => {}
        }
    }
}

/// How often a failed store is retried.
const STORE_RETRY: Duration = Duration::from_secs(2);

/// After a failed store write (a full disk), retries every [`STORE_RETRY`]: the store
/// is reopened and what was waiting (changes made or received meanwhile, with their
/// signatures) is stored and pushed, so the peer recovers by itself once space is back.
pub(crate) async fn retry_failed_store(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(STORE_RETRY) => {}
            _ = super::stopping(&mut shutdown) => return,
        }
        // Nearly always nothing waits: a flag check, no blocking task.
        if !lock(&shared.local.machine).waits_for_store() {
            continue;
        }
        let s = shared.clone();
        let retried = tokio::task::spawn_blocking(move || {
            let mut m = lock(&s.local.machine);
            // Another write (a rescan, a received change) may have recovered the store
            // first: the rescan below is still due.
            m.retry_unsaved().map(|keys| {
                let recovered = m.take_recovered();
                (keys, recovered)
            })
        })
        .await;
        match retried {
            Ok(Ok((keys, false))) if keys.is_empty() => {}
            Ok(Ok((keys, _))) => {
                tracing::info!("the store is writable again; changes made meanwhile are stored");
                for key in keys {
                    let _ = shared.changed.send(key);
                }
                // A scan that failed part way left files unread: read them now.
                let s = shared.clone();
                match tokio::task::spawn_blocking(move || full_rescan(&s)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!("rescan after the store came back failed: {e}"),
                    Err(e) => tracing::warn!("rescan task failed: {e}"),
                }
            }
            Ok(Err(e)) => tracing::debug!("the store is still failing: {e}"),
            Err(e) => tracing::warn!("store retry task failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_temp_file;
    use std::path::Path;

    #[test]
    fn editors_temporary_files_are_not_spec_changes() {
        for t in [
            "specs/001-a/.README.md.tmp",
            "specs/001-a/.README.md.3f2a.lsp-tmp",
            "specs/001-a/.README.md.swp",
            "specs/001-a/README.md~",
            "specs/001-a/#README.md#",
            "specs/001-a/README.md___jb_tmp___",
        ] {
            assert!(is_temp_file(Path::new(t)), "{t}");
        }
        for f in [
            "specs/001-a/README.md",
            "specs/001-a/.notes.md",
            "specs/001-a/DESIGN.md",
            "specs/012-v0.2.0-release",
            "specs/001-a",
        ] {
            assert!(!is_temp_file(Path::new(f)), "{f}");
        }
    }
}
