//! Splitting a spec file into frontmatter and body, and reading the frontmatter's
//! fields the way LeanSpec does, but keeping every field that can be read when another
//! cannot (LeanSpec fails the whole spec; we report the problem and go on).

use super::model::{Priority, Status};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::ops::Range;

/// Where the parts of a spec file are, as byte ranges into the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Bytes of a leading UTF-8 byte order mark (0 or 3). LeanSpec does not skip it;
    /// we do, so a BOM never hides the frontmatter.
    pub bom: usize,
    /// The YAML text between the opening `---` line and the closing `\n---`.
    /// `None` when the file has no frontmatter.
    pub yaml: Option<Range<usize>>,
    /// The body: everything after the closing `---` (the rest of that line included,
    /// as LeanSpec does), with all leading `\n` removed (not `\r`).
    pub body: Range<usize>,
    /// A frontmatter that opens but never closes: the whole file is then the body.
    pub unterminated: bool,
}

/// Finds the frontmatter and the body. Never fails: a file without frontmatter is all
/// body; an unterminated frontmatter is reported in [`Layout::unterminated`].
pub fn layout(text: &str) -> Layout {
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let after_bom = &text[bom..];
    let lead = after_bom.len() - after_bom.trim_start().len();
    let start = bom + lead;
    let whole_body = |unterminated| {
        let body_start = bom + (after_bom.len() - after_bom.trim_start_matches('\n').len());
        Layout {
            bom,
            yaml: None,
            body: body_start..text.len(),
            unterminated,
        }
    };
    if !text[start..].starts_with("---") {
        return whole_body(false);
    }
    let yaml_start = start + 3;
    let Some(close) = text[yaml_start..].find("\n---") else {
        return whole_body(true);
    };
    let yaml_end = yaml_start + close;
    let after_close = yaml_end + 4;
    let rest = &text[after_close..];
    let body_start = after_close + (rest.len() - rest.trim_start_matches('\n').len());
    Layout {
        bom,
        yaml: Some(yaml_start..yaml_end),
        body: body_start..text.len(),
        unterminated: false,
    }
}

/// One `{status, at}` entry of `transitions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The status entered.
    pub status: Option<Status>,
    /// When (RFC 3339, as written).
    pub at: Option<String>,
}

/// Every frontmatter field LeanSpec knows, typed, plus the custom keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frontmatter {
    /// `status`.
    pub status: Option<Status>,
    /// `priority`.
    pub priority: Option<Priority>,
    /// `created`.
    pub created: Option<String>,
    /// `tags`.
    pub tags: Vec<String>,
    /// `depends_on`.
    pub depends_on: Vec<String>,
    /// Optional strings: parent, assignee, reviewer, issue, pr, epic, due, updated,
    /// completed, created_at, updated_at, completed_at.
    pub strings: BTreeMap<&'static str, String>,
    /// `breaking`.
    pub breaking: Option<bool>,
    /// `transitions`.
    pub transitions: Vec<Transition>,
    /// Any other key, as parsed.
    pub custom: BTreeMap<String, Value>,
    /// Problems met while reading; the fields above hold whatever could be read.
    pub problems: Vec<String>,
}

const STRING_KEYS: [&str; 12] = [
    "parent",
    "assignee",
    "reviewer",
    "issue",
    "pr",
    "epic",
    "due",
    "updated",
    "completed",
    "created_at",
    "updated_at",
    "completed_at",
];

impl Frontmatter {
    /// An optional string field by key (one of the keys LeanSpec knows).
    pub fn string(&self, key: &str) -> Option<&str> {
        self.strings.get(key).map(String::as_str)
    }
}

/// Parses frontmatter YAML. Invalid YAML yields an empty frontmatter with one problem.
pub fn parse(yaml: &str) -> Frontmatter {
    let mut fm = Frontmatter::default();
    let value: Value = match serde_yaml::from_str(yaml) {
        Ok(v) => v,
        Err(e) => {
            fm.problems
                .push(format!("invalid YAML in frontmatter: {e}"));
            return fm;
        }
    };
    let map = match value {
        Value::Mapping(m) => m,
        Value::Null => {
            fm.problems.push("status: missing (required)".into());
            return fm;
        }
        other => {
            fm.problems.push(format!(
                "frontmatter is a YAML {}, not a mapping of keys",
                kind(&other)
            ));
            return fm;
        }
    };
    let mut saw_status = false;
    let mut saw_created = false;
    for (k, v) in map {
        let Some(key) = scalar_string(&k) else {
            fm.problems
                .push(format!("frontmatter key {} is not a string", describe(&k)));
            continue;
        };
        match key.as_str() {
            "status" => {
                saw_status = true;
                match scalar_string(&v).map(|s| s.parse::<Status>()) {
                    Some(Ok(s)) => fm.status = Some(s),
                    Some(Err(e)) => fm.problems.push(e.to_string()),
                    None => fm
                        .problems
                        .push(format!("status: expected a string, found {}", describe(&v))),
                }
            }
            "priority" => match &v {
                Value::Null => {}
                _ => match scalar_string(&v).map(|s| s.parse::<Priority>()) {
                    Some(Ok(p)) => fm.priority = Some(p),
                    Some(Err(e)) => fm.problems.push(e.to_string()),
                    None => fm.problems.push(format!(
                        "priority: expected a string, found {}",
                        describe(&v)
                    )),
                },
            },
            "created" => {
                saw_created = true;
                match date_string(&v) {
                    Some(d) => fm.created = Some(d),
                    None => fm
                        .problems
                        .push(format!("created: expected a date, found {}", describe(&v))),
                }
            }
            "tags" => fm.tags = string_list("tags", &v, &mut fm.problems),
            "depends_on" => fm.depends_on = string_list("depends_on", &v, &mut fm.problems),
            "breaking" => match v {
                Value::Bool(b) => fm.breaking = Some(b),
                Value::Null => {}
                other => fm.problems.push(format!(
                    "breaking: expected true or false, found {}",
                    describe(&other)
                )),
            },
            // History, not state: a malformed entry (the corpus has spec names slipped
            // into the list) is skipped and noted in the log, never a parse error.
            "transitions" => {
                let mut notes = Vec::new();
                fm.transitions = transitions(&v, &mut notes);
                for n in notes {
                    tracing::debug!("{n}");
                }
            }
            other => {
                if let Some(&known) = STRING_KEYS.iter().find(|k| **k == other) {
                    match &v {
                        Value::Null => {}
                        _ => match scalar_string(&v) {
                            Some(s) => {
                                fm.strings.insert(known, s);
                            }
                            None => fm.problems.push(format!(
                                "{known}: expected a string, found {}",
                                describe(&v)
                            )),
                        },
                    }
                } else {
                    fm.custom.insert(key, v);
                }
            }
        }
    }
    if !saw_status {
        fm.problems.push("status: missing (required)".into());
    }
    if !saw_created {
        fm.problems.push("created: missing (required)".into());
    }
    fm
}

/// A scalar as a string: strings as they are, numbers and booleans as YAML prints them.
pub(crate) fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Tagged(t) => scalar_string(&t.value),
        _ => None,
    }
}

/// A date as written; an 8-digit integer (`20251101`) is read as `2025-11-01`.
fn date_string(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => {
            let s = n.to_string();
            if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
                Some(format!("{}-{}-{}", &s[..4], &s[4..6], &s[6..]))
            } else {
                Some(s)
            }
        }
        other => scalar_string(other),
    }
}

/// A list in block or flow style, or a string holding a JSON array or a
/// comma-separated list.
fn string_list(field: &str, v: &Value, problems: &mut Vec<String>) -> Vec<String> {
    match v {
        Value::Null => Vec::new(),
        Value::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match scalar_string(item) {
                    Some(s) => out.push(s),
                    None => problems.push(format!(
                        "{field}: item {} is not a string, skipped",
                        describe(item)
                    )),
                }
            }
            out
        }
        Value::String(s) => {
            let t = s.trim();
            if t.starts_with('[')
                && let Ok(list) = serde_json::from_str::<Vec<String>>(t)
            {
                return list;
            }
            t.trim_start_matches('[')
                .trim_end_matches(']')
                .split(',')
                .map(|p| p.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
                .filter(|p| !p.is_empty())
                .collect()
        }
        other => match scalar_string(other) {
            Some(s) => vec![s],
            None => {
                problems.push(format!(
                    "{field}: expected a list, found {}",
                    describe(other)
                ));
                Vec::new()
            }
        },
    }
}

fn transitions(v: &Value, problems: &mut Vec<String>) -> Vec<Transition> {
    let Value::Sequence(items) = v else {
        if !v.is_null() {
            problems.push(format!(
                "transitions: expected a list, found {}",
                describe(v)
            ));
        }
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let Value::Mapping(m) = item else {
                problems.push(format!(
                    "transitions: entry {} is not a mapping, skipped",
                    describe(item)
                ));
                return None;
            };
            let status = m.get("status").and_then(scalar_string);
            let status = match status.map(|s| s.parse::<Status>()) {
                Some(Ok(s)) => Some(s),
                Some(Err(e)) => {
                    problems.push(format!("transitions: {e}"));
                    None
                }
                None => None,
            };
            let at = m.get("at").and_then(scalar_string);
            Some(Transition { status, at })
        })
        .collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Sequence(_) => "list",
        Value::Mapping(_) => "mapping",
        Value::Tagged(_) => "tagged value",
    }
}

/// A short description of a value for error messages (never the whole value).
fn describe(v: &Value) -> String {
    match scalar_string(v) {
        Some(s) => {
            let mut s: String = s.chars().take(40).collect();
            if s.len() >= 40 {
                s.push('…');
            }
            format!("{} {s:?}", kind(v))
        }
        None => format!("a {}", kind(v)),
    }
}

/// The title LeanSpec shows: the first body line starting with `# ` (even in a code
/// fence), else `fallback`.
pub fn title(body: &str, fallback: &str) -> String {
    body.lines()
        .find_map(|l| l.strip_prefix("# "))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| fallback.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_finds_yaml_and_strips_leading_newlines_of_body() {
        let t = "---\nstatus: draft\n---\n\n\n# T\nbody\n";
        let l = layout(t);
        assert_eq!(&t[l.yaml.clone().unwrap()], "\nstatus: draft");
        assert_eq!(&t[l.body], "# T\nbody\n");
    }

    #[test]
    fn layout_keeps_cr_of_crlf_body() {
        let t = "---\r\nstatus: draft\r\n---\r\n\r\n# T\r\n";
        let l = layout(t);
        assert_eq!(&t[l.body], "\r\n\r\n# T\r\n");
    }

    #[test]
    fn bom_does_not_hide_frontmatter() {
        let t = "\u{feff}---\nstatus: draft\ncreated: 2025-01-01\n---\n# T\n";
        let l = layout(t);
        assert_eq!(l.bom, 3);
        let fm = parse(&t[l.yaml.unwrap()]);
        assert_eq!(fm.status, Some(Status::Draft));
        assert!(fm.problems.is_empty(), "{:?}", fm.problems);
    }

    #[test]
    fn unterminated_is_reported() {
        let l = layout("---\nstatus: draft\n# T\n");
        assert!(l.unterminated);
        assert!(l.yaml.is_none());
    }

    #[test]
    fn lists_in_every_style() {
        let fm = parse(
            "status: x\ncreated: 2025-01-01\ntags: [a, 'b']\ndepends_on:\n  - 001-x\n  - 002-y\n",
        );
        assert_eq!(fm.tags, ["a", "b"]);
        assert_eq!(fm.depends_on, ["001-x", "002-y"]);
        assert_eq!(
            fm.problems.len(),
            1,
            "unknown status only: {:?}",
            fm.problems
        );
        let fm = parse(
            "status: draft\ncreated: 2025-01-01\ntags: \"a, b ,c\"\ndepends_on: '[\"x\",\"y\"]'",
        );
        assert_eq!(fm.tags, ["a", "b", "c"]);
        assert_eq!(fm.depends_on, ["x", "y"]);
    }

    #[test]
    fn yaml_1_2_typing_and_integer_dates() {
        let fm =
            parse("status: In_Progress\npriority: urgent\ncreated: 20251101\ntags: [yes, 045, 45]");
        assert_eq!(fm.status, Some(Status::InProgress));
        assert_eq!(fm.priority, Some(Priority::Critical));
        assert_eq!(fm.created.as_deref(), Some("2025-11-01"));
        assert_eq!(fm.tags, ["yes", "045", "45"]);
        assert!(fm.problems.is_empty(), "{:?}", fm.problems);
    }

    #[test]
    fn unknown_priority_keeps_the_rest() {
        let fm = parse("status: planned\npriority: p1\ncreated: '2025-01-01'\ntags: [a]\nfoo: bar");
        assert_eq!(fm.status, Some(Status::Planned));
        assert_eq!(fm.priority, None);
        assert_eq!(fm.tags, ["a"]);
        assert_eq!(fm.custom.len(), 1);
        assert_eq!(fm.problems.len(), 1);
        assert!(fm.problems[0].contains("p1"), "{}", fm.problems[0]);
    }

    #[test]
    fn invalid_yaml_is_a_problem_not_a_panic() {
        let fm = parse("status: [unclosed\n  : :");
        assert_eq!(fm.problems.len(), 1);
        assert!(fm.problems[0].starts_with("invalid YAML"));
    }

    #[test]
    fn title_from_first_heading_else_folder() {
        assert_eq!(title("text\n# Hello\n", "001-x"), "Hello");
        assert_eq!(title("no heading", "001-x"), "001-x");
    }
}
