//! `check`: what is wrong across the fleet, from the specs every machine holds. A
//! project is one across machines when its fleet identity is (its git `origin`).
//!
//! - a spec number used by two different specs of one fleet project (two machines
//!   created spec 42 before a merge, or one machine holds both);
//! - the same spec (same fleet project, same name) with different metadata on different
//!   machines, naming the machine that changed it last (`updated_at`);
//! - a spec that could not be read;
//! - a `depends_on` that names no spec of its project on that machine.

use super::index::{SpecIndex, number};
use crate::machine::SpecRow;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a spec is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Place {
    /// Machine id (hex).
    pub machine: String,
    /// Machine label.
    pub machine_label: String,
    /// Project name on that machine.
    pub project: String,
    /// Spec name.
    pub spec: String,
}

impl Place {
    fn of(r: &SpecRow) -> Place {
        Place {
            machine: r.machine.clone(),
            machine_label: r.machine_label.clone(),
            project: r.project.clone(),
            spec: r.spec.name.clone(),
        }
    }
}

/// One copy of a spec whose metadata differs between machines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecCopy {
    /// Where.
    pub place: Place,
    /// Its `updated_at` (RFC 3339), if it has one.
    pub updated_at: Option<String>,
    /// The differing fields' values here, `field=value`.
    pub values: Vec<String>,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// Two different specs of one fleet project share a number.
    DuplicateNumber {
        /// The fleet project.
        fleet: String,
        /// The number.
        number: u64,
        /// Every spec with that number (two names at least).
        specs: Vec<Place>,
    },
    /// One spec, different metadata on different machines.
    Divergent {
        /// The fleet project.
        fleet: String,
        /// The spec name.
        spec: String,
        /// The fields that differ.
        fields: Vec<String>,
        /// Each machine's copy.
        copies: Vec<SpecCopy>,
        /// The machine whose copy was updated last (by `updated_at`), if any says.
        latest: Option<String>,
    },
    /// A spec that could not be read.
    ParseError {
        /// Where.
        place: Place,
        /// What went wrong.
        error: String,
    },
    /// A dependency that names no spec of the project on that machine.
    DanglingDependency {
        /// Where.
        place: Place,
        /// The `depends_on` entry.
        depends_on: String,
    },
}

impl Place {
    /// `label:project/spec`, as a sentence names it.
    pub fn short(&self) -> String {
        format!("{}:{}/{}", self.machine_label, self.project, self.spec)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::DuplicateNumber {
                fleet,
                number,
                specs,
            } => write!(
                f,
                "duplicate number {number} in {fleet}: {}",
                specs
                    .iter()
                    .map(Place::short)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Problem::Divergent {
                fleet,
                spec,
                fields,
                copies,
                latest,
            } => {
                write!(
                    f,
                    "{fleet}/{spec} differs between machines ({}): {}",
                    fields.join(", "),
                    copies
                        .iter()
                        .map(|c| format!("{} [{}]", c.place.machine_label, c.values.join(" ")))
                        .collect::<Vec<_>>()
                        .join("; ")
                )?;
                match latest {
                    Some(l) => write!(f, "; changed last on {l}"),
                    None => Ok(()),
                }
            }
            Problem::ParseError { place, error } => {
                write!(f, "{} cannot be read: {error}", place.short())
            }
            Problem::DanglingDependency { place, depends_on } => write!(
                f,
                "{} depends on {depends_on}, which is not there",
                place.short()
            ),
        }
    }
}

impl Problem {
    /// Its kind, as in JSON (`duplicate_number`, `divergent`, `parse_error`,
    /// `dangling_dependency`).
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::DuplicateNumber { .. } => "duplicate_number",
            Problem::Divergent { .. } => "divergent",
            Problem::ParseError { .. } => "parse_error",
            Problem::DanglingDependency { .. } => "dangling_dependency",
        }
    }
}

/// What `check` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Specs looked at (every machine's).
    pub specs: usize,
    /// Fleet projects looked at.
    pub projects: usize,
    /// What is wrong, in a stable order.
    pub problems: Vec<Problem>,
}

/// The metadata compared between copies, as `(field, value)`.
fn metadata(r: &SpecRow) -> Vec<(&'static str, String)> {
    let s = &r.spec;
    vec![
        ("title", s.title.clone()),
        (
            "status",
            s.status.map(|v| v.as_str().to_string()).unwrap_or_default(),
        ),
        (
            "priority",
            s.priority
                .map(|v| v.as_str().to_string())
                .unwrap_or_default(),
        ),
        ("tags", s.tags.join(",")),
        ("depends_on", s.depends_on.join(",")),
        ("parent", s.parent.clone().unwrap_or_default()),
        ("assignee", s.assignee.clone().unwrap_or_default()),
    ]
}

/// Checks `rows` (the specs of every machine).
pub fn check(rows: &[SpecRow]) -> CheckReport {
    let mut problems = Vec::new();
    let mut by_fleet: BTreeMap<&str, Vec<&SpecRow>> = BTreeMap::new();
    for r in rows {
        by_fleet.entry(r.fleet.as_str()).or_default().push(r);
        if let Some(e) = &r.spec.parse_error {
            problems.push(Problem::ParseError {
                place: Place::of(r),
                error: e.clone(),
            });
        }
    }
    for (fleet, specs) in &by_fleet {
        // Numbers: the distinct names per number.
        let mut numbers: BTreeMap<u64, Vec<&SpecRow>> = BTreeMap::new();
        for r in specs {
            if let Some(n) = number(&r.spec.name) {
                numbers.entry(n).or_default().push(r);
            }
        }
        for (n, holders) in numbers {
            let mut names: Vec<&str> = holders.iter().map(|r| r.spec.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            if names.len() > 1 {
                let mut places: Vec<Place> = holders.iter().map(|r| Place::of(r)).collect();
                places.sort();
                problems.push(Problem::DuplicateNumber {
                    fleet: fleet.to_string(),
                    number: n,
                    specs: places,
                });
            }
        }
        // The same spec on several machines.
        let mut by_name: BTreeMap<&str, Vec<&SpecRow>> = BTreeMap::new();
        for r in specs {
            by_name.entry(r.spec.name.as_str()).or_default().push(r);
        }
        for (name, copies) in by_name {
            if copies.len() < 2 {
                continue;
            }
            let metas: Vec<Vec<(&str, String)>> = copies.iter().map(|r| metadata(r)).collect();
            let fields: Vec<String> = metas[0]
                .iter()
                .enumerate()
                .filter(|(i, (_, v))| metas.iter().any(|m| m[*i].1 != *v))
                .map(|(_, (f, _))| f.to_string())
                .collect();
            if fields.is_empty() {
                continue;
            }
            let mut list: Vec<SpecCopy> = copies
                .iter()
                .zip(&metas)
                .map(|(r, m)| SpecCopy {
                    place: Place::of(r),
                    updated_at: r.spec.updated_at.clone(),
                    values: m
                        .iter()
                        .filter(|(f, _)| fields.iter().any(|x| x == f))
                        .map(|(f, v)| format!("{f}={v}"))
                        .collect(),
                })
                .collect();
            list.sort_by(|a, b| a.place.cmp(&b.place));
            // The copy updated last, when one `updated_at` is later than every other.
            let newest = list.iter().filter_map(|c| c.updated_at.as_ref()).max();
            let at_newest: Vec<&SpecCopy> = list
                .iter()
                .filter(|c| newest.is_some() && c.updated_at.as_ref() == newest)
                .collect();
            let latest = match at_newest.as_slice() {
                [one] => Some(one.place.machine_label.clone()),
                _ => None,
            };
            problems.push(Problem::Divergent {
                fleet: fleet.to_string(),
                spec: name.to_string(),
                fields,
                copies: list,
                latest,
            });
        }
    }
    // Dependencies, per machine and project.
    let mut by_project: BTreeMap<(&str, &str), Vec<&SpecRow>> = BTreeMap::new();
    for r in rows {
        by_project
            .entry((r.machine.as_str(), r.project_id.as_str()))
            .or_default()
            .push(r);
    }
    for specs in by_project.values() {
        let index = SpecIndex::new(specs.iter().map(|r| r.spec.name.as_str()));
        for r in specs {
            for d in &r.spec.depends_on {
                if index.resolve(d).is_empty() {
                    problems.push(Problem::DanglingDependency {
                        place: Place::of(r),
                        depends_on: d.clone(),
                    });
                }
            }
        }
    }
    CheckReport {
        specs: rows.len(),
        projects: by_fleet.len(),
        problems,
    }
}
