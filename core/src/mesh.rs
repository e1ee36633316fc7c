//! The mesh document: who the members are. Every member writes it (with its own actor),
//! so it is the one document with several writers; entries are per member and each field
//! is last-writer-wins, which is all membership needs.
//!
//! Schema: `members: { <machine id hex>: { label: str, added_by: str, added_at: int,
//! revoked_at?: int, revoked_by?: str } }`.

use crate::identity::MachineId;
use crate::tracked::Tracked;
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};

/// One member of the mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Machine id.
    pub id: MachineId,
    /// Label shown to everyone (set at join, changed by `rename`).
    pub label: String,
    /// Who added it (hex id; itself for the founder).
    pub added_by: String,
    /// When (unix seconds).
    pub added_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
}

/// The mesh document.
#[derive(Debug)]
pub struct MeshDoc {
    t: Tracked,
}

impl MeshDoc {
    /// A new mesh whose only member is `owner`.
    pub fn new(owner: MachineId, label: &str, now: i64) -> MeshDoc {
        let doc = AutoCommit::new().with_actor(ActorId::from(&owner.actor_bytes()[..]));
        let mut m = MeshDoc {
            t: Tracked::new(doc),
        };
        m.add_member(owner, label, owner, now);
        m.commit(now);
        m
    }

    /// Loads a mesh from stored chunks; `owner` is this machine (its actor for writes).
    pub fn load<'a>(
        owner: MachineId,
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<MeshDoc, automerge::AutomergeError> {
        let mut t = Tracked::load(chunks)?;
        t.doc.set_actor(ActorId::from(&owner.actor_bytes()[..]));
        Ok(MeshDoc { t })
    }

    /// An empty mesh (before a join fills it), writing as `owner`.
    pub fn empty(owner: MachineId) -> MeshDoc {
        let mut t = Tracked::empty();
        t.doc.set_actor(ActorId::from(&owner.actor_bytes()[..]));
        MeshDoc { t }
    }

    pub(crate) fn tracked(&mut self) -> &mut Tracked {
        &mut self.t
    }

    fn members_obj(&self) -> Option<ObjId> {
        match self.t.doc.get(ROOT, "members") {
            Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
            _ => None,
        }
    }

    fn member_obj(&mut self, id: MachineId) -> Option<ObjId> {
        let members = match self.members_obj() {
            Some(m) => m,
            None => self.t.doc.put_object(ROOT, "members", ObjType::Map).ok()?,
        };
        let key = id.to_string();
        match self.t.doc.get(&members, key.as_str()) {
            Ok(Some((Value::Object(ObjType::Map), obj))) => Some(obj),
            _ => self
                .t
                .doc
                .put_object(&members, key.as_str(), ObjType::Map)
                .ok(),
        }
    }

    /// Every member ever added (revoked ones included), sorted by id.
    pub fn members(&self) -> Vec<Member> {
        let Some(members) = self.members_obj() else {
            return Vec::new();
        };
        let doc = &self.t.doc;
        let str_of = |obj: &ObjId, k: &str| match doc.get(obj, k) {
            Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                ScalarValue::Str(s) => Some(s.to_string()),
                _ => None,
            },
            _ => None,
        };
        let int_of = |obj: &ObjId, k: &str| match doc.get(obj, k) {
            Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                ScalarValue::Int(i) => Some(*i),
                _ => None,
            },
            _ => None,
        };
        doc.keys(&members)
            .filter_map(|key| {
                let id: MachineId = key.parse().ok()?;
                let obj = match doc.get(&members, key.as_str()) {
                    Ok(Some((Value::Object(ObjType::Map), o))) => o,
                    _ => return None,
                };
                Some(Member {
                    id,
                    label: str_of(&obj, "label").unwrap_or_else(|| id.short()),
                    added_by: str_of(&obj, "added_by").unwrap_or_default(),
                    added_at: int_of(&obj, "added_at").unwrap_or(0),
                    revoked_at: int_of(&obj, "revoked_at"),
                    revoked_by: str_of(&obj, "revoked_by"),
                })
            })
            .collect()
    }

    /// The member record of `id`, if it was ever added.
    pub fn member(&self, id: MachineId) -> Option<Member> {
        self.members().into_iter().find(|m| m.id == id)
    }

    /// True when `id` is a member that is not revoked.
    pub fn is_current_member(&self, id: MachineId) -> bool {
        self.member(id).is_some_and(|m| m.revoked_at.is_none())
    }

    /// Adds (or re-labels) a member.
    pub fn add_member(&mut self, id: MachineId, label: &str, by: MachineId, now: i64) {
        if let Some(obj) = self.member_obj(id) {
            let doc = &mut self.t.doc;
            let _ = doc.put(&obj, "label", label);
            let _ = doc.put(&obj, "added_by", by.to_string());
            let _ = doc.put(&obj, "added_at", now);
        }
    }

    /// Sets a member's label.
    pub fn rename(&mut self, id: MachineId, label: &str) {
        if let Some(obj) = self.member_obj(id) {
            let _ = self.t.doc.put(&obj, "label", label);
        }
    }

    /// Revokes a member.
    pub fn revoke(&mut self, id: MachineId, by: MachineId, now: i64) {
        if let Some(obj) = self.member_obj(id) {
            let doc = &mut self.t.doc;
            let _ = doc.put(&obj, "revoked_at", now);
            let _ = doc.put(&obj, "revoked_by", by.to_string());
        }
    }

    /// Commits pending writes.
    pub fn commit(&mut self, now: i64) -> Option<automerge::ChangeHash> {
        self.t
            .doc
            .commit_with(CommitOptions::default().with_time(now))
    }

    /// The actor ids allowed to write the mesh: every machine ever added.
    pub fn allows_actor(&self, actor: &ActorId) -> bool {
        self.members()
            .iter()
            .any(|m| m.id.actor_bytes().as_slice() == actor.to_bytes())
    }
}
