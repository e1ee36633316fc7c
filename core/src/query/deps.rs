//! `deps`: what a spec depends on (upstream) and what depends on it (downstream),
//! resolved across every machine that holds the same fleet project: a `depends_on`
//! entry on one machine may name a spec that only another machine has.
//!
//! Each spec's dependencies are those of its latest copy (greatest `updated_at`); an
//! entry names a spec by full name, number or slug (as `check` resolves them).

use super::index::SpecIndex;
use super::view::SpecView;
use crate::machine::Error;
use crate::spec::Status;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// LeanSpec's default depth.
pub const DEFAULT_DEPTH: usize = 3;

/// What to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepsQuery {
    /// What the spec depends on.
    pub upstream: bool,
    /// What depends on the spec.
    pub downstream: bool,
    /// How many links to follow (1: direct only).
    pub depth: usize,
}

impl Default for DepsQuery {
    fn default() -> DepsQuery {
        DepsQuery {
            upstream: true,
            downstream: true,
            depth: DEFAULT_DEPTH,
        }
    }
}

/// A spec of the fleet project, as its latest copy says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepSpec {
    /// Spec name.
    pub name: String,
    /// Title.
    pub title: String,
    /// Status.
    pub status: Option<Status>,
    /// Labels of the machines that hold it.
    pub machines: Vec<String>,
}

/// One line of a dependency tree, in depth-first order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepEntry {
    /// Links from the spec asked for (1: direct).
    pub depth: usize,
    /// Upstream: the `depends_on` entry as written; downstream: the dependent's name.
    pub entry: String,
    /// The spec it names; `None` when no machine holds one (dangling).
    pub spec: Option<DepSpec>,
    /// Already shown above (a diamond or a cycle): not expanded again.
    pub repeated: bool,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deps {
    /// The fleet project.
    pub fleet: String,
    /// The spec asked for.
    pub spec: DepSpec,
    /// What it depends on, when asked.
    pub upstream: Option<Vec<DepEntry>>,
    /// What depends on it, when asked.
    pub downstream: Option<Vec<DepEntry>>,
}

/// One fleet project's specs: copies by name, and each spec's resolved dependencies.
struct Graph<'a> {
    copies: BTreeMap<&'a str, Vec<SpecView<'a>>>,
    upstream: BTreeMap<&'a str, Vec<(&'a str, Vec<&'a str>)>>,
    downstream: BTreeMap<&'a str, Vec<&'a str>>,
}

impl<'a> Graph<'a> {
    fn new(views: &[SpecView<'a>]) -> Graph<'a> {
        let mut copies: BTreeMap<&str, Vec<SpecView<'a>>> = BTreeMap::new();
        for v in views {
            copies.entry(v.spec.name.as_str()).or_default().push(*v);
        }
        let index = SpecIndex::new(copies.keys().copied());
        let mut upstream = BTreeMap::new();
        let mut downstream: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, list) in &copies {
            let latest = latest(list);
            let entries: Vec<(&str, Vec<&str>)> = latest
                .spec
                .depends_on
                .iter()
                .map(|e| (e.as_str(), index.resolve(e).to_vec()))
                .collect();
            for (_, targets) in &entries {
                for t in targets {
                    let d = downstream.entry(*t).or_default();
                    if !d.contains(name) {
                        d.push(name);
                    }
                }
            }
            upstream.insert(*name, entries);
        }
        Graph {
            copies,
            upstream,
            downstream,
        }
    }

    fn spec(&self, name: &str) -> Option<DepSpec> {
        let list = self.copies.get(name)?;
        let l = latest(list);
        let machines: BTreeSet<String> = list.iter().map(|v| v.machine_label.to_string()).collect();
        Some(DepSpec {
            name: name.to_string(),
            title: l.spec.title.clone(),
            status: l.spec.status,
            machines: machines.into_iter().collect(),
        })
    }

    fn walk(&self, from: &'a str, up: bool, depth: usize) -> Vec<DepEntry> {
        let mut out = Vec::new();
        let mut shown: HashSet<&str> = HashSet::from([from]);
        self.walk_into(from, up, 1, depth, &mut shown, &mut out);
        out
    }

    fn walk_into(
        &self,
        from: &'a str,
        up: bool,
        level: usize,
        depth: usize,
        shown: &mut HashSet<&'a str>,
        out: &mut Vec<DepEntry>,
    ) {
        if level > depth {
            return;
        }
        // (entry as written or the dependent's name, the specs it names)
        let next: Vec<(&str, Vec<&'a str>)> = if up {
            self.upstream.get(from).cloned().unwrap_or_default()
        } else {
            self.downstream
                .get(from)
                .map(|d| d.iter().map(|n| (*n, vec![*n])).collect())
                .unwrap_or_default()
        };
        for (entry, targets) in next {
            if targets.is_empty() {
                out.push(DepEntry {
                    depth: level,
                    entry: entry.to_string(),
                    spec: None,
                    repeated: false,
                });
            }
            for t in targets {
                let repeated = !shown.insert(t);
                out.push(DepEntry {
                    depth: level,
                    entry: entry.to_string(),
                    spec: self.spec(t),
                    repeated,
                });
                if !repeated {
                    self.walk_into(t, up, level + 1, depth, shown, out);
                }
            }
        }
    }
}

/// The copy updated last (greatest `updated_at`; the first on a tie).
fn latest<'b, 'a>(copies: &'b [SpecView<'a>]) -> &'b SpecView<'a> {
    let mut best = &copies[0];
    for c in &copies[1..] {
        if c.spec.updated_at > best.spec.updated_at {
            best = c;
        }
    }
    best
}

/// The dependencies of `selector` (name, number or slug) in `project` (id, name or
/// fleet identity; any project when `None`), over `specs` of every machine.
pub fn deps<'a>(
    specs: impl IntoIterator<Item = SpecView<'a>>,
    project: Option<&str>,
    selector: &str,
    query: DepsQuery,
) -> Result<Deps, Error> {
    let remote = project.and_then(crate::spec::normalize_remote);
    let mut by_fleet: BTreeMap<&str, Vec<SpecView<'a>>> = BTreeMap::new();
    for v in specs {
        let wanted = project.is_none_or(|p| {
            v.project_id == p
                || v.project == p
                || v.fleet == p
                || remote.as_deref() == Some(v.fleet)
        });
        if wanted {
            by_fleet.entry(v.fleet).or_default().push(v);
        }
    }
    let mut found: Vec<(&str, &str)> = Vec::new();
    for (fleet, views) in &by_fleet {
        let index = SpecIndex::new(views.iter().map(|v| v.spec.name.as_str()));
        let mut names: Vec<&str> = index.resolve(selector).to_vec();
        names.sort_unstable();
        names.dedup();
        found.extend(names.into_iter().map(|n| (*fleet, n)));
    }
    let (fleet, name) = match found.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::UnknownSpec {
                selector: selector.to_string(),
                project: project
                    .map_or_else(|| "any project of any machine".to_string(), str::to_string),
            });
        }
        many => {
            return Err(Error::AmbiguousSpec {
                selector: selector.to_string(),
                candidates: many
                    .iter()
                    .map(|(f, n)| format!("{n} in {f}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    };
    let graph = Graph::new(by_fleet.get(fleet).map_or(&[], Vec::as_slice));
    let spec = graph.spec(name).ok_or_else(|| Error::UnknownSpec {
        selector: selector.to_string(),
        project: fleet.to_string(),
    })?;
    Ok(Deps {
        fleet: fleet.to_string(),
        spec,
        upstream: query.upstream.then(|| graph.walk(name, true, query.depth)),
        downstream: query
            .downstream
            .then(|| graph.walk(name, false, query.depth)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::SpecRow;
    use crate::query::{MachineSpecs, all_views};
    use crate::spec::Spec;

    fn row(machine: &str, name: &str, deps: &[&str], updated: &str) -> SpecRow {
        SpecRow {
            machine: machine.repeat(32),
            machine_label: machine.into(),
            project_id: format!("{machine}-p"),
            project: "specs".into(),
            fleet: "example.com/team/specs".into(),
            spec: Spec {
                name: name.into(),
                title: name.to_uppercase(),
                depends_on: deps.iter().map(|d| d.to_string()).collect(),
                updated_at: Some(updated.into()),
                ..Spec::default()
            },
        }
    }

    fn lines(entries: &[DepEntry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| {
                format!(
                    "{}{}{}{}",
                    "  ".repeat(e.depth - 1),
                    e.spec.as_ref().map_or("?", |s| s.name.as_str()),
                    if e.spec.is_none() {
                        format!(" ({})", e.entry)
                    } else {
                        String::new()
                    },
                    if e.repeated { " *" } else { "" }
                )
            })
            .collect()
    }

    #[test]
    fn follows_links_across_machines() {
        let rows = vec![
            // aa's copy of 003 is older; bb's (newer) depends on 002 and a ghost.
            row("aa", "003-c", &["001-a"], "2025-01-01"),
            row("bb", "003-c", &["2", "999"], "2025-02-01"),
            // 002 exists only on bb, 001 only on aa.
            row("bb", "002-b", &["a"], "2025-01-01"),
            row("aa", "001-a", &["003-c"], "2025-01-01"),
            row("aa", "004-d", &["3"], "2025-01-01"),
        ];
        let tables = MachineSpecs::from_rows(&rows);
        let d = deps(all_views(&tables), None, "3", DepsQuery::default()).expect("deps");
        assert_eq!(d.spec.machines, vec!["aa", "bb"]);
        assert_eq!(
            lines(d.upstream.as_ref().expect("up")),
            vec!["002-b", "  001-a", "    003-c *", "? (999)"],
        );
        assert_eq!(
            lines(d.downstream.as_ref().expect("down")),
            vec!["001-a", "  002-b", "    003-c *", "004-d"],
        );
        let direct = DepsQuery {
            depth: 1,
            downstream: false,
            ..DepsQuery::default()
        };
        let d = deps(all_views(&tables), Some("specs"), "c", direct).expect("deps");
        assert_eq!(
            lines(d.upstream.as_ref().expect("up")),
            vec!["002-b", "? (999)"]
        );
        assert!(d.downstream.is_none());
        assert!(matches!(
            deps(all_views(&tables), None, "7", direct),
            Err(Error::UnknownSpec { .. })
        ));
        assert!(matches!(
            deps(all_views(&tables), Some("other"), "3", direct),
            Err(Error::UnknownSpec { .. })
        ));
    }
}
