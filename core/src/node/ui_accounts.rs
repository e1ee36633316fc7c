//! Web UI accounts of this machine: a name, a role and an argon2id password hash, kept
//! in the store (`ui_accounts` table), never replicated: an account is for people who
//! log in to *this* machine's UI (an always-on peer's, typically) from a device that is
//! not a member. The machine's own user needs none: `leanspec-peer ui` hands it a
//! one-time login as admin.
//!
//! Invariants:
//! - only the PHC string of a password is stored (argon2id, a random 16-byte salt);
//! - `epoch` grows on every password change, and a session remembers the epoch it was
//!   opened under, so a password change ends every older session (`UiLogins`);
//! - checking a password for a name that has no account costs the same hash, so the
//!   time taken does not tell which names exist.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted (hashing cost grows with length only slightly, but the
/// request body carrying it must stay small).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest account name (as an operation can carry it).
pub const MAX_NAME_BYTES: usize = crate::ops::wire::MAX_ACCOUNT_BYTES;

/// What an account may do. Enforced by the API server for every request, not only by
/// what the page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything the UI shows.
    Viewer,
    /// A viewer who may also edit spec metadata and send execution requests.
    Editor,
    /// An editor who may also rename and revoke machines and manage invitations.
    Admin,
}

impl Role {
    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "{other:?} is not a role: use viewer, editor or admin"
            )),
        }
    }
}

/// An account as listed (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UiAccount {
    /// Login name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Unix milliseconds when it was added.
    pub created_ms: i64,
    /// Unix milliseconds of the last password change.
    pub password_changed_ms: i64,
}

/// The stored record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccountRecord {
    pub(crate) role: Role,
    /// argon2id PHC string.
    pub(crate) phc: String,
    pub(crate) epoch: u64,
    pub(crate) created_ms: i64,
    pub(crate) password_changed_ms: i64,
}

impl AccountRecord {
    pub(crate) fn listed(&self, name: &str) -> UiAccount {
        UiAccount {
            name: name.to_string(),
            role: self.role,
            created_ms: self.created_ms,
            password_changed_ms: self.password_changed_ms,
        }
    }
}

/// Why a name is not an account name (1–64 bytes of letters, digits, `.`, `_`, `-`,
/// `@`; it is shown in audit logs and on other machines).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an account name: 1 to {MAX_NAME_BYTES} letters, digits, '.', '_', '-' or '@'"
        ))
    }
}

/// Why a password is refused.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password is too short: use at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "the password is too long: at most {MAX_PASSWORD_BYTES} bytes"
        ));
    }
    Ok(())
}

/// argon2id with the parameters OWASP recommends (19 MiB, 2 passes, 1 lane): ~40 ms
/// of one core per check here, which the login throttle and a two-check limit in the
/// server keep from becoming a way to burn our CPU.
fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// The PHC string of `password` with a fresh salt.
pub(crate) fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches `phc` (`None`: there is no account, and a dummy hash is
/// checked so the answer takes as long).
pub(crate) fn password_ok(phc: Option<&str>, password: &str) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY
        .get_or_init(|| hash_password("no such account, no such password").unwrap_or_default());
    let (phc, real) = match phc {
        Some(p) => (p, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    hasher()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_salt_and_verify() {
        let a = hash_password("correct horse battery").expect("hash");
        let b = hash_password("correct horse battery").expect("hash");
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(password_ok(Some(&a), "correct horse battery"));
        assert!(!password_ok(Some(&a), "correct horse batterz"));
        assert!(!password_ok(None, "no such account, no such password"));
        assert!(!password_ok(Some("not a phc string"), "x"));
    }

    #[test]
    fn names_roles_and_passwords_are_checked() {
        assert!(check_name("ana.b-c_d@x").is_ok());
        for bad in ["", "a b", "ä", "a/b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_password("short").is_err());
        assert!(check_password(&"p".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
        assert!(check_password("long enough pw").is_ok());
        assert_eq!("editor".parse::<Role>(), Ok(Role::Editor));
        assert!("root".parse::<Role>().is_err());
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Admin);
    }
}
