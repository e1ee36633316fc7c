//! What the last full scan saw, so that a scan finding the same thing is a walk and a
//! `stat` per spec folder, with no store read and no document read.
//!
//! `up` rescans every project each minute (a safety net for missed watcher events).
//! Nearly always nothing changed, yet the scan read the stat cache from the store and
//! every spec's parse state from the document: ~5 MB of the store's and Automerge's code
//! mapped back in every minute, in an otherwise idle daemon (BENCHMARKS.md, "Idle
//! memory").
//!
//! Invariants, which make the memo's answer the slow path's answer:
//! - it is taken only when every spec folder's stat was trusted (not racy) and only after
//!   the scan's commit succeeded, so the store's stat cache held exactly these stats;
//! - it is used only if this machine's document has the same heads (no change of any
//!   kind since: no watcher rescan, no applied edit, no project rename) and every folder
//!   is still there with the same, still trusted, stat: the slow path would read nothing
//!   and change nothing;
//! - anything that changes the project list drops it ([`Machine::forget_scan`]).

use super::{Machine, ProjectScan, ScanProgress, ScanReport, now_ns, scan::stat_key};
use crate::spec;
use crate::store::{ProjectRecord, StatKey};
use automerge::ChangeHash;

/// The last full scan of every project, when it could be trusted.
#[derive(Debug)]
pub(super) struct ScanMemo {
    /// This machine's document heads right after the scan's commit.
    heads: Vec<ChangeHash>,
    projects: Vec<ProjectMemo>,
}

#[derive(Debug)]
pub(super) struct ProjectMemo {
    pub(super) record: ProjectRecord,
    /// The specs folder the scan used.
    pub(super) specs_dir: std::path::PathBuf,
    /// Every spec folder, sorted by name (as the walk returns them), with its stat.
    pub(super) stats: Vec<(String, StatKey)>,
    /// The scan's report (its counts of reads and changes are not reused).
    pub(super) report: ProjectScan,
}

impl Machine {
    /// The report of a scan that would find nothing new, if the memo shows that by stat
    /// alone; `None` means: scan.
    pub(super) fn scan_unchanged(
        &mut self,
        progress: &mut dyn FnMut(ScanProgress<'_>),
    ) -> Option<ScanReport> {
        let heads = self.doc.head_hashes();
        // Something unreadable must be read again, not answered from the memo.
        if !self.unreadable.is_empty() {
            return None;
        }
        let memo = self.scan_memo.as_ref()?;
        if memo.heads != heads {
            return None;
        }
        let now = now_ns();
        let mut report = ScanReport::default();
        for p in &memo.projects {
            if spec::find_specs_dir(&p.record.root).as_ref() != Some(&p.specs_dir) {
                return None;
            }
            let specs = spec::SpecsDir::open(&p.specs_dir).ok()?;
            let walk = spec::walk(&specs);
            if !walk.unlisted.is_empty() || walk.specs.len() != p.stats.len() {
                return None;
            }
            for (folder, (name, key)) in walk.specs.iter().zip(&p.stats) {
                let same = folder.name == *name
                    && stat_key(&folder.dir).is_some_and(|k| !k.is_racy(now) && k == *key);
                if !same {
                    return None;
                }
            }
            let total = walk.specs.len();
            progress(ScanProgress {
                project: &p.record.name,
                done: total,
                total,
            });
            report.projects.push(ProjectScan {
                specs: total,
                added: 0,
                updated: 0,
                removed: 0,
                read: 0,
                warnings: walk.warnings,
                ..p.report.clone()
            });
        }
        #[cfg(test)]
        {
            self.scan_memo_hits += 1;
        }
        Some(report)
    }

    /// Keeps what a full scan saw, if it can be trusted later (every stat trusted).
    pub(super) fn remember_scan(&mut self, projects: Vec<ProjectMemo>) {
        let heads = self.doc.head_hashes();
        self.scan_memo = Some(ScanMemo { heads, projects });
    }

    /// Drops the memo: the next scan reads the store and the document.
    pub(super) fn forget_scan(&mut self) {
        self.scan_memo = None;
    }

    /// How many scans the memo answered (for tests).
    #[cfg(test)]
    pub(crate) fn scan_memo_hits(&self) -> u64 {
        self.scan_memo_hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    /// Sets the mtime of a spec folder and its README an hour back: older than the racy
    /// window, so their stats are trusted.
    fn settle(dir: &Path) {
        let past = SystemTime::now() - Duration::from_secs(3600);
        for p in [dir.join("README.md"), dir.to_path_buf()] {
            std::fs::File::open(&p).unwrap().set_modified(past).unwrap();
        }
    }

    fn write_spec(specs: &Path, name: &str, status: &str) {
        let dir = specs.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("README.md"),
            format!("---\nstatus: {status}\ncreated: '2025-01-01'\n---\n\n# {name}\n"),
        )
        .unwrap();
        settle(&dir);
    }

    fn status_of(m: &Machine, spec: &str) -> Option<String> {
        m.specs(&crate::SpecFilter::default())
            .unwrap()
            .into_iter()
            .find(|r| r.spec.name == spec)
            .and_then(|r| r.spec.status)
            .map(|s| s.as_str().to_string())
    }

    #[test]
    fn an_unchanged_project_is_rescanned_from_the_memo_and_any_change_is_still_found() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p");
        let specs = project.join("specs");
        write_spec(&specs, "001-a", "planned");
        write_spec(&specs, "002-b", "draft");
        // A parse error is reported by every scan, the memo's too.
        std::fs::create_dir_all(specs.join("003-bad")).unwrap();
        std::fs::write(specs.join("003-bad/README.md"), "---\nstatus: [\n---\n").unwrap();
        settle(&specs.join("003-bad"));
        let (mut m, _) = Machine::init(&dir.path().join("home"), Some("m")).unwrap();
        m.add_project(&project, Some("p")).unwrap();

        let first = m.scan(&mut |_| {}).unwrap();
        assert_eq!(m.scan_memo_hits(), 0, "adding a project forgets the memo");
        let second = m.scan(&mut |_| {}).unwrap();
        assert_eq!(m.scan_memo_hits(), 1);
        assert_eq!(second, first, "the memo answers what the store would");
        assert_eq!(second.projects[0].specs, 3);
        assert_eq!(second.projects[0].parse_errors, 1);

        // A content change (same size: the stat still differs) is read.
        write_spec(&specs, "001-a", "complete");
        let changed = m.scan(&mut |_| {}).unwrap();
        assert_eq!(m.scan_memo_hits(), 1);
        assert_eq!(changed.projects[0].updated, 1);
        assert_eq!(status_of(&m, "001-a").as_deref(), Some("complete"));
        m.scan(&mut |_| {}).unwrap();
        assert_eq!(m.scan_memo_hits(), 2);

        // A removed and an added folder are found.
        std::fs::remove_dir_all(specs.join("002-b")).unwrap();
        write_spec(&specs, "004-d", "planned");
        let moved = m.scan(&mut |_| {}).unwrap();
        assert_eq!(m.scan_memo_hits(), 2);
        assert_eq!((moved.projects[0].added, moved.projects[0].removed), (1, 1));

        // The document changed by another path (the watcher's single-spec rescan): the
        // memo no longer matches, so the next scan is a full one, then remembered again.
        write_spec(&specs, "004-d", "in-progress");
        m.rescan_spec(&m.projects().unwrap()[0].id.clone(), "004-d")
            .unwrap();
        let after = m.scan(&mut |_| {}).unwrap();
        assert_eq!(m.scan_memo_hits(), 2);
        assert_eq!(
            after.projects[0].read, 0,
            "the stat cache has 004-d's new stat"
        );
        assert_eq!(status_of(&m, "004-d").as_deref(), Some("in-progress"));
        m.scan(&mut |_| {}).unwrap();
        assert_eq!(m.scan_memo_hits(), 3);
    }

    #[test]
    fn a_racy_stat_is_never_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p");
        write_spec(&project.join("specs"), "001-a", "planned");
        // Written just now: an edit within the same clock tick would keep this stat.
        std::fs::write(
            project.join("specs/001-a/README.md"),
            "---\nstatus: draft\ncreated: '2025-01-01'\n---\n\n# a\n",
        )
        .unwrap();
        let (mut m, _) = Machine::init(&dir.path().join("home"), Some("m")).unwrap();
        m.add_project(&project, Some("p")).unwrap();
        for _ in 0..3 {
            let r = m.scan(&mut |_| {}).unwrap();
            assert_eq!(r.projects[0].read, 1, "read each time while racy");
        }
        assert_eq!(m.scan_memo_hits(), 0);
    }
}
