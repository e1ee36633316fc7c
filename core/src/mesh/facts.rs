//! Who is a member, who was revoked and who admitted whom: facts of the mesh's signed
//! history, not of its current state (issue 38).
//!
//! The mesh document has several writers, and Automerge lets a later change replace
//! any object (a fresh `members` map, a fresh `revocations` list, a fresh record): read
//! from the current state, membership was whatever the last writer left, so a revoked
//! machine could undo its revocation on a member that had not seen it yet, and an
//! ephemeral machine could rewrite its own `added_at`. Here every change is read once,
//! in causal order, for the *statements* it makes, and a statement counts only if its
//! author was a member in the change's own history. A statement, once made, is never
//! taken back by a later change: the facts only grow.
//!
//! Statements (by the author of change C, about machine X):
//! - **add**: C puts `added_at` (an int) into a record, a map created at `members[X]`
//!   of a map created at `ROOT.members`. Its `added_by` is C's author (what the record
//!   says is ignored), its `added_at` the value put.
//! - **ephemeral mark**: C puts `ephemeral_after` (an int) into such a record.
//! - **revocation**: C puts `revoked_at` (an int) into such a record, or puts `id = X`
//!   into an entry (a map inserted into a list created at `ROOT.revocations`). It is an
//!   ephemeral removal when C put `why = "ephemeral"` into an entry naming X.
//!
//! Invariants (each one a hole the state-based reading had):
//! 1. A statement counts iff its author was a member in C's history: added by a
//!    counted add among C's ancestors and not revoked by a counted revocation among
//!    them. Self-adds count only in a change without dependencies (the founder's
//!    genesis). So a machine cannot admit itself, and a revoked machine's changes that
//!    descend from its revocation state nothing ([`Facts::late`] lists them: the
//!    receiver refuses them).
//! 2. Whether a statement counts depends only on C and its ancestors, which never
//!    change once C exists. So two machines that hold the same changes hold the same
//!    facts, whatever order the changes arrived in, and receiving more changes can only
//!    add facts: no later change (replacing, deleting or re-creating `members`, a record
//!    or `revocations`) takes a revocation or an ephemeral mark away.
//! 3. A member writes only statements about others that matter: its own record's
//!    `added_at`, `added_by` and `ephemeral_after` are not facts (an ephemeral machine
//!    that rewrites them stays what its admitter made it).
//!
//! Objects are classified by how they were created (the `Make` op's object and key),
//! also when they were later deleted or replaced: a statement made in an object that is
//! no longer reachable still counts.

use crate::identity::MachineId;
use automerge::legacy::{Key, ObjectId, OpId, OpType};
use automerge::{ActorId, AutoCommit, ChangeHash, ExpandedChange, ObjType, ScalarValue};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// The first 16 bytes of a machine id: its Automerge actor.
type Actor = [u8; 16];

/// What a created object is, in the membership schema.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A map created at `ROOT.members`.
    Members,
    /// A map created in a `Members` map at a canonical machine id.
    Record(MachineId),
    /// A list created at `ROOT.revocations`.
    Revocations,
    /// A map inserted into a `Revocations` list.
    Entry,
}

/// A counted add of a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Add {
    /// The author of the change (not what the record says).
    pub(crate) by: MachineId,
    /// The `added_at` it put.
    pub(crate) at: i64,
    /// The change.
    pub(crate) change: ChangeHash,
}

/// A counted revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Revocation {
    /// The author of the change.
    pub(crate) by: MachineId,
    /// The time it put (`revoked_at`, or the entry's `at`; the change's time if none).
    pub(crate) at: i64,
    /// An ephemeral machine's removal (`why: "ephemeral"`).
    pub(crate) ephemeral: bool,
    /// The change.
    pub(crate) change: ChangeHash,
}

/// Who was a member and who was revoked in the history of one change (that change
/// included): shared between a change and its descendants until one states something.
#[derive(Debug, Default, Clone)]
struct View {
    added: BTreeMap<Actor, MachineId>,
    revoked: BTreeSet<Actor>,
}

impl View {
    fn is_member(&self, actor: &Actor) -> bool {
        self.added.contains_key(actor) && !self.revoked.contains(actor)
    }
}

/// What one change wrote into a `revocations` entry: the machine named, `at`, and
/// whether `why` says ephemeral.
type EntryFields = (Option<MachineId>, Option<i64>, bool);

/// The statements one change makes, before it is known whether they count.
#[derive(Default)]
struct Statements {
    adds: Vec<(MachineId, i64)>,
    ephemeral: Vec<(MachineId, i64)>,
    revocations: Vec<(MachineId, Option<i64>, bool)>,
}

/// The membership facts of a mesh document, kept up to date with its heads
/// ([`Facts::update`] reads only the changes not read yet).
#[derive(Debug, Default)]
pub(crate) struct Facts {
    /// The heads read so far.
    heads: Vec<ChangeHash>,
    /// Every change read, with the view after it.
    views: HashMap<ChangeHash, Arc<View>>,
    /// Every object created by a change read, by the op that created it.
    objects: HashMap<(u64, ActorId), Kind>,
    /// Counted adds, per member, in the order read.
    pub(crate) adds: BTreeMap<MachineId, Vec<Add>>,
    /// Counted revocations, per machine.
    pub(crate) revocations: BTreeMap<MachineId, Vec<Revocation>>,
    /// Counted ephemeral marks: the smallest period stated.
    pub(crate) ephemeral: BTreeMap<MachineId, i64>,
    /// Changes by a machine revoked in their own history (invariant 1).
    late: BTreeSet<ChangeHash>,
}

impl Facts {
    /// Reads the changes of `doc` not read yet. Commits nothing: pending writes are not
    /// facts until committed.
    pub(crate) fn update(&mut self, doc: &mut AutoCommit) {
        let heads = doc.get_heads();
        if heads == self.heads {
            return;
        }
        let mut pending: Vec<automerge::Change> = doc.get_changes(&self.heads);
        // Automerge returns them in causal order; a change whose dependency was not read
        // yet waits for it all the same (bounded: each pass reads at least one or stops).
        while !pending.is_empty() {
            let before = pending.len();
            let mut waiting = Vec::new();
            for change in pending {
                if change.deps().iter().all(|d| self.views.contains_key(d)) {
                    self.read_change(&change);
                } else {
                    waiting.push(change);
                }
            }
            if waiting.len() == before {
                tracing::warn!(
                    count = waiting.len(),
                    "mesh changes whose history is missing were not read for membership"
                );
                break;
            }
            pending = waiting;
        }
        self.heads = heads;
    }

    /// Whether `hash` is a change by a machine revoked in its own history.
    pub(crate) fn is_late(&self, hash: &ChangeHash) -> bool {
        self.late.contains(hash)
    }

    /// Whether the machine with `actor` was ever added by a counted add.
    pub(crate) fn ever_added(&self, actor: &[u8]) -> bool {
        self.adds
            .keys()
            .any(|id| id.actor_bytes().as_slice() == actor)
    }

    fn read_change(&mut self, change: &automerge::Change) {
        let hash = change.hash();
        let expanded = change.decode();
        let statements = self.classify(&expanded);
        let past = self.past(change.deps());
        let author_actor: Option<Actor> = change.actor_id().to_bytes().try_into().ok();
        let Some(author_actor) = author_actor else {
            // Not a machine's actor: it states nothing.
            self.views.insert(hash, past);
            return;
        };
        if past.revoked.contains(&author_actor) {
            self.late.insert(hash);
            self.views.insert(hash, past);
            return;
        }
        // The founder's genesis: a change without dependencies that adds its author.
        let genesis = change.deps().is_empty().then(|| {
            statements
                .adds
                .iter()
                .find(|(id, _)| id.actor_bytes() == author_actor)
                .map(|(id, _)| *id)
        });
        let author = match (past.added.get(&author_actor), genesis.flatten()) {
            (Some(id), _) if past.is_member(&author_actor) => *id,
            (None, Some(founder)) => founder,
            _ => {
                self.views.insert(hash, past);
                return;
            }
        };
        if statements.adds.is_empty() && statements.revocations.is_empty() {
            for (id, after) in statements.ephemeral {
                if id != author {
                    let e = self.ephemeral.entry(id).or_insert(after);
                    *e = (*e).min(after);
                }
            }
            self.views.insert(hash, past);
            return;
        }
        let mut view = View::clone(&past);
        for (id, at) in statements.adds {
            // Invariant 3: a member's own record is not a fact, but for the founder.
            if id == author && genesis.flatten().is_none() {
                continue;
            }
            view.added.insert(id.actor_bytes(), id);
            self.adds.entry(id).or_default().push(Add {
                by: author,
                at,
                change: hash,
            });
        }
        for (id, after) in statements.ephemeral {
            if id != author {
                let e = self.ephemeral.entry(id).or_insert(after);
                *e = (*e).min(after);
            }
        }
        for (id, at, ephemeral) in statements.revocations {
            view.revoked.insert(id.actor_bytes());
            self.revocations.entry(id).or_default().push(Revocation {
                by: author,
                at: at.unwrap_or_else(|| change.timestamp()),
                ephemeral,
                change: hash,
            });
        }
        self.views.insert(hash, Arc::new(view));
    }

    /// The view of a change's history: its dependencies' views merged.
    fn past(&self, deps: &[ChangeHash]) -> Arc<View> {
        let mut views = deps.iter().filter_map(|d| self.views.get(d));
        let Some(first) = views.next() else {
            return Arc::default();
        };
        let rest: Vec<&Arc<View>> = views.collect();
        if rest.iter().all(|v| Arc::ptr_eq(v, first)) {
            return first.clone();
        }
        let mut merged = View::clone(first);
        for v in rest {
            merged.added.extend(v.added.iter().map(|(a, id)| (*a, *id)));
            merged.revoked.extend(v.revoked.iter().copied());
        }
        Arc::new(merged)
    }

    /// The statements `change` makes (invariant: objects are classified as created,
    /// whoever created them; whether anything counts is decided by the caller).
    fn classify(&mut self, change: &ExpandedChange) -> Statements {
        let mut out = Statements::default();
        // Entries of `revocations` this change wrote: (id named, at, why ephemeral).
        let mut entries: HashMap<(u64, ActorId), EntryFields> = HashMap::new();
        let start = change.start_op.get();
        for (i, op) in change.operations.iter().enumerate() {
            let counter = start.saturating_add(i as u64);
            let parent = match &op.obj {
                ObjectId::Root => None,
                ObjectId::Id(OpId(c, a)) => match self.objects.get(&(*c, a.clone())) {
                    Some(kind) => Some((*kind, (*c, a.clone()))),
                    // An object of no interest (a bucket, a spec of nothing).
                    None => continue,
                },
            };
            let key = match &op.key {
                Key::Map(k) => Some(k.as_str()),
                Key::Seq(_) => None,
            };
            match (&op.action, parent, key) {
                (OpType::Make(ObjType::Map), None, Some("members")) => {
                    self.objects
                        .insert((counter, change.actor_id.clone()), Kind::Members);
                }
                (OpType::Make(ObjType::List), None, Some("revocations")) => {
                    self.objects
                        .insert((counter, change.actor_id.clone()), Kind::Revocations);
                }
                (OpType::Make(ObjType::Map), Some((Kind::Members, _)), Some(k)) => {
                    // Canonical ids only: a shadow key (`" <id>"`, `"<ID>"`) is no record.
                    if let Ok(id) = k.parse::<MachineId>() {
                        self.objects
                            .insert((counter, change.actor_id.clone()), Kind::Record(id));
                    }
                }
                (OpType::Make(ObjType::Map), Some((Kind::Revocations, _)), None) => {
                    self.objects
                        .insert((counter, change.actor_id.clone()), Kind::Entry);
                }
                (OpType::Put(value), Some((Kind::Record(id), _)), Some(field)) => {
                    let Some(n) = as_int(value) else { continue };
                    match field {
                        "added_at" => out.adds.push((id, n)),
                        "ephemeral_after" => out.ephemeral.push((id, n)),
                        "revoked_at" => out.revocations.push((id, Some(n), false)),
                        _ => {}
                    }
                }
                (OpType::Put(value), Some((Kind::Entry, entry)), Some(field)) => {
                    let e = entries.entry(entry).or_default();
                    match (field, value) {
                        ("id", ScalarValue::Str(s)) => e.0 = s.parse::<MachineId>().ok(),
                        ("at", v) => e.1 = as_int(v).or(e.1),
                        ("why", ScalarValue::Str(s)) => e.2 = s.as_str() == super::WHY_EPHEMERAL,
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        // An entry states a revocation when this change named its machine; the
        // record's `revoked_at` of the same change is the same revocation.
        let mut by_entry: BTreeMap<MachineId, (Option<i64>, bool)> = BTreeMap::new();
        for (id, at, ephemeral) in entries.into_values() {
            let Some(id) = id else { continue };
            let e = by_entry.entry(id).or_insert((at, ephemeral));
            e.0 = match (e.0, at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            e.1 |= ephemeral;
        }
        for r in &mut out.revocations {
            if let Some((_, ephemeral)) = by_entry.get(&r.0) {
                r.2 = *ephemeral;
            }
        }
        for (id, (at, ephemeral)) in by_entry {
            if !out.revocations.iter().any(|r| r.0 == id) {
                out.revocations.push((id, at, ephemeral));
            }
        }
        out
    }
}

fn as_int(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::Int(i) => Some(*i),
        _ => None,
    }
}
