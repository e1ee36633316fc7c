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
use std::cell::RefCell;

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

/// Merges hits from several [`search`]es (one machine each) into the best `limit`, in
/// the order one search over all of them gives.
pub fn best(mut hits: Vec<SearchHit>, limit: usize) -> Vec<SearchHit> {
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
    /// Plain text: `want` lower case, found with a searcher built once per query.
    Text {
        want: String,
        finder: Box<memchr::memmem::Finder<'static>>,
    },
    /// `word~`: within a typo or two of `want` (`chars` long). Judged on a project's
    /// vocabulary once (`last`: the address of the project's folded text and which of
    /// its words are close), then per spec by its word ids: rows come project by
    /// project, and every table outlives the search.
    Fuzzy {
        want: String,
        chars: usize,
        last: RefCell<(usize, Vec<bool>)>,
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
                if *fuzzy {
                    Matcher::Fuzzy {
                        chars: want.chars().count(),
                        want,
                        last: RefCell::new((0, Vec::new())),
                    }
                } else {
                    Matcher::Text {
                        finder: Box::new(memchr::memmem::Finder::new(want.as_bytes()).into_owned()),
                        want,
                    }
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
            Matcher::Text { want, finder } => text_score(want, finder, &row.text, row.body),
            Matcher::Fuzzy { want, chars, last } => {
                let t = &row.text;
                let table = std::ptr::from_ref(t.table) as usize;
                let mut last = last.borrow_mut();
                if last.0 != table {
                    let allowed = typo_allowance(*chars);
                    let close = |w: &String| {
                        // Most words are ASCII and too long or short to be close.
                        !(w.is_ascii() && w.len().abs_diff(*chars) > allowed)
                            && typo_close(w, want, *chars)
                    };
                    *last = (table, t.table.vocabulary().iter().map(close).collect());
                }
                let close = &last.1;
                t.word_ids
                    .iter()
                    .any(|&id| close.get(id as usize).copied().unwrap_or(false))
                    .then_some(1)
            }
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

/// Text terms: title 3 (a whole-word title match 2 more), name 2, tag 2, a kept body 1.
fn text_score(
    want: &str,
    finder: &memchr::memmem::Finder<'_>,
    text: &Folded<'_>,
    body: Option<&str>,
) -> Option<u32> {
    let found = |hay: &str| finder.find(hay.as_bytes()).is_some();
    let mut s = 0;
    if found(text.title) {
        s += 3;
        if text.title_words().any(|w| w == want) {
            s += 2;
        }
    }
    if found(text.name) {
        s += 2;
    }
    if text.tags().any(found) {
        s += 2;
    }
    if body.is_some_and(found) {
        s += 1;
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

/// Edits allowed for a word of `chars` characters.
fn typo_allowance(chars: usize) -> usize {
    if chars <= 5 { 1 } else { 2 }
}

/// `word` (lower case) is within a typo or two of `want` (lower case, `chars` long):
/// one edit for words up to 5 characters, two beyond.
fn typo_close(word: &str, want: &str, chars: usize) -> bool {
    let allowed = typo_allowance(chars);
    if word.chars().count().abs_diff(chars) > allowed {
        return false;
    }
    within_edits(word, want, allowed)
}

/// Longest word compared on the stack; longer ones go to `strsim`.
const SHORT: usize = 32;

/// Levenshtein distance of `a` and `b` is at most `k`. Words are short: the DP rows
/// live on the stack and the walk stops at the first row past `k` (`strsim` allocates
/// and finishes every row; it was the fuzzy search's largest cost).
fn within_edits(a: &str, b: &str, k: usize) -> bool {
    let (mut ac, mut bc) = (['\0'; SHORT], ['\0'; SHORT]);
    let fill = |s: &str, buf: &mut [char; SHORT]| -> Option<usize> {
        let mut n = 0;
        for c in s.chars() {
            *buf.get_mut(n)? = c;
            n += 1;
        }
        Some(n)
    };
    let (Some(m), Some(n)) = (fill(a, &mut ac), fill(b, &mut bc)) else {
        return strsim::levenshtein(a, b) <= k;
    };
    let mut prev = [0usize; SHORT + 1];
    let mut cur = [0usize; SHORT + 1];
    for (j, p) in prev.iter_mut().enumerate().take(n + 1) {
        *p = j;
    }
    for i in 1..=m {
        cur[0] = i;
        let mut best = i;
        for j in 1..=n {
            let substitute = prev[j - 1] + usize::from(ac[i - 1] != bc[j - 1]);
            cur[j] = substitute.min(prev[j] + 1).min(cur[j - 1] + 1);
            best = best.min(cur[j]);
        }
        if best > k {
            return false;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[n] <= k
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

    /// The stack DP agrees with `strsim` on every pair of a word list, for k 0 to 3.
    #[test]
    fn bounded_edits_agree_with_strsim() {
        let words = [
            "",
            "a",
            "agent",
            "agnet",
            "agents",
            "argent",
            "urgent",
            "gent",
            "über",
            "uber",
            "ueber",
            "search",
            "serach",
            "sarch",
            "configuration",
            "konfiguration",
            "abcdefghijklmnopqrstuvwxyz0123456789",
            "abcdefghijklmnopqrstuvwxyz012345678",
        ];
        for a in words {
            for b in words {
                for k in 0..4 {
                    assert_eq!(
                        within_edits(a, b, k),
                        strsim::levenshtein(a, b) <= k,
                        "{a} {b} {k}"
                    );
                }
            }
        }
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
