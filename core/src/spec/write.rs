//! Atomic file replacement: temp file in the same folder, fsync, rename, fsync folder.
//! A crash at any point leaves either the old or the new file, never a torn one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A temp file of ours older than this was left by a writer killed before its rename
/// (a write takes milliseconds); younger ones may belong to a writer still running.
const STALE_TEMP_AGE: Duration = Duration::from_secs(60);

/// Replaces `path` with `bytes` atomically, keeping the file's permissions.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| io::Error::other(e.to_string()))?;
    let tmp = dir.join(format!(
        ".{}.{}.lsp-tmp",
        file_name.to_string_lossy(),
        hex::encode(nonce)
    ));
    let permissions = fs::metadata(path).ok().map(|m| m.permissions());
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        if let Some(p) = permissions {
            f.set_permissions(p)?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // The rename is durable only once the folder entry is: fsync the folder.
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    if result.is_ok() {
        remove_stale_temps(dir, &file_name.to_string_lossy());
    }
    result
}

/// Removes our temp files for `file_name` in `dir` that a killed writer left behind.
/// Best effort: they are hidden, never read, and only ours match the pattern.
fn remove_stale_temps(dir: &Path, file_name: &str) {
    let prefix = format!(".{file_name}.");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(nonce) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".lsp-tmp"))
        else {
            continue;
        };
        if nonce.len() != 16 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > STALE_TEMP_AGE);
        if old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_removes_old_temps_of_that_file_only() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("README.md");
        fs::write(&file, "old").expect("write");
        let stale = dir.path().join(".README.md.00112233aabbccdd.lsp-tmp");
        let fresh = dir.path().join(".README.md.99887766aabbccdd.lsp-tmp");
        let other = dir.path().join(".NOTES.md.00112233aabbccdd.lsp-tmp");
        let unrelated = dir.path().join(".README.md.not-ours.lsp-tmp");
        for p in [&stale, &fresh, &other, &unrelated] {
            fs::write(p, "half").expect("temp");
        }
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        for p in [&stale, &other, &unrelated] {
            File::options()
                .write(true)
                .open(p)
                .and_then(|f| f.set_modified(hour_ago))
                .expect("age");
        }
        write_atomic(&file, b"new").expect("write");
        assert_eq!(fs::read(&file).expect("read"), b"new");
        assert!(!stale.exists(), "an old temp of README.md is removed");
        assert!(fresh.exists(), "a young temp may be a running writer's");
        assert!(
            other.exists() && unrelated.exists(),
            "other files are left alone"
        );
    }
}
