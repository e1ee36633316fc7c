//! Every file read or written on anyone's behalf, opened beneath the project's specs
//! folder and never through a symlink out of it (issue 39).
//!
//! A repository can commit `specs/001-x/README.md -> ../../.env`; a path-based `open`
//! follows it, and every member would then be served the file. Here each open starts
//! from a descriptor of the specs folder and resolves the rest in the kernel:
//!
//! 1. Reads resolve with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: a symlink
//!    that stays inside the specs folder is followed (LeanSpec allows that), one that
//!    leads out (absolute, or `..` past the top) fails with `EXDEV` and is
//!    [`OpenError::Refused`]. The check and the open are one system call, so a symlink
//!    swapped in between a scan and a read cannot win a race.
//! 2. Writes (the editor) refuse every symlink on the way
//!    (`RESOLVE_NO_SYMLINKS`): an edit changes the file the spec folder holds, never one
//!    a link points to.
//! 3. Kernels without `openat2` (before 5.6, or a seccomp filter that answers `ENOSYS`
//!    or `EPERM`) get the stricter rule of 2 for reads too, walking the path one
//!    component at a time with `O_NOFOLLOW`.
//! 4. Only `ENOENT` (and `ENOTDIR`: a file where a folder was) is [`OpenError::NotFound`].
//!    Every other failure (EMFILE, EACCES, EIO, ...) is [`OpenError::Io`]: the state is
//!    unknown, and callers must not read it as "gone".
//! 5. Files are opened `O_NONBLOCK` and must be regular files: a FIFO named README.md
//!    would otherwise block the scan forever.

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why an open beneath the specs folder failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Not there: the only failure that confirms an absence.
    #[error("not found")]
    NotFound,
    /// The path leads out of the specs folder, through a symlink, or is not what was
    /// asked for (a FIFO where a file should be): refused, never read.
    #[error("{0}")]
    Refused(String),
    /// Anything else: what is there is unknown.
    #[error("{0}")]
    Io(io::Error),
}

/// What a folder entry is, by its own type (symlinks are not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A real folder.
    Dir,
    /// A regular file.
    File,
    /// A symlink (not followed to learn what it points to).
    Symlink,
    /// Anything else (FIFO, socket, device).
    Other,
}

/// An open specs folder: every path below is resolved from this descriptor.
#[derive(Debug)]
pub struct SpecsDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl SpecsDir {
    /// Opens the specs folder itself (the user chose the project; its specs folder was
    /// found by `find_specs_dir`, which keeps it inside the project).
    pub fn open(path: &Path) -> Result<SpecsDir, OpenError> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(classify)?;
        Ok(SpecsDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The folder's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `rel` (a `/`-separated path below the folder) for reading: a regular file,
    /// resolved beneath the folder (rule 1).
    pub fn open_file(&self, rel: &str) -> Result<File, OpenError> {
        let fd = self.resolve(rel, OFlags::RDONLY | OFlags::NONBLOCK, false)?;
        let stat = rustix::fs::fstat(&fd).map_err(classify)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(OpenError::Refused(format!(
                "{rel} is not a regular file; not read"
            )));
        }
        Ok(File::from(fd))
    }

    /// Opens the folder `rel` with no symlink anywhere on the way (rule 2), for the
    /// editor's atomic write.
    pub fn open_dir_strict(&self, rel: &str) -> Result<OwnedFd, OpenError> {
        self.resolve(rel, OFlags::RDONLY | OFlags::DIRECTORY, true)
    }

    /// Opens `file` in the folder `dir` (from [`SpecsDir::open_dir_strict`]) as a
    /// regular file, not through a symlink: the editor reads and writes one folder.
    pub fn open_file_in(dir: &OwnedFd, file: &str) -> Result<File, OpenError> {
        check_rel(file)?;
        let fd = rustix::fs::openat(
            dir,
            file,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::LOOP => OpenError::Refused(format!("{file} is a symlink; not followed")),
            e => classify(e),
        })?;
        let stat = rustix::fs::fstat(&fd).map_err(classify)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(OpenError::Refused(format!("{file} is not a regular file")));
        }
        Ok(File::from(fd))
    }

    /// The entries of folder `rel` (`""` for the specs folder), with their own types.
    /// Symlinked folders on the way are refused like files (rule 1).
    pub fn list(&self, rel: &str) -> Result<Vec<(std::ffi::OsString, EntryKind)>, OpenError> {
        let fd = if rel.is_empty() {
            rustix::fs::openat(
                &self.fd,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(classify)?
        } else {
            self.resolve(rel, OFlags::RDONLY | OFlags::DIRECTORY, true)?
        };
        let mut dir = rustix::fs::Dir::new(fd).map_err(classify)?;
        let mut out = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(classify)?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let kind = match entry.file_type() {
                FileType::Directory => EntryKind::Dir,
                FileType::RegularFile => EntryKind::File,
                FileType::Symlink => EntryKind::Symlink,
                FileType::Unknown => {
                    // Some filesystems do not fill d_type: ask, without following.
                    let stat = rustix::fs::statat(
                        dir.fd().map_err(classify)?,
                        entry.file_name(),
                        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(classify)?;
                    match FileType::from_raw_mode(stat.st_mode) {
                        FileType::Directory => EntryKind::Dir,
                        FileType::RegularFile => EntryKind::File,
                        FileType::Symlink => EntryKind::Symlink,
                        _ => EntryKind::Other,
                    }
                }
                _ => EntryKind::Other,
            };
            out.push((name.to_os_string(), kind));
        }
        Ok(out)
    }

    /// Whether `rel` exists as anything (no symlink followed at the last step):
    /// `Ok(false)` only when the filesystem says it is not there.
    pub fn exists(&self, rel: &str) -> Result<bool, OpenError> {
        let (parent, last) = match rel.rsplit_once('/') {
            Some((p, l)) => (Some(p), l),
            None => (None, rel),
        };
        let parent_fd = match parent {
            Some(p) => match self.resolve(p, OFlags::PATH | OFlags::DIRECTORY, true) {
                Ok(fd) => fd,
                Err(OpenError::NotFound) => return Ok(false),
                Err(e) => return Err(e),
            },
            None => {
                rustix::fs::openat(&self.fd, ".", OFlags::PATH, Mode::empty()).map_err(classify)?
            }
        };
        match rustix::fs::statat(&parent_fd, last, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(e) => match classify(e) {
                OpenError::NotFound => Ok(false),
                other => Err(other),
            },
        }
    }

    fn resolve(&self, rel: &str, flags: OFlags, strict: bool) -> Result<OwnedFd, OpenError> {
        check_rel(rel)?;
        // openat2 refuses flags O_PATH cannot take (EINVAL), O_NOCTTY among them.
        let flags = if flags.contains(OFlags::PATH) {
            flags | OFlags::CLOEXEC
        } else {
            flags | OFlags::CLOEXEC | OFlags::NOCTTY
        };
        let resolve = if strict {
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
        } else {
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS
        };
        match rustix::fs::openat2(&self.fd, rel, flags, Mode::empty(), resolve) {
            Ok(fd) => Ok(fd),
            Err(Errno::NOSYS | Errno::PERM) => self.resolve_by_components(rel, flags),
            Err(Errno::XDEV) => Err(OpenError::Refused(format!(
                "{rel} leads outside the specs folder (a symlink); not read"
            ))),
            Err(Errno::LOOP) => Err(OpenError::Refused(format!(
                "{rel} goes through a symlink{}; not followed",
                if strict { "" } else { " loop" }
            ))),
            Err(e) => Err(classify(e)),
        }
    }

    /// Rule 3: one component at a time, refusing every symlink.
    fn resolve_by_components(&self, rel: &str, flags: OFlags) -> Result<OwnedFd, OpenError> {
        let parts: Vec<&str> = rel.split('/').collect();
        let mut dir: Option<OwnedFd> = None;
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let f = if last {
                flags | OFlags::NOFOLLOW
            } else {
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
            };
            let at = dir.as_ref().unwrap_or(&self.fd);
            let next = rustix::fs::openat(at, *part, f, Mode::empty()).map_err(|e| match e {
                Errno::LOOP => OpenError::Refused(format!(
                    "{rel} goes through a symlink; not followed on this kernel"
                )),
                e => classify(e),
            })?;
            dir = Some(next);
        }
        dir.ok_or_else(|| OpenError::Refused("an empty path".into()))
    }
}

/// A path below the specs folder: plain relative components only.
fn check_rel(rel: &str) -> Result<(), OpenError> {
    if rel.is_empty()
        || rel.starts_with('/')
        || rel.contains('\0')
        || rel
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(OpenError::Refused(format!(
            "{rel:?} is not a plain path below the specs folder"
        )));
    }
    Ok(())
}

/// Rule 4.
fn classify(e: Errno) -> OpenError {
    match e {
        Errno::NOENT | Errno::NOTDIR => OpenError::NotFound,
        e => OpenError::Io(io::Error::from_raw_os_error(e.raw_os_error())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().expect("tmp");
        let specs = tmp.path().join("project/specs");
        std::fs::create_dir_all(specs.join("001-a")).expect("mkdir");
        std::fs::create_dir_all(specs.join("002-b")).expect("mkdir");
        std::fs::write(specs.join("001-a/README.md"), "inside").expect("write");
        std::fs::write(tmp.path().join("secret.env"), "AWS_SECRET=1").expect("write");
        (tmp, specs)
    }

    fn read(d: &SpecsDir, rel: &str) -> Result<String, OpenError> {
        use std::io::Read;
        let mut s = String::new();
        d.open_file(rel)?
            .read_to_string(&mut s)
            .map_err(OpenError::Io)?;
        Ok(s)
    }

    /// The repository: README.md is a symlink to a file outside the project.
    #[test]
    fn a_symlink_out_of_the_specs_folder_is_refused_and_one_inside_is_followed() {
        let (tmp, specs) = setup();
        let d = SpecsDir::open(&specs).expect("open");
        symlink("../../../secret.env", specs.join("002-b/README.md")).expect("symlink");
        assert!(matches!(
            read(&d, "002-b/README.md"),
            Err(OpenError::Refused(_))
        ));
        symlink(tmp.path().join("secret.env"), specs.join("002-b/x.md")).expect("symlink");
        assert!(matches!(read(&d, "002-b/x.md"), Err(OpenError::Refused(_))));
        symlink("../001-a/README.md", specs.join("002-b/in.md")).expect("symlink");
        assert_eq!(read(&d, "002-b/in.md").expect("inside"), "inside");
        let dir = d.open_dir_strict("002-b").expect("a real folder");
        assert!(matches!(
            SpecsDir::open_file_in(&dir, "in.md"),
            Err(OpenError::Refused(_))
        ));
        assert!(matches!(
            read(&d, "003-c/README.md"),
            Err(OpenError::NotFound)
        ));
        assert!(matches!(
            read(&d, "../secret.env"),
            Err(OpenError::Refused(_))
        ));
    }

    /// A symlinked folder on the way is refused too, and a FIFO is not opened for
    /// reading (it would block).
    #[test]
    fn symlinked_folders_and_fifos_are_refused() {
        let (tmp, specs) = setup();
        std::fs::create_dir_all(tmp.path().join("elsewhere")).expect("mkdir");
        std::fs::write(tmp.path().join("elsewhere/README.md"), "out").expect("write");
        symlink(tmp.path().join("elsewhere"), specs.join("003-c")).expect("symlink");
        let d = SpecsDir::open(&specs).expect("open");
        assert!(matches!(
            read(&d, "003-c/README.md"),
            Err(OpenError::Refused(_))
        ));
        assert!(matches!(d.list("003-c"), Err(OpenError::Refused(_))));
        let fifo = specs.join("002-b/README.md");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        assert!(matches!(
            read(&d, "002-b/README.md"),
            Err(OpenError::Refused(_))
        ));
    }

    /// Rule 4: a folder we may not read is not an absence. Run on a thread without
    /// the capabilities that let root read through mode 000 (capabilities are per
    /// thread), so it holds as root too.
    #[test]
    fn permission_denied_is_io_not_absence() {
        use std::os::unix::fs::PermissionsExt;
        let (_tmp, specs) = setup();
        let d = SpecsDir::open(&specs).expect("open");
        std::fs::set_permissions(specs.join("001-a"), std::fs::Permissions::from_mode(0o000))
            .expect("chmod");
        let got = std::thread::scope(|s| {
            s.spawn(|| {
                drop_dac_capabilities();
                (read(&d, "001-a/README.md"), d.exists("001-a/README.md"))
            })
            .join()
            .expect("thread")
        });
        std::fs::set_permissions(specs.join("001-a"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        assert!(matches!(got.0, Err(OpenError::Io(_))), "{:?}", got.0);
        assert!(matches!(got.1, Err(OpenError::Io(_))), "{:?}", got.1);
    }

    /// This thread can no longer read what its mode forbids, root or not.
    pub(crate) fn drop_dac_capabilities() {
        use rustix::thread::{CapabilitySet, capabilities, set_capabilities};
        let mut sets = capabilities(None).expect("capget");
        sets.effective
            .remove(CapabilitySet::DAC_OVERRIDE | CapabilitySet::DAC_READ_SEARCH);
        set_capabilities(None, sets).expect("capset");
    }
}
