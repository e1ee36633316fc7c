//! Mesh membership: adding, renaming and revoking members, adopting an inviter's mesh.

use super::persist::{Commit, borrowed};
use super::{DocKey, Error, Machine, Result, check_label, now_secs};
use crate::authorship::ChangeSignature;
use crate::doc::DocError;
use crate::identity::MachineId;
use crate::mesh::MeshDoc;

impl Machine {
    // ---- membership --------------------------------------------------------------

    /// Adds a machine to the mesh (after it proved an invitation); with
    /// `ephemeral_after` (seconds), one removed after being away that long.
    pub fn add_member(
        &mut self,
        id: MachineId,
        label: &str,
        ephemeral_after: Option<u64>,
    ) -> Result<()> {
        self.fresh(DocKey::Mesh)?;
        let after = ephemeral_after.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
        self.mesh
            .add_member_for(id, label, self.id(), now_secs(), after);
        self.commit(Commit::docs(&[DocKey::Mesh])).map(|_| ())
    }

    /// Removes ephemeral machines that stayed away (`ids`, decided by
    /// [`crate::proto::ephemeral::due`]) and forgets their documents.
    pub fn remove_ephemeral(&mut self, ids: &[MachineId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.fresh(DocKey::Mesh)?;
        let now = now_secs();
        for id in ids {
            self.mesh.remove_ephemeral(*id, self.id(), now);
        }
        self.commit(Commit::docs(&[DocKey::Mesh]))?;
        self.forget_removed()
    }

    /// Drops the stored copies of removed (ephemeral) machines' documents: nobody
    /// shares them any more, and a mesh of CI runners would otherwise keep every
    /// runner's specs forever.
    pub fn forget_removed(&mut self) -> Result<()> {
        let removed: Vec<MachineId> = self
            .mesh
            .members()
            .into_iter()
            .filter(|m| m.removed && self.replicas.contains_key(&m.id))
            .map(|m| m.id)
            .collect();
        for id in removed {
            self.store.remove_doc(id.as_bytes())?;
            self.replicas.remove(&id);
            self.snapshot_bytes.remove(&DocKey::Machine(id));
            tracing::info!(machine = %id.short(), "forgot the document of a removed ephemeral machine");
        }
        Ok(())
    }

    /// Renames a machine (any member may), replicated through the mesh.
    pub fn rename_machine(&mut self, id: MachineId, label: &str) -> Result<()> {
        check_label(label)?;
        if id == self.id() {
            return self.set_label(label);
        }
        self.fresh(DocKey::Mesh)?;
        self.mesh.rename(id, label);
        self.commit(Commit::docs(&[DocKey::Mesh])).map(|_| ())
    }

    /// Revokes a machine, replicated through the mesh.
    pub fn revoke_machine(&mut self, id: MachineId) -> Result<()> {
        self.fresh(DocKey::Mesh)?;
        self.mesh.revoke(id, self.id(), now_secs());
        self.commit(Commit::docs(&[DocKey::Mesh])).map(|_| ())
    }

    /// Replaces this machine's mesh by `mesh_bytes` (a full save received when joining,
    /// from the inviter the ticket names) and keeps the `signatures` of its changes that
    /// verify (so this machine can forward them); the others are dropped. Allowed only
    /// while this machine is alone in its mesh: two meshes are not merged.
    pub fn adopt_mesh(
        &mut self,
        mesh_bytes: &[u8],
        signatures: &[([u8; 32], ChangeSignature)],
    ) -> Result<()> {
        let others = self
            .mesh
            .members()
            .iter()
            .filter(|m| m.id != self.id())
            .count();
        if others > 0 {
            return Err(Error::AlreadyInMesh { members: others });
        }
        let mut mesh = MeshDoc::load(self.id(), [mesh_bytes]).map_err(DocError::from)?;
        mesh.pin(self.mesh.pinned());
        self.mesh = mesh;
        let full = self.mesh.tracked_unchanged().save();
        self.store.replace_chunks(b"mesh", &full, None, &[])?;
        self.snapshot_bytes.insert(DocKey::Mesh, full.len() as u64);
        let mut kept = Vec::new();
        for (hash, s) in signatures {
            let hash = automerge::ChangeHash(*hash);
            let actor = self.mesh.tracked_unchanged().change_actor(&hash);
            let proven = actor.is_some_and(|a| {
                s.signer.actor_bytes().as_slice() == a.to_bytes()
                    && self.mesh.allows_actor(&a)
                    && s.verifies(DocKey::Mesh, &hash.0)
            });
            if proven {
                kept.push((DocKey::Mesh.to_bytes(), hash.0, s.to_stored()));
            }
        }
        let rows = borrowed(&kept);
        self.commit(Commit::default().signatures(&rows))?;
        Ok(())
    }

    /// A full save of the mesh (sent to a joiner).
    pub fn mesh_bytes(&mut self) -> Vec<u8> {
        self.mesh.tracked_unchanged().doc.save()
    }

    /// The stored signatures of the mesh's changes (sent to a joiner with the mesh).
    pub fn mesh_signatures(&mut self) -> Result<Vec<([u8; 32], ChangeSignature)>> {
        let hashes: Vec<[u8; 32]> = self
            .mesh
            .tracked_unchanged()
            .all_changes()
            .iter()
            .map(|h| h.0)
            .collect();
        let stored = self.store.change_signatures(b"mesh", &hashes)?;
        Ok(hashes
            .into_iter()
            .zip(stored)
            .filter_map(|(h, s)| Some((h, ChangeSignature::from_stored(&s?)?)))
            .collect())
    }
}
