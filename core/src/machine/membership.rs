//! Mesh membership: adding, renaming and revoking members, adopting an inviter's mesh.

use super::persist::Commit;
use super::{DocKey, Error, Machine, Result, check_label, now_secs};
use crate::doc::DocError;
use crate::identity::MachineId;
use crate::mesh::MeshDoc;

impl Machine {
    // ---- membership --------------------------------------------------------------

    /// Adds a machine to the mesh (after it proved an invitation).
    pub fn add_member(&mut self, id: MachineId, label: &str) -> Result<()> {
        self.mesh.add_member(id, label, self.id(), now_secs());
        self.commit(Commit::docs(&[DocKey::Mesh])).map(|_| ())
    }

    /// Renames a machine (any member may), replicated through the mesh.
    pub fn rename_machine(&mut self, id: MachineId, label: &str) -> Result<()> {
        check_label(label)?;
        if id == self.id() {
            return self.set_label(label);
        }
        self.mesh.rename(id, label);
        self.commit(Commit::docs(&[DocKey::Mesh])).map(|_| ())
    }

    /// Revokes a machine, replicated through the mesh.
    pub fn revoke_machine(&mut self, id: MachineId) -> Result<()> {
        self.mesh.revoke(id, self.id(), now_secs());
        self.commit(Commit::docs(&[DocKey::Mesh])).map(|_| ())
    }

    /// Replaces this machine's mesh by `mesh_bytes` (a full save received when joining).
    /// Allowed only while this machine is alone in its mesh: two meshes are not merged.
    pub fn adopt_mesh(&mut self, mesh_bytes: &[u8]) -> Result<()> {
        let others = self
            .mesh
            .members()
            .iter()
            .filter(|m| m.id != self.id())
            .count();
        if others > 0 {
            return Err(Error::AlreadyInMesh { members: others });
        }
        let mesh = MeshDoc::load(self.id(), [mesh_bytes]).map_err(DocError::from)?;
        self.mesh = mesh;
        let full = self.mesh.tracked().save();
        self.store.replace_chunks(b"mesh", &full)?;
        self.snapshot_bytes.insert(DocKey::Mesh, full.len() as u64);
        Ok(())
    }

    /// A full save of the mesh (sent to a joiner).
    pub fn mesh_bytes(&mut self) -> Vec<u8> {
        self.mesh.tracked().doc.save()
    }
}
