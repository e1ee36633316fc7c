//! The machine identity: an ed25519 key pair. The public key is the machine id; the
//! secret key signs operations and (later) is the iroh endpoint key, so one key names
//! the machine everywhere.

use ed25519_dalek::SigningKey;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// File name of the secret key inside the home folder.
pub const KEY_FILE: &str = "machine.key";

/// A machine id: the 32-byte ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MachineId([u8; 32]);

impl MachineId {
    /// The raw public key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Builds an id from public key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> MachineId {
        MachineId(bytes)
    }

    /// Checks an ed25519 signature by this machine over `message` (strict: rejects
    /// non-canonical and small-order encodings).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
            .is_ok()
    }

    /// The short, readable form: the first 5 bytes as hex (10 characters), as iroh
    /// shows endpoint ids. Good for people; use the full id in scripts.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..5])
    }

    /// The Automerge actor id of this machine's document: the first 16 bytes of the key.
    /// 16 bytes keep every change small; finding another key with the same 16-byte
    /// prefix is a 2^128 search, so the actor still names one machine.
    pub fn actor_bytes(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.0[..16]);
        a
    }
}

impl fmt::Display for MachineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for MachineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MachineId({})", self.short())
    }
}

impl serde::Serialize for MachineId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for MachineId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A string that is not a 64-character hex machine id.
#[derive(Debug, thiserror::Error)]
#[error("not a machine id (expected 64 hex characters): {0:?}")]
pub struct BadMachineId(String);

impl FromStr for MachineId {
    type Err = BadMachineId;
    /// Only the canonical form: exactly 64 lowercase hex digits, nothing around them.
    /// A lenient parse (trimmed, uppercase) let a second key in the mesh (`" <id>"`,
    /// `"<ID>"`) name the same machine as a shadow record, one that could hide its
    /// revocation (issue 11).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let canonical = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let mut out = [0u8; 32];
        if !canonical || hex::decode_to_slice(s, &mut out).is_err() {
            return Err(BadMachineId(s.chars().take(80).collect()));
        }
        Ok(MachineId(out))
    }
}

/// Errors reading or creating the machine key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The key file could not be read or written.
    #[error("cannot access the machine key {}: {source}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file exists but does not hold a key.
    #[error("the machine key {} is damaged (expected 64 hex characters); restore it from a backup, or move it away and run `leanspec-peer init` to become a new machine", path.display())]
    Damaged {
        /// The key file.
        path: PathBuf,
    },
    /// Others can read the key file.
    #[error("the machine key {} can be read by other users (mode {mode:o}); run `chmod 600 {}`", path.display(), path.display())]
    Exposed {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// No random bytes could be had from the OS.
    #[error("the OS gave no random bytes for a new key: {0}")]
    Random(String),
}

/// The machine's key pair. Cloned only to seal or open bucket objects away from the
/// machine's lock.
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh random identity (not stored).
    pub fn generate() -> Result<Identity, IdentityError> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| IdentityError::Random(e.to_string()))?;
        Ok(Identity {
            key: SigningKey::from_bytes(&secret),
        })
    }

    /// The machine id (public key).
    pub fn id(&self) -> MachineId {
        MachineId(self.key.verifying_key().to_bytes())
    }

    /// Signs `message` with the machine key (ed25519).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.key.sign(message).to_bytes()
    }

    /// The secret key bytes (for the iroh endpoint; never log them).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Loads the key from `home/machine.key`; `Ok(None)` when there is none yet.
    pub fn load(home: &Path) -> Result<Option<Identity>, IdentityError> {
        let path = home.join(KEY_FILE);
        let io = |source| IdentityError::Io {
            path: path.clone(),
            source,
        };
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::Exposed { path, mode });
        }
        let text = fs::read_to_string(&path).map_err(io)?;
        let mut secret = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut secret)
            .map_err(|_| IdentityError::Damaged { path: path.clone() })?;
        Ok(Some(Identity {
            key: SigningKey::from_bytes(&secret),
        }))
    }

    /// Writes the key to `home/machine.key` with mode 0600. Never overwrites a key, and
    /// never leaves a partial one: the key is written to a temp file, synced, then
    /// linked into place (a crash leaves either no key or the whole key).
    pub fn save_new(&self, home: &Path) -> Result<(), IdentityError> {
        let path = home.join(KEY_FILE);
        let tmp = home.join(format!("{KEY_FILE}.tmp"));
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| IdentityError::Io { path: p, source }
        };
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(hex::encode(self.key.to_bytes()).as_bytes())
            .map_err(io(&tmp))?;
        f.write_all(b"\n").map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        // hard_link fails if the key exists: never replaces an identity.
        fs::hard_link(&tmp, &path).map_err(io(&path))?;
        let _ = fs::remove_file(&tmp);
        fs::File::open(home)
            .and_then(|d| d.sync_all())
            .map_err(io(home))?;
        Ok(())
    }
}
