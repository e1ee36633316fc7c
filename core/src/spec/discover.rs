//! Finding a project's specs folder and the spec folders inside it, by LeanSpec's rules.
//!
//! Symlinked folders are not followed (LeanSpec's loader does not follow them either):
//! this makes symlink loops impossible by construction and keeps every spec inside the
//! specs folder. A symlinked `README.md` is still read, through `open`, which reports a
//! loop as an error for that spec only.

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
        let p = root.join(c);
        if p.is_dir() {
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
    /// Absolute (or root-relative, as given) path of the folder.
    pub dir: PathBuf,
}

/// What the walk found, and what it skipped with the reason.
#[derive(Debug, Clone, Default)]
pub struct Walk {
    /// Spec folders, sorted by name.
    pub specs: Vec<SpecFolder>,
    /// Things skipped or unreadable, one human sentence each.
    pub warnings: Vec<String>,
}

fn starts_with_digit(name: &OsStr) -> bool {
    name.as_encoded_bytes()
        .first()
        .is_some_and(u8::is_ascii_digit)
}

/// Lists spec folders: folders whose name starts with a digit and which hold a
/// `README.md`; a digit folder without one is a group and is searched further, down to
/// [`MAX_DEPTH`]. Unreadable folders and non-UTF-8 names become warnings, never errors.
pub fn walk(specs_dir: &Path) -> Walk {
    let mut out = Walk::default();
    walk_into(specs_dir, "", 1, &mut out);
    out.specs.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn walk_into(dir: &Path, prefix: &str, depth: usize, out: &mut Walk) {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            out.warnings
                .push(format!("cannot list {}: {e}", dir.display()));
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                out.warnings
                    .push(format!("cannot list {}: {e}", dir.display()));
                continue;
            }
        };
        let file_name = entry.file_name();
        if !starts_with_digit(&file_name) {
            continue;
        }
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_symlink() {
            out.warnings.push(format!(
                "not following symlinked folder {} (spec folders must be real folders)",
                entry.path().display()
            ));
            continue;
        }
        if !file_type.is_dir() {
            continue;
        }
        let Some(name) = file_name.to_str() else {
            out.warnings.push(format!(
                "skipped folder with a non-UTF-8 name: {} (rename it to UTF-8 to share it)",
                entry.path().display()
            ));
            continue;
        };
        let rel = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        if path.join("README.md").symlink_metadata().is_ok() {
            out.specs.push(SpecFolder {
                name: rel,
                dir: path,
            });
        } else if depth < MAX_DEPTH {
            walk_into(&path, &rel, depth + 1, out);
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
