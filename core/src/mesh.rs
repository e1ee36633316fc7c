//! The mesh document: who the members are. Every member writes it (with its own actor),
//! so it is the one document with several writers; entries are per member and each field
//! is last-writer-wins, which is all membership needs.
//!
//! Schema: `members: { <machine id hex>: { label: str, added_by: str, added_at: int,
//! ephemeral_after?: int, revoked_at?: int, revoked_by?: str } }`,
//! `revocations: [ { id: str, by: str, at: int, why?: "ephemeral" } ]`.
//!
//! Who is a member, who was revoked and who admitted whom are not read from this
//! state, which any member can overwrite: they are facts of the signed history
//! ([`facts`], issue 38). The state gives only what is not a security fact: labels and
//! buckets.
//!
//! An ephemeral member (admitted with an ephemeral key: `ephemeral_after` seconds) is
//! *removed* rather than revoked when it has been away that long: a revocation whose
//! every statement says `why: "ephemeral"`. A removed machine is refused like a revoked
//! one but is not listed, and its removal does not spoil the key it joined with. Like a
//! revocation, the ephemeral mark is final: facts only grow, and a member's statements
//! about its own record are not facts, so a member cannot make itself permanent.

mod buckets;
mod facts;
#[cfg(test)]
mod hostile;

use crate::identity::MachineId;
use crate::tracked::Tracked;
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    ActorId, AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValueRef, Value, ValueRef,
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

/// The mesh document.
#[derive(Debug)]
pub struct MeshDoc {
    t: Tracked,
    /// Revocations this machine has seen, kept in its store (never synced): a machine
    /// revoked here stays revoked whatever the document says later.
    pinned: std::collections::BTreeMap<MachineId, i64>,
    /// Membership as the signed history states it, read incrementally: every method
    /// that changes the document brings it up to date (invariant: `facts` has read
    /// every committed change of `t` whenever `&self` methods run).
    facts: facts::Facts,
    /// The members and revocations, with labels from the current state, built from
    /// `facts` once per change of the document: every `&mut self` method that may
    /// change it empties this. Reading them on each call was 80 % of a 25-machine
    /// mesh's CPU (every frame asks who the members are).
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

fn string(v: &ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Scalar(ScalarValueRef::Str(s)) => Some(s.to_string()),
        _ => None,
    }
}

impl MeshDoc {
    fn with(t: Tracked) -> MeshDoc {
        let mut m = MeshDoc {
            t,
            pinned: Default::default(),
            facts: Default::default(),
            read: Default::default(),
        };
        m.facts.update(&mut m.t.doc);
        m
    }

    /// A new mesh whose only member is `owner`.
    pub fn new(owner: MachineId, label: &str, now: i64) -> MeshDoc {
        let doc = AutoCommit::new().with_actor(ActorId::from(&owner.actor_bytes()[..]));
        let mut m = MeshDoc::with(Tracked::new(doc));
        // Created once, with the mesh: every member appends to this one list. The same
        // change adds the founder (its genesis: the one self-add that counts).
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
        Ok(MeshDoc::with(t))
    }

    /// An empty mesh (before a join fills it), writing as `owner`.
    pub fn empty(owner: MachineId) -> MeshDoc {
        let mut t = Tracked::empty();
        t.doc.set_actor(ActorId::from(&owner.actor_bytes()[..]));
        MeshDoc::with(t)
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

    /// The Automerge state for what leaves the content as it is (saving, generating
    /// sync messages, reading heads, a received message that applies no change): the
    /// members read so far stay valid. A caller that changed the content after all
    /// calls [`MeshDoc::forget_read`].
    pub(crate) fn tracked_unchanged(&mut self) -> &mut Tracked {
        &mut self.t
    }

    /// The document changed through [`MeshDoc::tracked_unchanged`] (a received message
    /// applied changes): the new changes are read for membership, and what was read of
    /// the state is read again when next asked.
    pub(crate) fn forget_read(&mut self) {
        self.read.take();
        self.facts.update(&mut self.t.doc);
    }

    /// Whether received change `hash` was written by a machine revoked in its own
    /// history (it states nothing; the receiver refuses it: [`facts`] invariant 1).
    pub(crate) fn is_late(&self, hash: &automerge::ChangeHash) -> bool {
        self.facts.is_late(hash)
    }

    /// The changes among `added` (just received) that must be refused: those written
    /// by a machine revoked in their own history, and every one that descends from
    /// one of them (it could not apply without it).
    pub(crate) fn late_among(
        &mut self,
        added: &[automerge::ChangeHash],
    ) -> std::collections::HashSet<automerge::ChangeHash> {
        let mut late: std::collections::HashSet<automerge::ChangeHash> =
            added.iter().filter(|h| self.is_late(h)).copied().collect();
        if late.is_empty() {
            return late;
        }
        let doc = &mut self.t.doc;
        let deps: Vec<Vec<automerge::ChangeHash>> = added
            .iter()
            .map(|h| {
                doc.get_change_meta_by_hash(h)
                    .map(|m| m.deps.to_vec())
                    .unwrap_or_default()
            })
            .collect();
        // Descendants: at most one pass per received change.
        for _ in 0..added.len() {
            let before = late.len();
            for (h, d) in added.iter().zip(&deps) {
                if d.iter().any(|d| late.contains(d)) {
                    late.insert(*h);
                }
            }
            if late.len() == before {
                break;
            }
        }
        late
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
            let members = self.fact_members();
            // Every counted revocation, of members and of machines not (yet) added:
            // one added later is revoked all the same.
            let revoked = self
                .facts
                .revocations
                .iter()
                .filter_map(|(id, r)| Some((*id, r.iter().map(|r| r.at).min()?)))
                .collect();
            Read { members, revoked }
        })
    }

    /// The labels the current state gives (one pass over `members`; the winning record
    /// of each key). Labels are not facts: any member may rename any machine.
    fn labels(&self) -> std::collections::BTreeMap<MachineId, String> {
        let mut out = std::collections::BTreeMap::new();
        let Some(members) = self.members_obj() else {
            return out;
        };
        let doc = &self.t.doc;
        for item in doc.map_range(&members, ..) {
            let Ok(id) = item.key.parse::<MachineId>() else {
                continue;
            };
            if !matches!(item.value, ValueRef::Object(ObjType::Map)) {
                continue;
            }
            let record = item.id();
            if let Some(label) = doc
                .map_range(&record, ..)
                .find(|f| f.key.as_ref() == "label")
                .and_then(|f| string(&f.value))
            {
                out.insert(id, label);
            }
        }
        out
    }

    /// The members as the signed history states them ([`facts`]), labelled from the
    /// state. `added_by`/`added_at` come from the earliest counted add (by its
    /// `added_at`, then its change hash: the same on every machine that holds it).
    fn fact_members(&self) -> Vec<Member> {
        let labels = self.labels();
        let f = &self.facts;
        f.adds
            .iter()
            .filter_map(|(id, adds)| {
                let first = adds.iter().min_by_key(|a| (a.at, a.change))?;
                let revocations = f.revocations.get(id).map(Vec::as_slice).unwrap_or(&[]);
                let earliest = revocations.iter().min_by_key(|r| (r.at, r.change));
                let ephemeral_after = f.ephemeral.get(id).copied();
                let removed = earliest.is_some()
                    && ephemeral_after.is_some()
                    && revocations.iter().all(|r| r.ephemeral);
                Some(Member {
                    id: *id,
                    label: labels
                        .get(id)
                        .map(|l| clean_label(l))
                        .filter(|l| !l.is_empty())
                        .unwrap_or_else(|| id.short()),
                    added_by: first.by.to_string(),
                    added_at: first.at,
                    revoked_at: earliest.map(|r| r.at),
                    revoked_by: earliest.map(|r| r.by.to_string()),
                    ephemeral_after,
                    removed,
                })
            })
            .collect()
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
    /// that long (see the module doc). Committed at once (a statement is a fact only
    /// once committed: [`facts`]).
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
        self.commit(now);
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
        self.commit(now);
    }

    /// The machines revoked, each with its earliest revocation time, from the facts of
    /// the history (see the module doc) and the pinned ones.
    pub fn revoked(&self) -> std::collections::BTreeMap<MachineId, i64> {
        let mut all = self.read().revoked.clone();
        for (id, at) in &self.pinned {
            let e = all.entry(*id).or_insert(*at);
            *e = (*e).min(*at);
        }
        all
    }

    /// Commits pending writes and reads them for membership.
    ///
    /// What was read of the mesh stays when nothing was pending: every method that
    /// writes it forgot that when it wrote. (This runs on every store commit, most with
    /// nothing pending: forgetting here had the members read again after each received
    /// message.)
    pub fn commit(&mut self, now: i64) -> Option<automerge::ChangeHash> {
        // Nothing pending: committing would open a transaction only to drop it (a
        // cost on every received message, whose commit covers both our documents).
        if self.t.doc.pending_ops() == 0 {
            return None;
        }
        let hash = self
            .t
            .doc
            .commit_with(CommitOptions::default().with_time(now));
        self.read.take();
        self.facts.update(&mut self.t.doc);
        hash
    }

    /// The actor ids allowed to write the mesh: every machine a counted statement ever
    /// added (whether a change of it states anything is decided by [`facts`]).
    pub fn allows_actor(&self, actor: &ActorId) -> bool {
        self.facts.ever_added(actor.to_bytes())
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
        a.tracked_unchanged().doc.merge(&mut b_doc).expect("merge");
        a.forget_read();
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
        assert_ne!(mesh.tracked_unchanged().heads(), heads, "committed at once");
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

    /// A copy of `m` writing as `as_id` (another member's replica).
    fn replica(m: &mut MeshDoc, as_id: MachineId) -> MeshDoc {
        MeshDoc::load(as_id, [m.t.save().as_slice()]).expect("load")
    }

    /// Issue 38: X, revoked by A, learns of it and writes U: a fresh `members` map and
    /// a fresh `revocations` list (Automerge lets new objects win without a conflict).
    /// P, away during the revocation, gets R and U together: X stays revoked, U states
    /// nothing and is listed late, and P agrees with A on every member.
    #[test]
    fn a_revoked_machine_cannot_replace_the_objects_that_revoke_it() {
        let (a_id, p_id, x_id, y_id) = (id(), id(), id(), id());
        let mut a = MeshDoc::new(a_id, "a", 1);
        a.add_member(p_id, "p", a_id, 1);
        a.add_member(x_id, "x", a_id, 1);
        a.add_member(y_id, "y", a_id, 1);
        a.revoke(y_id, a_id, 2);
        let mut p = replica(&mut a, p_id);
        a.revoke(x_id, a_id, 3);
        let mut x = replica(&mut a, x_id);
        let members =
            x.t.doc
                .put_object(ROOT, "members", ObjType::Map)
                .expect("map");
        for (m, label) in [(a_id, "a"), (p_id, "p"), (x_id, "x"), (y_id, "y")] {
            let rec =
                x.t.doc
                    .put_object(&members, m.to_string().as_str(), ObjType::Map)
                    .expect("record");
            x.t.doc.put(&rec, "label", label).expect("label");
            x.t.doc.put(&rec, "added_by", a_id.to_string()).expect("by");
            x.t.doc.put(&rec, "added_at", 1).expect("at");
        }
        x.t.doc
            .put_object(ROOT, "revocations", ObjType::List)
            .expect("list");
        let u = x.commit(4).expect("U");
        merged(&mut p, &mut x);
        assert!(p.is_late(&u), "U descends from X's revocation");
        assert!(!p.is_current_member(x_id), "X stays revoked on P");
        assert!(
            !p.is_current_member(y_id),
            "and so does every other revocation"
        );
        assert_eq!(
            p.revoked().keys().collect::<Vec<_>>(),
            a.revoked().keys().collect::<Vec<_>>()
        );
        let listed = |m: &MeshDoc| {
            m.members()
                .into_iter()
                .map(|m| (m.id, m.revoked_at.is_some(), m.added_by))
                .collect::<Vec<_>>()
        };
        assert_eq!(listed(&p), listed(&a));
        // The state says otherwise: only the facts decide.
        let state = p.members_obj().expect("members");
        assert!(
            p.t.doc
                .get(&state, x_id.to_string().as_str())
                .expect("get")
                .is_some()
        );
    }

    /// Issue 38: what a member writes into its own record is no fact: `added_by`,
    /// `added_at` and the ephemeral mark stay what its admitter wrote.
    #[test]
    fn a_member_rewriting_its_own_record_changes_no_fact() {
        let (a_id, r_id) = (id(), id());
        let mut a = MeshDoc::new(a_id, "a", 1);
        a.add_member_for(r_id, "runner", a_id, 10, Some(60));
        let mut r = replica(&mut a, r_id);
        let members = r.members_obj().expect("members");
        let rec = match r.t.doc.get(&members, r_id.to_string().as_str()) {
            Ok(Some((_, rec))) => rec,
            other => panic!("no record: {other:?}"),
        };
        r.t.doc.put(&rec, "added_at", i64::MAX).expect("put");
        r.t.doc
            .put(&rec, "added_by", r_id.to_string())
            .expect("put");
        r.t.doc.delete(&rec, EPHEMERAL_AFTER).expect("delete");
        // And a fresh record of its own, as a second way to rewrite it.
        let fresh =
            r.t.doc
                .put_object(&members, r_id.to_string().as_str(), ObjType::Map)
                .expect("fresh");
        r.t.doc.put(&fresh, "added_at", i64::MAX).expect("put");
        r.commit(20);
        merged(&mut a, &mut r);
        for m in [&a, &r] {
            let rec = m.member(r_id).expect("member");
            assert_eq!(rec.added_by, a_id.to_string());
            assert_eq!(rec.added_at, 10);
            assert_eq!(rec.ephemeral_after, Some(60));
        }
    }

    /// Issue 38: a machine cannot admit itself, and a stranger's statements count for
    /// nothing; only the founder's genesis adds its own author.
    #[test]
    fn only_members_state_facts() {
        let (a_id, s_id, t_id) = (id(), id(), id());
        let mut a = MeshDoc::new(a_id, "a", 1);
        let mut s = replica(&mut a, s_id);
        s.add_member(s_id, "stranger", s_id, 2);
        s.add_member(t_id, "friend", s_id, 2);
        s.revoke(a_id, s_id, 2);
        merged(&mut a, &mut s);
        assert_eq!(a.member_count(), 1, "{:?}", a.members());
        assert!(a.is_current_member(a_id));
        assert!(!a.allows_actor(&ActorId::from(&s_id.actor_bytes()[..])));
    }

    /// Issue 38 (fact invariant 2): the same changes give the same facts in any order
    /// of arrival, and a change whose dependencies wait is read once they come.
    #[test]
    fn facts_do_not_depend_on_the_order_changes_arrive_in() {
        let (a_id, b_id, c_id) = (id(), id(), id());
        let mut a = MeshDoc::new(a_id, "a", 1);
        a.add_member(b_id, "b", a_id, 1);
        let mut b = replica(&mut a, b_id);
        a.revoke(b_id, a_id, 5);
        b.add_member(c_id, "c", b_id, 4);
        b.revoke(a_id, b_id, 6);
        merged(&mut a, &mut b);
        let changes = a.t.doc.get_changes(&[]);
        for order in [changes.clone(), changes.iter().rev().cloned().collect()] {
            let mut doc = AutoCommit::new();
            for c in order {
                doc.apply_changes([c]).expect("apply");
            }
            let m = MeshDoc::with(Tracked::new(doc));
            assert_eq!(m.revoked(), a.revoked());
            assert_eq!(m.members(), a.members());
        }
        // Concurrent revocations both count: each was made by a member.
        assert!(!a.is_current_member(a_id) && !a.is_current_member(b_id));
        assert!(a.is_current_member(c_id));
    }
}
