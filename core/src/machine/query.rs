//! Queries over every machine's documents: machines, specs with filters, one spec by
//! selector (name, number or slug).

use super::{Error, Machine, MachineRow, Result, SpecFilter, SpecRow};
use crate::doc::{MachineDoc, ProjectSpecs};
use crate::identity::MachineId;
use crate::query::MachineSpecs;
use crate::spec;
use std::fs;

impl Machine {
    /// The machine document of `id` (ours or a replica).
    pub(super) fn machine_doc(&self, id: MachineId) -> Option<&MachineDoc> {
        if id == self.id() {
            Some(&self.doc)
        } else {
            self.replicas.get(&id)
        }
    }

    /// The label of machine `id`: the mesh's, else its document's, else its short id.
    pub fn machine_label(&self, id: MachineId) -> String {
        self.mesh
            .member(id)
            .map(|m| m.label)
            .or_else(|| {
                self.machine_doc(id)
                    .map(|d| d.machine_info().label)
                    .filter(|l| !l.is_empty())
            })
            .unwrap_or_else(|| id.short())
    }

    /// Every machine this one knows (itself first, then by label).
    pub fn machines(&self) -> Vec<MachineRow> {
        let mut ids: Vec<MachineId> = vec![self.id()];
        // Removed ephemeral machines are gone, not listed as revoked.
        let members = self.mesh.members();
        let removed: Vec<MachineId> = members.iter().filter(|m| m.removed).map(|m| m.id).collect();
        for m in members {
            if !ids.contains(&m.id) && !m.removed {
                ids.push(m.id);
            }
        }
        for id in self.replicas.keys() {
            if !ids.contains(id) && !removed.contains(id) {
                ids.push(*id);
            }
        }
        let mut rows: Vec<MachineRow> = ids
            .into_iter()
            .map(|id| {
                let doc = self.machine_doc(id);
                let info = doc.map(MachineDoc::machine_info);
                let projects = doc.map(MachineDoc::projects).unwrap_or_default();
                MachineRow {
                    id,
                    label: self.machine_label(id),
                    is_self: id == self.id(),
                    revoked: self.mesh.member(id).is_some_and(|m| m.revoked_at.is_some()),
                    version: info.as_ref().map(|i| i.version.clone()).unwrap_or_default(),
                    os: info.map(|i| i.os).unwrap_or_default(),
                    specs: doc.map_or(0, |d| projects.iter().map(|p| d.spec_count(&p.id)).sum()),
                    projects: projects.len(),
                }
            })
            .collect();
        rows[1..].sort_by(|a, b| a.label.cmp(&b.label));
        rows
    }

    /// A machine by full id, short id or label.
    pub fn find_machine(&self, selector: &str) -> Result<MachineId> {
        let rows = self.machines();
        let hits: Vec<&MachineRow> = rows
            .iter()
            .filter(|r| {
                r.id.to_string() == selector || r.id.short() == selector || r.label == selector
            })
            .collect();
        let describe = |rows: &mut dyn Iterator<Item = &MachineRow>| {
            rows.map(|r| format!("{} ({})", r.label, r.id.short()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match hits.as_slice() {
            [one] => Ok(one.id),
            [_, _, ..] => Err(Error::AmbiguousMachine {
                selector: selector.to_string(),
                candidates: describe(&mut hits.iter().copied()),
            }),
            [] => Err(Error::UnknownMachine {
                selector: selector.to_string(),
                known: describe(&mut rows.iter()),
            }),
        }
    }

    /// Every known machine's specs (this one first), or one machine's: cheap, the
    /// tables are cached per document and shared.
    pub fn spec_tables(&self, machine: Option<&str>) -> Result<Vec<MachineSpecs>> {
        let mut tables = self.spec_tables_bare(machine)?;
        for t in &mut tables {
            t.bodies = t
                .machine
                .parse::<MachineId>()
                .ok()
                .and_then(|id| self.body_texts(id));
        }
        Ok(tables)
    }

    /// [`Machine::spec_tables`] without the kept bodies (a search reads them one machine
    /// at a time: `Node::search`).
    pub fn spec_tables_bare(&self, machine: Option<&str>) -> Result<Vec<MachineSpecs>> {
        let ids = match machine {
            Some(sel) => vec![self.find_machine(sel)?],
            None => self.machines().into_iter().map(|r| r.id).collect(),
        };
        Ok(ids
            .into_iter()
            .filter_map(|id| {
                let doc = self.machine_doc(id)?;
                Some(MachineSpecs {
                    machine: id.to_string(),
                    label: self.machine_label(id),
                    table: doc.table(),
                    bodies: None,
                })
            })
            .collect())
    }

    /// Specs matching `filter` on every known machine (this one first), sorted by
    /// project name then spec name within each machine.
    pub fn specs(&self, filter: &SpecFilter) -> Result<Vec<SpecRow>> {
        let tables = self.spec_tables(filter.machine.as_deref())?;
        let as_remote = filter.project.as_deref().and_then(spec::normalize_remote);
        let mut out = Vec::new();
        for t in &tables {
            let mut projects: Vec<&ProjectSpecs> = t.table.projects.iter().collect();
            projects.sort_by(|a, b| a.project.name.cmp(&b.project.name));
            if let Some(sel) = &filter.project {
                projects.retain(|p| {
                    let p = &p.project;
                    p.id == *sel
                        || p.name == *sel
                        || p.fleet == *sel
                        || as_remote.as_ref() == Some(&p.fleet)
                });
                if projects.is_empty()
                    && (filter.machine.is_some() || t.machine == self.id().to_string())
                    && self.machines().len() == 1
                {
                    return Err(Error::UnknownProject {
                        selector: sel.clone(),
                        known: known(t.table.projects.iter().map(|p| p.project.name.as_str())),
                    });
                }
            }
            for p in projects {
                for spec in &p.specs {
                    if filter.status.is_some_and(|s| spec.status != Some(s))
                        || filter.priority.is_some_and(|pr| spec.priority != Some(pr))
                        || filter.tag.as_ref().is_some_and(|t| !spec.tags.contains(t))
                    {
                        continue;
                    }
                    out.push(SpecRow {
                        machine: t.machine.clone(),
                        machine_label: t.label.clone(),
                        project_id: p.project.id.clone(),
                        project: p.project.name.clone(),
                        fleet: p.project.fleet.clone(),
                        spec: spec.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// One spec by project (id, name or path) and spec (full name, number or slug), on
    /// this machine or, with `machine`, on another.
    pub fn spec_on(&self, machine: Option<&str>, project: &str, selector: &str) -> Result<SpecRow> {
        let id = match machine {
            Some(m) => self.find_machine(m)?,
            None => self.id(),
        };
        let doc = self.machine_doc(id).ok_or_else(|| Error::UnknownMachine {
            selector: id.short(),
            known: String::new(),
        })?;
        let projects = doc.projects();
        let canonical = fs::canonicalize(project).ok();
        let local_root = |pid: &str| {
            (id == self.id())
                .then(|| self.store.projects().ok())
                .flatten()
                .and_then(|ps| ps.into_iter().find(|p| p.id == pid))
                .map(|p| p.root)
        };
        let p = projects
            .iter()
            .find(|p| {
                p.id == project
                    || p.name == project
                    || (canonical.is_some() && local_root(&p.id) == canonical)
            })
            .ok_or_else(|| Error::UnknownProject {
                selector: project.to_string(),
                known: known(projects.iter().map(|p| p.name.as_str())),
            })?;
        let names = doc.spec_names(&p.id);
        let name = resolve_spec(&names, selector, &p.name)?;
        let spec = doc.spec(&p.id, &name).ok_or_else(|| Error::UnknownSpec {
            selector: selector.to_string(),
            project: p.name.clone(),
        })?;
        Ok(SpecRow {
            machine: id.to_string(),
            machine_label: self.machine_label(id),
            project_id: p.id.clone(),
            project: p.name.clone(),
            fleet: p.fleet.clone(),
            spec,
        })
    }

    /// One spec of this machine.
    pub fn spec(&self, project: &str, selector: &str) -> Result<SpecRow> {
        self.spec_on(None, project, selector)
    }
}
pub(super) fn known<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = names.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Resolves a spec selector: exact name, else the number (`5`, `005`), else the slug
/// or last path component.
pub(super) fn resolve_spec(names: &[String], selector: &str, project: &str) -> Result<String> {
    if names.iter().any(|n| n == selector) {
        return Ok(selector.to_string());
    }
    let last = |n: &str| n.rsplit('/').next().unwrap_or(n).to_string();
    let matches: Vec<&String> =
        if !selector.is_empty() && selector.bytes().all(|b| b.is_ascii_digit()) {
            let want: u64 = selector.parse().unwrap_or(u64::MAX);
            names
                .iter()
                .filter(|n| {
                    let l = last(n);
                    let digits: String = l.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse::<u64>().ok() == Some(want)
                })
                .collect()
        } else {
            names
                .iter()
                .filter(|n| {
                    let l = last(n);
                    l == selector || l.split_once('-').is_some_and(|(_, slug)| slug == selector)
                })
                .collect()
        };
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::UnknownSpec {
            selector: selector.to_string(),
            project: project.to_string(),
        }),
        many => Err(Error::AmbiguousSpec {
            selector: selector.to_string(),
            candidates: many
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}
