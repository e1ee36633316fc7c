//! A project's identity across machines: the `origin` remote of its git repository,
//! normalised so that the forms one repository is cloned by compare equal
//! (`git@github.com:a/b.git`, `https://github.com/a/b`, `ssh://git@github.com/a/b.git`
//! all give `github.com/a/b`); a project without one is known by its name.

use std::path::{Path, PathBuf};

/// Largest git config read (they are a few hundred bytes; anything larger is not one).
const MAX_CONFIG_BYTES: u64 = 256 * 1024;

/// The project's fleet identity: its normalised origin URL, else `name`.
pub fn fleet_id(root: &Path, name: &str) -> String {
    origin_url(root)
        .and_then(|u| normalize_remote(&u))
        .unwrap_or_else(|| name.to_string())
}

/// The `url` of `[remote "origin"]` in the repository at `root`, if any. Follows a
/// `.git` file (`gitdir: …`, worktrees and submodules) and a worktree's `commondir`.
pub fn origin_url(root: &Path) -> Option<String> {
    let config = git_dir(root)?.join("config");
    let meta = std::fs::metadata(&config).ok()?;
    if meta.len() > MAX_CONFIG_BYTES {
        return None;
    }
    let text = std::fs::read_to_string(config).ok()?;
    let mut in_origin = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            let section: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            in_origin = section == "[remote\"origin\"]";
            continue;
        }
        if !in_origin {
            continue;
        }
        if let Some((key, value)) = line.split_once('=')
            && key.trim().eq_ignore_ascii_case("url")
        {
            let v = value.trim().trim_matches('"').to_string();
            if !v.is_empty() {
                return Some(v);
            }
        }
    }
    None
}

/// The git directory holding the config of the repository at `root`.
fn git_dir(root: &Path) -> Option<PathBuf> {
    let dot_git = root.join(".git");
    let meta = std::fs::metadata(&dot_git).ok()?;
    let dir = if meta.is_dir() {
        dot_git
    } else {
        let text = std::fs::read_to_string(&dot_git).ok()?;
        let target = text.lines().find_map(|l| l.strip_prefix("gitdir:"))?.trim();
        let p = Path::new(target);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            root.join(p)
        }
    };
    // A linked worktree keeps its config in the main repository.
    match std::fs::read_to_string(dir.join("commondir")) {
        Ok(common) => {
            let p = Path::new(common.trim());
            Some(if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            })
        }
        Err(_) => Some(dir),
    }
}

/// `host/path` of a remote URL, lowercased host, no user, port, scheme, `.git` or
/// trailing slash; `None` for a local path (a file remote names no shared repository).
pub fn normalize_remote(url: &str) -> Option<String> {
    let url = url.trim();
    let (host, path) = if let Some((scheme, rest)) = url.split_once("://") {
        if scheme.eq_ignore_ascii_case("file") {
            return None;
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = authority.rsplit('@').next().unwrap_or(authority);
        // Drop a port, keeping a bracketed IPv6 host whole.
        let host = match host.rsplit_once(':') {
            Some((h, port)) if !h.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => host,
        };
        (host.to_string(), path.to_string())
    } else if let Some((before, path)) = url.split_once(':')
        && !before.contains('/')
        && !before.is_empty()
    {
        // scp-like `user@host:path`.
        let host = before.rsplit('@').next().unwrap_or(before);
        (host.to_string(), path.to_string())
    } else {
        return None;
    };
    let path = path.trim_matches('/');
    let path = path
        .strip_suffix(".git")
        .unwrap_or(path)
        .trim_end_matches('/');
    if host.is_empty() || path.is_empty() {
        return None;
    }
    Some(format!("{}/{}", host.to_ascii_lowercase(), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_of_one_repository_are_equal() {
        for url in [
            "git@github.com:codervisor/lean-spec.git",
            "https://github.com/codervisor/lean-spec",
            "https://github.com/codervisor/lean-spec.git/",
            "ssh://git@github.com/codervisor/lean-spec.git",
            "ssh://git@GitHub.com:22/codervisor/lean-spec",
            "https://user:token@github.com/codervisor/lean-spec",
            "git://github.com/codervisor/lean-spec.git",
        ] {
            assert_eq!(
                normalize_remote(url).as_deref(),
                Some("github.com/codervisor/lean-spec"),
                "{url}"
            );
        }
        assert_ne!(
            normalize_remote("git@github.com:codervisor/other.git"),
            normalize_remote("git@github.com:codervisor/lean-spec.git")
        );
        for local in [
            "/srv/repo.git",
            "../repo",
            "file:///srv/repo.git",
            "",
            "host:",
        ] {
            assert_eq!(normalize_remote(local), None, "{local}");
        }
    }

    #[test]
    fn origin_is_read_from_the_repository_config() {
        let root = tempfile::tempdir().expect("root");
        assert_eq!(fleet_id(root.path(), "plain"), "plain", "no repository");
        std::fs::create_dir(root.path().join(".git")).expect("mkdir");
        std::fs::write(
            root.path().join(".git/config"),
            "[core]\n\tbare = false\n[remote \"upstream\"]\n\turl = https://example.com/x/up\n[remote \"origin\"]\n\turl = git@example.com:x/proj.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n",
        )
        .expect("config");
        assert_eq!(fleet_id(root.path(), "plain"), "example.com/x/proj");
        // A worktree: `.git` is a file naming its git dir, whose commondir holds the config.
        let wt = tempfile::tempdir().expect("worktree");
        let wt_git = root.path().join(".git/worktrees/w");
        std::fs::create_dir_all(&wt_git).expect("mkdir");
        std::fs::write(wt_git.join("commondir"), "../..\n").expect("commondir");
        std::fs::write(
            wt.path().join(".git"),
            format!("gitdir: {}\n", wt_git.display()),
        )
        .expect(".git file");
        assert_eq!(fleet_id(wt.path(), "w"), "example.com/x/proj");
    }
}
