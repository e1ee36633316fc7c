//! Connection-level rules: who may open a sync session, the hello, which of two
//! connections to one machine survives, and how long a dialer waits before trying again.

use crate::identity::MachineId;
use crate::mesh::MeshDoc;
use crate::net::close;
use std::collections::HashSet;
use std::time::Duration;

/// Why a sync connection is refused before any of its bytes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("not a member of this mesh")]
    NotMember,
    #[error("revoked from the mesh")]
    Revoked,
    #[error("this machine was revoked")]
    SelfRevoked,
}

impl Refusal {
    /// The QUIC close code the remote sees.
    pub(crate) fn close_code(self) -> u32 {
        match self {
            Refusal::NotMember => close::NOT_MEMBER,
            Refusal::Revoked | Refusal::SelfRevoked => close::REVOKED,
        }
    }
}

/// Whether `peer` (the key the connection authenticated, never a claim in its bytes)
/// may hold a sync session with `me`: both must be current members of the mesh.
pub(crate) fn admit_session(mesh: &MeshDoc, me: MachineId, peer: MachineId) -> Result<(), Refusal> {
    match mesh.member(peer) {
        None => Err(Refusal::NotMember),
        Some(m) if m.revoked_at.is_some() => Err(Refusal::Revoked),
        Some(_) if mesh.member(me).is_some_and(|x| x.revoked_at.is_some()) => {
            Err(Refusal::SelfRevoked)
        }
        Some(_) => Ok(()),
    }
}

/// The hello's body: the sender's incarnation, u64 big-endian.
pub(crate) fn hello(incarnation: u64) -> [u8; 8] {
    incarnation.to_be_bytes()
}

/// The incarnation in a hello; `None` unless the body is exactly 8 bytes.
pub(crate) fn parse_hello(body: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(body).ok().map(u64::from_be_bytes)
}

/// The links frame's body: the machines the sender holds a sync session with now (its
/// direct sources of their documents), 32 bytes each. A peer that sees us linked to a
/// machine stops relaying that machine's changes to us (`proto::sync`, invariant 5).
pub(crate) fn links<'a>(ids: impl IntoIterator<Item = &'a MachineId>) -> Vec<u8> {
    ids.into_iter().flat_map(|id| *id.as_bytes()).collect()
}

/// The machines in a links frame; `None` unless the body is a whole number of ids and
/// at most `max` of them. A claim here only changes what is relayed *to its sender*:
/// a member that lies about its links only starves itself.
pub(crate) fn parse_links(body: &[u8], max: usize) -> Option<HashSet<MachineId>> {
    if !body.len().is_multiple_of(32) || body.len() / 32 > max {
        return None;
    }
    Some(
        body.chunks_exact(32)
            .filter_map(|c| <[u8; 32]>::try_from(c).ok())
            .map(MachineId::from_bytes)
            .collect(),
    )
}

/// A connection to a machine, as the tie-break sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Registered {
    /// Who opened it.
    pub(crate) dialer: MachineId,
    /// It has not been seen closed yet.
    pub(crate) alive: bool,
    /// The remote machine's incarnation, from its hello: a counter the machine stores
    /// and increments each time it starts.
    pub(crate) incarnation: u64,
}

/// When a new connection to a machine we already have a session with registers: true
/// keeps the existing one (the new one is closed), false replaces it.
///
/// 1. A connection from a newer incarnation of the machine replaces the old one at
///    once: the old process is gone (crashed, killed, lost its network), even if its
///    connection has not timed out yet. Without this a restarted machine waited for
///    the idle timeout (~12 s) before anything it changed was sent. A connection from
///    an older incarnation (delivered late) never replaces a newer one.
/// 2. Between connections of the same incarnations, both sides must pick the same one
///    without talking: the one opened by the smaller machine id wins.
/// 3. A connection seen closed never wins.
pub(crate) fn keep_existing(existing: Registered, new: Registered) -> bool {
    if !existing.alive {
        return false;
    }
    if new.incarnation != existing.incarnation {
        return existing.incarnation > new.incarnation;
    }
    existing.dialer < new.dialer
}

/// Exponential backoff with jitter for a dialer.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    /// First wait after a failure.
    pub(crate) const MIN: Duration = Duration::from_millis(250);
    /// Longest wait.
    pub(crate) const MAX: Duration = Duration::from_secs(30);
    /// A session that lasted this long resets the backoff.
    pub(crate) const HEALTHY: Duration = Duration::from_secs(10);

    /// A fresh backoff.
    pub(crate) fn new() -> Backoff {
        Backoff { next: Self::MIN }
    }

    /// The wait before the next attempt (80%..120% of the current step, from `jitter`
    /// in 0..=255, so machines restarted together do not dial in lockstep), and the
    /// step doubles up to [`Backoff::MAX`].
    pub(crate) fn next_wait(&mut self, jitter: u8) -> Duration {
        let wait = self.next.mul_f64(0.8 + 0.4 * f64::from(jitter) / 255.0);
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }

    /// Back to the shortest wait (after a healthy session).
    pub(crate) fn reset(&mut self) {
        self.next = Self::MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_current_members_of_a_current_member_get_a_session() {
        let (me, peer, stranger) = (id(1), id(2), id(3));
        let mut mesh = MeshDoc::new(me, "me", 1);
        mesh.add_member(peer, "peer", me, 1);
        assert_eq!(admit_session(&mesh, me, peer), Ok(()));
        assert_eq!(admit_session(&mesh, me, stranger), Err(Refusal::NotMember));
        mesh.revoke(peer, me, 2);
        assert_eq!(admit_session(&mesh, me, peer), Err(Refusal::Revoked));
        assert_eq!(Refusal::Revoked.close_code(), close::REVOKED);
        let mut theirs = MeshDoc::new(peer, "peer", 1);
        theirs.add_member(me, "me", peer, 1);
        theirs.revoke(me, peer, 2);
        assert_eq!(admit_session(&theirs, me, peer), Err(Refusal::SelfRevoked));
        assert_eq!(Refusal::NotMember.close_code(), close::NOT_MEMBER);
    }

    #[test]
    fn a_links_frame_is_whole_ids_and_bounded() {
        let ids = [id(1), id(2), id(3)];
        let body = links(&ids);
        assert_eq!(body.len(), 96);
        assert_eq!(parse_links(&body, 3), Some(ids.into_iter().collect()));
        assert_eq!(parse_links(&body, 2), None, "more ids than members");
        assert_eq!(parse_links(&body[..95], 3), None, "a cut id");
        assert_eq!(parse_links(&[], 3), Some(HashSet::new()));
    }

    #[test]
    fn a_hello_is_exactly_eight_bytes() {
        assert_eq!(parse_hello(&hello(42)), Some(42));
        assert_eq!(parse_hello(&[0; 7]), None);
        assert_eq!(parse_hello(&[0; 9]), None);
    }

    fn id(b: u8) -> MachineId {
        MachineId::from_bytes([b; 32])
    }

    fn conn(dialer: MachineId, alive: bool, incarnation: u64) -> Registered {
        Registered {
            dialer,
            alive,
            incarnation,
        }
    }

    #[test]
    fn both_sides_keep_the_connection_of_the_smaller_dialer() {
        let (a, b) = (id(1), id(2));
        // Side A saw its own connection first, side B saw B's first: both keep A's.
        assert!(keep_existing(conn(a, true, 1), conn(b, true, 1)));
        assert!(!keep_existing(conn(b, true, 1), conn(a, true, 1)));
        // A dead connection is replaced whoever dialed it.
        assert!(!keep_existing(conn(a, false, 1), conn(b, true, 1)));
        // The same dialer again (a redial) replaces its old connection.
        assert!(!keep_existing(conn(a, true, 1), conn(a, true, 1)));
    }

    #[test]
    fn a_restarted_machine_replaces_its_dead_connection_at_once() {
        let (a, b) = (id(1), id(2));
        // B crashed and restarted (incarnation 7 -> 8); A's connection to the old B
        // looks alive and was dialed by the smaller id, yet the new one wins.
        assert!(!keep_existing(conn(a, true, 7), conn(b, true, 8)));
        // A late connection of the old incarnation never replaces the new one.
        assert!(keep_existing(conn(b, true, 8), conn(a, true, 7)));
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_max_and_resets() {
        let mut b = Backoff::new();
        let w = b.next_wait(0);
        assert_eq!(w, Backoff::MIN.mul_f64(0.8));
        let w = b.next_wait(255);
        assert_eq!(w, (Backoff::MIN * 2).mul_f64(1.2));
        for _ in 0..20 {
            assert!(b.next_wait(255) <= Backoff::MAX.mul_f64(1.2));
        }
        b.reset();
        assert_eq!(b.next_wait(0), Backoff::MIN.mul_f64(0.8));
    }
}
