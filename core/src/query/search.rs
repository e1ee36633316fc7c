//! Running a [`Query`] over specs of every machine: which match, and how well.
//!
//! Text terms score (title 3, name 2, tag 2, a whole-word title match 2 more; fuzzy
//! matches 1); field conditions only filter. `AND` adds its parts' scores, `OR` keeps
//! the best, `NOT` filters. Hits sort by score, then machine label, project, name.

use super::parse::{Cmp, Field, Query, Term};
use crate::machine::SpecRow;
use crate::spec::{Priority, Status};

/// A spec that matches, with its score.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SearchHit {
    /// How well it matches (higher first; 0 when only fields were asked for).
    pub score: u32,
    /// The spec, its machine and project.
    pub row: SpecRow,
}

/// The rows matching `query`, best first, at most `limit`.
pub fn search(query: &Query, rows: Vec<SpecRow>, limit: usize) -> Vec<SearchHit> {
    let mut hits: Vec<SearchHit> = rows
        .into_iter()
        .filter_map(|row| score(query, &row).map(|score| SearchHit { score, row }))
        .collect();
    hits.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then_with(|| a.row.machine_label.cmp(&b.row.machine_label))
            .then_with(|| a.row.project.cmp(&b.row.project))
            .then_with(|| a.row.spec.name.cmp(&b.row.spec.name))
            .then_with(|| a.row.machine.cmp(&b.row.machine))
    });
    hits.truncate(limit);
    hits
}

/// `Some(score)` when `row` matches.
pub fn score(query: &Query, row: &SpecRow) -> Option<u32> {
    match query {
        Query::Term(t) => term(t, row),
        Query::And(qs) => qs
            .iter()
            .try_fold(0u32, |sum, q| Some(sum.saturating_add(score(q, row)?))),
        Query::Or(qs) => qs.iter().filter_map(|q| score(q, row)).max(),
        Query::Not(q) => match score(q, row) {
            Some(_) => None,
            None => Some(0),
        },
    }
}

fn term(t: &Term, row: &SpecRow) -> Option<u32> {
    let spec = &row.spec;
    match t {
        Term::Text {
            text, fuzzy: true, ..
        } => {
            let want = text.to_lowercase();
            let close = words(&spec.title)
                .chain(words(&spec.name))
                .chain(spec.tags.iter().map(|t| t.to_lowercase()))
                .any(|w| typo_close(&w, &want));
            close.then_some(1)
        }
        Term::Text { text, .. } => {
            let want = text.to_lowercase();
            let title = spec.title.to_lowercase();
            let mut s = 0;
            if title.contains(&want) {
                s += 3;
                if words(&spec.title).any(|w| w == want) {
                    s += 2;
                }
            }
            if spec.name.to_lowercase().contains(&want) {
                s += 2;
            }
            if spec.tags.iter().any(|t| t.to_lowercase().contains(&want)) {
                s += 2;
            }
            (s > 0).then_some(s)
        }
        Term::Field { field, cmp, value } => field_matches(*field, cmp, value, row).then_some(0),
    }
}

fn field_matches(field: Field, cmp: &Cmp, value: &str, row: &SpecRow) -> bool {
    let spec = &row.spec;
    let v = value.to_lowercase();
    match field {
        Field::Status => value
            .parse::<Status>()
            .ok()
            .is_some_and(|s| spec.status == Some(s)),
        Field::Priority => value
            .parse::<Priority>()
            .ok()
            .is_some_and(|p| spec.priority == Some(p)),
        Field::Tag => spec.tags.iter().any(|t| t.to_lowercase() == v),
        Field::Assignee => spec
            .assignee
            .as_ref()
            .is_some_and(|a| a.to_lowercase() == v),
        Field::Machine => {
            row.machine_label.to_lowercase() == v || (v.len() >= 4 && row.machine.starts_with(&v))
        }
        Field::Project => {
            row.project.to_lowercase() == v
                || row.project_id == value
                || row.fleet.to_lowercase() == v
                || crate::spec::normalize_remote(value).is_some_and(|n| n == row.fleet)
        }
        Field::Title => spec.title.to_lowercase().contains(&v),
        Field::Name => spec.name.to_lowercase().contains(&v) || same_number(&spec.name, value),
        Field::Parent => spec
            .parent
            .as_ref()
            .is_some_and(|p| p == value || same_number(p, value)),
        Field::DependsOn => spec
            .depends_on
            .iter()
            .any(|d| d == value || same_number(d, value)),
        Field::Created => {
            let date = spec.created.clone().or_else(|| {
                spec.created_at
                    .as_ref()
                    .map(|c| c.chars().take(10).collect())
            });
            date.is_some_and(|d| date_matches(&d, cmp, value))
        }
    }
}

/// Compares a date (`YYYY-MM-DD`) with a date or a prefix of one (`2025-11`): a prefix
/// stands for the whole period, so `>2025-11` is after November.
fn date_matches(date: &str, cmp: &Cmp, value: &str) -> bool {
    let within = |v: &str| date.starts_with(v);
    let after = |v: &str| date > v && !within(v);
    let before = |v: &str| date < v && !within(v);
    match cmp {
        Cmp::Eq => within(value),
        Cmp::Gt => after(value),
        Cmp::Ge => after(value) || within(value),
        Cmp::Lt => before(value),
        Cmp::Le => before(value) || within(value),
        Cmp::Range(to) => (after(value) || within(value)) && (before(to) || within(to)),
    }
}

/// `name` (a spec folder, maybe nested) has the number `value` (`42` matches `042-x`).
fn same_number(name: &str, value: &str) -> bool {
    let last = name.rsplit('/').next().unwrap_or(name);
    let digits: String = last.chars().take_while(char::is_ascii_digit).collect();
    !digits.is_empty()
        && value.chars().all(|c| c.is_ascii_digit())
        && digits.parse::<u64>().ok() == value.parse::<u64>().ok()
}

/// Lowercased words (runs of letters and digits).
fn words(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// Within a typo or two: one edit for words up to 5 characters, two beyond.
fn typo_close(word: &str, want: &str) -> bool {
    let allowed = if want.chars().count() <= 5 { 1 } else { 2 };
    word.chars().count().abs_diff(want.chars().count()) <= allowed
        && strsim::levenshtein(word, want) <= allowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse;
    use crate::spec::Spec;

    fn row(name: &str, title: &str, status: Status, tags: &[&str]) -> SpecRow {
        SpecRow {
            machine: "ab".repeat(32),
            machine_label: "laptop".into(),
            project_id: "p1".into(),
            project: "lean-spec".into(),
            fleet: "github.com/codervisor/lean-spec".into(),
            spec: Spec {
                name: name.into(),
                title: title.into(),
                status: Some(status),
                priority: Some(Priority::High),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                created: Some("2025-11-05".into()),
                depends_on: vec!["012-base".into()],
                ..Spec::default()
            },
        }
    }

    fn names(q: &str, rows: &[SpecRow]) -> Vec<String> {
        let q = parse(q).expect("parse");
        search(&q, rows.to_vec(), 100)
            .into_iter()
            .map(|h| h.row.spec.name)
            .collect()
    }

    #[test]
    fn text_fields_and_logic() {
        let rows = vec![
            row(
                "001-web-ui",
                "Web UI for the board",
                Status::Planned,
                &["ui"],
            ),
            row(
                "002-sync",
                "Sync engine",
                Status::InProgress,
                &["core", "ui-adjacent"],
            ),
            row(
                "042-auth",
                "Authentication",
                Status::Complete,
                &["security"],
            ),
        ];
        assert_eq!(names("board", &rows), vec!["001-web-ui"]);
        assert_eq!(
            names("ui", &rows),
            vec!["001-web-ui", "002-sync"],
            "title beats tag"
        );
        assert_eq!(names("status:in-progress", &rows), vec!["002-sync"]);
        assert_eq!(
            names("status:in_progress", &rows),
            vec!["002-sync"],
            "aliases"
        );
        assert_eq!(
            names("tag:ui OR tag:security", &rows),
            vec!["001-web-ui", "042-auth"]
        );
        assert_eq!(
            names("NOT tag:ui status:planned", &rows),
            Vec::<String>::new()
        );
        assert_eq!(names("name:42", &rows), vec!["042-auth"]);
        assert_eq!(names("authentcation~", &rows), vec!["042-auth"], "a typo");
        assert_eq!(names("\"sync engine\"", &rows), vec!["002-sync"]);
        assert_eq!(
            names("machine:LAPTOP project:lean-spec depends_on:12", &rows).len(),
            3
        );
        assert_eq!(names("machine:abab", &rows).len(), 3, "an id prefix");
        assert!(names("machine:ab", &rows).is_empty(), "too short for an id");
    }

    #[test]
    fn dates_compare_by_period() {
        let rows = vec![row("001-a", "A", Status::Planned, &[])];
        for (q, hit) in [
            ("created:2025-11", true),
            ("created:>2025-11", false),
            ("created:>=2025-11", true),
            ("created:<2025-11-06", true),
            ("created:<2025-11", false),
            ("created:<=2025-11", true),
            ("created:2025-11-01..2025-11-05", true),
            ("created:2025-10..2025-10-31", false),
            ("created:2025..2026", true),
        ] {
            assert_eq!(!names(q, &rows).is_empty(), hit, "{q}");
        }
    }
}
