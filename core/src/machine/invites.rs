//! Invitations this machine issued: made, listed with where they stand, revoked. The
//! store keeps only the SHA-256 of each secret; an invitation's id is the first 8 bytes
//! of that hash in hex, safe to show and to type (it does not let anyone join).

use super::{Error, Machine, Result, now_secs};
use crate::identity::MachineId;
use crate::proto::admission;
pub use crate::proto::admission::InviteState;
use crate::store::InviteRecord;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Shortest id prefix `invite revoke` accepts.
const MIN_PREFIX: usize = 4;

/// An invitation as `invite list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteInfo {
    /// Its id (16 hex characters).
    pub id: String,
    /// Unix seconds it was made (0: before this was recorded).
    pub created_at: u64,
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
    /// Usable by many machines (an auth key).
    pub reusable: bool,
    /// Its machines are removed after this many seconds away (an ephemeral key).
    #[serde(default)]
    pub ephemeral_after: Option<u64>,
    /// Where it stands now.
    pub state: InviteState,
    /// The machines that joined with it.
    pub used_by: Vec<InviteUser>,
}

/// A machine that joined with an invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteUser {
    /// Its id.
    pub id: MachineId,
    /// Its label now (empty if the mesh no longer lists it).
    pub label: String,
    /// Revoked since.
    pub revoked: bool,
    /// Removed since (ephemeral, it stayed away).
    #[serde(default)]
    pub removed: bool,
}

impl Machine {
    /// Stores a new invitation valid for `ttl` and returns its secret and expiry (Unix
    /// seconds); with `ephemeral_after`, the machines that join with it are removed
    /// after being away that long. A reusable one
    /// lives at most `limits.max_reusable_ttl`: a key that never expires is a key that
    /// leaks one day.
    pub(crate) fn new_invite(
        &mut self,
        ttl: Duration,
        reusable: bool,
        ephemeral_after: Option<Duration>,
    ) -> Result<([u8; 16], u64)> {
        let max = self.limits.max_reusable_ttl;
        if reusable && ttl > max {
            return Err(Error::InvalidInvite(format!(
                "a reusable key lives at most {} days (max_reusable_ttl); pass a shorter --ttl",
                max.as_secs() / 86_400
            )));
        }
        let mut secret = [0u8; 16];
        getrandom::fill(&mut secret)
            .map_err(|e| Error::InvalidInvite(format!("no randomness: {e}")))?;
        let now = now_secs().max(0) as u64;
        let record = InviteRecord {
            expires_at: now.saturating_add(ttl.as_secs()),
            reusable,
            used_by: Vec::new(),
            revoked: false,
            created_at: now,
            ephemeral_after: ephemeral_after.map(|d| d.as_secs().max(1)),
        };
        self.store
            .put_invite(&crate::peer::sha256(&secret), &record)?;
        Ok((secret, record.expires_at))
    }

    /// Every invitation, newest first.
    pub fn invites(&self) -> Result<Vec<InviteInfo>> {
        let now = now_secs().max(0) as u64;
        let mut out: Vec<InviteInfo> = self
            .store
            .invites()?
            .into_iter()
            .map(|(hash, r)| self.invite_info(&hash, &r, now))
            .collect();
        out.sort_by(|a, b| {
            (b.created_at, b.expires_at, &b.id).cmp(&(a.created_at, a.expires_at, &a.id))
        });
        Ok(out)
    }

    /// Revokes the invitation whose id starts with `selector` (at least 4 hex
    /// characters): every later join with it is refused. Revoking twice is not an error.
    pub fn revoke_invite(&mut self, selector: &str) -> Result<InviteInfo> {
        let wanted = selector.trim().to_ascii_lowercase();
        let unknown = || Error::UnknownInvite {
            selector: selector.to_string(),
        };
        if wanted.len() < MIN_PREFIX || !wanted.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(unknown());
        }
        let matches: Vec<(Vec<u8>, InviteRecord)> = self
            .store
            .invites()?
            .into_iter()
            .filter(|(hash, _)| invite_id(hash).starts_with(&wanted))
            .collect();
        let (hash, mut record) = match matches.as_slice() {
            [] => return Err(unknown()),
            [one] => one.clone(),
            many => {
                return Err(Error::AmbiguousInvite {
                    selector: selector.to_string(),
                    candidates: many
                        .iter()
                        .map(|(h, _)| invite_id(h))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        };
        record.revoked = true;
        self.store.put_invite(&hash, &record)?;
        tracing::info!(invite = %invite_id(&hash), "revoked an invitation");
        Ok(self.invite_info(&hash, &record, now_secs().max(0) as u64))
    }

    fn invite_info(&self, hash: &[u8], r: &InviteRecord, now: u64) -> InviteInfo {
        let mesh = self.mesh();
        InviteInfo {
            id: invite_id(hash),
            created_at: r.created_at,
            expires_at: r.expires_at,
            reusable: r.reusable,
            ephemeral_after: r.ephemeral_after,
            state: admission::state(r, mesh, now),
            used_by: r
                .used_by
                .iter()
                .filter_map(|u| u.parse::<MachineId>().ok())
                .map(|id| {
                    let member = mesh.member(id);
                    InviteUser {
                        id,
                        label: member.as_ref().map(|m| m.label.clone()).unwrap_or_default(),
                        revoked: member
                            .as_ref()
                            .is_some_and(|m| m.revoked_at.is_some() && !m.removed),
                        removed: member.is_some_and(|m| m.removed),
                    }
                })
                .collect(),
        }
    }
}

/// The id shown for the invitation stored under `hash`.
fn invite_id(hash: &[u8]) -> String {
    hex::encode(&hash[..hash.len().min(8)])
}
