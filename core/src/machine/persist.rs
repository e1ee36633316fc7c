//! Persistence: committing the documents' new chunks with the writes that go with
//! them in one transaction, compaction, reloading a document from the store, and the
//! small facts kept in the meta table (incarnation, last port, learned relays).

use super::{DocKey, Machine, Result, now_secs};
use crate::authorship::ChangeSignature;
use crate::doc::{DocError, MachineDoc};
use crate::identity::MachineId;
use crate::mesh::MeshDoc;
use crate::store::MetaKey;
use crate::store::{Batch, Recovered, StatKey};
use crate::tracked::Tracked;
use automerge::ActorId;
use std::collections::BTreeMap;

/// When to fold the incremental chunks into one full save: once they outweigh the
/// snapshot (so the stored size stays within ~2x a full save) or there are many.
/// Small documents are not compacted below this many incremental bytes.
const COMPACT_MIN_BYTES: u64 = 4096;
const COMPACT_MAX_CHUNKS: u64 = 512;

/// A change signature as stored: document key, change hash, signer ‖ signature.
pub(super) type SignatureRow = (Vec<u8>, [u8; 32], [u8; 96]);

/// The borrowed form [`Commit::signatures`] takes.
pub(super) fn borrowed(rows: &[SignatureRow]) -> Vec<(&[u8], [u8; 32], [u8; 96])> {
    rows.iter()
        .map(|(k, h, s)| (k.as_slice(), *h, *s))
        .collect()
}

/// What one store transaction writes: the new chunks of `docs`, plus the stat cache
/// updates, project removals and sync states that must land with them (or not at all).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Commit<'a> {
    docs: &'a [DocKey],
    stat_updates: &'a [(&'a str, &'a str, Option<StatKey>)],
    remove_projects: &'a [String],
    sync_states: &'a [(&'a [u8], &'a [u8], &'a [u8])],
    signatures: &'a [(&'a [u8], [u8; 32], [u8; 96])],
    checkpoints: &'a [(&'a [u8], &'a [u8])],
}

impl<'a> Commit<'a> {
    /// The new chunks of these documents.
    pub(super) fn docs(docs: &'a [DocKey]) -> Commit<'a> {
        Commit {
            docs,
            ..Commit::default()
        }
    }

    /// With stat cache entries to set (`Some`) or delete (`None`).
    pub(super) fn stats(self, stat_updates: &'a [(&'a str, &'a str, Option<StatKey>)]) -> Self {
        Commit {
            stat_updates,
            ..self
        }
    }

    /// With projects (and their stat caches) to delete.
    pub(super) fn removing(self, remove_projects: &'a [String]) -> Self {
        Commit {
            remove_projects,
            ..self
        }
    }

    /// With `(document key, change hash, signer ‖ signature)` received change signatures
    /// to store (this machine's own changes are signed by `commit` itself).
    pub(super) fn signatures(self, signatures: &'a [(&'a [u8], [u8; 32], [u8; 96])]) -> Self {
        Commit { signatures, ..self }
    }

    /// With `(document key, checkpoint)` received checkpoints to store.
    pub(super) fn checkpoints(self, checkpoints: &'a [(&'a [u8], &'a [u8])]) -> Self {
        Commit {
            checkpoints,
            ..self
        }
    }

    /// With `(peer, document key, state)` sync states to store.
    pub(super) fn sync_states(self, sync_states: &'a [(&'a [u8], &'a [u8], &'a [u8])]) -> Self {
        Commit {
            sync_states,
            ..self
        }
    }
}

impl Machine {
    /// After a failed store write (a full disk), reopens the store so writes work
    /// again once the cause is gone; an error while it persists. Cheap when nothing
    /// failed.
    pub fn recover_store(&mut self) -> Result<()> {
        // What the disk holds already need not be stored again if the reopen loses
        // later commits.
        self.prune_own_lazy();
        // A failed store is a failed write, whichever write it was (a commit, or the
        // fsync of lazy commits that runs outside the machine): the next commit that
        // succeeds is a recovery the host must hear of (`take_recovered`), or a flush
        // failure followed by a rescan's successful commit would recover silently and
        // nobody would reread what failed meanwhile.
        if self.store.has_failed() {
            self.write_failed = true;
        }
        if self.store.has_failed()
            && self.store.recover()?
                == (Recovered::Reopened {
                    lost_lazy_commits: true,
                })
        {
            // Replicas hold received changes the store lost: reload them before use;
            // their owners send the rest again.
            self.stale
                .extend(self.replicas.keys().map(|id| DocKey::Machine(*id)));
            self.restore_lost_own();
        }
        Ok(())
    }

    /// Makes lazy commits (received replicas, see [`Batch::lazy`]) durable.
    pub fn flush_store(&mut self) -> Result<()> {
        self.recover_store()?;
        Ok(self.store.flush()?)
    }

    /// Reloads `key` if a failed store write left received changes in it that are not
    /// stored (see [`Machine::receive_sync`]): before it is changed or read for sync.
    pub(super) fn fresh(&mut self, key: DocKey) -> Result<()> {
        if self.stale.contains(&key) {
            self.recover_store()?;
            self.reload(key)?;
            self.stale.remove(&key);
        }
        Ok(())
    }

    /// Whether a failed write left something for [`Machine::retry_unsaved`] (or a
    /// recovery to report, [`Machine::take_recovered`]).
    pub fn waits_for_store(&self) -> bool {
        self.store.has_failed()
            || !self.unsaved.is_empty()
            || !self.stale.is_empty()
            || self.recovered
    }

    /// Whether a write succeeded after failed ones since the last call: the host then
    /// rereads what failed rescans left unread and says the store works again.
    pub fn take_recovered(&mut self) -> bool {
        std::mem::take(&mut self.recovered)
    }

    /// Stores what failed writes left unsaved (a full disk), once the store works again.
    /// Returns the documents it stored (for sessions to push); none when nothing waited.
    pub fn retry_unsaved(&mut self) -> Result<Vec<DocKey>> {
        if !self.waits_for_store() {
            return Ok(Vec::new());
        }
        // First: a reopen that lost our lazy commits marks what to store again.
        self.recover_store()?;
        let stale: Vec<DocKey> = self.stale.iter().copied().collect();
        for key in stale {
            self.fresh(key)?;
        }
        let keys: Vec<DocKey> = self.unsaved.iter().copied().collect();
        self.commit(Commit::docs(&keys))?;
        Ok(keys)
    }

    /// A document's Automerge state for what leaves its content as it is (saving,
    /// generating sync messages, reading heads): cached spec tables stay valid. Use
    /// [`Machine::tracked_mut`] to change the content.
    pub(super) fn tracked(&mut self, key: DocKey) -> Option<&mut Tracked> {
        match key {
            DocKey::Mesh => Some(self.mesh.tracked_unchanged()),
            DocKey::Machine(id) if id == self.identity.id() => Some(self.doc.tracked_unchanged()),
            DocKey::Machine(id) => self
                .replicas
                .get_mut(&id)
                .map(MachineDoc::tracked_unchanged),
        }
    }

    /// A document's Automerge state, to receive changes into.
    pub(super) fn tracked_mut(&mut self, key: DocKey) -> Option<&mut Tracked> {
        match key {
            // The mesh is received into through `tracked_unchanged` + `forget_read`.
            DocKey::Mesh => None,
            DocKey::Machine(id) if id == self.identity.id() => Some(self.doc.tracked()),
            DocKey::Machine(id) => self.replicas.get_mut(&id).map(MachineDoc::tracked),
        }
    }

    /// Commits pending writes of our own documents, and stores the new chunks of the
    /// commit's documents with its other writes in one transaction; compacts documents
    /// whose chunks outgrow their snapshot. Returns the bytes of the chunks written.
    pub(super) fn commit(&mut self, commit: Commit<'_>) -> Result<usize> {
        let Commit {
            docs: keys,
            stat_updates,
            remove_projects,
            sync_states,
            signatures: received,
            checkpoints,
        } = commit;
        // After an I/O error (disk full) redb refuses everything until reopened: try
        // now, so writing resumes by itself once space is back. Nothing below has run:
        // our pending changes stay unsaved and are stored by a later commit.
        self.recover_store()?;

        let now = now_secs();
        self.doc.commit(now);
        self.mesh.commit(now);
        let me = ActorId::from(&self.id().actor_bytes()[..]);
        let mut owned: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        // Save cursors before this commit, to rewind if the store refuses it.
        let mut cursors: Vec<(DocKey, Vec<automerge::ChangeHash>)> = Vec::new();
        let mut signed: Vec<SignatureRow> = Vec::new();
        for key in keys {
            let own = *key == DocKey::Mesh || *key == DocKey::Machine(self.id());
            let Some(t) = self.tracked(*key) else {
                continue;
            };
            // Our own new changes are signed in the transaction that stores them: a
            // change of ours is never stored (nor sent) without its signature.
            let hashes = if own {
                t.unsaved_changes_by(&me)
            } else {
                Vec::new()
            };
            cursors.push((*key, t.saved_heads()));
            let chunk = t.save_incremental();
            for h in hashes {
                let s = ChangeSignature::sign(&self.identity, *key, &h.0);
                signed.push((key.to_bytes(), h.0, s.to_stored()));
            }
            if !chunk.is_empty() {
                owned.push((key.to_bytes(), chunk));
            }
        }
        if owned.is_empty()
            && stat_updates.is_empty()
            && remove_projects.is_empty()
            && sync_states.is_empty()
            && received.is_empty()
            && checkpoints.is_empty()
        {
            return Ok(0);
        }
        // What can be fetched again need not wait for the disk (Batch::lazy).
        let mesh_key = DocKey::Mesh.to_bytes();
        let me_id = self.id();
        // Neither a project's removal, the mesh's proofs nor our checkpoint.
        let only_documents = remove_projects.is_empty()
            && received
                .iter()
                .all(|(doc, _, _)| *doc != mesh_key.as_slice())
            && checkpoints.iter().all(|(doc, _)| *doc != me_id.as_bytes());
        let lazy = only_documents
            && (self.own_commit_may_wait(keys)
                || signed.is_empty()
                    && stat_updates.is_empty()
                    && keys
                        .iter()
                        .all(|k| matches!(k, DocKey::Machine(id) if *id != me_id)));
        let mut signatures: Vec<(&[u8], [u8; 32], [u8; 96])> = received.to_vec();
        signatures.extend(borrowed(&signed));
        let chunks: Vec<(&[u8], &[u8])> = owned
            .iter()
            .map(|(k, c)| (k.as_slice(), c.as_slice()))
            .collect();
        let stored = self.store.commit(Batch {
            chunks: &chunks,
            sync_states,
            remove_projects,
            stat_updates,
            signatures: &signatures,
            checkpoints,
            lazy,
        });
        let generation = match stored {
            Ok(generation) => generation,
            Err(e) => {
                self.write_failed = true;
                // Nothing of the transaction is stored: the next commit saves (and signs)
                // these changes again, so a change made while the disk was full is not lost.
                for (key, heads) in cursors {
                    if let Some(t) = self.tracked(key) {
                        t.rewind_save(heads);
                    }
                    self.unsaved.insert(key);
                }
                return Err(e.into());
            }
        };
        let me_key = DocKey::Machine(me_id);
        let own_lazy = (lazy && (!signed.is_empty() || keys.contains(&me_key)))
            .then(|| cursors.into_iter().filter(|(k, _)| *k == me_key).collect());
        self.note_own_commit(generation, own_lazy, lazy);
        for key in keys {
            self.unsaved.remove(key);
        }
        if std::mem::take(&mut self.write_failed) {
            self.recovered = true;
        }
        let bytes = owned.iter().map(|(_, c)| c.len()).sum();
        if keys.contains(&DocKey::Mesh) {
            self.pin_revocations()?;
        }
        for key in keys {
            self.maybe_compact(*key)?;
        }
        Ok(bytes)
    }

    /// Upgrades a store written before change signatures (format 1): signs this
    /// machine's whole history (its document and its mesh changes) and drops the
    /// replicas of other machines, which are fetched again with their owners'
    /// signatures; the store is then marked format 2. Idempotent: a crash before the
    /// mark repeats it.
    pub(super) fn sign_history(&mut self) -> Result<()> {
        let me = self.id();
        let actor = ActorId::from(&me.actor_bytes()[..]);
        let mut signatures: Vec<SignatureRow> = Vec::new();
        for key in [DocKey::Machine(me), DocKey::Mesh] {
            let Some(t) = self.tracked(key) else {
                continue;
            };
            let hashes = t.changes_by(&actor, &[]);
            for h in hashes {
                let s = ChangeSignature::sign(&self.identity, key, &h.0);
                signatures.push((key.to_bytes(), h.0, s.to_stored()));
            }
        }
        let rows = borrowed(&signatures);
        self.commit(Commit::default().signatures(&rows))?;
        let replicas: Vec<MachineId> = self.replicas.keys().copied().collect();
        for id in replicas {
            self.store.remove_doc(id.as_bytes())?;
            self.replicas.remove(&id);
            self.snapshot_bytes.remove(&DocKey::Machine(id));
        }
        tracing::info!(
            signed = rows.len(),
            "upgraded the store to signed changes (other machines' copies are fetched again)"
        );
        self.store
            .set_schema_version(crate::store::SCHEMA_VERSION)?;
        Ok(())
    }

    pub(super) fn maybe_compact(&mut self, key: DocKey) -> Result<()> {
        let (chunks, chunk_bytes) = self.store.chunk_stats(&key.to_bytes())?;
        self.received.entry(key).or_default().stored_bytes = chunk_bytes;
        let snapshot = self.snapshot_bytes.get(&key).copied().unwrap_or(0);
        let incremental = chunk_bytes.saturating_sub(snapshot);
        if chunks >= COMPACT_MAX_CHUNKS || incremental > snapshot.max(COMPACT_MIN_BYTES) {
            match self.compact_due.as_mut() {
                Some(due) => {
                    due.insert(key);
                    self.compact_due_since
                        .get_or_insert_with(std::time::Instant::now);
                }
                None => self.compact_doc(key)?,
            }
        }
        Ok(())
    }

    /// Moves store maintenance off the commit path: compaction (a full save and a
    /// rewrite of the redb file, milliseconds to seconds) and making lazy commits durable
    /// wait for [`Machine::maintain`] (a running peer flushes every second and compacts
    /// once the machine is quiet, see `peer::maintain`). Without it (one-shot commands)
    /// a commit compacts at once and the store's close flushes.
    pub fn defer_maintenance(&mut self) {
        self.compact_due.get_or_insert_with(Default::default);
    }

    /// How long the oldest deferred compaction has waited; `None` when none is due.
    pub fn compaction_waited(&self) -> Option<std::time::Duration> {
        self.compact_due_since.map(|t| t.elapsed())
    }

    /// Whether lazy commits wait for [`Machine::flush_store`].
    pub fn has_unflushed(&self) -> bool {
        self.store.has_unflushed()
    }

    /// Makes lazy commits durable and compacts the documents due (deferred maintenance).
    pub fn maintain(&mut self) -> Result<()> {
        self.flush_store()?;
        let due = self
            .compact_due
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        self.compact_due_since = None;
        for key in due {
            // A document forgotten meanwhile has nothing to compact.
            if self.tracked(key).is_some() {
                self.compact_doc(key)?;
            }
        }
        Ok(())
    }

    pub(super) fn compact_doc(&mut self, key: DocKey) -> Result<()> {
        let Some(t) = self.tracked(key) else {
            return Ok(());
        };
        let full = t.save();
        // A machine document's compaction also trades the change signatures its
        // history holds for one checkpoint (proofs.rs); every compaction drops the
        // signatures of changes the document does not hold (none should be stored:
        // store invariant 9, docs/design.md).
        let checkpoint = self.checkpoint_at_compaction(key)?;
        let mut dropped = self.signatures_not_held(key)?;
        let checkpoint = checkpoint.map(|(c, covered)| {
            dropped.extend(covered);
            c
        });
        self.store
            .replace_chunks(&key.to_bytes(), &full, checkpoint.as_deref(), &dropped)?;
        self.snapshot_bytes.insert(key, full.len() as u64);
        Ok(())
    }

    /// Folds every stored chunk of this machine's document into one full save.
    pub fn compact(&mut self) -> Result<()> {
        self.compact_doc(DocKey::Machine(self.id()))
    }

    /// Stats of this machine's stored document.
    pub fn doc_stats(&self) -> Result<crate::store::StoreStats> {
        Ok(self.store.stats(self.id().as_bytes())?)
    }

    /// Reloads one document from the store, dropping anything not stored.
    pub(super) fn reload(&mut self, key: DocKey) -> Result<()> {
        let chunks = self.store.doc_chunks(&key.to_bytes())?;
        // Changes waiting for dependencies are not stored: none wait after a reload.
        let r = self.received.entry(key).or_default();
        r.orphans = 0;
        r.pending.clear();
        let slices = chunks.iter().map(Vec::as_slice);
        match key {
            DocKey::Mesh => {
                let pinned = self.mesh.pinned().clone();
                self.mesh = MeshDoc::load(self.id(), slices).map_err(DocError::from)?;
                self.mesh.pin(&pinned);
            }
            DocKey::Machine(id) if id == self.id() => self.doc = MachineDoc::load(id, slices)?,
            DocKey::Machine(id) => {
                if chunks.is_empty() {
                    self.replicas.insert(id, MachineDoc::empty_replica());
                } else {
                    self.replicas.insert(id, MachineDoc::load(id, slices)?);
                }
            }
        }
        Ok(())
    }

    /// Counts this machine's starts (store meta `incarnation`, u64 big-endian) and
    /// returns the new count. Peers compare incarnations to replace the connection of
    /// a crashed run at once instead of waiting for it to time out; a counter in the
    /// store, not the clock, so it only ever grows.
    pub fn next_incarnation(&mut self) -> Result<u64> {
        let current = self
            .store
            .meta(MetaKey::Incarnation)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        let next = current.saturating_add(1);
        self.store
            .set_meta(MetaKey::Incarnation, &next.to_be_bytes())?;
        Ok(next)
    }

    /// The port the peer listened on last time (store meta `bind_port`), if any.
    pub fn remembered_port(&self) -> Result<Option<u16>> {
        Ok(self
            .store
            .meta(MetaKey::BindPort)?
            .and_then(|b| <[u8; 2]>::try_from(b.as_slice()).ok())
            .map(u16::from_le_bytes)
            .filter(|p| *p != 0))
    }

    /// Remembers the port the peer listened on (see [`Machine::remembered_port`]).
    pub fn remember_port(&mut self, port: u16) -> Result<()> {
        Ok(self
            .store
            .set_meta(MetaKey::BindPort, &port.to_le_bytes())?)
    }

    /// The revocations kept in the store (see [`MetaKey::Revocations`]); unreadable ones
    /// count as none (logged): the mesh document still holds them.
    pub(super) fn stored_revocations(store: &crate::store::Store) -> BTreeMap<MachineId, i64> {
        let bytes = match store.meta(MetaKey::Revocations) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("cannot read the stored revocations: {e}");
                return BTreeMap::new();
            }
        };
        let Some(bytes) = bytes else {
            return BTreeMap::new();
        };
        let map: BTreeMap<String, i64> = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!("unreadable stored revocations: {e}");
            BTreeMap::new()
        });
        map.into_iter()
            .filter_map(|(k, at)| Some((k.parse().ok()?, at)))
            .collect()
    }

    /// Keeps every revocation the mesh shows in the store and pins it in the mesh, so no
    /// later document (a reload, a merge, a change that slipped past the receipt check)
    /// can take it away. Writes only when there is a new one.
    pub(super) fn pin_revocations(&mut self) -> Result<()> {
        let seen = self.mesh.revoked();
        if seen
            .iter()
            .all(|(id, _)| self.mesh.pinned().contains_key(id))
        {
            return Ok(());
        }
        self.mesh.pin(&seen);
        let map: BTreeMap<String, i64> = self
            .mesh
            .pinned()
            .iter()
            .map(|(id, at)| (id.to_string(), *at))
            .collect();
        let bytes = serde_json::to_vec(&map).unwrap_or_default();
        Ok(self.store.set_meta(MetaKey::Revocations, &bytes)?)
    }

    /// Relay URLs learned from tickets this machine joined with (store meta `relays`).
    pub fn learned_relays(&self) -> Vec<String> {
        self.store
            .meta(MetaKey::Relays)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Remembers relay URLs from a ticket, so `up` uses them without `--relay`.
    pub fn learn_relays(&mut self, relays: &[String]) -> Result<()> {
        let mut all = self.learned_relays();
        for r in relays {
            if !all.contains(r) {
                all.push(r.clone());
            }
        }
        let bytes = serde_json::to_vec(&all).unwrap_or_default();
        Ok(self.store.set_meta(MetaKey::Relays, &bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorship::{Checkpoint, SignedMessage};
    use crate::machine::SyncError;
    use crate::tracked::ReceiveError;
    use std::path::Path;

    fn machine(dir: &Path, label: &str) -> Machine {
        let project = dir.join(format!("{label}-project"));
        let spec = project.join("specs/001-first");
        std::fs::create_dir_all(&spec).expect("mkdir");
        std::fs::write(
            spec.join("README.md"),
            "---\nstatus: planned\ncreated: '2025-01-01'\n---\n\n# first\n",
        )
        .expect("write");
        let (mut m, _) = Machine::init(&dir.join(label), Some(label)).expect("init");
        m.add_project(&project, Some(label)).expect("add");
        m
    }

    type States = std::collections::HashMap<(MachineId, DocKey), automerge::sync::State>;

    /// One round from `src` to `dst`: whether anything was sent. Panics on a refusal.
    fn exchange(src: &mut Machine, dst: &mut Machine, states: &mut States) -> bool {
        let mut sent = false;
        for key in src.sync_keys() {
            let st = states.entry((src.id(), key)).or_default();
            if let Some(msg) = src.generate_sync(key, st) {
                sent = true;
                let rst = states.entry((dst.id(), key)).or_default();
                match dst.receive_sync(src.id(), key, rst, &msg) {
                    Ok(_) | Err(SyncError::UnknownDoc) => {}
                    Err(e) => panic!("{} refused {key:?} from {}: {e}", dst.label(), src.label()),
                }
            }
        }
        sent
    }

    /// Runs sync between `a` and `b` until neither has anything to say.
    fn sync(a: &mut Machine, b: &mut Machine) {
        let mut states = States::new();
        for _ in 0..50 {
            let ab = exchange(a, b, &mut states);
            let ba = exchange(b, a, &mut states);
            if !ab && !ba {
                return;
            }
        }
        panic!("did not settle");
    }

    fn pair(inviter: &mut Machine, joiner: &mut Machine) {
        inviter
            .add_member(joiner.id(), &joiner.label(), None)
            .expect("member");
        let mesh = inviter.mesh_bytes();
        let sigs = inviter.mesh_signatures().expect("sigs");
        joiner.adopt_mesh(&mesh, &sigs).expect("adopt");
    }

    /// Issue 15 (50 machines): a received mesh message that applies no change, and the
    /// store commit after it, leave what was read of the mesh as it was.
    #[test]
    fn a_mesh_message_without_changes_does_not_read_the_mesh_again() {
        let dir = tempfile::tempdir().expect("dir");
        let (mut a, mut b) = (machine(dir.path(), "a"), machine(dir.path(), "b"));
        pair(&mut a, &mut b);
        sync(&mut a, &mut b);
        assert!(a.mesh().is_current_member(b.id()));
        let before = crate::mesh::reads();
        // A reconnect: fresh sync states, so each side sends the other its mesh heads.
        sync(&mut a, &mut b);
        assert!(a.mesh().is_current_member(b.id()));
        assert!(b.mesh().is_current_member(a.id()));
        assert_eq!(crate::mesh::reads(), before, "the mesh was read again");
        // A real change is read.
        let c = crate::identity::Identity::generate().expect("key").id();
        a.add_member(c, "c", None).expect("member");
        sync(&mut a, &mut b);
        assert!(b.mesh().is_current_member(c));
    }

    /// Only what a peer can send again waits for the disk (`Batch::lazy`): another
    /// machine's change; our own changes and received mesh changes are durable at
    /// once, and a peer's acknowledgement of our document writes nothing.
    #[test]
    fn only_what_a_peer_can_send_again_is_committed_lazily() {
        let dir = tempfile::tempdir().expect("dir");
        let (mut a, mut b) = (machine(dir.path(), "a"), machine(dir.path(), "b"));
        pair(&mut a, &mut b);
        // Settled, with the sync states kept (a running session).
        let mut states = States::new();
        for _ in 0..50 {
            let ab = exchange(&mut a, &mut b, &mut states);
            if !exchange(&mut b, &mut a, &mut states) && !ab {
                break;
            }
        }
        let flush = |m: &mut Machine| m.flush_store().expect("flush");
        flush(&mut a);
        flush(&mut b);
        retitle(&mut a, "v1");
        assert!(!a.has_unflushed(), "an own change is durable at once");

        let key = DocKey::Machine(a.id());
        let mut send = |src: &mut Machine, dst: &mut Machine, key: DocKey| {
            let msg = src
                .generate_sync(key, states.entry((src.id(), key)).or_default())
                .expect("something to send");
            let rst = states.entry((dst.id(), key)).or_default();
            dst.receive_sync(src.id(), key, rst, &msg).expect("receive");
        };
        send(&mut a, &mut b, key);
        assert_eq!(title_on(&b, "a"), "v1");
        assert!(b.has_unflushed(), "another machine's change waits");
        send(&mut b, &mut a, key);
        assert!(
            !a.has_unflushed(),
            "an acknowledgement of our document writes nothing"
        );
        flush(&mut a);
        flush(&mut b);

        let c = crate::identity::Identity::generate().expect("key").id();
        a.add_member(c, "c", None).expect("member");
        assert!(!a.has_unflushed(), "an own mesh change is durable at once");
        send(&mut a, &mut b, DocKey::Mesh);
        assert!(b.mesh().is_current_member(c));
        assert!(
            !b.has_unflushed(),
            "a received mesh change is durable at once"
        );
    }

    #[test]
    fn a_format_1_store_signs_its_history_and_fetches_other_machines_again() {
        let dir = tempfile::tempdir().expect("dir");
        let (mut a, mut b) = (machine(dir.path(), "a"), machine(dir.path(), "b"));
        pair(&mut a, &mut b);
        sync(&mut a, &mut b);
        assert!(a.replica(b.id()).is_some());
        // What a store written before signatures looks like.
        a.store.forget_signatures().expect("forget");
        a.store.set_schema_version(1).expect("version");
        let home = a.home().to_path_buf();
        drop(a);
        let mut a = Machine::open(&home).expect("upgrade");
        assert_eq!(
            a.store.schema_version().expect("version"),
            crate::store::SCHEMA_VERSION
        );
        assert!(a.replica(b.id()).is_none(), "B's unsigned copy is dropped");
        // A machine that never saw A takes A's whole history: every change of it must
        // come signed, or `sync` panics on the refusal.
        let mut c = machine(dir.path(), "c");
        pair(&mut a, &mut c);
        sync(&mut a, &mut c);
        assert!(c.spec_on(Some("a"), "a", "1").is_ok(), "C holds A's spec");
        // B's document comes back to A, signed by B.
        sync(&mut a, &mut b);
        assert!(a.replica(b.id()).is_some(), "B's document fetched again");
        assert!(a.spec_on(Some("b"), "b", "1").is_ok());
    }

    #[test]
    fn a_format_2_store_is_marked_3_and_keeps_everything() {
        let dir = tempfile::tempdir().expect("dir");
        let (mut a, mut b) = (machine(dir.path(), "a"), machine(dir.path(), "b"));
        pair(&mut a, &mut b);
        sync(&mut a, &mut b);
        assert_eq!(crate::store::SCHEMA_VERSION, 3);
        a.store.set_schema_version(2).expect("version");
        let home = a.home().to_path_buf();
        drop(a);
        let a = Machine::open(&home).expect("open");
        assert_eq!(a.store.schema_version().expect("version"), 3);
        assert!(
            a.replica(b.id()).is_some(),
            "nothing dropped: no conversion"
        );
        assert!(a.spec_on(Some("b"), "b", "1").is_ok());
        assert!(
            own_signatures(&a) > 0,
            "its signatures stay until a compaction"
        );
    }

    /// Rewrites `m`'s spec with title `title` and stores the change (as the watcher does).
    fn retitle(m: &mut Machine, title: &str) {
        let project = m.projects().expect("projects").remove(0);
        std::fs::write(
            project.root.join("specs/001-first/README.md"),
            format!("---\nstatus: planned\ncreated: '2025-01-01'\n---\n\n# {title}\n"),
        )
        .expect("write");
        m.rescan_spec(&project.id, "001-first").expect("rescan");
    }

    fn title_on(m: &Machine, owner: &str) -> String {
        m.spec_on(Some(owner), owner, "1").expect("spec").spec.title
    }

    fn own_signatures(m: &Machine) -> usize {
        m.store
            .signed_changes(m.id().as_bytes())
            .expect("rows")
            .len()
    }

    #[test]
    fn a_compaction_trades_the_change_signatures_for_one_checkpoint_that_proves_the_history() {
        let dir = tempfile::tempdir().expect("dir");
        let (mut a, mut b) = (machine(dir.path(), "a"), machine(dir.path(), "b"));
        pair(&mut a, &mut b);
        for i in 0..3 {
            retitle(&mut a, &format!("v{i}"));
        }
        assert!(own_signatures(&a) >= 3, "one signature per change before");
        for i in 3..20 {
            retitle(&mut a, &format!("v{i}"));
        }
        a.compact().expect("compact");
        assert_eq!(own_signatures(&a), 0, "the checkpoint covers them all");
        let key = DocKey::Machine(a.id());
        let checkpoint = a.stored_checkpoint(key).expect("read").expect("stored");
        assert!(checkpoint.verifies(key));

        // B has never seen A's document: a whole document with the checkpoint.
        sync(&mut a, &mut b);
        assert_eq!(title_on(&b, "a"), "v19");
        assert_eq!(
            b.stored_checkpoint(key).expect("read"),
            Some(checkpoint.clone())
        );
        // A change after the checkpoint travels with its own signature; B compacts its
        // copy, keeping only that one.
        retitle(&mut a, "v20");
        sync(&mut a, &mut b);
        assert_eq!(title_on(&b, "a"), "v20");
        b.compact_doc(key).expect("compact the replica");
        let kept = b.store.signed_changes(a.id().as_bytes()).expect("rows");
        assert_eq!(
            kept.len(),
            1,
            "only the change after the checkpoint keeps its own"
        );

        // C learns A's document from B alone (A is offline): the checkpoint proves the
        // history, the kept signature the change after it.
        let mut c = machine(dir.path(), "c");
        pair(&mut b, &mut c);
        sync(&mut b, &mut c);
        assert_eq!(title_on(&c, "a"), "v20");

        // D is behind by changes the checkpoint covers and gets them as a list from A,
        // which signs its own changes again (no checkpoint walk, no gap).
        let mut d = machine(dir.path(), "d");
        pair(&mut a, &mut d);
        sync(&mut a, &mut d);
        assert_eq!(title_on(&d, "a"), "v20");
        for i in 21..30 {
            retitle(&mut a, &format!("v{i}"));
        }
        a.compact().expect("compact");
        assert_eq!(own_signatures(&a), 0);
        sync(&mut a, &mut d);
        assert_eq!(title_on(&d, "a"), "v29");

        // A replica learns the owner's new checkpoint with its next changes and drops
        // the signatures it covers at its own compaction: replicas do not grow either.
        sync(&mut a, &mut b);
        assert_eq!(title_on(&b, "a"), "v29");
        let latest = a.stored_checkpoint(key).expect("read");
        assert_ne!(latest, Some(checkpoint.clone()), "A compacted again");
        assert_eq!(b.stored_checkpoint(key).expect("read"), latest);
        // The older one, replayed (or forwarded by a machine that lags), is not kept.
        let replayed = b.checkpoint_to_keep(key, Some(&checkpoint)).expect("check");
        assert!(
            replayed.is_none(),
            "an older checkpoint replaces a newer one"
        );
        b.compact_doc(key).expect("compact the replica");
        let kept = b.store.signed_changes(a.id().as_bytes()).expect("rows");
        assert!(kept.is_empty(), "{} signatures kept", kept.len());
    }

    #[test]
    fn a_change_neither_signed_nor_in_a_checkpoint_of_its_owner_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let (mut a, mut b) = (machine(dir.path(), "a"), machine(dir.path(), "b"));
        pair(&mut a, &mut b);
        retitle(&mut a, "v1");
        a.compact().expect("compact");
        let key = DocKey::Machine(a.id());
        // What A would send B (a whole document), with its proofs stripped, then with
        // a checkpoint B signed over the same heads: both refused, nothing stored.
        // B asks (it holds nothing of A's document); A answers with the whole document.
        let (mut sa, mut sb) = (automerge::sync::State::new(), automerge::sync::State::new());
        let hello = a.generate_sync(key, &mut sa).expect("heads");
        b.receive_sync(a.id(), key, &mut sb, &hello)
            .expect("heads only");
        let ask = b.generate_sync(key, &mut sb).expect("request");
        a.receive_sync(b.id(), key, &mut sa, &ask).expect("request");
        let wire = a.generate_sync(key, &mut sa).expect("document");
        let (message, sent) = SignedMessage::decode(key, &wire).expect("decode");
        let genuine = sent
            .checkpoint()
            .expect("a whole document carries it")
            .clone();
        let heads: Vec<[u8; 32]> = genuine.heads().to_vec();
        let stripped = SignedMessage {
            message: message.clone(),
            signatures: Vec::new(),
            checkpoint: None,
        };
        let forged = SignedMessage {
            checkpoint: Checkpoint::sign(&b.identity, &heads),
            ..stripped.clone()
        };
        for (what, m) in [("no proof", stripped), ("B's checkpoint", forged)] {
            let mut rst = sb.clone();
            let got = b.receive_sync(a.id(), key, &mut rst, &m.encode(key));
            assert!(
                matches!(got, Err(SyncError::Refused(ReceiveError::Unsigned { .. }))),
                "{what}: {got:?}"
            );
            assert!(b.stored_checkpoint(key).expect("read").is_none(), "{what}");
            assert!(
                b.spec_on(Some("a"), "a", "1").is_err(),
                "{what}: nothing applied"
            );
        }
        // The genuine one is accepted.
        let mut rst = sb.clone();
        let ok = SignedMessage {
            message,
            signatures: Vec::new(),
            checkpoint: Some(genuine),
        };
        b.receive_sync(a.id(), key, &mut rst, &ok.encode(key))
            .expect("accepted");
        assert_eq!(title_on(&b, "a"), "v1");
    }
}
