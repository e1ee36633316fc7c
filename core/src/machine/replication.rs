//! Replication steps: which documents are shared, sync states, generating and
//! receiving Automerge sync messages (with the one-writer check), acknowledged changes
//! and the spec-level changes they carry, for events.

use super::persist::Commit;
use super::{Error, Machine, Result};
use crate::authorship::{ChangeSignature, ReceivedSignatures, SignedMessage};
use crate::doc::MachineDoc;
use crate::identity::MachineId;
use crate::limits::{Exceeded, Limits};
use crate::proto::inspect;
use crate::tracked::{ReceiveError, Tracked};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What received messages have cost one document so far.
/// What [`Machine::check_limits`] measured of a message.
#[derive(Default)]
struct Measured {
    /// The valid signatures it carries, by change hash.
    carried: HashMap<[u8; 32], ChangeSignature>,
    /// Changes that would wait for dependencies, with those waiting already.
    orphans: usize,
    /// Its changes that would wait.
    waiting: Vec<automerge::ChangeHash>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Received {
    /// Bytes stored for it, as of the last commit.
    pub(crate) stored_bytes: u64,
    /// Received changes that may still wait for missing dependencies (an upper bound:
    /// reset when none wait).
    pub(crate) orphans: usize,
    /// The verified signatures of received changes still waiting for their
    /// dependencies: kept in memory only (at most `max_orphans`, dropped on reload),
    /// stored when their change applies. The store holds signatures of held changes
    /// only (store invariant 9, docs/design.md): storing these let a member grow `change_sigs`
    /// without bound with orphans that never apply (issue 38).
    pub(crate) pending: HashMap<[u8; 32], ChangeSignature>,
}

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
        /// The new value of each changed field (of every set field when the spec is
        /// new), as JSON: a string, a list of strings, or null when unset.
        values: BTreeMap<String, serde_json::Value>,
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

    /// The documents shared with members: the mesh, then every current member's
    /// document. A revoked machine's document stops syncing: its last-known state is kept
    /// here (listed, marked revoked) and nothing of it is sent or accepted any more.
    pub fn sync_keys(&self) -> Vec<DocKey> {
        let me = self.id();
        let mut keys = vec![DocKey::Mesh, DocKey::Machine(me)];
        keys.extend(
            self.mesh
                .current_member_ids()
                .filter(|id| *id != me)
                .map(DocKey::Machine),
        );
        keys
    }

    pub(crate) fn is_shared(&self, key: DocKey) -> bool {
        match key {
            DocKey::Mesh => true,
            DocKey::Machine(id) => id == self.id() || self.mesh.is_current_member(id),
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

    /// The next sync message for `key` to a peer, if there is anything to say: an
    /// Automerge sync message with the stored signatures of the changes it carries
    /// ([`crate::authorship`]). A change without a stored signature goes without one
    /// (the receiver refuses it): only history written before signatures existed.
    pub fn generate_sync(
        &mut self,
        key: DocKey,
        state: &mut automerge::sync::State,
    ) -> Option<Vec<u8>> {
        if !self.is_shared(key) {
            return None;
        }
        // A document left with unstored received changes is reloaded first, and
        // nothing is sent while this machine's own changes wait for the store: they
        // have no stored signature yet, and a member refuses a change without one.
        self.fresh(key).ok()?;
        if self.unsaved.contains(&key) || self.store.has_failed() {
            return None;
        }
        self.ensure_replica(key);
        let (message, carried, whole) = self.tracked(key)?.generate_sync(state)?;
        let (signatures, checkpoint) = match self.proofs_to_send(key, &carried, whole) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("cannot read change signatures: {e}");
                (Vec::new(), None)
            }
        };
        Some(
            SignedMessage {
                message,
                signatures,
                checkpoint,
            }
            .encode(key),
        )
    }

    /// Whether signer `s` may write a change with `actor` into `key`: the owner of a
    /// machine document, or a machine of the mesh; and the actor must be the signer's.
    fn may_write(&self, key: DocKey, s: &ChangeSignature, actor: &automerge::ActorId) -> bool {
        s.signer.actor_bytes().as_slice() == actor.to_bytes()
            && match key {
                DocKey::Machine(owner) => s.signer == owner,
                DocKey::Mesh => self.mesh.allows_actor(actor),
            }
    }

    /// The signature that proves `actor` wrote change `hash` of `key`, among those that
    /// came with the message: by the document's owner (machine documents) or by a
    /// machine of the mesh (the mesh), whose actor the change carries.
    fn proven_author(
        &self,
        key: DocKey,
        hash: &automerge::ChangeHash,
        actor: &automerge::ActorId,
        sent: &ReceivedSignatures,
    ) -> Option<ChangeSignature> {
        sent.for_hash(&hash.0)
            .find(|s| self.may_write(key, s, actor) && s.verifies(key, &hash.0))
            .copied()
    }

    /// Sets what received messages may cost (the defaults until called).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// What members may make this machine spend.
    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// How much of the audit log to keep (from the limits).
    pub fn audit_retention(&self) -> crate::store::AuditRetention {
        crate::store::AuditRetention {
            max_records: self.limits.audit_max_records,
            max_bytes: self.limits.audit_max_bytes,
        }
    }

    /// Measures a received message against the limits before it is applied: its
    /// chunks (inflated within the budget), changes and their operations, the changes
    /// that would wait for missing dependencies, the document's stored size. Returns
    /// the valid signatures the message carries and how many of its changes would wait.
    fn check_limits(
        &mut self,
        key: DocKey,
        message: &automerge::sync::Message,
        sent: &ReceivedSignatures,
    ) -> std::result::Result<Measured, Exceeded> {
        if message.changes.is_empty() {
            return Ok(Measured::default());
        }
        let limits: &Limits = &self.limits;
        let (stored_bytes, orphans_so_far) = self
            .received
            .get(&key)
            .map_or((0, 0), |r| (r.stored_bytes, r.orphans));
        if stored_bytes > limits.max_document_bytes {
            return Err(Exceeded::Document {
                bytes: stored_bytes,
                max: limits.max_document_bytes,
            });
        }
        let inspected = inspect::inspect(message.changes.iter(), limits)?;
        let mut changes = Vec::with_capacity(inspected.changes.len());
        let mut ops: u64 = 0;
        for chunk in inspected.changes {
            // A chunk Automerge cannot parse is left to it (it refuses the message).
            if let Ok(c) = automerge::Change::from_bytes(chunk.to_vec()) {
                ops = ops.saturating_add(c.len() as u64);
                changes.push(c);
            }
        }
        if ops > limits.max_ops_per_message {
            return Err(Exceeded::Ops {
                count: ops,
                max: limits.max_ops_per_message,
            });
        }
        let max_orphans = limits.max_orphans;
        let carried = carried_signatures(key, &changes, sent);
        // Orphans: changes that cannot apply, their dependencies (or theirs) being
        // neither here nor in the message. An honest peer sends a few (a Bloom-filter
        // false positive, resolved in one round trip); a flood of them would wait in
        // memory forever.
        let t = self
            .tracked(key)
            .ok_or(Exceeded::Malformed("unknown document"))?;
        let orphans = waiting(&changes, |h| t.has_change(h));
        let count = orphans_so_far.saturating_add(orphans.len());
        if count > max_orphans {
            return Err(Exceeded::Orphans {
                count,
                max: max_orphans,
            });
        }
        Ok(Measured {
            carried,
            orphans: count,
            waiting: orphans,
        })
    }

    /// Applies a sync message from `peer` for `key`. Changes to a machine document must
    /// be authored by that machine; changes to the mesh by a machine in it. A refused
    /// message leaves the document as stored. Returns what changed.
    ///
    /// When the store fails part way (a full disk), what the message changed in memory
    /// is dropped: the document is reloaded as stored, now or, if the store cannot be
    /// read either, before it is next used ([`Machine::fresh`]). The sender still has
    /// its changes and sends them again in its next session.
    pub fn receive_sync(
        &mut self,
        peer: MachineId,
        key: DocKey,
        state: &mut automerge::sync::State,
        message: &[u8],
    ) -> Result<Vec<DocChange>, SyncError> {
        self.receive_message(peer, key, state, message, true)
    }

    /// [`Machine::receive_sync`], keeping the sync state with `peer` or not (a message
    /// read from a bucket is not a session).
    pub(super) fn receive_message(
        &mut self,
        peer: MachineId,
        key: DocKey,
        state: &mut automerge::sync::State,
        message: &[u8],
        keep_state: bool,
    ) -> Result<Vec<DocChange>, SyncError> {
        self.fresh(key)?;
        let received = self.receive_sync_checked(peer, key, state, message, keep_state);
        if let Err(SyncError::Machine(_)) = &received {
            self.stale.insert(key);
            if self.reload(key).is_ok() {
                self.stale.remove(&key);
            }
        }
        received
    }

    fn receive_sync_checked(
        &mut self,
        peer: MachineId,
        key: DocKey,
        state: &mut automerge::sync::State,
        message: &[u8],
        keep_state: bool,
    ) -> Result<Vec<DocChange>, SyncError> {
        if !self.is_shared(key) {
            return Err(SyncError::UnknownDoc);
        }
        let (message, sent) = SignedMessage::decode(key, message)
            .map_err(|e| SyncError::Refused(ReceiveError::from(e)))?;
        let message = automerge::sync::Message::decode(&message)
            .map_err(|e| SyncError::Refused(ReceiveError::Decode(e.to_string())))?;
        self.ensure_replica(key);
        // What the message would cost, measured before Automerge parses it; the
        // signatures of the changes it carries, checked now, whether or not the
        // changes apply now: a change whose dependencies are missing waits in
        // Automerge's queue and applies with a later message, which does not repeat its
        // signature. They are stored with the message's result.
        let Measured {
            carried,
            orphans,
            waiting,
        } = self
            .check_limits(key, &message, &sent)
            .map_err(|e| SyncError::Refused(e.into()))?;
        // A change that will wait in Automerge's queue must prove its author now: it
        // applies later, with some other message, and a forged one waiting there made
        // that honest message be refused (issue 38).
        if let Some(h) = waiting.iter().find(|h| !carried.contains_key(&h.0)) {
            let hash = h.to_string();
            tracing::warn!(peer = %peer.short(), ?key, %hash, "refused a waiting change without a valid signature of its author");
            return Err(ReceiveError::Unsigned {
                hash,
                actor: String::new(),
            }
            .into());
        }
        // The mesh is received into as unchanged: most messages carry no change, and
        // what was read of the mesh stays valid unless one applied (forgotten below).
        let t = match key {
            DocKey::Mesh => Some(self.mesh.tracked_unchanged()),
            DocKey::Machine(_) => self.tracked_mut(key),
        }
        .ok_or(SyncError::UnknownDoc)?;
        let before = t.heads();
        let added = match t.receive_sync(state, message) {
            Ok(a) => a,
            Err(e) => {
                self.reload(key)?;
                return Err(e.into());
            }
        };
        if key == DocKey::Mesh && !added.is_empty() {
            self.mesh.forget_read();
        }
        // Every new change must be proven by its author's signature (sent now, sent
        // with an earlier message, or in a whole-document message) or, in a machine
        // document, by a checkpoint of its owner that has it in its history; one that
        // is not refuses the whole message (the document is reloaded as stored).
        let pending = self
            .received
            .get(&key)
            .map(|r| &r.pending)
            .filter(|p| !p.is_empty());
        let unproven: Vec<[u8; 32]> = added
            .iter()
            .filter(|(h, _)| !carried.contains_key(&h.0))
            .filter(|(h, _)| !pending.is_some_and(|p| p.contains_key(&h.0)))
            .map(|(h, _)| h.0)
            .collect();
        let queued: HashMap<[u8; 32], ChangeSignature> = pending
            .map(|p| {
                added
                    .iter()
                    .filter_map(|(h, _)| Some((h.0, *p.get(&h.0)?)))
                    .collect()
            })
            .unwrap_or_default();
        let stored = self
            .store
            .change_signatures(&key.to_bytes(), &unproven)
            .map_err(Error::from)?;
        let earlier: HashMap<[u8; 32], ChangeSignature> = unproven
            .into_iter()
            .zip(stored)
            .filter_map(|(h, s)| Some((h, ChangeSignature::from_stored(&s?)?)))
            .collect();
        // Proofs to store: of the changes this message applied only; the rest of what
        // it carried waits with its change, in memory.
        let mut waiting_proofs: HashMap<[u8; 32], ChangeSignature> = HashMap::new();
        let mut proofs: HashMap<[u8; 32], ChangeSignature> = queued;
        let applied: HashSet<[u8; 32]> = added.iter().map(|(h, _)| h.0).collect();
        for (h, s) in carried {
            if applied.contains(&h) {
                proofs.insert(h, s);
            } else {
                waiting_proofs.insert(h, s);
            }
        }
        let mut unsigned: Vec<&(automerge::ChangeHash, automerge::ActorId)> = Vec::new();
        for change in &added {
            let (hash, actor) = change;
            let known = proofs
                .get(&hash.0)
                .or_else(|| earlier.get(&hash.0))
                .copied()
                .filter(|s| self.may_write(key, s, actor));
            match known.or_else(|| self.proven_author(key, hash, actor, &sent)) {
                Some(s) => {
                    proofs.insert(hash.0, s);
                }
                None => unsigned.push(change),
            }
        }
        if !unsigned.is_empty() {
            let all: HashSet<automerge::ChangeHash> = added.iter().map(|(h, _)| *h).collect();
            let covered = self.covered_by_checkpoints(key, &all, sent.checkpoint())?;
            let owners = |actor: &automerge::ActorId| match key {
                DocKey::Machine(owner) => owner.actor_bytes().as_slice() == actor.to_bytes(),
                DocKey::Mesh => false,
            };
            if let Some((hash, actor)) = unsigned
                .into_iter()
                .find(|(h, a)| !(covered.contains(h) && owners(a)))
            {
                self.reload(key)?;
                let (hash, actor) = (hash.to_string(), actor.to_hex_string());
                tracing::warn!(peer = %peer.short(), ?key, %hash, %actor, "refused a change without a valid signature of its author");
                return Err(ReceiveError::Unsigned { hash, actor }.into());
            }
        }
        let checkpoint = self.checkpoint_to_keep(key, sent.checkpoint())?;
        if key == DocKey::Mesh && self.mesh.member_count() > self.limits.max_members {
            let count = self.mesh.member_count();
            self.reload(key)?;
            let max = self.limits.max_members;
            return Err(ReceiveError::from(Exceeded::Members { count, max }).into());
        }
        let waiting = self.tracked(key).is_some_and(|t| t.has_orphans());
        let max_pending = self.limits.max_orphans;
        let so_far = self.received.entry(key).or_default();
        so_far.orphans = if waiting { orphans } else { 0 };
        if waiting {
            so_far.pending.retain(|h, _| !applied.contains(h));
            for (h, s) in waiting_proofs {
                if so_far.pending.len() >= max_pending {
                    break;
                }
                so_far.pending.insert(h, s);
            }
        } else {
            so_far.pending.clear();
        }
        // A revoked machine writes no more: a mesh change by it that has its revocation
        // in its history states nothing (`mesh::facts` invariant 1) and is refused with
        // every change that descends from it. Every machine that can apply such a change
        // holds the revocation too, so all refuse it alike: no two honest members
        // diverge. The rest of the message is kept: a member that was away learns of
        // the revocation from the very message that tries to undo it, and then closes
        // the revoked machine's session (`Shared::after_mesh_change`). (A change it made
        // before learning of its revocation, concurrent with it, is kept:
        // docs/threat-model.md.) Revocation is final without a check here: facts only
        // grow, whatever a change does to the state.
        let mut added = added;
        if key == DocKey::Mesh && added.iter().any(|(h, _)| self.mesh.is_late(h)) {
            let refused = self.drop_late_mesh_changes(&mut added, state)?;
            proofs.retain(|h, _| added.iter().any(|(a, _)| a.0 == *h));
            let machine = refused.to_string();
            tracing::warn!(peer = %peer.short(), %machine, kept = added.len(), "refused mesh changes by a revoked machine");
            if added.is_empty() {
                return Err(ReceiveError::RevokedAuthor { machine }.into());
            }
        }
        let key_bytes = key.to_bytes();
        let signatures: Vec<(&[u8], [u8; 32], [u8; 96])> = proofs
            .iter()
            .map(|(h, s)| (key_bytes.as_slice(), *h, s.to_stored()))
            .collect();
        let checkpoints: Vec<(&[u8], &[u8])> = checkpoint
            .as_deref()
            .map(|c| (key_bytes.as_slice(), c))
            .into_iter()
            .collect();
        if added.is_empty() {
            // Nothing applied: the signatures that came wait in memory with their
            // changes; only a newer checkpoint is stored.
            if !checkpoints.is_empty() {
                self.commit(Commit::default().checkpoints(&checkpoints))?;
            }
            return Ok(Vec::new());
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
                                    values: BTreeMap::new(),
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
        let states = [(
            peer.as_bytes().as_slice(),
            key_bytes.as_slice(),
            state_bytes.as_slice(),
        )];
        let states: &[_] = if keep_state { &states } else { &[] };
        self.commit(
            Commit::docs(&[key])
                .sync_states(states)
                .signatures(&signatures)
                .checkpoints(&checkpoints),
        )?;
        Ok(self.with_values(changes))
    }

    /// Drops the received mesh changes that a revoked machine wrote after its
    /// revocation, and every received change that descends from one: the mesh is
    /// reloaded as stored and the other received changes (`added`, left with them
    /// only) applied again. The sync state with the sender starts afresh (it had
    /// counted the dropped changes as held). Returns the revoked author.
    fn drop_late_mesh_changes(
        &mut self,
        added: &mut Vec<(automerge::ChangeHash, automerge::ActorId)>,
        state: &mut automerge::sync::State,
    ) -> std::result::Result<MachineId, SyncError> {
        let hashes: Vec<automerge::ChangeHash> = added.iter().map(|(h, _)| *h).collect();
        let late = self.mesh.late_among(&hashes);
        let author = added
            .iter()
            .find(|(h, _)| self.mesh.is_late(h))
            .and_then(|(_, a)| {
                self.mesh
                    .members()
                    .into_iter()
                    .find(|m| m.id.actor_bytes().as_slice() == a.to_bytes())
            })
            .map(|m| m.id);
        let doc = &mut self.mesh.tracked_unchanged().doc;
        let keep: Vec<automerge::Change> = added
            .iter()
            .filter(|(h, _)| !late.contains(h))
            .filter_map(|(h, _)| doc.get_change_by_hash(h))
            .collect();
        added.retain(|(h, _)| !late.contains(h));
        self.reload(DocKey::Mesh)?;
        if !keep.is_empty() {
            let applied = self.mesh.tracked_unchanged().doc.apply_changes(keep);
            self.mesh.forget_read();
            if let Err(e) = applied {
                self.reload(DocKey::Mesh)?;
                return Err(ReceiveError::Apply(e).into());
            }
        }
        *state = automerge::sync::State::new();
        // The author is a member (its changes were signed by one); the fallback only
        // keeps a refusal from being lost.
        Ok(author.unwrap_or_else(|| self.id()))
    }

    /// Fills each spec change's new values from the document it came from.
    fn with_values(&self, mut changes: Vec<DocChange>) -> Vec<DocChange> {
        // A few changes (a file saved): read each spec (microseconds). Many (a first
        // sync): the machine's table, read once and cached for queries anyway.
        // Building a table for one change would cost the sync path ~76 ms per 10,000
        // specs.
        let use_table = changes.len() > 64;
        let mut table: Option<(MachineId, std::sync::Arc<crate::doc::SpecTable>)> = None;
        for c in &mut changes {
            let DocChange::SpecChanged {
                machine,
                project,
                spec,
                fields,
                values,
            } = c
            else {
                continue;
            };
            let read;
            let found = if use_table {
                if table.as_ref().is_none_or(|(id, _)| id != machine) {
                    table = self.machine_doc(*machine).map(|d| (*machine, d.table()));
                }
                table.as_ref().and_then(|(_, t)| {
                    let p = t.projects.iter().find(|p| p.project.id == *project)?;
                    match p.specs.binary_search_by(|s| s.name.as_str().cmp(spec)) {
                        Ok(i) => p.specs.get(i),
                        // Sorted by Automerge's key order, which should be this one.
                        Err(_) => p.specs.iter().find(|s| s.name == *spec),
                    }
                })
            } else {
                read = self
                    .machine_doc(*machine)
                    .and_then(|d| d.spec(project, spec));
                read.as_ref()
            };
            let Some(found) = found else {
                continue;
            };
            let keys: Vec<&str> = if fields.is_empty() {
                crate::spec::Spec::FIELDS.to_vec()
            } else {
                fields.iter().map(String::as_str).collect()
            };
            for k in keys {
                match found.field_json(k) {
                    Some(serde_json::Value::Null) if fields.is_empty() => {}
                    Some(v) => {
                        values.insert(k.to_string(), v);
                    }
                    None => {}
                }
            }
        }
        changes
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
        self.doc.tracked_unchanged().changes_after(heads)
    }

    /// The heads of this machine's document (to diff against later).
    pub fn own_heads(&mut self) -> Vec<automerge::ChangeHash> {
        self.doc.tracked_unchanged().heads()
    }

    /// Starts (`true`) or stops logging this machine's own changes, for
    /// [`Machine::own_changes_since`] to read them from the log (see
    /// [`Tracked::log_local`]).
    pub fn log_own_changes(&mut self, on: bool) {
        let t = self.doc.tracked_unchanged();
        if on {
            t.log_local();
        } else {
            t.stop_logging_local();
        }
    }

    /// Spec-level changes to this machine's document since `before`.
    pub fn own_changes_since(&mut self, before: &[automerge::ChangeHash]) -> Vec<DocChange> {
        let me = self.id();
        let t = self.doc.tracked_unchanged();
        let after = t.heads();
        if after == before {
            return Vec::new();
        }
        let changes = doc_changes(t, me, before, &after);
        self.with_values(changes)
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
                values: BTreeMap::new(),
            },
            None => DocChange::SpecRemoved {
                machine,
                project,
                spec,
            },
        })
        .collect()
}

/// The changes among `changes` that cannot apply: a dependency is neither held (`held`)
/// nor among `changes`, or is one of them that cannot apply. Linear in changes and dependencies
/// (a depth-first walk with an explicit stack: a long chain cannot overflow it).
fn waiting(
    changes: &[automerge::Change],
    mut held: impl FnMut(&automerge::ChangeHash) -> bool,
) -> Vec<automerge::ChangeHash> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unknown,
        Visiting,
        Applies,
        Waits,
    }
    let index: HashMap<automerge::ChangeHash, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.hash(), i))
        .collect();
    let mut mark = vec![Mark::Unknown; changes.len()];
    for root in 0..changes.len() {
        if mark[root] != Mark::Unknown {
            continue;
        }
        // (change, next dependency to look at)
        let mut stack = vec![(root, 0usize)];
        mark[root] = Mark::Visiting;
        while let Some((i, next)) = stack.pop() {
            let deps = changes[i].deps();
            let Some(dep) = deps.get(next) else {
                mark[i] = Mark::Applies;
                continue;
            };
            let waits = match index.get(dep) {
                Some(&j) => match mark[j] {
                    Mark::Applies => false,
                    Mark::Waits | Mark::Visiting => true,
                    Mark::Unknown => {
                        stack.push((i, next));
                        stack.push((j, 0));
                        mark[j] = Mark::Visiting;
                        continue;
                    }
                },
                None => !held(dep),
            };
            if waits {
                mark[i] = Mark::Waits;
            } else {
                stack.push((i, next + 1));
            }
        }
    }
    changes
        .iter()
        .zip(&mark)
        .filter(|(_, m)| **m == Mark::Waits)
        .map(|(c, _)| c.hash())
        .collect()
}

/// The valid signatures, among those sent, of `changes` (a whole-document chunk is
/// left to the check after applying): each signed by the machine whose actor the change
/// carries (for a machine document, its owner). Membership of the mesh is checked when
/// the change applies.
fn carried_signatures(
    key: DocKey,
    changes: &[automerge::Change],
    sent: &ReceivedSignatures,
) -> HashMap<[u8; 32], ChangeSignature> {
    let mut out = HashMap::new();
    for change in changes {
        let hash = change.hash();
        let actor = change.actor_id().to_bytes();
        let valid = sent.for_hash(&hash.0).find(|s| {
            s.signer.actor_bytes().as_slice() == actor
                && match key {
                    DocKey::Machine(owner) => s.signer == owner,
                    DocKey::Mesh => true,
                }
                && s.verifies(key, &hash.0)
        });
        if let Some(s) = valid {
            out.insert(hash.0, *s);
        }
    }
    out
}
