//! The mesh document: who the members are. Every member writes it (with its own actor),
//! so it is the one document with several writers; entries are per member and each field
//! is last-writer-wins, which is all membership needs.
//!
//! Schema: `members: { <machine id hex>: { label: str, added_by: str, added_at: int,
//! ephemeral_after?: int, revoked_at?: int, revoked_by?: str } }`,
//! `revocations: [ { id: str, by: str, at: int, why?: "ephemeral" } ]`.
//!
//! An ephemeral member (admitted with an ephemeral key: `ephemeral_after` seconds) is
//! *removed* rather than revoked when it has been away that long: a revocation whose
//! every list entry says `why: "ephemeral"`. A removed machine is refused like a revoked
//! one but is not listed, and its removal does not spoil the key it joined with. Like a
//! revocation, the ephemeral mark is final: a received change that takes it away is
//! refused (`Machine::receive_sync`), so a member cannot make itself permanent.
//!
//! Revocation is final: a member is revoked if its record says so in any of its
//! concurrently written versions, or if any entry of the append-only `revocations` list
//! (in any concurrently written version of the list) names it. A record written afresh
//! at `members[id]` at the same time as a revocation therefore cannot undo it; a change
//! that removes a revocation the receiver knew is refused on receipt
//! (`Machine::receive_sync`).

mod buckets;

use crate::identity::MachineId;
use crate::tracked::Tracked;
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    ActorId, AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, ScalarValueRef, Value,
    ValueRef,
};

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
    /// Admitted with an ephemeral key: removed after this many seconds away.
    pub ephemeral_after: Option<i64>,
    /// Revoked only because, ephemeral, it stayed away (see the module doc).
    pub removed: bool,
}

/// The member field of an ephemeral machine: seconds away before it is removed.
const EPHEMERAL_AFTER: &str = "ephemeral_after";
/// `why` of a revocation entry that removes an ephemeral machine.
const WHY_EPHEMERAL: &str = "ephemeral";

/// One entry of the `revocations` list.
struct Revocation {
    id: MachineId,
    at: i64,
    /// The removal of an ephemeral machine that stayed away.
    ephemeral: bool,
}

/// The mesh document.
#[derive(Debug)]
pub struct MeshDoc {
    t: Tracked,
    /// Revocations this machine has seen, kept in its store (never synced): a machine
    /// revoked here stays revoked whatever the document says later.
    pinned: std::collections::BTreeMap<MachineId, i64>,
    /// What the document says (members and revocations, pins left out), read from
    /// Automerge once per change of the document: every `&mut self` method that may
    /// change it empties this. Reading them on each call was 80 % of a 25-machine
    /// mesh's CPU (every frame asks who the members are), and reading them four times
    /// per received mesh message 69 % of a 50-machine mesh's.
    read: std::sync::OnceLock<Read>,
}

/// The mesh as the document alone says it (see [`MeshDoc::read`]).
#[derive(Debug)]
struct Read {
    /// Every member ever added, sorted by id, revocations in the document applied.
    members: Vec<Member>,
    /// Every machine the document revokes, with its earliest revocation.
    revoked: std::collections::BTreeMap<MachineId, i64>,
}

/// The fields of a member's records, read by [`MeshDoc::document_members`]: the winning
/// record's label and adder, and the earliest `revoked_at` and `ephemeral_after` of any
/// record in any of their conflicting values.
#[derive(Default)]
struct RecordFields {
    label: Option<String>,
    added_by: Option<String>,
    added_at: Option<i64>,
    revoked_at: Option<i64>,
    revoked_by: Option<String>,
    ephemeral_after: Option<i64>,
}

impl RecordFields {
    fn read(&mut self, doc: &AutoCommit, record: &ObjId, winner: bool) {
        let earliest = |now: Option<i64>, item: &automerge::iter::MapRangeItem<'_>| {
            let values: Vec<i64> = if item.conflict {
                doc.get_all(record, item.key.as_ref())
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(v, _)| match v {
                        Value::Scalar(s) => match s.as_ref() {
                            ScalarValue::Int(i) => Some(*i),
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect()
            } else {
                int(&item.value).into_iter().collect()
            };
            values.into_iter().chain(now).min()
        };
        for item in doc.map_range(record, ..) {
            match item.key.as_ref() {
                "label" if winner => self.label = string(&item.value),
                "added_by" if winner => self.added_by = string(&item.value),
                "added_at" if winner => self.added_at = int(&item.value),
                "revoked_by" if self.revoked_by.is_none() => self.revoked_by = string(&item.value),
                "revoked_at" => self.revoked_at = earliest(self.revoked_at, &item),
                EPHEMERAL_AFTER => self.ephemeral_after = earliest(self.ephemeral_after, &item),
                _ => {}
            }
        }
    }
}

fn string(v: &ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Scalar(ScalarValueRef::Str(s)) => Some(s.to_string()),
        _ => None,
    }
}

fn int(v: &ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Scalar(ScalarValueRef::Int(i)) => Some(*i),
        _ => None,
    }
}

impl MeshDoc {
    /// A new mesh whose only member is `owner`.
    pub fn new(owner: MachineId, label: &str, now: i64) -> MeshDoc {
        let doc = AutoCommit::new().with_actor(ActorId::from(&owner.actor_bytes()[..]));
        let mut m = MeshDoc {
            t: Tracked::new(doc),
            pinned: Default::default(),
            read: Default::default(),
        };
        // Created once, with the mesh: every member appends to this one list.
        let _ = m.t.doc.put_object(ROOT, "revocations", ObjType::List);
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
        Ok(MeshDoc {
            t,
            pinned: Default::default(),
            read: Default::default(),
        })
    }

    /// An empty mesh (before a join fills it), writing as `owner`.
    pub fn empty(owner: MachineId) -> MeshDoc {
        let mut t = Tracked::empty();
        t.doc.set_actor(ActorId::from(&owner.actor_bytes()[..]));
        MeshDoc {
            t,
            pinned: Default::default(),
            read: Default::default(),
        }
    }

    /// Adds revocations seen before (from this machine's store): they count whatever
    /// the document says.
    pub fn pin(&mut self, revocations: &std::collections::BTreeMap<MachineId, i64>) {
        for (id, at) in revocations {
            let e = self.pinned.entry(*id).or_insert(*at);
            *e = (*e).min(*at);
        }
    }

    /// The revocations pinned so far.
    pub fn pinned(&self) -> &std::collections::BTreeMap<MachineId, i64> {
        &self.pinned
    }

    /// The Automerge state, to change (forgets the members read so far).
    pub(crate) fn tracked(&mut self) -> &mut Tracked {
        self.read.take();
        &mut self.t
    }

    /// The Automerge state for what leaves the content as it is (saving, generating
    /// sync messages, reading heads, a received message that applies no change): the
    /// members read so far stay valid. A caller that changed the content after all
    /// calls [`MeshDoc::forget_read`].
    pub(crate) fn tracked_unchanged(&mut self) -> &mut Tracked {
        &mut self.t
    }

    /// The document changed through [`MeshDoc::tracked_unchanged`] (a received message
    /// applied changes): what was read of it is read again when next asked.
    pub(crate) fn forget_read(&mut self) {
        self.read.take();
    }

    fn members_obj(&self) -> Option<ObjId> {
        match self.t.doc.get(ROOT, "members") {
            Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
            _ => None,
        }
    }

    fn member_obj(&mut self, id: MachineId) -> Option<ObjId> {
        self.read.take();
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

    /// Every member ever added (revoked ones included), sorted by id; a pinned
    /// revocation counts whatever the document says.
    pub fn members(&self) -> Vec<Member> {
        self.read()
            .members
            .iter()
            .map(|m| self.with_pin(m.clone()))
            .collect()
    }

    /// The ids of the members not revoked (pins included), without copying their
    /// records: sessions ask for them on every frame.
    pub fn current_member_ids(&self) -> impl Iterator<Item = MachineId> + '_ {
        self.read()
            .members
            .iter()
            .filter(|m| m.revoked_at.is_none() && !self.pinned.contains_key(&m.id))
            .map(|m| m.id)
    }

    /// How many members were ever added (revoked ones included).
    pub fn member_count(&self) -> usize {
        self.read().members.len()
    }

    /// `m` with this machine's pinned revocation of it, if there is one.
    fn with_pin(&self, mut m: Member) -> Member {
        if let Some(at) = self.pinned.get(&m.id) {
            m.revoked_at = Some(m.revoked_at.map_or(*at, |d| d.min(*at)));
            m.revoked_by.get_or_insert_with(String::new);
        }
        m
    }

    fn read(&self) -> &Read {
        self.read.get_or_init(|| {
            #[cfg(test)]
            READS.with(|r| r.set(r.get() + 1));
            let listed = self.listed_revocations();
            let members = self.document_members(&listed);
            let revoked = members
                .iter()
                .filter_map(|m| Some((m.id, m.revoked_at?)))
                .chain(listed.iter().map(|r| (r.id, r.at)))
                .fold(std::collections::BTreeMap::new(), |mut all, (id, at)| {
                    let e = all.entry(id).or_insert(at);
                    *e = (*e).min(at);
                    all
                });
            Read { members, revoked }
        })
    }

    /// The members as the document alone says. Each record is read in one pass over
    /// its fields (`map_range`): a `get` per field decoded the record's columns again
    /// for each one, and this runs after every mesh change (50 members: most of a
    /// starting mesh's CPU).
    fn document_members(&self, listed: &[Revocation]) -> Vec<Member> {
        let Some(members) = self.members_obj() else {
            return Vec::new();
        };
        let doc = &self.t.doc;
        let mut out = Vec::new();
        for item in doc.map_range(&members, ..) {
            // Canonical ids only: a shadow key (`" <id>"`, `"<ID>"`) is not a member.
            let Ok(id) = item.key.parse::<MachineId>() else {
                continue;
            };
            if !matches!(item.value, ValueRef::Object(ObjType::Map)) {
                continue;
            }
            // A revocation anywhere counts: in any of the records concurrently written
            // at `members[id]` (a fresh record written at the same time as the
            // revocation would otherwise win the conflict and drop it), and in any
            // conflicting value of `revoked_at`. The winning record comes first.
            let winner = item.id();
            let mut records = vec![winner.clone()];
            if item.conflict {
                records.extend(
                    doc.get_all(&members, item.key.as_ref())
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|(v, o)| matches!(v, Value::Object(ObjType::Map)) && *o != winner)
                        .map(|(_, o)| o),
                );
            }
            let mut fields = RecordFields::default();
            for (i, record) in records.iter().enumerate() {
                fields.read(doc, record, i == 0);
            }
            let entries: Vec<&Revocation> = listed.iter().filter(|r| r.id == id).collect();
            let revoked_at = fields
                .revoked_at
                .into_iter()
                .chain(entries.iter().map(|r| r.at))
                .min();
            let ephemeral_after = fields.ephemeral_after;
            let removed = revoked_at.is_some()
                && ephemeral_after.is_some()
                && !entries.is_empty()
                && entries.iter().all(|r| r.ephemeral);
            out.push(Member {
                id,
                label: fields
                    .label
                    .map(|l| clean_label(&l))
                    .filter(|l| !l.is_empty())
                    .unwrap_or_else(|| id.short()),
                added_by: fields.added_by.unwrap_or_default(),
                added_at: fields.added_at.unwrap_or(0),
                revoked_at,
                revoked_by: revoked_at.map(|_| fields.revoked_by.unwrap_or_default()),
                ephemeral_after,
                removed,
            });
        }
        out
    }

    /// The member record of `id`, if it was ever added.
    pub fn member(&self, id: MachineId) -> Option<Member> {
        let m = self.read().members.iter().find(|m| m.id == id)?;
        Some(self.with_pin(m.clone()))
    }

    /// True when `id` is a member that is not revoked.
    pub fn is_current_member(&self, id: MachineId) -> bool {
        !self.pinned.contains_key(&id)
            && self
                .read()
                .members
                .iter()
                .any(|m| m.id == id && m.revoked_at.is_none())
    }

    /// Adds (or re-labels) a member.
    pub fn add_member(&mut self, id: MachineId, label: &str, by: MachineId, now: i64) {
        self.add_member_for(id, label, by, now, None);
    }

    /// Adds a member; with `ephemeral_after` (seconds), one removed after being away
    /// that long (see the module doc).
    pub fn add_member_for(
        &mut self,
        id: MachineId,
        label: &str,
        by: MachineId,
        now: i64,
        ephemeral_after: Option<i64>,
    ) {
        // A joiner that asks again (its answer was lost: a busy inviter, a timeout) is
        // in already: writing its record again (a new `added_at`) would be one more mesh
        // change for every member to receive and relay (50 machines: each retry of each
        // late joiner).
        let unchanged = self.member(id).is_some_and(|m| {
            m.revoked_at.is_none()
                && m.ephemeral_after == ephemeral_after
                && m.label == clean_label(label)
        });
        if unchanged {
            return;
        }
        if let Some(obj) = self.member_obj(id) {
            let doc = &mut self.t.doc;
            let _ = doc.put(&obj, "label", label);
            let _ = doc.put(&obj, "added_by", by.to_string());
            let _ = doc.put(&obj, "added_at", now);
            if let Some(after) = ephemeral_after {
                let _ = doc.put(&obj, EPHEMERAL_AFTER, after);
            }
        }
    }

    /// The ephemeral marks the document holds (`id` → seconds): what a received change
    /// must not take away.
    pub(crate) fn ephemeral_in_document(&self) -> std::collections::BTreeMap<MachineId, i64> {
        self.read()
            .members
            .iter()
            .filter_map(|m| Some((m.id, m.ephemeral_after?)))
            .collect()
    }

    /// Sets a member's label.
    pub fn rename(&mut self, id: MachineId, label: &str) {
        if let Some(obj) = self.member_obj(id) {
            let _ = self.t.doc.put(&obj, "label", label);
        }
    }

    /// Revokes a member: in its record and, append-only, in `revocations`.
    pub fn revoke(&mut self, id: MachineId, by: MachineId, now: i64) {
        self.revoke_why(id, by, now, false);
    }

    /// Removes an ephemeral member that stayed away (a revocation marked as such).
    pub fn remove_ephemeral(&mut self, id: MachineId, by: MachineId, now: i64) {
        self.revoke_why(id, by, now, true);
    }

    fn revoke_why(&mut self, id: MachineId, by: MachineId, now: i64, ephemeral: bool) {
        self.read.take();
        if let Some(obj) = self.member_obj(id) {
            let doc = &mut self.t.doc;
            let _ = doc.put(&obj, "revoked_at", now);
            let _ = doc.put(&obj, "revoked_by", by.to_string());
        }
        let list = match self.t.doc.get(ROOT, "revocations") {
            Ok(Some((Value::Object(ObjType::List), list))) => Some(list),
            _ => self
                .t
                .doc
                .put_object(ROOT, "revocations", ObjType::List)
                .ok(),
        };
        if let Some(list) = list {
            let doc = &mut self.t.doc;
            let at = doc.length(&list);
            if let Ok(entry) = doc.insert_object(&list, at, ObjType::Map) {
                let _ = doc.put(&entry, "id", id.to_string());
                let _ = doc.put(&entry, "by", by.to_string());
                let _ = doc.put(&entry, "at", now);
                if ephemeral {
                    let _ = doc.put(&entry, "why", WHY_EPHEMERAL);
                }
            }
        }
    }

    /// The machines revoked, each with its earliest revocation time, from every record,
    /// every revocation entry (see the module doc) and the pinned ones.
    pub fn revoked(&self) -> std::collections::BTreeMap<MachineId, i64> {
        let mut all = self.revoked_in_document();
        for (id, at) in &self.pinned {
            let e = all.entry(*id).or_insert(*at);
            *e = (*e).min(*at);
        }
        all
    }

    /// The revocations the document itself holds (pinned ones left out): what a
    /// received change must not take away.
    pub(crate) fn revoked_in_document(&self) -> std::collections::BTreeMap<MachineId, i64> {
        self.read().revoked.clone()
    }

    /// The changes that revoked `id` (its record's `revoked_at` values and its entries
    /// in `revocations`), for the rule that a revoked machine's later changes are
    /// refused (`Machine::receive_sync`).
    pub(crate) fn revocation_changes(&self, id: MachineId) -> Vec<automerge::ChangeHash> {
        let doc = &self.t.doc;
        let key = id.to_string();
        let mut out = Vec::new();
        if let Some(members) = self.members_obj() {
            for (v, obj) in doc.get_all(&members, key.as_str()).unwrap_or_default() {
                if !matches!(v, Value::Object(ObjType::Map)) {
                    continue;
                }
                for (_, op) in doc.get_all(&obj, "revoked_at").unwrap_or_default() {
                    out.extend(doc.hash_for_opid(&op));
                }
            }
        }
        for (v, list) in doc.get_all(ROOT, "revocations").unwrap_or_default() {
            if !matches!(v, Value::Object(ObjType::List)) {
                continue;
            }
            for i in 0..doc.length(&list) {
                let Ok(Some((Value::Object(ObjType::Map), entry))) = doc.get(&list, i) else {
                    continue;
                };
                let names = matches!(doc.get(&entry, "id"), Ok(Some((Value::Scalar(s), _))) if s.as_str() == Some(key.as_str()));
                if names {
                    out.extend(doc.hash_for_opid(&entry));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Every entry of every concurrently written `revocations` list.
    fn listed_revocations(&self) -> Vec<Revocation> {
        let doc = &self.t.doc;
        let lists = doc.get_all(ROOT, "revocations").unwrap_or_default();
        let mut out = Vec::new();
        for (v, list) in lists {
            if !matches!(v, Value::Object(ObjType::List)) {
                continue;
            }
            for i in 0..doc.length(&list) {
                let Ok(Some((Value::Object(ObjType::Map), entry))) = doc.get(&list, i) else {
                    continue;
                };
                let id = match doc.get(&entry, "id") {
                    Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                        ScalarValue::Str(s) => s.parse::<MachineId>().ok(),
                        _ => None,
                    },
                    _ => None,
                };
                let at = match doc.get(&entry, "at") {
                    Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                        ScalarValue::Int(i) => Some(*i),
                        _ => None,
                    },
                    _ => None,
                };
                let ephemeral = matches!(doc.get(&entry, "why"), Ok(Some((Value::Scalar(s), _))) if s.as_str() == Some(WHY_EPHEMERAL));
                if let (Some(id), Some(at)) = (id, at) {
                    out.push(Revocation { id, at, ephemeral });
                }
            }
        }
        out
    }

    /// Commits pending writes.
    ///
    /// What was read of the mesh stays: every method that writes it forgot that when
    /// it wrote, and reads before the commit see the pending writes. (This runs on
    /// every store commit, most with nothing pending: forgetting here had the members
    /// read again after each received message.)
    pub fn commit(&mut self, now: i64) -> Option<automerge::ChangeHash> {
        // Nothing pending: committing would open a transaction only to drop it (a
        // cost on every received message, whose commit covers both our documents).
        if self.t.doc.pending_ops() == 0 {
            return None;
        }
        self.t
            .doc
            .commit_with(CommitOptions::default().with_time(now))
    }

    /// The actor ids allowed to write the mesh: every machine ever added.
    pub fn allows_actor(&self, actor: &ActorId) -> bool {
        self.read()
            .members
            .iter()
            .any(|m| m.id.actor_bytes().as_slice() == actor.to_bytes())
    }
}

#[cfg(test)]
thread_local! {
    /// How many times this thread read a mesh from its document (tests of the cache).
    static READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many times this thread read a mesh from its document.
#[cfg(test)]
pub(crate) fn reads() -> usize {
    READS.with(std::cell::Cell::get)
}

/// Longest label shown (longer ones are cut).
pub(crate) const MAX_LABEL_CHARS: usize = 64;

/// A label as received from another member, made safe to show and to select by: control
/// and bidirectional-override characters removed (they could rewrite a terminal line or
/// disguise a label), at most [`MAX_LABEL_CHARS`] characters, trimmed.
pub(crate) fn clean_label(label: &str) -> String {
    let bidi = |c: char| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}');
    label
        .chars()
        .filter(|c| !c.is_control() && !bidi(*c))
        .take(MAX_LABEL_CHARS)
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn id() -> MachineId {
        Identity::generate().expect("key").id()
    }

    #[test]
    fn a_pinned_revocation_counts_whatever_the_document_says() {
        let (owner, other) = (id(), id());
        let mut mesh = MeshDoc::new(owner, "o", 1);
        mesh.add_member(other, "x", owner, 1);
        assert!(mesh.is_current_member(other));
        mesh.pin(&[(other, 5)].into_iter().collect());
        assert_eq!(mesh.member(other).and_then(|m| m.revoked_at), Some(5));
        assert_eq!(mesh.revoked().get(&other), Some(&5));
    }

    /// Issue 11: two members write concurrently; the mesh they merge to keeps what each
    /// wrote.
    fn merged(a: &mut MeshDoc, b: &mut MeshDoc) {
        let mut b_doc = b.t.doc.fork();
        a.tracked().doc.merge(&mut b_doc).expect("merge");
    }

    #[test]
    fn a_concurrent_fresh_record_does_not_undo_a_revocation() {
        let (owner, other, r) = (id(), id(), id());
        let mut a = MeshDoc::new(owner, "owner", 1);
        a.add_member(other, "other", owner, 1);
        a.add_member(r, "r", owner, 1);
        a.commit(1);
        let mut b = MeshDoc::load(other, [a.t.save().as_slice()]).expect("load");
        // A revokes R while B (or R through B) writes a fresh record at members[R].
        a.revoke(r, owner, 2);
        a.commit(2);
        let members = b.members_obj().expect("members");
        let fresh =
            b.t.doc
                .put_object(&members, r.to_string().as_str(), ObjType::Map)
                .expect("fresh record");
        b.t.doc.put(&fresh, "label", "r-again").expect("label");
        b.commit(2);
        merged(&mut a, &mut b);
        assert!(
            a.member(r).is_some_and(|m| m.revoked_at.is_some()),
            "still revoked"
        );
        assert!(!a.is_current_member(r));
        assert_eq!(a.revoked().get(&r), Some(&2));
        merged(&mut b, &mut a);
        assert!(!b.is_current_member(r), "on both sides");
    }

    #[test]
    fn the_mesh_is_read_again_only_after_it_changed() {
        let (owner, other) = (id(), id());
        let mut mesh = MeshDoc::new(owner, "o", 1);
        assert_eq!(mesh.member_count(), 1);
        let before = reads();
        // Nothing pending: a commit keeps what was read (every store commit makes one).
        mesh.commit(2);
        assert!(mesh.is_current_member(owner));
        assert_eq!(reads(), before, "an empty commit forgot the read");
        // A write is seen at once, before its commit, and read once.
        mesh.add_member(other, "x", owner, 3);
        assert!(mesh.is_current_member(other));
        mesh.commit(3);
        assert!(mesh.is_current_member(other));
        assert_eq!(reads(), before + 1);
        mesh.revoke(other, owner, 4);
        assert!(!mesh.is_current_member(other));
        assert_eq!(reads(), before + 2);
    }

    /// Issue 15: a joiner admitted again later (its answer was lost) changes nothing.
    #[test]
    fn adding_a_member_again_writes_nothing_unless_its_record_changes() {
        let (owner, other) = (id(), id());
        let mut mesh = MeshDoc::new(owner, "o", 1);
        mesh.add_member(other, "x", owner, 2);
        mesh.commit(2);
        let heads = mesh.tracked_unchanged().heads();
        mesh.add_member(other, "x", owner, 30);
        assert_eq!(mesh.commit(30), None, "the same record was written again");
        assert_eq!(mesh.tracked_unchanged().heads(), heads);
        mesh.add_member(other, "y", owner, 40);
        assert!(mesh.commit(40).is_some());
        assert_eq!(mesh.member(other).map(|m| m.label), Some("y".into()));
    }

    #[test]
    fn labels_from_other_members_are_cleaned() {
        let (owner, r) = (id(), id());
        let mut m = MeshDoc::new(owner, "owner", 1);
        m.add_member(r, "\u{1b}[2Kdesk\u{202e}top\n", owner, 1);
        m.commit(1);
        let label = m.member(r).expect("member").label;
        assert_eq!(label, "[2Kdesktop");
        m.rename(r, "\u{7}\u{202e}");
        m.commit(2);
        assert_eq!(
            m.member(r).expect("member").label,
            r.short(),
            "empty: the short id"
        );
    }

    #[test]
    fn shadow_keys_are_not_members() {
        let (owner, r) = (id(), id());
        let mut m = MeshDoc::new(owner, "owner", 1);
        m.add_member(r, "r", owner, 1);
        m.revoke(r, owner, 2);
        let members = m.members_obj().expect("members");
        for shadow in [
            format!(" {r}"),
            r.to_string().to_uppercase(),
            format!("{r}\n"),
        ] {
            let obj =
                m.t.doc
                    .put_object(&members, shadow.as_str(), ObjType::Map)
                    .expect("shadow");
            m.t.doc.put(&obj, "label", "shadow").expect("label");
        }
        m.commit(3);
        let listed: Vec<_> = m.members().into_iter().filter(|x| x.id == r).collect();
        assert_eq!(listed.len(), 1, "one record for R: {listed:?}");
        assert!(listed[0].revoked_at.is_some());
        assert!(!m.is_current_member(r));
        assert!(format!(" {r}").parse::<MachineId>().is_err());
        assert!(r.to_string().to_uppercase().parse::<MachineId>().is_err());
    }
}
