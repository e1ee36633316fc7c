//! One side of a sync session as a state machine: inputs (the session starts, a frame
//! arrives, a document changed locally or through another session) go in, outputs
//! (sync messages to send, document changes to announce) come out. No sockets, no
//! timers, no locks: the driver in `peer/session.rs` moves the bytes, and the
//! simulation tests (`proto/sim.rs`) drive many of these through a lossy in-memory
//! network.
//!
//! Invariants (each one a bug that was found, see the tests):
//! 1. Only the dialer opens the documents both sides know at the start. If both
//!    opened, each side would answer the other's opening *and* its reply with the
//!    whole document (Automerge sync assumes one request and one response at a time).
//! 2. A document this side comes to share *during* the session (a member it learns of
//!    later) is opened by this side, whichever side dialed, as soon as the mesh may have
//!    changed: a mesh frame (with or without new changes) or a local mesh change. The
//!    peer cannot be relied on to open it: its messages for a document we did not know
//!    yet were dropped, and the mesh change may have reached us through another session
//!    (issue 16: a machine learned of a new member on a connection that was then closed
//!    as a duplicate, and its surviving session never asked for the new member's
//!    document: the document stalled until the next reconnect).
//! 3. A message for a document we do not share is dropped without an answer (the peer
//!    is ahead of us on the mesh; invariant 2 opens it once we catch up).
//! 4. A message we refuse (malformed, or a change without its author's signature) is
//!    refused for its document only: the session goes on syncing the others, so one
//!    forged change cannot cut a machine off (issue 11).
//! 5. A change of a third machine's document that this side received from elsewhere
//!    is not relayed to a peer that says it holds a session with that machine (its
//!    links frame): the owner pushes it to that peer itself. Without this every change
//!    was offered by every member to every member (N² messages per change: 25
//!    machines saturated two cores, issue 15). Replies are never skipped, and
//!    openings only as invariant 6 says: a machine that lacks a document and is not
//!    linked to its owner still asks for it. When the peer's link to that machine
//!    goes, this side opens the document, sending what was not relayed; a document
//!    both sides hold links for is left out of `in_sync` (neither side relays it, so
//!    their sync states of it say nothing).
//! 6. Third machines' documents are opened only once the session has settled (the
//!    driver waits [`SETTLE`] after the start) and not when both sides are linked to
//!    their owner: each gets them from the owner. A machine that starts dials every
//!    member at once; opening every document on every session at the start made each
//!    member send it every document whole (N² transfers per starting machine: 50
//!    machines did not converge in 10 minutes, issue 15). By the time a session has
//!    settled the machine holds its other sessions, so only documents whose owner it
//!    cannot reach are asked of others. When a link goes later, invariant 5 opens the
//!    document.

use crate::identity::MachineId;
use crate::machine::{DocChange, DocKey, Machine, SyncError};
use automerge::sync::State;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// How long after its start a session opens third machines' documents (invariant 6).
pub(crate) const SETTLE: Duration = Duration::from_secs(2);

/// Sync messages to send, in order: `(document, encoded Automerge sync message)`.
pub(crate) type Outgoing = Vec<(DocKey, Vec<u8>)>;

/// What one input produced.
#[derive(Debug, Default)]
pub(crate) struct Step {
    /// Frames to send to the peer, in order.
    pub(crate) send: Outgoing,
    /// A document that changed here, with what changed (for events and other sessions).
    pub(crate) changed: Option<(DocKey, Vec<DocChange>)>,
    /// A message refused (invariant 4): the document and why, for the log.
    pub(crate) refused: Option<(DocKey, crate::tracked::ReceiveError)>,
}

/// Why the session must end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SessionError {
    /// Storing the synced changes failed.
    #[error("cannot store synced changes: {source}")]
    Store {
        /// The store error.
        source: crate::machine::Error,
    },
}

/// One side of a session with `peer`.
#[derive(Debug)]
pub(crate) struct SyncSession {
    peer: MachineId,
    dialer: bool,
    /// Automerge sync state per document, loaded from the store when first touched.
    states: HashMap<DocKey, State>,
    /// Documents opened in this session (by either side). See invariant 2.
    opened: HashSet<DocKey>,
    in_sync: bool,
    /// The machines the peer last said it holds a session with (invariant 5).
    peer_links: HashSet<MachineId>,
    /// The machines this side last told the peer it holds a session with.
    own_links: HashSet<MachineId>,
    /// [`SETTLE`] has passed since the start (invariant 6).
    settled: bool,
}

impl SyncSession {
    /// A session with `peer`; `dialer` when this side opened the connection.
    pub(crate) fn new(peer: MachineId, dialer: bool) -> SyncSession {
        SyncSession {
            peer,
            dialer,
            states: HashMap::new(),
            opened: HashSet::new(),
            in_sync: false,
            peer_links: HashSet::new(),
            own_links: HashSet::new(),
            settled: false,
        }
    }

    /// The peer.
    pub(crate) fn peer(&self) -> MachineId {
        self.peer
    }

    /// The session starts: the dialer opens every shared document (invariant 1); the
    /// acceptor leaves the documents known now to the dialer's openings.
    pub(crate) fn start(&mut self, m: &mut Machine) -> Step {
        let keys = m.sync_keys();
        let mut step = Step::default();
        if self.dialer {
            let me = m.id();
            for key in keys {
                if !self.third_party(me, key) {
                    self.open(m, key, &mut step.send);
                }
            }
        } else {
            self.opened.extend(keys);
        }
        step
    }

    /// A sync frame for `key` arrived.
    pub(crate) fn on_frame(
        &mut self,
        m: &mut Machine,
        key: DocKey,
        msg: &[u8],
    ) -> Result<Step, SessionError> {
        let mut step = Step::default();
        let peer = self.peer;
        let st = self
            .states
            .entry(key)
            .or_insert_with(|| m.sync_state(peer, key));
        let changes = match m.receive_sync(peer, key, st, msg) {
            Ok(c) => c,
            Err(SyncError::UnknownDoc) => {
                // Invariant 3. Do not keep a state for it either: an opening later
                // must start fresh.
                self.states.remove(&key);
                return Ok(step);
            }
            Err(SyncError::Refused(source)) => {
                // Invariant 4: this document's message is refused, the session goes on
                // for the others. Its sync state is dropped (the refused message had
                // moved it): the next exchange starts from what is stored.
                self.states.remove(&key);
                step.refused = Some((key, source));
                return Ok(step);
            }
            Err(SyncError::Machine(source)) => return Err(SessionError::Store { source }),
        };
        self.opened.insert(key);
        if let Some(st) = self.states.get_mut(&key)
            && let Some(reply) = m.generate_sync(key, st)
        {
            step.send.push((key, reply));
        }
        if key == DocKey::Mesh {
            self.open_new(m, &mut step.send);
        }
        if !changes.is_empty() {
            step.changed = Some((key, changes));
        }
        Ok(step)
    }

    /// `key` changed here (a local edit, or changes received by another session).
    pub(crate) fn on_local_change(&mut self, m: &mut Machine, key: DocKey) -> Step {
        let mut step = Step::default();
        if self.peer_is_linked_to_owner(m.id(), key) {
            return step;
        }
        self.open(m, key, &mut step.send);
        if key == DocKey::Mesh {
            self.open_new(m, &mut step.send);
        }
        step
    }

    /// Change notifications were lost (the driver's channel lagged): say whatever there
    /// is to say about every document.
    pub(crate) fn on_lagged(&mut self, m: &mut Machine) -> Step {
        let mut step = Step::default();
        let me = m.id();
        for key in m.sync_keys() {
            if !self.peer_is_linked_to_owner(me, key) {
                self.open(m, key, &mut step.send);
            }
        }
        step
    }

    /// The peer's links frame arrived (invariant 5): documents of machines it is no
    /// longer linked to are opened, so what was not relayed to it is sent now.
    pub(crate) fn on_peer_links(&mut self, m: &mut Machine, links: HashSet<MachineId>) -> Step {
        let mut step = Step::default();
        let dropped: Vec<MachineId> = self.peer_links.difference(&links).copied().collect();
        self.peer_links = links;
        for owner in dropped {
            self.open(m, DocKey::Machine(owner), &mut step.send);
        }
        step
    }

    /// This side told the peer it holds sessions with `links` (for `in_sync`).
    pub(crate) fn on_own_links(&mut self, links: HashSet<MachineId>) {
        self.own_links = links;
    }

    /// Whether `key` is a third machine's document that the peer gets from its owner
    /// directly (invariant 5).
    fn peer_is_linked_to_owner(&self, me: MachineId, key: DocKey) -> bool {
        self.third_party(me, key)
            && matches!(key, DocKey::Machine(owner) if self.peer_links.contains(&owner))
    }

    /// Opens the shared documents this session has not opened yet (invariant 2).
    fn open_new(&mut self, m: &mut Machine, out: &mut Outgoing) {
        let me = m.id();
        for key in m.sync_keys() {
            let wait = self.third_party(me, key) && (!self.settled || self.both_linked(me, key));
            if !self.opened.contains(&key) && !wait {
                self.open(m, key, out);
            }
        }
    }

    /// The session has settled (invariant 6): opens the third machines' documents it
    /// has not opened, except those both sides get from their owners.
    pub(crate) fn on_settle(&mut self, m: &mut Machine) -> Step {
        let mut step = Step::default();
        self.settled = true;
        self.open_new(m, &mut step.send);
        step
    }

    /// A document of a machine other than the two ends of this session.
    fn third_party(&self, me: MachineId, key: DocKey) -> bool {
        matches!(key, DocKey::Machine(owner) if owner != me && owner != self.peer)
    }

    /// Whether a change of `key` here can change what [`SyncSession::sync_status`]
    /// says: not for a third machine's document both sides get from its owner (it
    /// counts as in sync, and only this machine's document counts as pending). In a
    /// full mesh that is every change but those of the two ends: at 50 machines each
    /// received change woke 49 sessions that each re-read every document's heads.
    pub(crate) fn status_depends_on(&self, me: MachineId, key: DocKey) -> bool {
        !self.both_linked(me, key)
    }

    /// A third machine's document whose owner both sides hold a session with.
    fn both_linked(&self, me: MachineId, key: DocKey) -> bool {
        matches!(key, DocKey::Machine(owner) if self.own_links.contains(&owner))
            && self.peer_is_linked_to_owner(me, key)
    }

    /// Says what there is to say about `key` (its opening, if this session has not
    /// touched it yet) and marks it opened.
    fn open(&mut self, m: &mut Machine, key: DocKey, out: &mut Outgoing) {
        if !m.is_shared(key) {
            return;
        }
        self.opened.insert(key);
        let peer = self.peer;
        let st = self
            .states
            .entry(key)
            .or_insert_with(|| m.sync_state(peer, key));
        if let Some(msg) = m.generate_sync(key, st) {
            out.push((key, msg));
        }
    }

    /// Whether both sides hold the same heads of every shared document, and how many
    /// changes to this machine's document the peer has not acknowledged. Returns the
    /// new `in_sync` when it changed since the last call.
    pub(crate) fn sync_status(&mut self, m: &mut Machine) -> (bool, usize, Option<bool>) {
        let me = m.id();
        let in_sync = m.sync_keys().into_iter().all(|k| {
            if self.both_linked(me, k) {
                return true;
            }
            let ours = m.heads(k);
            self.states
                .get(&k)
                .is_some_and(|s| s.their_heads.as_ref() == Some(&ours) && s.shared_heads == ours)
        });
        let own = DocKey::Machine(m.id());
        let shared_heads = self.states.get(&own).map(|s| s.shared_heads.clone());
        let pending = m.unacknowledged(self.peer, shared_heads.as_deref());
        let flipped = (in_sync != self.in_sync).then_some(in_sync);
        self.in_sync = in_sync;
        (in_sync, pending, flipped)
    }

    /// The sync states to store when the session ends, so a reconnect sends only what
    /// is missing.
    pub(crate) fn encoded_states(&self) -> Vec<(DocKey, Vec<u8>)> {
        self.states.iter().map(|(k, s)| (*k, s.encode())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> MachineId {
        MachineId::from_bytes([n; 32])
    }

    #[test]
    fn only_documents_both_ends_get_from_their_owner_leave_the_status_alone() {
        let (me, peer, third, fourth) = (id(1), id(2), id(3), id(4));
        let mut s = SyncSession::new(peer, true);
        s.on_own_links([third, fourth].into());
        s.peer_links = [third].into();
        assert!(!s.status_depends_on(me, DocKey::Machine(third)));
        // The peer is not linked to its owner: it may be waiting for it from us.
        assert!(s.status_depends_on(me, DocKey::Machine(fourth)));
        // Pending counts this machine's changes; the mesh changes the shared documents.
        assert!(s.status_depends_on(me, DocKey::Machine(me)));
        assert!(s.status_depends_on(me, DocKey::Machine(peer)));
        assert!(s.status_depends_on(me, DocKey::Mesh));
        // Nor is it when this side is not linked to the owner.
        s.on_own_links([fourth].into());
        assert!(s.status_depends_on(me, DocKey::Machine(third)));
    }
}
