//! Running a [`Query`] over specs of every machine: which match, and how well.
//!
//! Text terms score (title 3, name 2, tag 2, a whole-word title match 2 more; fuzzy
//! matches 1); field conditions only filter. `AND` adds its parts' scores, `OR` keeps
//! the best, `NOT` filters. Hits sort by score, then machine label, project, name.

use super::folded::Folded;
use super::parse::{Cmp, Field, Query, Term};
use super::view::SpecView;
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

/// The specs matching `query`, best first, at most `limit`. Only the returned rows
/// are copied.
pub fn search<'a>(
    query: &Query,
    specs: impl IntoIterator<Item = SpecView<'a>>,
    limit: usize,
) -> Vec<SearchHit> {
    let matcher = Matcher::new(query);
    let mut hits: Vec<(u32, SpecView<'a>)> = specs
        .into_iter()
        .filter_map(|v| matcher.score(&v).map(|score| (score, v)))
        .collect();
    let order = |a: &(u32, SpecView<'_>), b: &(u32, SpecView<'_>)| {
        b.0.cmp(&a.0)
            .then_with(|| a.1.machine_label.cmp(b.1.machine_label))
            .then_with(|| a.1.project.cmp(b.1.project))
            .then_with(|| a.1.spec.name.cmp(&b.1.spec.name))
            .then_with(|| a.1.machine.cmp(b.1.machine))
    };
    // Only the best `limit` need an order: partition first, then sort those.
    if limit < hits.len() {
        hits.select_nth_unstable_by(limit, order);
        hits.truncate(limit);
    }
    hits.sort_by(order);
    hits.into_iter()
        .map(|(score, v)| SearchHit {
            score,
            row: v.to_row(),
        })
        .collect()
}

/// The specs matching `query` (all of them when `None`), in their order.
pub fn filter<'a>(
    query: Option<&Query>,
    specs: impl IntoIterator<Item = SpecView<'a>>,
) -> Vec<SpecView<'a>> {
    let matcher = query.map(Matcher::new);
    specs
        .into_iter()
        .filter(|v| matcher.as_ref().is_none_or(|m| m.score(v).is_some()))
        .collect()
}

/// `Some(score)` when `spec` matches.
pub fn score(query: &Query, spec: &SpecView<'_>) -> Option<u32> {
    Matcher::new(query).score(spec)
}

/// A query prepared once per search: text folded to lower case, values parsed, so
/// matching a row allocates nothing for ASCII text.
#[derive(Debug)]
enum Matcher {
    Text {
        want: String,
        chars: usize,
        fuzzy: bool,
    },
    Field {
        field: Field,
        cmp: Cmp,
        value: String,
        lower: String,
        status: Option<Status>,
        priority: Option<Priority>,
        remote: Option<String>,
    },
    And(Vec<Matcher>),
    Or(Vec<Matcher>),
    Not(Box<Matcher>),
}

impl Matcher {
    fn new(query: &Query) -> Matcher {
        match query {
            Query::Term(Term::Text { text, fuzzy, .. }) => {
                let want = text.to_lowercase();
                Matcher::Text {
                    chars: want.chars().count(),
                    want,
                    fuzzy: *fuzzy,
                }
            }
            Query::Term(Term::Field { field, cmp, value }) => Matcher::Field {
                field: *field,
                cmp: cmp.clone(),
                lower: value.to_lowercase(),
                status: value.parse().ok(),
                priority: value.parse().ok(),
                remote: (*field == Field::Project)
                    .then(|| crate::spec::normalize_remote(value))
                    .flatten(),
                value: value.clone(),
            },
            Query::And(qs) => Matcher::And(qs.iter().map(Matcher::new).collect()),
            Query::Or(qs) => Matcher::Or(qs.iter().map(Matcher::new).collect()),
            Query::Not(q) => Matcher::Not(Box::new(Matcher::new(q))),
        }
    }

    fn score(&self, row: &SpecView<'_>) -> Option<u32> {
        match self {
            Matcher::Text { want, chars, fuzzy } => text_score(want, *chars, *fuzzy, &row.text),
            Matcher::Field { .. } => self.field_matches(row).then_some(0),
            Matcher::And(ms) => ms
                .iter()
                .try_fold(0u32, |sum, m| Some(sum.saturating_add(m.score(row)?))),
            Matcher::Or(ms) => ms.iter().filter_map(|m| m.score(row)).max(),
            Matcher::Not(m) => match m.score(row) {
                Some(_) => None,
                None => Some(0),
            },
        }
    }

    fn field_matches(&self, row: &SpecView<'_>) -> bool {
        let Matcher::Field {
            field,
            cmp,
            value,
            lower,
            status,
            priority,
            remote,
        } = self
        else {
            return false;
        };
        let spec = row.spec;
        match field {
            Field::Status => status.is_some() && spec.status == *status,
            Field::Priority => priority.is_some() && spec.priority == *priority,
            Field::Tag => row.text.tags().any(|t| t == lower),
            Field::Assignee => spec
                .assignee
                .as_deref()
                .is_some_and(|a| folded_eq(a, lower)),
            Field::Machine => {
                folded_eq(row.machine_label, lower)
                    || (lower.len() >= 4 && row.machine.starts_with(lower.as_str()))
            }
            Field::Project => {
                folded_eq(row.project, lower)
                    || row.project_id == value
                    || folded_eq(row.fleet, lower)
                    || remote.as_deref() == Some(row.fleet)
            }
            Field::Title => row.text.title.contains(lower.as_str()),
            Field::Name => row.text.name.contains(lower.as_str()) || same_number(&spec.name, value),
            Field::Parent => spec
                .parent
                .as_ref()
                .is_some_and(|p| p == value || same_number(p, value)),
            Field::DependsOn => spec
                .depends_on
                .iter()
                .any(|d| d == value || same_number(d, value)),
            Field::Created => {
                let date = spec
                    .created
                    .as_deref()
                    .or(spec.created_at.as_deref())
                    .map(|c| c.get(..10).unwrap_or(c));
                date.is_some_and(|d| date_matches(d, cmp, value))
            }
        }
    }
}

/// Text terms: title 3 (a whole-word title match 2 more), name 2, tag 2; fuzzy: 1.
fn text_score(want: &str, chars: usize, fuzzy: bool, text: &Folded<'_>) -> Option<u32> {
    if fuzzy {
        let close = words(text.title)
            .chain(words(text.name))
            .chain(text.tags())
            .any(|w| typo_close(w, want, chars));
        return close.then_some(1);
    }
    let mut s = 0;
    if text.title.contains(want) {
        s += 3;
        if words(text.title).any(|w| w == want) {
            s += 2;
        }
    }
    if text.name.contains(want) {
        s += 2;
    }
    if text.tags().any(|t| t.contains(want)) {
        s += 2;
    }
    (s > 0).then_some(s)
}

/// `s` equals `want` (already lower case), ignoring case.
fn folded_eq(s: &str, want: &str) -> bool {
    if s.is_ascii() && want.is_ascii() {
        s.eq_ignore_ascii_case(want)
    } else {
        s.to_lowercase() == want
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

/// Words (runs of letters and digits).
fn words(s: &str) -> impl Iterator<Item = &str> + '_ {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// `word` (lower case) is within a typo or two of `want` (lower case, `chars` long): one edit for words up
/// to 5 characters, two beyond.
fn typo_close(word: &str, want: &str, chars: usize) -> bool {
    let allowed = if chars <= 5 { 1 } else { 2 };
    if word.chars().count().abs_diff(chars) > allowed {
        return false;
    }
    strsim::levenshtein(word, want) <= allowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{MachineSpecs, all_views, parse};
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
        search(&q, all_views(&MachineSpecs::from_rows(rows)), 100)
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
