//! `board`: specs in columns by status, priority, assignee, tag, machine or parent, as
//! LeanSpec's board shows one folder, over every machine.

use super::index::number;
use super::view::SpecView;
use crate::machine::SpecRow;
use crate::spec::{Priority, Status};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the board's columns are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// One column per status, in lifecycle order (every status, empty or not).
    #[default]
    Status,
    /// One column per priority, highest first (every priority).
    Priority,
    /// One column per assignee.
    Assignee,
    /// One column per tag (a spec with two tags is in both).
    Tag,
    /// One column per machine.
    Machine,
    /// One column per parent spec.
    Parent,
}

impl GroupBy {
    /// Every grouping, as spelled on the command line.
    pub const ALL: [GroupBy; 6] = [
        GroupBy::Status,
        GroupBy::Priority,
        GroupBy::Assignee,
        GroupBy::Tag,
        GroupBy::Machine,
        GroupBy::Parent,
    ];

    /// The spelling on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Status => "status",
            GroupBy::Priority => "priority",
            GroupBy::Assignee => "assignee",
            GroupBy::Tag => "tag",
            GroupBy::Machine => "machine",
            GroupBy::Parent => "parent",
        }
    }
}

impl std::str::FromStr for GroupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<GroupBy, String> {
        GroupBy::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = GroupBy::ALL.iter().map(|g| g.as_str()).collect();
                format!("unknown grouping {s:?}: use one of {}", all.join(", "))
            })
    }
}

/// The column of specs with no value for the grouping (no status, no tag, ...).
pub const NONE_COLUMN: &str = "none";

/// One column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// The value this column holds (`in-progress`, `high`, a tag, a machine label,
    /// a parent's name) or [`NONE_COLUMN`].
    pub key: String,
    /// Its specs, by project, number, name, then machine.
    pub specs: Vec<SpecRow>,
}

/// Specs in columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Board {
    /// What the columns are.
    pub group_by: GroupBy,
    /// The columns: fixed order for status and priority (every value, then `none` if
    /// any spec has none), else by key with `none` last.
    pub columns: Vec<Column>,
}

/// `specs` in columns by `group_by`.
pub fn board<'a>(specs: impl IntoIterator<Item = SpecView<'a>>, group_by: GroupBy) -> Board {
    let mut columns: BTreeMap<String, Vec<SpecView<'a>>> = BTreeMap::new();
    if group_by == GroupBy::Status {
        for s in Status::ALL {
            columns.insert(s.as_str().to_string(), Vec::new());
        }
    }
    if group_by == GroupBy::Priority {
        for p in Priority::ALL {
            columns.insert(p.as_str().to_string(), Vec::new());
        }
    }
    for v in specs {
        let spec = v.spec;
        let keys: Vec<String> = match group_by {
            GroupBy::Status => spec
                .status
                .map(|s| s.as_str().to_string())
                .into_iter()
                .collect(),
            GroupBy::Priority => spec
                .priority
                .map(|p| p.as_str().to_string())
                .into_iter()
                .collect(),
            GroupBy::Assignee => spec.assignee.iter().cloned().collect(),
            GroupBy::Tag => {
                let mut tags = spec.tags.clone();
                tags.sort();
                tags.dedup();
                tags
            }
            GroupBy::Machine => vec![v.machine_label.to_string()],
            GroupBy::Parent => spec.parent.iter().cloned().collect(),
        };
        if keys.is_empty() {
            columns.entry(NONE_COLUMN.into()).or_default().push(v);
        }
        for k in keys {
            columns.entry(k).or_default().push(v);
        }
    }
    let order = |key: &str| -> (usize, String) {
        let fixed = match group_by {
            GroupBy::Status => Status::ALL.iter().position(|s| s.as_str() == key),
            // Highest first, as a board is read left to right.
            GroupBy::Priority => Priority::ALL.iter().rev().position(|p| p.as_str() == key),
            _ => None,
        };
        match (fixed, key == NONE_COLUMN) {
            (Some(i), _) => (i, String::new()),
            (None, true) => (usize::MAX, String::new()),
            (None, false) => (usize::MAX - 1, key.to_string()),
        }
    };
    let mut columns: Vec<(String, Vec<SpecView<'a>>)> = columns.into_iter().collect();
    columns.sort_by_key(|(k, _)| order(k));
    Board {
        group_by,
        columns: columns
            .into_iter()
            .map(|(key, mut specs)| {
                specs.sort_by(|a, b| {
                    a.project
                        .cmp(b.project)
                        .then_with(|| number(&a.spec.name).cmp(&number(&b.spec.name)))
                        .then_with(|| a.spec.name.cmp(&b.spec.name))
                        .then_with(|| a.machine_label.cmp(b.machine_label))
                        .then_with(|| a.machine.cmp(b.machine))
                });
                Column {
                    key,
                    specs: specs.iter().map(SpecView::to_row).collect(),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{MachineSpecs, all_views};
    use crate::spec::Spec;

    fn row(machine: &str, name: &str, status: Option<Status>, tags: &[&str]) -> SpecRow {
        SpecRow {
            machine: machine.repeat(32),
            machine_label: machine.into(),
            project_id: "p".into(),
            project: "p".into(),
            fleet: "p".into(),
            spec: Spec {
                name: name.into(),
                status,
                tags: tags.iter().map(|t| t.to_string()).collect(),
                ..Spec::default()
            },
        }
    }

    fn keys(b: &Board) -> Vec<(&str, Vec<&str>)> {
        b.columns
            .iter()
            .map(|c| {
                (
                    c.key.as_str(),
                    c.specs.iter().map(|r| r.spec.name.as_str()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn columns_in_board_order() {
        let rows = vec![
            row("bb", "010-b", Some(Status::Complete), &["ui", "cli"]),
            row("aa", "002-a", Some(Status::Planned), &["ui"]),
            row("aa", "010-b", None, &[]),
        ];
        let tables = MachineSpecs::from_rows(&rows);
        let b = board(all_views(&tables), GroupBy::Status);
        assert_eq!(
            keys(&b),
            vec![
                ("draft", vec![]),
                ("planned", vec!["002-a"]),
                ("in-progress", vec![]),
                ("complete", vec!["010-b"]),
                ("archived", vec![]),
                ("none", vec!["010-b"]),
            ]
        );
        let b = board(all_views(&tables), GroupBy::Tag);
        assert_eq!(
            keys(&b),
            vec![
                ("cli", vec!["010-b"]),
                ("ui", vec!["002-a", "010-b"]),
                ("none", vec!["010-b"]),
            ]
        );
        let b = board(all_views(&tables), GroupBy::Machine);
        assert_eq!(
            keys(&b),
            vec![("aa", vec!["002-a", "010-b"]), ("bb", vec!["010-b"])]
        );
        assert_eq!(
            board(all_views(&tables), GroupBy::Priority).columns[0].key,
            "critical"
        );
        assert!("colour".parse::<GroupBy>().is_err());
        assert_eq!("parent".parse::<GroupBy>(), Ok(GroupBy::Parent));
    }
}
