//! Ephemeral machines (CI runners, throwaway VMs) leave the mesh by themselves: which
//! ones are due for removal, decided here from what this machine saw.
//!
//! Rules:
//! 1. Only the machine that admitted an ephemeral member removes it. It issued the key
//!    and is usually the always-on peer the runners talk to; a member that never had a
//!    path to the runner would otherwise remove a machine that is busy elsewhere.
//! 2. A member is due when it is not connected now and this machine has not heard from
//!    it for its `ephemeral_after` seconds, counting from the latest of: its last frame,
//!    its admission, and this machine's own start (a machine that was itself down saw
//!    nothing, so it waits a full period before judging).
//! 3. Removal is a mesh change (`MeshDoc::remove_ephemeral`): every member learns it by
//!    sync, drops the machine from its list and refuses it from then on.

use crate::identity::MachineId;
use crate::mesh::Member;
use crate::peer::Presence;
use std::collections::HashMap;

/// The ephemeral members of `members` that `me` should remove at `now` (Unix seconds),
/// having run since `up_since`.
pub(crate) fn due(
    me: MachineId,
    members: &[Member],
    presence: &HashMap<MachineId, Presence>,
    up_since: i64,
    now: i64,
) -> Vec<MachineId> {
    let me_hex = me.to_string();
    members
        .iter()
        .filter(|m| m.id != me && m.revoked_at.is_none() && m.added_by == me_hex)
        .filter_map(|m| {
            let after = m.ephemeral_after?;
            let p = presence.get(&m.id);
            if p.is_some_and(|p| p.online) {
                return None;
            }
            let heard = p.map_or(0, |p| i64::try_from(p.last_seen).unwrap_or(i64::MAX));
            let since = heard.max(m.added_at).max(up_since);
            (now.saturating_sub(since) >= after).then_some(m.id)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::mesh::MeshDoc;

    fn id() -> MachineId {
        Identity::generate().expect("key").id()
    }

    #[test]
    fn only_the_admitting_machine_removes_and_only_after_the_period_away() {
        let (me, other, runner, normal, foreign) = (id(), id(), id(), id(), id());
        let mut mesh = MeshDoc::new(me, "me", 0);
        mesh.add_member(other, "other", me, 0);
        mesh.add_member_for(runner, "runner", me, 100, Some(60));
        mesh.add_member(normal, "normal", me, 100);
        // Admitted by another member (its own change: who admitted whom is the author
        // of the change that added it, not what the record says): not ours to remove.
        let mut theirs =
            MeshDoc::load(other, [mesh.tracked_unchanged().save().as_slice()]).expect("load");
        theirs.add_member_for(foreign, "foreign", other, 100, Some(60));
        let mut change = theirs.tracked_unchanged().doc.fork();
        mesh.tracked_unchanged()
            .doc
            .merge(&mut change)
            .expect("merge");
        mesh.forget_read();
        let members = mesh.members();
        assert_eq!(
            members
                .iter()
                .find(|m| m.id == foreign)
                .map(|m| m.added_by.clone()),
            Some(other.to_string())
        );
        let seen = |online: bool, last_seen: u64| Presence {
            online,
            last_seen,
            ..Presence::default()
        };
        let mut presence = HashMap::new();
        presence.insert(runner, seen(false, 200));
        presence.insert(normal, seen(false, 0));
        presence.insert(foreign, seen(false, 0));
        // Heard 59 s ago: not yet; 60 s: due. The normal machine never is.
        assert!(due(me, &members, &presence, 0, 259).is_empty());
        assert_eq!(due(me, &members, &presence, 0, 260), vec![runner]);
        assert!(due(me, &members, &presence, 0, 100_000).contains(&runner));
        assert!(!due(me, &members, &presence, 0, 100_000).contains(&normal));
        assert!(!due(me, &members, &presence, 0, 100_000).contains(&foreign));
        // Connected now: never, however old its last frame.
        presence.insert(runner, seen(true, 200));
        assert!(due(me, &members, &presence, 0, 100_000).is_empty());
        // This machine was itself down until 1,000: it waits a full period from then.
        presence.insert(runner, seen(false, 200));
        assert!(due(me, &members, &presence, 1_000, 1_059).is_empty());
        assert_eq!(due(me, &members, &presence, 1_000, 1_060), vec![runner]);
        // Never heard from since its admission at 100: counted from then.
        presence.remove(&runner);
        assert!(due(me, &members, &presence, 0, 159).is_empty());
        assert_eq!(due(me, &members, &presence, 0, 160), vec![runner]);
    }

    #[test]
    fn a_removed_machine_is_not_due_again_and_its_key_stays_good() {
        let (me, runner) = (id(), id());
        let mut mesh = MeshDoc::new(me, "me", 0);
        mesh.add_member_for(runner, "runner", me, 0, Some(10));
        mesh.remove_ephemeral(runner, me, 50);
        let m = mesh.member(runner).expect("member");
        assert!(m.removed && m.revoked_at == Some(50));
        assert!(due(me, &mesh.members(), &HashMap::new(), 0, 1_000).is_empty());
        let key = crate::store::InviteRecord {
            expires_at: 10_000,
            reusable: true,
            used_by: vec![runner.to_string()],
            revoked: false,
            created_at: 0,
            ephemeral_after: Some(10),
        };
        assert_eq!(
            super::super::admission::state(&key, &mesh, 100),
            super::super::admission::InviteState::Active
        );
        // A plain revocation of the same machine (someone thinks it leaked) does spoil
        // the key, as for any revoked machine.
        mesh.revoke(runner, me, 60);
        assert!(!mesh.member(runner).expect("member").removed);
        assert_eq!(
            super::super::admission::state(&key, &mesh, 100),
            super::super::admission::InviteState::RevokedWithMachine
        );
    }
}
