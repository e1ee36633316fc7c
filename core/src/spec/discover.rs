//! Finding a project's specs folder and the spec folders inside it, by LeanSpec's rules.
//!
//! Symlinked folders are not followed (LeanSpec's loader does not follow them either):
//! this makes symlink loops impossible by construction and keeps every spec inside the
//! specs folder. Every folder is listed through [`SpecsDir`] (`beneath.rs`), so a folder
//! swapped for a symlink mid-walk is refused, not followed; a symlinked `README.md` is
//! read only if it stays inside the specs folder.

use super::beneath::{EntryKind, OpenError, SpecsDir};
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

/// Folders searched, in order, for a project's specs (relative to the project root).
pub const SPECS_DIR_CANDIDATES: [&str; 4] =
    ["specs", ".lean-spec/specs", "docs/specs", "doc/specs"];

/// How deep spec folders may sit below the specs folder (`20251101/002-x/` is depth 2).
pub const MAX_DEPTH: usize = 3;

/// The specs folder of a project rooted at `root`: the first candidate that exists,
/// else `specsDir` from `.lean-spec/config.json`. `None` when there is none.
pub fn find_specs_dir(root: &Path) -> Option<PathBuf> {
    for c in SPECS_DIR_CANDIDATES {
        // `inside`, not `is_dir`: a committed `specs -> /home/me` must not become the
        // folder every member is served from.
        if let Some(p) = inside(root, c) {
            return Some(p);
        }
    }
    let config = fs::read(root.join(".lean-spec/config.json")).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&config).ok()?;
    let dir = value.get("specsDir")?.as_str()?;
    inside(root, dir)
}

/// `dir` under `root`, if it stays there: a relative path of plain components that,
/// symlinks resolved, is a folder inside `root`. A `specsDir` of `/etc` or `../other`
/// would make the scan (and the watcher, and signed edits) reach outside the project.
fn inside(root: &Path, dir: &str) -> Option<PathBuf> {
    use std::path::Component;
    let rel = Path::new(dir);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        tracing::warn!(specs_dir = dir, "ignoring a specsDir outside the project");
        return None;
    }
    let p = root.join(rel);
    let (real, real_root) = (p.canonicalize().ok()?, root.canonicalize().ok()?);
    if !real.starts_with(&real_root) {
        tracing::warn!(
            specs_dir = dir,
            "ignoring a specsDir that leads outside the project"
        );
        return None;
    }
    real.is_dir().then_some(p)
}

/// A spec folder found under the specs folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecFolder {
    /// Path relative to the specs folder, `/`-separated.
    pub name: String,
    /// Absolute (or root-relative, as given) path of the folder (for `stat` only; its
    /// files are opened through [`SpecsDir`]).
    pub dir: PathBuf,
}

/// What the walk found, what it skipped with the reason, and what it could not list.
#[derive(Debug, Clone, Default)]
pub struct Walk {
    /// Spec folders, sorted by name.
    pub specs: Vec<SpecFolder>,
    /// Things skipped or unreadable, one human sentence each.
    pub warnings: Vec<String>,
    /// Folders (relative, `""` for the specs folder itself) the walk could not list for
    /// a reason other than "not found", with the error: what is below them is unknown,
    /// not absent.
    pub unlisted: Vec<(String, String)>,
}

impl Walk {
    /// Whether spec `name` lies below a folder the walk could not list: its absence
    /// from [`Walk::specs`] proves nothing.
    pub fn unknown(&self, name: &str) -> bool {
        self.unlisted.iter().any(|(u, _)| {
            u.is_empty()
                || name == u
                || name
                    .strip_prefix(u.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        })
    }
}

fn starts_with_digit(name: &OsStr) -> bool {
    name.as_encoded_bytes()
        .first()
        .is_some_and(u8::is_ascii_digit)
}

/// Lists spec folders: folders whose name starts with a digit and which hold a
/// `README.md`; a digit folder without one is a group and is searched further, down to
/// [`MAX_DEPTH`]. Unreadable folders and non-UTF-8 names become warnings, never errors;
/// a folder that could not be listed is named in [`Walk::unlisted`].
pub fn walk(specs: &SpecsDir) -> Walk {
    let mut out = Walk::default();
    walk_into(specs, "", 1, &mut out);
    out.specs.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// [`walk`] of the specs folder at `specs_dir` (a folder that cannot be opened is one
/// warning and [`Walk::unlisted`] holds `""`).
pub fn walk_path(specs_dir: &Path) -> Walk {
    match SpecsDir::open(specs_dir) {
        Ok(specs) => walk(&specs),
        Err(e) => Walk {
            warnings: vec![format!("cannot open {}: {e}", specs_dir.display())],
            unlisted: vec![(String::new(), e.to_string())],
            ..Walk::default()
        },
    }
}

fn walk_into(specs: &SpecsDir, prefix: &str, depth: usize, out: &mut Walk) {
    let shown = |rel: &str| specs.path().join(rel).display().to_string();
    let entries = match specs.list(prefix) {
        Ok(e) => e,
        // Gone between its parent's listing and now: confirmed absent.
        Err(OpenError::NotFound) if !prefix.is_empty() => return,
        Err(e) => {
            out.warnings.push(format!(
                "cannot list {}: {e} (keeping what was there; will retry)",
                shown(prefix)
            ));
            out.unlisted.push((prefix.to_string(), e.to_string()));
            return;
        }
    };
    for (file_name, kind) in entries {
        if !starts_with_digit(&file_name) {
            continue;
        }
        let rel_shown = |name: &str| {
            if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            }
        };
        match kind {
            EntryKind::Symlink => {
                out.warnings.push(format!(
                    "not following symlinked folder {} (spec folders must be real folders)",
                    shown(&rel_shown(&file_name.to_string_lossy()))
                ));
                continue;
            }
            EntryKind::Dir => {}
            EntryKind::File | EntryKind::Other => continue,
        }
        let Some(name) = file_name.to_str() else {
            out.warnings.push(format!(
                "skipped folder with a non-UTF-8 name: {} (rename it to UTF-8 to share it)",
                shown(&rel_shown(&file_name.to_string_lossy()))
            ));
            continue;
        };
        let rel = rel_shown(name);
        match specs.exists(&format!("{rel}/README.md")) {
            Ok(true) => out.specs.push(SpecFolder {
                dir: specs.path().join(&rel),
                name: rel,
            }),
            Ok(false) if depth < MAX_DEPTH => walk_into(specs, &rel, depth + 1, out),
            Ok(false) => {}
            Err(e) => {
                out.warnings.push(format!(
                    "cannot look into {}: {e} (keeping what was there; will retry)",
                    shown(&rel)
                ));
                out.unlisted.push((rel, e.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 11: `specsDir` from `.lean-spec/config.json` must stay inside the project.
    #[test]
    fn a_specs_dir_outside_the_project_is_ignored() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (root, outside) = (tmp.path().join("project"), tmp.path().join("outside"));
        for d in [
            root.join(".lean-spec"),
            root.join("my-specs"),
            outside.clone(),
        ] {
            fs::create_dir_all(d).expect("mkdir");
        }
        std::os::unix::fs::symlink(&outside, root.join("link")).expect("symlink");
        let with = |specs_dir: &str| {
            let config = serde_json::json!({ "specsDir": specs_dir }).to_string();
            fs::write(root.join(".lean-spec/config.json"), config).expect("config");
            find_specs_dir(&root)
        };
        assert_eq!(with("my-specs"), Some(root.join("my-specs")));
        assert_eq!(with("./my-specs"), Some(root.join("./my-specs")));
        assert_eq!(with(&outside.display().to_string()), None, "absolute");
        assert_eq!(with("../outside"), None, "parent");
        assert_eq!(with("my-specs/../../outside"), None, "parent inside");
        assert_eq!(with("link"), None, "a symlink out of the project");
    }
}
