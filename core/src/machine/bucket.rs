//! This machine's side of a bucket (`crate::bucket`): its documents as signed messages
//! to leave there, what it reads from there through the checks of sync, the buckets the
//! mesh records and what this machine remembers of each.

use super::persist::Commit;
use super::{DocChange, DocKey, Machine, Result, SyncError, now_secs};
use crate::authorship::SignedMessage;
use crate::bucket::{BucketError, BucketSetting, BucketState};
use crate::identity::MachineId;
use crate::store::MetaKey;
use automerge::ChangeHash;
use std::collections::BTreeMap;

/// A document as a signed message for a bucket object.
#[derive(Debug)]
pub(crate) struct Exported {
    /// The signed sync message (every change it carries with its author's signature).
    pub(crate) message: Vec<u8>,
    /// The document's heads it brings a reader to.
    pub(crate) heads: Vec<ChangeHash>,
}

impl Machine {
    /// Document `key` as a signed message: whole (`after` empty) or the changes since
    /// `after`. `None` when there is nothing after `after`, or while this machine's
    /// changes wait for the store (they have no stored signature yet: members would
    /// refuse them) or for the disk.
    pub(crate) fn export_for_bucket(
        &mut self,
        key: DocKey,
        after: &[ChangeHash],
    ) -> Result<Option<Exported>> {
        self.fresh(key)?;
        // Our changes not yet on disk are not sent anywhere (`own_flush`).
        self.prune_own_lazy();
        let not_on_disk = self.own_lazy.is_some() && key == DocKey::Machine(self.id());
        if self.unsaved.contains(&key) || self.store.has_failed() || not_on_disk {
            return Ok(None);
        }
        let Some(t) = self.tracked(key) else {
            return Ok(None);
        };
        let heads = t.heads();
        if heads.is_empty() || (!after.is_empty() && heads == after) {
            return Ok(None);
        }
        let (chunks, carried, version) = if after.is_empty() {
            let whole = t.doc.save_with_options(automerge::SaveOptions {
                retain_orphans: false,
                ..Default::default()
            });
            (
                vec![whole],
                t.all_changes(),
                automerge::sync::MessageVersion::V2,
            )
        } else {
            let changes = t.doc.get_changes(after);
            let hashes = changes.iter().map(|c| c.hash()).collect();
            let chunks = changes
                .into_iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect();
            (chunks, hashes, automerge::sync::MessageVersion::V1)
        };
        let message = automerge::sync::Message {
            heads: heads.clone(),
            need: Vec::new(),
            have: Vec::new(),
            changes: chunks.into(),
            flags: None,
            version,
        }
        .encode();
        let (signatures, checkpoint) = self.proofs_to_send(key, &carried, after.is_empty())?;
        Ok(Some(Exported {
            message: SignedMessage {
                message,
                signatures,
                checkpoint,
            }
            .encode(key),
            heads,
        }))
    }

    /// Imports document `key` from an object `writer` left in a bucket: the same
    /// checks as a sync message from a peer (limits, every change signed by its
    /// author, revocations final), with no sync state kept for it.
    pub(crate) fn import_from_bucket(
        &mut self,
        writer: MachineId,
        key: DocKey,
        message: &[u8],
    ) -> std::result::Result<Vec<DocChange>, SyncError> {
        let mut state = automerge::sync::State::new();
        self.receive_message(writer, key, &mut state, message, false)
    }

    /// The buckets the mesh records.
    pub fn buckets(&self) -> Vec<BucketSetting> {
        self.mesh.buckets()
    }

    /// Records a bucket in the mesh (replicated to every member) and accepts it here:
    /// this machine's user added it (`bucket/consent.rs`).
    pub fn add_bucket(&mut self, setting: &BucketSetting, allow_http: bool) -> Result<()> {
        crate::bucket::check_transport(setting, allow_http)?;
        self.fresh(DocKey::Mesh)?;
        let me = self.id();
        self.mesh.add_bucket(setting, me, now_secs());
        self.commit(Commit::docs(&[DocKey::Mesh]))?;
        self.accept_bucket(&setting.url.to_string(), allow_http)
    }

    /// This machine's user accepts the mesh's bucket `url` as it is now: from here on
    /// this machine pushes to and pulls from it with its own credentials.
    pub fn accept_bucket(&mut self, url: &str, allow_http: bool) -> Result<()> {
        let setting = self
            .buckets()
            .into_iter()
            .find(|b| b.url.to_string() == url)
            .ok_or_else(|| {
                BucketError::Invalid(format!(
                    "no bucket {url} in this mesh (see `leanspec-peer bucket list`)"
                ))
            })?;
        crate::bucket::check_transport(&setting, allow_http)?;
        let mut all = self.bucket_states();
        all.entry(url.to_string()).or_default().accepted =
            Some(crate::bucket::Acceptance::of(&setting, now_secs()));
        self.set_bucket_states(&all)
    }

    /// Whether this machine's user accepted `setting` as it is now.
    pub(crate) fn bucket_accepted(&self, setting: &BucketSetting) -> bool {
        self.bucket_states()
            .get(&setting.url.to_string())
            .and_then(|s| s.accepted.as_ref())
            .is_some_and(|a| a.covers(setting))
    }

    /// Removes a bucket from the mesh; what this machine remembers of it goes too.
    pub fn remove_bucket(&mut self, url: &str) -> Result<()> {
        self.fresh(DocKey::Mesh)?;
        if !self.mesh.remove_bucket(url) {
            return Err(BucketError::Invalid(format!(
                "no bucket {url} in this mesh (see `leanspec-peer bucket list`)"
            ))
            .into());
        }
        self.commit(Commit::docs(&[DocKey::Mesh]))?;
        let mut all = self.bucket_states();
        all.remove(url);
        self.set_bucket_states(&all)
    }

    /// What this machine remembers of each bucket (by URL).
    pub fn bucket_states(&self) -> BTreeMap<String, BucketState> {
        self.store
            .meta(MetaKey::Buckets)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub(crate) fn set_bucket_states(&mut self, all: &BTreeMap<String, BucketState>) -> Result<()> {
        let bytes = serde_json::to_vec(all).unwrap_or_default();
        Ok(self.store.set_meta(MetaKey::Buckets, &bytes)?)
    }

    /// The machines every new object is encrypted to: current members, this one too.
    pub(crate) fn bucket_recipients(&self) -> Vec<MachineId> {
        let mut ids: Vec<MachineId> = self
            .mesh
            .members()
            .into_iter()
            .filter(|m| m.revoked_at.is_none())
            .map(|m| m.id)
            .collect();
        if !ids.contains(&self.id()) {
            ids.push(self.id());
        }
        ids.sort();
        ids
    }
}
