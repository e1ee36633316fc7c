//! Atomic file replacement: temp file in the same folder, fsync, rename, fsync folder.
//! A crash at any point leaves either the old or the new file, never a torn one.

use rustix::fs::{AtFlags, Mode, OFlags};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
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
    let file_name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "path has no UTF-8 file name")
    })?;
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    write_atomic_in(&fd, file_name, bytes)
}

/// Replaces `file_name` in the open folder `dir` with `bytes` atomically, keeping the
/// file's permissions. Every step is relative to `dir` (the editor opens it beneath the
/// specs folder, `beneath.rs`), so no path is resolved again between the read and the
/// rename; the temp file is created `O_EXCL | O_NOFOLLOW`.
pub(super) fn write_atomic_in(dir: &OwnedFd, file_name: &str, bytes: &[u8]) -> io::Result<()> {
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| io::Error::other(e.to_string()))?;
    let tmp = format!(".{file_name}.{}.lsp-tmp", hex::encode(nonce));
    let mode = match rustix::fs::statat(dir, file_name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Mode::from_raw_mode(st.st_mode & 0o7777),
        Err(_) => Mode::from_raw_mode(0o644),
    };
    let result = (|| -> io::Result<()> {
        let fd = rustix::fs::openat(
            dir,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            mode,
        )?;
        // The umask narrowed the create mode; the file keeps the old one.
        rustix::fs::fchmod(&fd, mode)?;
        let mut f = File::from(fd);
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        rustix::fs::renameat(dir, tmp.as_str(), dir, file_name)?;
        // The rename is durable only once the folder entry is: fsync the folder.
        rustix::fs::fsync(dir)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
    }
    if result.is_ok() {
        remove_stale_temps(dir, file_name);
    }
    result
}

/// Removes our temp files for `file_name` in `dir` that a killed writer left behind.
/// Best effort: they are hidden, never read, and only ours match the pattern.
fn remove_stale_temps(dir: &OwnedFd, file_name: &str) {
    let prefix = format!(".{file_name}.");
    let Ok(mut entries) = rustix::fs::Dir::read_from(dir) else {
        return;
    };
    let now = SystemTime::now();
    while let Some(Ok(entry)) = entries.read() {
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        let Some(nonce) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".lsp-tmp"))
        else {
            continue;
        };
        if nonce.len() != 16 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let old = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| {
                SystemTime::UNIX_EPOCH
                    + Duration::new(st.st_mtime.max(0) as u64, st.st_mtime_nsec as u32)
            })
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > STALE_TEMP_AGE);
        if old {
            let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

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
