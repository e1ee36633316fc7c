//! `stats`: counts by status, priority and tag, per machine and for the fleet. In the
//! fleet counts a spec held by several machines (same fleet project, same name) counts
//! once, as its most recently updated copy says.

use crate::machine::SpecRow;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counts over a set of specs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Specs.
    pub specs: usize,
    /// By status (`none` for a spec without a readable one).
    pub by_status: BTreeMap<String, usize>,
    /// By priority (`none` when unset).
    pub by_priority: BTreeMap<String, usize>,
    /// By tag (a spec counts once per tag).
    pub by_tag: BTreeMap<String, usize>,
    /// `complete` over every spec that is not `archived` (0 when there is none).
    pub completion_rate: f64,
}

impl Counts {
    fn of<'a>(rows: impl IntoIterator<Item = &'a SpecRow>) -> Counts {
        let mut c = Counts::default();
        for r in rows {
            let s = &r.spec;
            c.specs += 1;
            let status = s.status.map_or("none", |v| v.as_str());
            *c.by_status.entry(status.into()).or_default() += 1;
            let priority = s.priority.map_or("none", |v| v.as_str());
            *c.by_priority.entry(priority.into()).or_default() += 1;
            for t in &s.tags {
                *c.by_tag.entry(t.clone()).or_default() += 1;
            }
        }
        let count = |k: &str| c.by_status.get(k).copied().unwrap_or(0);
        let live = c.specs - count("archived");
        c.completion_rate = if live == 0 {
            0.0
        } else {
            count("complete") as f64 / live as f64
        };
        c
    }
}

/// One machine's counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineStats {
    /// Machine id (hex).
    pub machine: String,
    /// Its label.
    pub machine_label: String,
    /// Its specs' counts.
    pub counts: Counts,
}

/// What `stats` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Per machine, by label.
    pub machines: Vec<MachineStats>,
    /// The fleet: each spec once (see the module doc).
    pub fleet: Counts,
}

/// Counts `rows` (the specs of every machine).
pub fn stats(rows: &[SpecRow]) -> Stats {
    let mut per_machine: BTreeMap<(&str, &str), Vec<&SpecRow>> = BTreeMap::new();
    // The copy of each fleet spec updated last (ties: the smallest machine id).
    let mut newest: BTreeMap<(&str, &str), &SpecRow> = BTreeMap::new();
    for r in rows {
        per_machine
            .entry((r.machine_label.as_str(), r.machine.as_str()))
            .or_default()
            .push(r);
        let key = (r.fleet.as_str(), r.spec.name.as_str());
        let replace = newest.get(&key).is_none_or(|cur| {
            (&r.spec.updated_at, std::cmp::Reverse(&r.machine))
                > (&cur.spec.updated_at, std::cmp::Reverse(&cur.machine))
        });
        if replace {
            newest.insert(key, r);
        }
    }
    Stats {
        machines: per_machine
            .into_iter()
            .map(|((label, id), specs)| MachineStats {
                machine: id.to_string(),
                machine_label: label.to_string(),
                counts: Counts::of(specs),
            })
            .collect(),
        fleet: Counts::of(newest.into_values()),
    }
}
