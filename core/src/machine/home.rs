//! The home folder holds the machine key, the store and the control socket: no other
//! user may write into it (they could swap the store or plant a socket), and none
//! needs to look into it. A home others can write is refused; one they can only read
//! or enter is made private (0700) with a log line.

use super::{Error, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Checks (and if need be tightens) the mode of `home`, which exists.
pub(super) fn secure(home: &Path) -> Result<()> {
    let io = |source| Error::Io {
        path: home.to_path_buf(),
        source,
    };
    let mode = std::fs::metadata(home).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(Error::UnsafeHome {
            path: home.to_path_buf(),
            mode,
        });
    }
    if mode & 0o077 != 0 {
        std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        tracing::info!(
            home = %home.display(),
            "made the home folder private (mode {mode:o} -> 700)"
        );
    }
    Ok(())
}
