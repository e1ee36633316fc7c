//! A hostile member against the membership facts (issue 38): seeded cases in which
//! honest members add, revoke, rename and remove ephemeral machines while a member X
//! with a real actor writes arbitrary mesh changes (puts and deletes anywhere, fresh
//! maps and lists at any path, changes that descend from revocations it has seen,
//! concurrent branches), and the changes reach honest members in arbitrary subsets and
//! orders, with restarts. An honest member receives as `Machine::receive_sync` does:
//! it applies what came and drops what [`MeshDoc::late_among`] names.
//!
//! After every delivery:
//! - (a) a revocation an honest member holds in its history is in force at every
//!   honest member that holds that change;
//! - (b) honest members that hold the same changes agree on members, revocations and
//!   ephemeral marks, and so does a mesh built from those changes in reverse order;
//! - (c) no honest member holds a change by a machine written after it held its
//!   revocation;
//! - (e) nothing panics;
//! - (f) what X writes about itself is no fact: it stays admitted by the founder at
//!   the time the founder wrote;
//! - (g) a revocation an honest member wrote while a member is in force at every
//!   honest member that holds it (the harness's own record, not the facts).
//!
//! (d), stored signatures ≤ stored changes, is a property of the store, checked with
//! real machines in `tests/tests/replication.rs`.
//!
//! `LEANSPEC_HOSTILE_CASES=N` runs N cases (default 2,000) from seed
//! `LEANSPEC_HOSTILE_FIRST` (default 0); `LEANSPEC_HOSTILE_SEED=S` runs one. A failure prints its seed. `scripts/soak-hostile.sh` runs a million.

use super::MeshDoc;
use crate::identity::{Identity, MachineId};
use crate::proto::sim::Rng;
use automerge::transaction::Transactable;
use automerge::{AutoCommit, Change, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue};

/// Ids made once per run (generating keys costs more than a case).
struct Ids {
    honest: Vec<MachineId>,
    hostile: MachineId,
    newcomers: Vec<MachineId>,
}

impl Ids {
    fn new() -> Ids {
        let id = || Identity::generate().expect("key").id();
        Ids {
            honest: (0..3).map(|_| id()).collect(),
            hostile: id(),
            newcomers: (0..6).map(|_| id()).collect(),
        }
    }
    fn any(&self, rng: &mut Rng) -> MachineId {
        let all: Vec<MachineId> = self
            .honest
            .iter()
            .chain([&self.hostile])
            .chain(&self.newcomers)
            .copied()
            .collect();
        all[rng.below(all.len())]
    }
}

/// One case: honest replicas, the hostile member's branches, every change made.
struct Case<'a> {
    rng: Rng,
    ids: &'a Ids,
    honest: Vec<MeshDoc>,
    /// The hostile member's branches (plain documents: it writes what it likes).
    branches: Vec<AutoCommit>,
    /// Every change any machine made, in the order made.
    pool: Vec<Change>,
    /// Revocations honest members made while members themselves: (change, machine).
    revoked_by_honest: Vec<(ChangeHash, MachineId)>,
    now: i64,
}

impl<'a> Case<'a> {
    fn new(seed: u64, ids: &'a Ids) -> Case<'a> {
        let founder = ids.honest[0];
        let mut first = MeshDoc::new(founder, "h0", 1);
        for (i, h) in ids.honest.iter().enumerate().skip(1) {
            first.add_member(*h, &format!("h{i}"), founder, 1);
        }
        first.add_member(ids.hostile, "x", founder, 1);
        let saved = first.t.save();
        let honest = std::iter::once(first)
            .chain(
                ids.honest
                    .iter()
                    .skip(1)
                    .map(|h| MeshDoc::load(*h, [saved.as_slice()]).expect("load")),
            )
            .collect();
        let mut x = AutoCommit::load(&saved).expect("load");
        x.set_actor(automerge::ActorId::from(&ids.hostile.actor_bytes()[..]));
        let pool = x.get_changes(&[]);
        Case {
            rng: Rng(seed),
            ids,
            honest,
            branches: vec![x],
            pool,
            revoked_by_honest: Vec::new(),
            now: 2,
        }
    }

    fn honest_step(&mut self) {
        let i = self.rng.below(self.honest.len());
        let me = self.ids.honest[i];
        self.now += 1;
        let now = self.now;
        let target = match self.rng.below(3) {
            0 => self.ids.hostile,
            _ => self.ids.newcomers[self.rng.below(self.ids.newcomers.len())],
        };
        let before = self.honest[i].t.doc.get_heads();
        let m = &mut self.honest[i];
        let member = m.is_current_member(me);
        let revokes = match self.rng.below(5) {
            0 | 1 => {
                let ephemeral = self.rng.chance(50).then_some(60);
                m.add_member_for(target, "n", me, now, ephemeral);
                false
            }
            2 => {
                m.revoke(target, me, now);
                true
            }
            3 => {
                m.remove_ephemeral(target, me, now);
                true
            }
            _ => {
                m.rename(target, "renamed");
                false
            }
        };
        m.commit(now);
        let made = self.honest[i].t.doc.get_changes(&before);
        if revokes && member {
            self.revoked_by_honest
                .extend(made.iter().map(|c| (c.hash(), target)));
        }
        self.pool.extend(made);
    }

    /// Maps and lists of a hostile branch worth writing into.
    fn objects(doc: &AutoCommit) -> Vec<(ObjId, ObjType)> {
        let mut out = vec![(ROOT, ObjType::Map)];
        let mut i = 0;
        while i < out.len() && out.len() < 64 {
            let (obj, kind) = out[i].clone();
            let children: Vec<(ObjId, ObjType)> = match kind {
                ObjType::Map => doc
                    .map_range(&obj, ..)
                    .filter_map(|item| match item.value {
                        automerge::ValueRef::Object(t) => Some((item.id(), t)),
                        _ => None,
                    })
                    .collect(),
                _ => (0..doc.length(&obj))
                    .filter_map(|n| match doc.get(&obj, n) {
                        Ok(Some((automerge::Value::Object(t), id))) => Some((id, t)),
                        _ => None,
                    })
                    .collect(),
            };
            out.extend(children);
            i += 1;
        }
        out
    }

    fn hostile_step(&mut self) {
        // Learn what an honest member holds (revocations of X included), or branch off.
        match self.rng.below(4) {
            0 => {
                let from = self.rng.below(self.honest.len());
                let mut theirs = self.honest[from].t.doc.fork();
                let b = self.rng.below(self.branches.len());
                let _ = self.branches[b].merge(&mut theirs);
            }
            1 if self.branches.len() < 4 => {
                let b = self.rng.below(self.branches.len());
                let heads = self.branches[b].get_heads();
                let at = &heads[..self.rng.below(heads.len() + 1)];
                let mut fork = if at.is_empty() {
                    self.branches[b].fork()
                } else {
                    self.branches[b]
                        .fork_at(at)
                        .unwrap_or_else(|_| self.branches[b].fork())
                };
                fork.set_actor(automerge::ActorId::from(
                    &self.ids.hostile.actor_bytes()[..],
                ));
                self.branches.push(fork);
            }
            _ => {}
        }
        let b = self.rng.below(self.branches.len());
        let mut doc = std::mem::take(&mut self.branches[b]);
        let before = doc.get_heads();
        for _ in 0..1 + self.rng.below(4) {
            self.hostile_op(&mut doc);
        }
        self.now += 1;
        doc.commit_with(automerge::transaction::CommitOptions::default().with_time(self.now));
        self.pool.extend(doc.get_changes(&before));
        self.branches[b] = doc;
    }

    fn hostile_op(&mut self, doc: &mut AutoCommit) {
        const KEYS: [&str; 11] = [
            "members",
            "revocations",
            "added_at",
            "added_by",
            "ephemeral_after",
            "revoked_at",
            "revoked_by",
            "label",
            "id",
            "at",
            "why",
        ];
        let objects = Case::objects(doc);
        let (obj, kind) = objects[self.rng.below(objects.len())].clone();
        let id_key = self.ids.any(&mut self.rng).to_string();
        let key = if self.rng.chance(30) {
            id_key.clone()
        } else {
            KEYS[self.rng.below(KEYS.len())].to_string()
        };
        let value = match self.rng.below(4) {
            0 => ScalarValue::Int(self.rng.next() as i64 % 1_000),
            1 => ScalarValue::Int(i64::MAX),
            2 => ScalarValue::Str(id_key.into()),
            _ => ScalarValue::Str("ephemeral".into()),
        };
        let _ = match (kind, self.rng.below(5)) {
            (ObjType::Map, 0) => doc.delete(&obj, key.as_str()).map(|_| ()),
            (ObjType::Map, 1) => doc.put_object(&obj, key.as_str(), ObjType::Map).map(|_| ()),
            (ObjType::Map, 2) => doc
                .put_object(&obj, key.as_str(), ObjType::List)
                .map(|_| ()),
            (ObjType::Map, _) => doc.put(&obj, key.as_str(), value),
            (_, 0) if doc.length(&obj) > 0 => {
                let n = self.rng.below(doc.length(&obj));
                doc.delete(&obj, n)
            }
            (_, 1 | 2) => {
                let n = self.rng.below(doc.length(&obj) + 1);
                doc.insert_object(&obj, n, ObjType::Map).and_then(|e| {
                    doc.put(
                        &e,
                        "id",
                        ScalarValue::Str(self.ids.any(&mut self.rng).to_string().into()),
                    )?;
                    doc.put(&e, "at", 1)?;
                    if self.rng.chance(50) {
                        doc.put(&e, "why", "ephemeral")?;
                    }
                    Ok(())
                })
            }
            _ => Ok(()),
        };
    }

    /// Member `i` receives a random subset of the pool, in a random order, as one
    /// message: applied, then what [`MeshDoc::late_among`] names dropped (reload what
    /// was held, apply the rest), as `Machine::receive_sync` does.
    fn deliver(&mut self, i: usize) {
        let mut batch: Vec<Change> = self
            .pool
            .iter()
            .filter(|_| self.rng.chance(40))
            .cloned()
            .collect();
        for k in (1..batch.len()).rev() {
            let j = self.rng.below(k + 1);
            batch.swap(k, j);
        }
        self.receive(i, batch);
    }

    /// Member `i` receives `batch` as one message: applied, then what
    /// [`MeshDoc::late_among`] names dropped (reload what was held, apply the rest), as
    /// `Machine::receive_sync` does.
    fn receive(&mut self, i: usize, batch: Vec<Change>) {
        let m = &mut self.honest[i];
        let held = m.t.save();
        let before = m.t.doc.get_heads();
        let _ = m.t.doc.apply_changes(batch);
        m.forget_read();
        let added: Vec<ChangeHash> =
            m.t.doc
                .get_changes_meta(&before)
                .into_iter()
                .map(|c| c.hash)
                .collect();
        let late = m.late_among(&added);
        if !late.is_empty() {
            let keep: Vec<Change> = added
                .iter()
                .filter(|h| !late.contains(h))
                .filter_map(|h| m.t.doc.get_change_by_hash(h))
                .collect();
            let mut fresh = MeshDoc::load(self.ids.honest[i], [held.as_slice()]).expect("reload");
            let _ = fresh.t.doc.apply_changes(keep);
            fresh.forget_read();
            self.honest[i] = fresh;
        }
    }

    fn restart(&mut self, i: usize) {
        let saved = self.honest[i].t.save();
        self.honest[i] = MeshDoc::load(self.ids.honest[i], [saved.as_slice()]).expect("reload");
    }

    /// Checks (a) to (c); with `reversed`, each member against a mesh built from its
    /// changes in reverse order too (the costly part: done once a case).
    fn check(&mut self, reversed: bool) -> Result<(), String> {
        let held: Vec<std::collections::HashSet<ChangeHash>> = self
            .honest
            .iter_mut()
            .map(|m| {
                m.t.doc
                    .get_changes_meta(&[])
                    .iter()
                    .map(|c| c.hash)
                    .collect()
            })
            .collect();
        // What each received: its own changes left out (a member X revoked goes on
        // writing locally until it learns; only what it admits from others counts).
        let received: Vec<Vec<ChangeHash>> = self
            .honest
            .iter_mut()
            .zip(&self.ids.honest)
            .map(|(m, me)| {
                m.t.doc
                    .get_changes_meta(&[])
                    .iter()
                    .filter(|c| c.actor.to_bytes() != me.actor_bytes())
                    .map(|c| c.hash)
                    .collect()
            })
            .collect();
        let founder = self.ids.honest[0].to_string();
        // (g) An honest member's revocation, made while it was a member, is in force
        // wherever its change is held (an oracle apart from the facts).
        for (h, target) in &self.revoked_by_honest {
            for (k, m) in self.honest.iter().enumerate() {
                if held[k].contains(h) && !m.revoked().contains_key(target) {
                    return Err(format!(
                        "member {k} holds honest revocation {h} of {} but does not count it",
                        target.short()
                    ));
                }
            }
        }
        // (c), decided apart from the facts' own `late` list: a received change whose
        // author has a revocation among the change's ancestors.
        for (i, m) in self.honest.iter_mut().enumerate() {
            let revocations: Vec<(Vec<u8>, ChangeHash)> = m
                .facts
                .revocations
                .iter()
                .flat_map(|(id, rs)| rs.iter().map(|r| (id.actor_bytes().to_vec(), r.change)))
                .collect();
            for h in &received[i] {
                let Some(actor) =
                    m.t.doc
                        .get_change_meta_by_hash(h)
                        .map(|c| c.actor.to_bytes().to_vec())
                else {
                    continue;
                };
                let theirs: Vec<ChangeHash> = revocations
                    .iter()
                    .filter(|(a, _)| *a == actor)
                    .map(|(_, r)| *r)
                    .collect();
                if !theirs.is_empty() && descends_from(&mut m.t.doc, *h, &theirs) {
                    return Err(format!(
                        "member {i} holds change {h}, written after its author's revocation"
                    ));
                }
            }
        }
        for (i, m) in self.honest.iter().enumerate() {
            // (f) What X writes of itself is no fact: the founder admitted it at 1.
            let x = m.member(self.ids.hostile).ok_or("X is not listed")?;
            if x.added_by != founder || x.added_at != 1 {
                return Err(format!(
                    "member {i} sees X admitted by {} at {}",
                    x.added_by, x.added_at
                ));
            }
            // (a)
            for (id, revocations) in &m.facts.revocations {
                for r in revocations {
                    for (k, other) in self.honest.iter().enumerate() {
                        if held[k].contains(&r.change) && !other.revoked().contains_key(id) {
                            return Err(format!(
                                "member {k} holds revocation {} of {} but counts it a member",
                                r.change,
                                id.short()
                            ));
                        }
                    }
                }
            }
        }
        // (b): pairs holding the same changes, and each against its changes reversed.
        let seen = |m: &MeshDoc| {
            let members: Vec<_> = m
                .members()
                .into_iter()
                .map(|x| {
                    (
                        x.id,
                        x.revoked_at,
                        x.ephemeral_after,
                        x.removed,
                        x.added_by,
                        x.added_at,
                    )
                })
                .collect();
            (members, m.revoked())
        };
        for i in 0..self.honest.len() {
            for k in i + 1..self.honest.len() {
                if held[i] == held[k] && seen(&self.honest[i]) != seen(&self.honest[k]) {
                    return Err(format!(
                        "members {i} and {k} hold the same changes but disagree"
                    ));
                }
            }
            if !reversed {
                continue;
            }
            let mut changes = self.honest[i].t.doc.get_changes(&[]);
            changes.reverse();
            let mut doc = AutoCommit::new();
            let _ = doc.apply_changes(changes);
            let rebuilt = MeshDoc::with(crate::tracked::Tracked::new(doc));
            if seen(&rebuilt) != seen(&self.honest[i]) {
                return Err(format!(
                    "member {i} disagrees with its own changes in reverse"
                ));
            }
        }
        Ok(())
    }

    fn run(&mut self, steps: usize) -> Result<(), String> {
        for _ in 0..steps {
            match self.rng.below(10) {
                0..=2 => self.honest_step(),
                3..=5 => self.hostile_step(),
                6..=8 => {
                    let i = self.rng.below(self.honest.len());
                    self.deliver(i);
                    self.check(false)?;
                }
                _ => {
                    let i = self.rng.below(self.honest.len());
                    self.restart(i);
                }
            }
        }
        // Everyone gets everything: the same changes, so the same facts (b).
        for i in 0..self.honest.len() {
            let all = self.pool.clone();
            self.receive(i, all);
        }
        self.check(true)
    }
}

/// Whether `later` has one of `earlier` among its ancestors (a walk down the deps).
fn descends_from(doc: &mut AutoCommit, later: ChangeHash, earlier: &[ChangeHash]) -> bool {
    let mut seen = std::collections::HashSet::new();
    let mut next = vec![later];
    while let Some(h) = next.pop() {
        if !seen.insert(h) {
            continue;
        }
        let Some(meta) = doc.get_change_meta_by_hash(&h) else {
            continue;
        };
        for d in meta.deps.iter() {
            if earlier.contains(d) {
                return true;
            }
            next.push(*d);
        }
    }
    false
}

#[test]
fn a_hostile_member_cannot_break_the_membership_facts() {
    let ids = Ids::new();
    let seeds: Vec<u64> = match std::env::var("LEANSPEC_HOSTILE_SEED") {
        Ok(s) => vec![s.parse().expect("LEANSPEC_HOSTILE_SEED")],
        Err(_) => {
            let var = |name: &str, default: u64| {
                std::env::var(name)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(default)
            };
            let (first, n) = (
                var("LEANSPEC_HOSTILE_FIRST", 0),
                var("LEANSPEC_HOSTILE_CASES", 2_000),
            );
            (first..first.saturating_add(n)).collect()
        }
    };
    let start = std::time::Instant::now();
    for seed in &seeds {
        if let Err(e) = Case::new(*seed, &ids).run(40) {
            panic!("seed {seed}: {e} (LEANSPEC_HOSTILE_SEED={seed} to run it alone)");
        }
    }
    eprintln!(
        "hostile member: {} cases in {:?}",
        seeds.len(),
        start.elapsed()
    );
}
