//! Proofs of authorship kept and sent for machine documents: per-change signatures
//! and the owner's checkpoints ([`crate::authorship`]).
//!
//! Invariants:
//! 1. Every change of a machine document this machine stores is proven, at all times,
//!    by a stored signature or by the stored checkpoint of that document (a checkpoint
//!    and the signatures it makes redundant change in one transaction:
//!    [`crate::store::Store::replace_chunks`]).
//! 2. A stored checkpoint verifies (its owner signed it) and this machine holds all of
//!    its heads.
//! 3. This machine's own changes always leave with a signature of their own, signed
//!    again if the stored one was dropped, except in a whole-document message that
//!    carries the checkpoint: a receiver then holds every change up to the checkpoint's
//!    heads, so the walk that proves them cannot meet a gap.
//!
//! Why a receiver's walk from a checkpoint's heads reaches the changes it must prove:
//! a machine document has one writer, so its history is a chain, and Automerge sends
//! every descendant of a change it sends (`get_hashes_to_send`). A change a Bloom-filter
//! false positive leaves out therefore only makes the changes after it wait (nothing is
//! added, nothing refused, the next round asks for it); a change that applies has every
//! change after it up to the sender's heads in the same message, the checkpoint's heads
//! among them. Histories with concurrent heads (a restored backup) could meet a gap: the
//! message is then refused like any unproven one and the next session starts over.

use super::{Machine, Result};
use crate::authorship::{ChangeSignature, Checkpoint};
use crate::machine::DocKey;
use automerge::ChangeHash;
use std::collections::HashSet;

/// What travels with a sync message to prove its changes.
pub(super) type Proofs = (Vec<([u8; 32], ChangeSignature)>, Option<Checkpoint>);

/// A checkpoint to store (stored form) and the change signatures it makes redundant.
pub(super) type Trade = (Vec<u8>, Vec<[u8; 32]>);

impl Machine {
    /// The stored checkpoint of `key` (never for the mesh).
    pub(super) fn stored_checkpoint(&self, key: DocKey) -> Result<Option<Checkpoint>> {
        if key == DocKey::Mesh {
            return Ok(None);
        }
        Ok(self
            .store
            .checkpoint(&key.to_bytes())?
            .and_then(|b| Checkpoint::decode(&b)))
    }

    /// The proofs for `carried` changes of `key`: their stored signatures, this
    /// machine's signature for its own changes whose stored one was dropped (or, in a
    /// whole-document message, the checkpoint instead), and for other machines'
    /// changes without a stored signature, the checkpoint that covers them. The stored
    /// checkpoint goes with every message that carries changes of a machine document
    /// (~100 bytes): that is how replicas learn the owner's latest one and can drop the
    /// signatures it covers.
    pub(super) fn proofs_to_send(
        &mut self,
        key: DocKey,
        carried: &[ChangeHash],
        whole: bool,
    ) -> Result<Proofs> {
        let hashes: Vec<[u8; 32]> = carried.iter().map(|h| h.0).collect();
        let stored = self.store.change_signatures(&key.to_bytes(), &hashes)?;
        let mut signatures = Vec::with_capacity(hashes.len());
        let mut missing = Vec::new();
        for (h, s) in hashes.into_iter().zip(stored) {
            match s.as_deref().and_then(ChangeSignature::from_stored) {
                Some(s) => signatures.push((h, s)),
                None => missing.push(h),
            }
        }
        let checkpoint = if carried.is_empty() {
            None
        } else {
            self.stored_checkpoint(key)?
        };
        let own = key == DocKey::Machine(self.id());
        if own && !(whole && checkpoint.is_some()) {
            for h in missing {
                signatures.push((h, ChangeSignature::sign(&self.identity, key, &h)));
            }
        }
        Ok((signatures, checkpoint))
    }

    /// Which of the `added` changes of machine document `key` are in the history of a
    /// checkpoint of its owner: the one `sent` with the message (verified here) or the
    /// stored one. Only changes by the owner's actor count (a checkpoint proves history,
    /// and the owner's document holds only the owner's changes).
    pub(super) fn covered_by_checkpoints(
        &mut self,
        key: DocKey,
        added: &HashSet<ChangeHash>,
        sent: Option<&Checkpoint>,
    ) -> Result<HashSet<ChangeHash>> {
        if added.is_empty() || key == DocKey::Mesh {
            return Ok(HashSet::new());
        }
        let mut heads: Vec<ChangeHash> = Vec::new();
        if let Some(c) = sent.filter(|c| c.verifies(key)) {
            heads.extend(c.change_hashes());
        }
        if let Some(c) = self.stored_checkpoint(key)? {
            heads.extend(c.change_hashes());
        }
        Ok(match self.tracked(key) {
            Some(t) if !heads.is_empty() => t.history_within(&heads, added),
            _ => HashSet::new(),
        })
    }

    /// The checkpoint `sent` with a message for `key`, stored form, when it should
    /// replace the stored one: it verifies, this machine now holds all its heads, and
    /// it is newer: each of its heads comes after the stored one's (or is one of them).
    /// An older one (replayed, or forwarded by a machine that lags) is ignored: the
    /// signatures the stored one let this machine drop would lose their proof.
    pub(super) fn checkpoint_to_keep(
        &mut self,
        key: DocKey,
        sent: Option<&Checkpoint>,
    ) -> Result<Option<Vec<u8>>> {
        let Some(c) = sent else {
            return Ok(None);
        };
        // Most messages repeat the stored one: compared before the signature is checked.
        let stored = self.stored_checkpoint(key)?;
        if stored.as_ref() == Some(c) || !c.verifies(key) {
            return Ok(None);
        }
        let Some(t) = self.tracked(key) else {
            return Ok(None);
        };
        if !c.heads().iter().all(|h| t.has_change(&ChangeHash(*h))) {
            return Ok(None);
        }
        let newer = match stored {
            None => true,
            Some(old) => {
                // The changes since the stored checkpoint: few, it is the latest seen.
                let since = t.hashes_after(&old.change_hashes());
                c.heads()
                    .iter()
                    .all(|h| since.contains(&ChangeHash(*h)) || old.heads().contains(h))
            }
        };
        Ok(newer.then(|| c.encode()))
    }

    /// The stored change signatures of `key` whose change the document does not hold:
    /// written by versions that stored the signatures of changes still waiting for
    /// their dependencies (issue 38), dropped at compaction.
    pub(super) fn signatures_not_held(&mut self, key: DocKey) -> Result<Vec<[u8; 32]>> {
        let signed = self.store.signed_changes(&key.to_bytes())?;
        let Some(t) = self.tracked(key) else {
            return Ok(Vec::new());
        };
        Ok(signed
            .into_iter()
            .filter(|h| !t.has_change(&ChangeHash(*h)))
            .collect())
    }

    /// At compaction of machine document `key`: the checkpoint to store (this machine
    /// signs its own heads; a replica keeps the stored one) and the stored change
    /// signatures it makes redundant (those of changes in its history).
    pub(super) fn checkpoint_at_compaction(&mut self, key: DocKey) -> Result<Option<Trade>> {
        let checkpoint = match key {
            DocKey::Mesh => return Ok(None),
            DocKey::Machine(id) if id == self.id() => {
                let Some(t) = self.tracked(key) else {
                    return Ok(None);
                };
                let heads: Vec<[u8; 32]> = t.heads().iter().map(|h| h.0).collect();
                match Checkpoint::sign(&self.identity, &heads) {
                    Some(c) => c,
                    None => return Ok(None),
                }
            }
            DocKey::Machine(_) => match self.stored_checkpoint(key)? {
                Some(c) => c,
                None => return Ok(None),
            },
        };
        let signed = self.store.signed_changes(&key.to_bytes())?;
        let Some(t) = self.tracked(key) else {
            return Ok(None);
        };
        let after = t.hashes_after(&checkpoint.change_hashes());
        // Held and not after the checkpoint: in its history. (Signatures of changes not
        // held go too, with every compaction: `Machine::signatures_not_held`.)
        let covered = signed
            .into_iter()
            .filter(|h| {
                let h = ChangeHash(*h);
                !after.contains(&h) && t.has_change(&h)
            })
            .collect();
        Ok(Some((checkpoint.encode(), covered)))
    }
}
