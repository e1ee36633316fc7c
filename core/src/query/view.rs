//! What queries read: specs borrowed from each machine's cached [`SpecTable`], so a
//! query over 50,000 specs copies only the rows it returns.

use super::folded::{Folded, FoldedText};
use crate::doc::{ProjectEntry, ProjectSpecs, SpecTable};
use crate::machine::BodyTexts;
use crate::machine::SpecRow;
use crate::spec::Spec;
use std::sync::Arc;

/// One machine's specs as of one moment: its id, label and cached table.
#[derive(Debug, Clone)]
pub struct MachineSpecs {
    /// Machine id (hex).
    pub machine: String,
    /// Machine label.
    pub label: String,
    /// Its projects and specs.
    pub table: Arc<SpecTable>,
    /// The bodies of its specs kept here (read from it earlier), lower case.
    pub bodies: Option<Arc<BodyTexts>>,
}

impl MachineSpecs {
    /// Every spec of this machine, project by project.
    pub fn views(&self) -> impl Iterator<Item = SpecView<'_>> {
        self.table.projects.iter().flat_map(move |p| {
            let bodies = self.bodies.as_ref().and_then(|b| b.get(&p.project.id));
            p.specs.iter().enumerate().map(move |(i, spec)| SpecView {
                machine: &self.machine,
                machine_label: &self.label,
                project_id: &p.project.id,
                project: &p.project.name,
                fleet: &p.project.fleet,
                spec,
                text: p.folded.get(i),
                body: bodies.and_then(|b| b.get(&spec.name)).map(String::as_str),
            })
        })
    }

    /// Tables holding `rows` (grouped by machine, then project, in order of first
    /// appearance): queries over rows that did not come from documents.
    pub fn from_rows(rows: &[SpecRow]) -> Vec<MachineSpecs> {
        let mut machines: Vec<(String, String, Vec<ProjectSpecs>)> = Vec::new();
        for row in rows {
            let m = match machines.iter().position(|(id, ..)| *id == row.machine) {
                Some(i) => i,
                None => {
                    machines.push((row.machine.clone(), row.machine_label.clone(), Vec::new()));
                    machines.len() - 1
                }
            };
            let projects = &mut machines[m].2;
            let p = match projects.iter().position(|p| p.project.id == row.project_id) {
                Some(i) => i,
                None => {
                    projects.push(ProjectSpecs {
                        project: ProjectEntry {
                            id: row.project_id.clone(),
                            name: row.project.clone(),
                            fleet: row.fleet.clone(),
                        },
                        specs: Vec::new(),
                        folded: FoldedText::default(),
                    });
                    projects.len() - 1
                }
            };
            projects[p].specs.push(row.spec.clone());
        }
        machines
            .into_iter()
            .map(|(machine, label, mut projects)| {
                for p in &mut projects {
                    p.folded = FoldedText::of(&p.specs);
                }
                MachineSpecs {
                    machine,
                    label,
                    table: Arc::new(SpecTable { projects }),
                    bodies: None,
                }
            })
            .collect()
    }
}

/// Every spec of every machine in `machines`.
pub fn all_views(machines: &[MachineSpecs]) -> impl Iterator<Item = SpecView<'_>> {
    machines.iter().flat_map(MachineSpecs::views)
}

/// A spec with the machine and project it belongs to, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct SpecView<'a> {
    /// Machine id (hex).
    pub machine: &'a str,
    /// Machine label.
    pub machine_label: &'a str,
    /// Project id.
    pub project_id: &'a str,
    /// Project name.
    pub project: &'a str,
    /// The project's identity across machines.
    pub fleet: &'a str,
    /// The spec.
    pub spec: &'a Spec,
    /// Its title, name and tags in lower case.
    pub text: Folded<'a>,
    /// Its body in lower case, when one is kept here.
    pub body: Option<&'a str>,
}

impl SpecView<'_> {
    /// The owned row.
    pub fn to_row(&self) -> SpecRow {
        SpecRow {
            machine: self.machine.to_string(),
            machine_label: self.machine_label.to_string(),
            project_id: self.project_id.to_string(),
            project: self.project.to_string(),
            fleet: self.fleet.to_string(),
            spec: self.spec.clone(),
        }
    }
}
