//! Join admission: whether an inviter admits a machine that presents an invitation
//! secret, as a pure function of (the invitation as stored, the mesh, now). The driver in
//! `peer/session.rs` only looks the invitation up and stores what this decides.
//!
//! Rules, in order (the first that fails is the answer the joiner sees):
//! 1. the secret is hex (else the request is malformed);
//! 2. a revoked machine never rejoins, whatever it presents;
//! 3. the invitation exists here (a ticket of another machine's store is unknown);
//! 4. it is not revoked and not expired (`now >= expires_at` is expired), and no machine
//!    that used it has been revoked since (a revoked host holding a reusable auth key
//!    would otherwise rejoin under a new identity);
//! 5. a one-time invitation admits one machine; that machine may present it again (a
//!    retried join after a lost answer is not a second use).

use crate::identity::MachineId;
use crate::mesh::MeshDoc;
use crate::store::InviteRecord;

/// Why a join is refused; the text is what the joiner is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("malformed join request")]
    Malformed,
    #[error("this machine was revoked from the mesh and cannot rejoin")]
    Revoked,
    #[error("unknown invitation (wrong ticket, or issued by another machine)")]
    Unknown,
    #[error("this invitation was revoked")]
    InvitationRevoked,
    #[error("this invitation has expired; ask for a new one (`leanspec-peer invite`)")]
    Expired,
    #[error("this invitation was already used; ask for a new one (`leanspec-peer invite`)")]
    AlreadyUsed,
}

/// The stored key of an invitation: the SHA-256 of its secret (the secret itself is
/// never stored). `Malformed` when the secret is not hex.
pub(crate) fn invitation_key(secret_hex: &str) -> Result<Vec<u8>, Refusal> {
    let secret = hex::decode(secret_hex).map_err(|_| Refusal::Malformed)?;
    Ok(crate::peer::sha256(&secret))
}

/// Where an invitation stands (what `invite list` shows), by rule 4 and 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteState {
    /// Usable (a one-time invitation not used yet, or a reusable key).
    Active,
    /// A one-time invitation its machine used (only that machine may present it again).
    Used,
    /// Past its expiry.
    Expired,
    /// Revoked by `invite revoke`.
    Revoked,
    /// A machine that used it was revoked since: refused for everyone.
    RevokedWithMachine,
}

/// The state of `invite` in `mesh` at `now` (Unix seconds).
pub(crate) fn state(invite: &InviteRecord, mesh: &MeshDoc, now: u64) -> InviteState {
    // An ephemeral machine removed for staying away spoils nothing: its key is meant
    // for the next runner.
    let used_by_revoked = invite.used_by.iter().any(|u| {
        u.parse::<MachineId>().is_ok_and(|m| {
            mesh.member(m)
                .is_some_and(|x| x.revoked_at.is_some() && !x.removed)
        })
    });
    if invite.revoked {
        InviteState::Revoked
    } else if used_by_revoked {
        InviteState::RevokedWithMachine
    } else if now >= invite.expires_at {
        InviteState::Expired
    } else if !invite.reusable && !invite.used_by.is_empty() {
        InviteState::Used
    } else {
        InviteState::Active
    }
}

/// What admitting a machine changes: the invitation to store back, and the label the
/// joiner is added under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Admitted {
    pub(crate) invite: InviteRecord,
    pub(crate) label: String,
}

/// Decides a join (rules in the module doc). `invite` is the stored invitation for the
/// presented secret, if any; `now` is Unix seconds.
pub(crate) fn admit(
    invite: Option<&InviteRecord>,
    mesh: &MeshDoc,
    joiner: MachineId,
    requested_label: &str,
    now: u64,
) -> Result<Admitted, Refusal> {
    if mesh.member(joiner).is_some_and(|x| x.revoked_at.is_some()) {
        return Err(Refusal::Revoked);
    }
    let mut invite = invite.ok_or(Refusal::Unknown)?.clone();
    match state(&invite, mesh, now) {
        InviteState::Revoked | InviteState::RevokedWithMachine => {
            return Err(Refusal::InvitationRevoked);
        }
        InviteState::Expired => return Err(Refusal::Expired),
        InviteState::Active | InviteState::Used => {}
    }
    let id = joiner.to_string();
    if !invite.reusable && invite.used_by.iter().any(|u| *u != id) {
        return Err(Refusal::AlreadyUsed);
    }
    if !invite.used_by.contains(&id) {
        invite.used_by.push(id);
    }
    Ok(Admitted {
        invite,
        label: joiner_label(requested_label, joiner),
    })
}

/// The label a joiner asked for, cleaned as every label received from a member is
/// ([`crate::mesh::clean_label`]); its short id when nothing is left.
fn joiner_label(requested: &str, joiner: MachineId) -> String {
    match crate::mesh::clean_label(requested) {
        l if l.is_empty() => joiner.short(),
        l => l,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn id() -> MachineId {
        Identity::generate().expect("key").id()
    }

    fn invite(reusable: bool, used_by: &[MachineId]) -> InviteRecord {
        InviteRecord {
            expires_at: 1_000,
            reusable,
            used_by: used_by.iter().map(ToString::to_string).collect(),
            revoked: false,
            created_at: 0,
            ephemeral_after: None,
        }
    }

    fn mesh_with(members: &[(MachineId, bool)]) -> MeshDoc {
        let owner = id();
        let mut mesh = MeshDoc::new(owner, "inviter", 1);
        for (m, revoked) in members {
            mesh.add_member(*m, "m", owner, 1);
            if *revoked {
                mesh.revoke(*m, owner, 2);
            }
        }
        mesh
    }

    #[test]
    fn every_rule_refuses_with_its_own_reason() {
        let (joiner, other) = (id(), id());
        let mesh = mesh_with(&[]);
        let fresh = invite(false, &[]);
        assert_eq!(invitation_key("not hex"), Err(Refusal::Malformed));
        assert_eq!(invitation_key("00ff").map(|k| k.len()), Ok(32));
        assert_eq!(admit(None, &mesh, joiner, "x", 0), Err(Refusal::Unknown));
        let revoked_mesh = mesh_with(&[(joiner, true)]);
        assert_eq!(
            admit(Some(&fresh), &revoked_mesh, joiner, "x", 0),
            Err(Refusal::Revoked),
            "a revoked machine is refused even with a good invitation"
        );
        let revoked_invite = InviteRecord {
            revoked: true,
            ..fresh.clone()
        };
        assert_eq!(
            admit(Some(&revoked_invite), &mesh, joiner, "x", 0),
            Err(Refusal::InvitationRevoked)
        );
        assert_eq!(
            admit(Some(&fresh), &mesh, joiner, "x", 999).map(|a| a.label),
            Ok("x".to_string())
        );
        assert_eq!(
            admit(Some(&fresh), &mesh, joiner, "x", 1_000),
            Err(Refusal::Expired),
            "expiry is inclusive"
        );
        let used = invite(false, &[other]);
        assert_eq!(
            admit(Some(&used), &mesh, joiner, "x", 0),
            Err(Refusal::AlreadyUsed)
        );
    }

    #[test]
    fn a_one_time_invitation_admits_its_machine_again_and_a_reusable_one_everyone() {
        let (a, b) = (id(), id());
        let mesh = mesh_with(&[]);
        let first = admit(Some(&invite(false, &[])), &mesh, a, "a", 0).expect("first");
        assert_eq!(first.invite.used_by, vec![a.to_string()]);
        let again = admit(Some(&first.invite), &mesh, a, "a", 0).expect("retry");
        assert_eq!(
            again.invite.used_by,
            vec![a.to_string()],
            "not recorded twice"
        );
        assert_eq!(
            admit(Some(&first.invite), &mesh, b, "b", 0),
            Err(Refusal::AlreadyUsed)
        );
        let key = admit(Some(&invite(true, &[a])), &mesh, b, "b", 0).expect("reusable");
        assert_eq!(key.invite.used_by, vec![a.to_string(), b.to_string()]);
    }

    #[test]
    fn an_invitation_used_by_a_revoked_machine_is_revoked_with_it() {
        let (r, d) = (id(), id());
        let mesh = mesh_with(&[(r, true)]);
        let key = invite(true, &[r]);
        assert_eq!(
            admit(Some(&key), &mesh, d, "d", 0),
            Err(Refusal::InvitationRevoked),
            "a new identity with the revoked machine's auth key"
        );
        let live = mesh_with(&[(r, false)]);
        assert!(admit(Some(&key), &live, d, "d", 0).is_ok());
        assert_eq!(state(&key, &mesh, 0), InviteState::RevokedWithMachine);
        assert_eq!(state(&key, &live, 0), InviteState::Active);
    }

    #[test]
    fn states_follow_the_rules() {
        let (a, mesh) = (id(), mesh_with(&[]));
        assert_eq!(state(&invite(false, &[]), &mesh, 0), InviteState::Active);
        assert_eq!(state(&invite(false, &[a]), &mesh, 0), InviteState::Used);
        assert_eq!(state(&invite(true, &[a]), &mesh, 0), InviteState::Active);
        assert_eq!(
            state(&invite(true, &[]), &mesh, 1_000),
            InviteState::Expired
        );
        let revoked = InviteRecord {
            revoked: true,
            ..invite(true, &[])
        };
        assert_eq!(state(&revoked, &mesh, 2_000), InviteState::Revoked);
    }

    #[test]
    fn labels_are_cleaned_and_never_empty() {
        let j = id();
        let mesh = mesh_with(&[]);
        let label = |l: &str| {
            admit(Some(&invite(true, &[])), &mesh, j, l, 0)
                .expect("admit")
                .label
        };
        assert_eq!(label("  desk\u{7}top \n"), "desktop");
        assert_eq!(label("\n\t "), j.short());
        assert_eq!(
            label(&"x".repeat(500)).chars().count(),
            crate::mesh::MAX_LABEL_CHARS
        );
    }
}
