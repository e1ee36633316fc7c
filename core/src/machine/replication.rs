//! Replication steps: which documents are shared, sync states, generating and
//! receiving Automerge sync messages (with the one-writer check), acknowledged changes
//! and the spec-level changes they carry, for events.

use super::persist::Commit;
use super::{Error, Machine, Result};
use crate::doc::MachineDoc;
use crate::identity::MachineId;
use crate::tracked::Tracked;

/// Which document: the mesh or one machine's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocKey {
    /// The membership document.
    Mesh,
    /// A machine's document.
    Machine(MachineId),
}

impl DocKey {
    /// The store and wire form: `b"mesh"` or the 32-byte machine id.
    pub fn to_bytes(self) -> Vec<u8> {
        match self {
            DocKey::Mesh => b"mesh".to_vec(),
            DocKey::Machine(id) => id.as_bytes().to_vec(),
        }
    }

    /// Parses [`DocKey::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Option<DocKey> {
        if b == b"mesh" {
            return Some(DocKey::Mesh);
        }
        <[u8; 32]>::try_from(b)
            .ok()
            .map(|a| DocKey::Machine(MachineId::from_bytes(a)))
    }
}

/// Why a sync message from a peer was not applied (the document is unchanged).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The document is not one this machine shares with members.
    #[error("unknown document")]
    UnknownDoc,
    /// The message was malformed or carried changes that are not allowed.
    #[error(transparent)]
    Refused(#[from] crate::tracked::ReceiveError),
    /// Storing the result failed.
    #[error(transparent)]
    Machine(#[from] Error),
}

/// A change seen in a document, for events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocChange {
    /// A spec was added or changed (`fields`: the document keys that changed; empty when
    /// the spec was added whole).
    SpecChanged {
        /// Machine that owns the spec.
        machine: MachineId,
        /// Project id.
        project: String,
        /// Spec name.
        spec: String,
        /// Changed fields.
        fields: Vec<String>,
    },
    /// A spec was removed.
    SpecRemoved {
        /// Machine that owns the spec.
        machine: MachineId,
        /// Project id.
        project: String,
        /// Spec name.
        spec: String,
    },
    /// The mesh changed (members, labels, revocations).
    MeshChanged,
}

impl Machine {
    // ---- replication -------------------------------------------------------------

    /// The documents shared with members: the mesh, then every member's document.
    pub fn sync_keys(&self) -> Vec<DocKey> {
        let mut keys = vec![DocKey::Mesh, DocKey::Machine(self.id())];
        for m in self.mesh.members() {
            if m.id != self.id() {
                keys.push(DocKey::Machine(m.id));
            }
        }
        keys
    }

    pub(crate) fn is_shared(&self, key: DocKey) -> bool {
        match key {
            DocKey::Mesh => true,
            DocKey::Machine(id) => id == self.id() || self.mesh.member(id).is_some(),
        }
    }

    /// The stored sync state with `peer` for `key` (a fresh one if none or unreadable).
    pub fn sync_state(&self, peer: MachineId, key: DocKey) -> automerge::sync::State {
        self.store
            .sync_state(peer.as_bytes(), &key.to_bytes())
            .ok()
            .flatten()
            .and_then(|b| automerge::sync::State::decode(&b).ok())
            .unwrap_or_default()
    }

    /// Stores sync states (at the end of a session, so a reconnect sends only what is
    /// missing).
    pub fn save_sync_states(
        &mut self,
        peer: MachineId,
        states: &[(DocKey, Vec<u8>)],
    ) -> Result<()> {
        let keys: Vec<Vec<u8>> = states.iter().map(|(k, _)| k.to_bytes()).collect();
        let rows: Vec<(&[u8], &[u8], &[u8])> = states
            .iter()
            .zip(&keys)
            .map(|((_, s), k)| (peer.as_bytes().as_slice(), k.as_slice(), s.as_slice()))
            .collect();
        self.commit(Commit::default().sync_states(&rows))
            .map(|_| ())
    }

    pub(super) fn ensure_replica(&mut self, key: DocKey) {
        if let DocKey::Machine(id) = key
            && id != self.id()
            && !self.replicas.contains_key(&id)
        {
            self.replicas.insert(id, MachineDoc::empty_replica());
        }
    }

    /// The heads of a document (hex), for presence ("in sync").
    pub fn heads(&mut self, key: DocKey) -> Vec<automerge::ChangeHash> {
        self.tracked(key).map(|t| t.heads()).unwrap_or_default()
    }

    /// The next sync message for `key` to a peer, if there is anything to say.
    pub fn generate_sync(
        &mut self,
        key: DocKey,
        state: &mut automerge::sync::State,
    ) -> Option<Vec<u8>> {
        if !self.is_shared(key) {
            return None;
        }
        self.ensure_replica(key);
        self.tracked(key)?.generate_sync(state)
    }

    /// Applies a sync message from `peer` for `key`. Changes to a machine document must
    /// be authored by that machine; changes to the mesh by a machine in it. A refused
    /// message leaves the document as stored. Returns what changed.
    pub fn receive_sync(
        &mut self,
        peer: MachineId,
        key: DocKey,
        state: &mut automerge::sync::State,
        message: &[u8],
    ) -> Result<Vec<DocChange>, SyncError> {
        if !self.is_shared(key) {
            return Err(SyncError::UnknownDoc);
        }
        self.ensure_replica(key);
        let t = self.tracked(key).ok_or(SyncError::UnknownDoc)?;
        let before = t.heads();
        let actors = match t.receive_sync(state, message) {
            Ok(a) => a,
            Err(e) => {
                self.reload(key)?;
                return Err(e.into());
            }
        };
        if actors.is_empty() {
            return Ok(Vec::new());
        }
        let allowed = match key {
            DocKey::Mesh => actors.iter().all(|a| self.mesh.allows_actor(a)),
            DocKey::Machine(id) => actors.iter().all(|a| a.to_bytes() == id.actor_bytes()),
        };
        if !allowed {
            let actor = actors
                .iter()
                .find(|a| match key {
                    DocKey::Mesh => !self.mesh.allows_actor(a),
                    DocKey::Machine(id) => a.to_bytes() != id.actor_bytes(),
                })
                .map(|a| a.to_hex_string())
                .unwrap_or_default();
            self.reload(key)?;
            tracing::warn!(peer = %peer.short(), %actor, "refused changes not authored by the document's owner");
            return Err(crate::tracked::ReceiveError::Unauthorized { actor }.into());
        }
        let changes = match key {
            DocKey::Mesh => vec![DocChange::MeshChanged],
            // A first sync fills an empty replica: list its specs instead of diffing
            // its whole history (the diff costs seconds at 10,000 specs).
            DocKey::Machine(id) if before.is_empty() => self
                .replicas
                .get(&id)
                .map(|d| {
                    d.projects()
                        .into_iter()
                        .flat_map(|p| {
                            d.spec_names(&p.id).into_iter().map(move |spec| {
                                DocChange::SpecChanged {
                                    machine: id,
                                    project: p.id.clone(),
                                    spec,
                                    fields: Vec::new(),
                                }
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            DocKey::Machine(id) => {
                let t = self.tracked(key).ok_or(SyncError::UnknownDoc)?;
                let after = t.heads();
                doc_changes(t, id, &before, &after)
            }
        };
        let state_bytes = state.encode();
        let key_bytes = key.to_bytes();
        self.commit(Commit::docs(&[key]).sync_states(&[(
            peer.as_bytes().as_slice(),
            key_bytes.as_slice(),
            state_bytes.as_slice(),
        )]))?;
        Ok(changes)
    }

    /// Changes to this machine's document that `peer` has not acknowledged: counted
    /// from `shared_heads` of a live session, else from the stored sync state.
    pub fn unacknowledged(
        &mut self,
        peer: MachineId,
        shared_heads: Option<&[automerge::ChangeHash]>,
    ) -> usize {
        let stored;
        let heads = match shared_heads {
            Some(h) => h,
            None => {
                stored = self
                    .sync_state(peer, DocKey::Machine(self.id()))
                    .shared_heads;
                &stored
            }
        };
        self.doc.tracked().changes_after(heads)
    }

    /// The heads of this machine's document (to diff against later).
    pub fn own_heads(&mut self) -> Vec<automerge::ChangeHash> {
        self.doc.tracked().heads()
    }

    /// Spec-level changes to this machine's document since `before`.
    pub fn own_changes_since(&mut self, before: &[automerge::ChangeHash]) -> Vec<DocChange> {
        let me = self.id();
        let t = self.doc.tracked();
        let after = t.heads();
        if after == before {
            return Vec::new();
        }
        doc_changes(t, me, before, &after)
    }
}
/// The spec-level changes of machine `machine`'s document between two heads.
pub(super) fn doc_changes(
    t: &mut Tracked,
    machine: MachineId,
    before: &[automerge::ChangeHash],
    after: &[automerge::ChangeHash],
) -> Vec<DocChange> {
    t.spec_changes(before, after)
        .into_iter()
        .map(|(project, spec, fields)| match fields {
            Some(fields) => DocChange::SpecChanged {
                machine,
                project,
                spec,
                fields,
            },
            None => DocChange::SpecRemoved {
                machine,
                project,
                spec,
            },
        })
        .collect()
}
