//! Persistence: committing the documents' new chunks with the writes that go with
//! them in one transaction, compaction, reloading a document from the store, and the
//! small facts kept in the meta table (incarnation, last port, learned relays).

use super::{DocKey, Machine, Result, now_secs};
use crate::doc::{DocError, MachineDoc};
use crate::mesh::MeshDoc;
use crate::store::MetaKey;
use crate::store::{Batch, StatKey};
use crate::tracked::Tracked;

/// When to fold the incremental chunks into one full save: once they outweigh the
/// snapshot (so the stored size stays within ~2x a full save) or there are many.
/// Small documents are not compacted below this many incremental bytes.
const COMPACT_MIN_BYTES: u64 = 4096;
const COMPACT_MAX_CHUNKS: u64 = 512;

/// What one store transaction writes: the new chunks of `docs`, plus the stat cache
/// updates, project removals and sync states that must land with them (or not at all).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Commit<'a> {
    docs: &'a [DocKey],
    stat_updates: &'a [(&'a str, &'a str, Option<StatKey>)],
    remove_projects: &'a [String],
    sync_states: &'a [(&'a [u8], &'a [u8], &'a [u8])],
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

    /// With `(peer, document key, state)` sync states to store.
    pub(super) fn sync_states(self, sync_states: &'a [(&'a [u8], &'a [u8], &'a [u8])]) -> Self {
        Commit {
            sync_states,
            ..self
        }
    }
}

impl Machine {
    pub(super) fn tracked(&mut self, key: DocKey) -> Option<&mut Tracked> {
        match key {
            DocKey::Mesh => Some(self.mesh.tracked()),
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
        } = commit;
        let now = now_secs();
        self.doc.commit(now);
        self.mesh.commit(now);
        let mut owned: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for key in keys {
            if let Some(t) = self.tracked(*key) {
                let chunk = t.save_incremental();
                if !chunk.is_empty() {
                    owned.push((key.to_bytes(), chunk));
                }
            }
        }
        if owned.is_empty()
            && stat_updates.is_empty()
            && remove_projects.is_empty()
            && sync_states.is_empty()
        {
            return Ok(0);
        }
        let chunks: Vec<(&[u8], &[u8])> = owned
            .iter()
            .map(|(k, c)| (k.as_slice(), c.as_slice()))
            .collect();
        self.store.commit(Batch {
            chunks: &chunks,
            sync_states,
            remove_projects,
            stat_updates,
        })?;
        let bytes = owned.iter().map(|(_, c)| c.len()).sum();
        for key in keys {
            self.maybe_compact(*key)?;
        }
        Ok(bytes)
    }

    pub(super) fn maybe_compact(&mut self, key: DocKey) -> Result<()> {
        let stats = self.store.stats(&key.to_bytes())?;
        let snapshot = self.snapshot_bytes.get(&key).copied().unwrap_or(0);
        let incremental = stats.chunk_bytes.saturating_sub(snapshot);
        if stats.chunks >= COMPACT_MAX_CHUNKS || incremental > snapshot.max(COMPACT_MIN_BYTES) {
            self.compact_doc(key)?;
        }
        Ok(())
    }

    pub(super) fn compact_doc(&mut self, key: DocKey) -> Result<()> {
        let Some(t) = self.tracked(key) else {
            return Ok(());
        };
        let full = t.save();
        self.store.replace_chunks(&key.to_bytes(), &full)?;
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
        let slices = chunks.iter().map(Vec::as_slice);
        match key {
            DocKey::Mesh => self.mesh = MeshDoc::load(self.id(), slices).map_err(DocError::from)?,
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
