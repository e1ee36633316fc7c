//! The format-preserving metadata editor.
//!
//! It edits only the frontmatter lines of the top-level keys a change touches and leaves
//! every other byte as it was: key order, comments, quoting, list style (flow or block),
//! line endings, and the body. A status change follows LeanSpec's own updater:
//! `updated_at` = now, `{status, at}` appended to `transitions`, `completed_at` = now when
//! the spec becomes complete.
//!
//! Why line surgery and not a YAML library: the keys we edit are all top-level scalars or
//! lists of scalars, and the lossless YAML crates we looked at (yaml-edit) are young and
//! list known round-trip failures. Instead every edit is checked before it is returned:
//! the new frontmatter is re-parsed with the same YAML parser as the scanner, the touched
//! keys must hold exactly the requested values and every other key must be unchanged.
//! If that check fails the edit is refused ([`EditError::Unsafe`]) and nothing is written.

use super::beneath::{OpenError, SpecsDir};
use super::frontmatter::{self, layout, scalar_string};
use super::load::{Readme, read_capped};
use super::model::{Priority, Status};
use super::{hash::sha256_hex, write::write_atomic_in};
use serde_yaml::{Mapping, Value};
use std::path::PathBuf;

/// A metadata change. Empty fields leave their key alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataChange {
    /// New status.
    pub status: Option<Status>,
    /// New priority.
    pub priority: Option<Priority>,
    /// Replace the tag set (kept tags stay in file order; new ones are appended).
    pub set_tags: Option<Vec<String>>,
    /// Tags to add (appended, duplicates ignored).
    pub add_tags: Vec<String>,
    /// Tags to remove.
    pub remove_tags: Vec<String>,
    /// Dependencies to add.
    pub add_depends_on: Vec<String>,
    /// Dependencies to remove.
    pub remove_depends_on: Vec<String>,
    /// New parent; an empty string removes the key.
    pub parent: Option<String>,
    /// New assignee; an empty string removes the key.
    pub assignee: Option<String>,
}

impl MetadataChange {
    /// True when the change asks for nothing.
    pub fn is_empty(&self) -> bool {
        *self == MetadataChange::default()
    }
}

/// Why an edit was refused. In every case the file was left untouched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// The file could not be read or written.
    #[error("cannot access {}: {source}", path.display())]
    Io {
        /// The spec file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not something the editor may touch (too large, binary, symlink).
    #[error("refusing to edit {}: {reason}", path.display())]
    NotEditable {
        /// The spec file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The spec has no (closed) frontmatter to edit.
    #[error("the spec has no frontmatter to edit: add a --- block holding status and created")]
    NoFrontmatter,
    /// The frontmatter is not valid YAML, so an edit could not be checked.
    #[error("the frontmatter is not valid YAML ({0}); fix it by hand first")]
    InvalidFrontmatter(String),
    /// A requested value cannot be written.
    #[error("invalid {field} value {value:?}: {reason}")]
    InvalidValue {
        /// Which field.
        field: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The file changed since the editor saw it.
    #[error(
        "the spec changed since it was read (expected file hash {expected}, found {actual}); re-read and retry"
    )]
    Stale {
        /// The hash the caller expected.
        expected: String,
        /// The hash of the file now.
        actual: String,
    },
    /// The edited text did not re-parse to exactly the requested change.
    #[error("refusing an edit that would not round-trip cleanly: {0}")]
    Unsafe(String),
}

/// The result of [`apply_change`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    /// The new file text.
    pub text: String,
    /// Top-level keys whose lines changed, in the order they were edited.
    pub changed_keys: Vec<&'static str>,
}

/// The result of [`edit_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditOutcome {
    /// SHA-256 of the file before.
    pub old_file_hash: String,
    /// SHA-256 of the file after (equal to `old_file_hash` if nothing changed).
    pub new_file_hash: String,
    /// Top-level keys whose lines changed.
    pub changed_keys: Vec<&'static str>,
}

/// Reads spec `name`'s README.md beneath `specs`, applies `change` and writes the result
/// atomically. The folder is opened with no symlink on the way and the file is read and
/// replaced relative to that folder (`beneath.rs` rule 2): nothing outside the specs
/// folder is read or written, whatever is swapped in meanwhile.
///
/// `expected_file_hash`, when given, must equal the SHA-256 of the file right now; this
/// is the guard remote edits use. `now` is the RFC 3339 timestamp for LeanSpec's fields.
pub fn edit_file(
    specs: &SpecsDir,
    name: &str,
    change: &MetadataChange,
    now: &str,
    expected_file_hash: Option<&str>,
) -> Result<EditOutcome, EditError> {
    let path = specs.path().join(name).join("README.md");
    let refused = |reason: String| EditError::NotEditable {
        path: path.clone(),
        reason,
    };
    let io = |e: OpenError| match e {
        OpenError::Refused(why) => refused(why),
        OpenError::NotFound => EditError::Io {
            path: path.clone(),
            source: std::io::ErrorKind::NotFound.into(),
        },
        OpenError::Io(source) => EditError::Io {
            path: path.clone(),
            source,
        },
    };
    let dir = specs.open_dir_strict(name).map_err(io)?;
    let file = SpecsDir::open_file_in(&dir, "README.md").map_err(|e| match e {
        OpenError::Refused(_) => refused(
            "it is a symlink or not a regular file (edit the file it points to instead)".into(),
        ),
        e => io(e),
    })?;
    let bytes = match read_capped(file) {
        Readme::Bytes(b) => b,
        Readme::Refused(reason) => return Err(refused(reason)),
        Readme::NotFound => return Err(io(OpenError::NotFound)),
        Readme::Unreadable(reason) => {
            return Err(EditError::Io {
                path: path.clone(),
                source: std::io::Error::other(reason),
            });
        }
    };
    let old_file_hash = sha256_hex(&bytes);
    if let Some(expected) = expected_file_hash
        && !expected.eq_ignore_ascii_case(&old_file_hash)
    {
        return Err(EditError::Stale {
            expected: expected.to_string(),
            actual: old_file_hash,
        });
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| EditError::NotEditable {
        path: path.to_path_buf(),
        reason: "it is not UTF-8 text".into(),
    })?;
    let edited = apply_change(text, change, now)?;
    if edited.changed_keys.is_empty() {
        return Ok(EditOutcome {
            new_file_hash: old_file_hash.clone(),
            old_file_hash,
            changed_keys: Vec::new(),
        });
    }
    write_atomic_in(&dir, "README.md", edited.text.as_bytes()).map_err(|source| EditError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(EditOutcome {
        old_file_hash,
        new_file_hash: sha256_hex(edited.text.as_bytes()),
        changed_keys: edited.changed_keys,
    })
}

const MAX_VALUE_CHARS: usize = 200;

fn check_value(field: &'static str, value: &str, allow_empty: bool) -> Result<(), EditError> {
    let bad = |reason| EditError::InvalidValue {
        field,
        value: value.chars().take(MAX_VALUE_CHARS).collect(),
        reason,
    };
    if value.trim().is_empty() && !allow_empty {
        return Err(bad("it is empty"));
    }
    if value.trim() != value {
        return Err(bad("it starts or ends with whitespace"));
    }
    if value.chars().any(char::is_control) {
        return Err(bad("it contains a control character or line break"));
    }
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(bad("it is longer than 200 characters"));
    }
    Ok(())
}

/// Applies `change` to a spec file's text. Pure; see the module docs for the guarantees.
pub fn apply_change(text: &str, change: &MetadataChange, now: &str) -> Result<Edited, EditError> {
    for t in change
        .set_tags
        .iter()
        .flatten()
        .chain(&change.add_tags)
        .chain(&change.remove_tags)
    {
        check_value("tag", t, false)?;
    }
    for d in change
        .add_depends_on
        .iter()
        .chain(&change.remove_depends_on)
    {
        check_value("depends_on", d, false)?;
    }
    if let Some(p) = &change.parent {
        check_value("parent", p, true)?;
    }
    if let Some(a) = &change.assignee {
        check_value("assignee", a, true)?;
    }
    check_value("timestamp", now, false)?;

    let l = layout(text);
    let Some(yaml_range) = l.yaml.clone() else {
        return Err(EditError::NoFrontmatter);
    };
    let yaml = &text[yaml_range.clone()];
    let old_map = parse_mapping(yaml).map_err(EditError::InvalidFrontmatter)?;
    let old = frontmatter::parse(yaml);

    let mut fm = Lines::new(yaml);
    let mut changed: Vec<&'static str> = Vec::new();
    let mut expect: Vec<(&'static str, Value)> = Vec::new();

    if let Some(status) = change.status
        && old.status != Some(status)
    {
        fm.set_scalar("status", status.as_str(), &["priority"], Anchor::Start);
        changed.push("status");
        expect.push(("status", Value::String(status.as_str().into())));
        fm.set_scalar("updated_at", now, &["created_at", "created"], Anchor::End);
        changed.push("updated_at");
        expect.push(("updated_at", Value::String(now.into())));
        if status == Status::Complete {
            fm.set_scalar("completed_at", now, &["updated_at"], Anchor::End);
            changed.push("completed_at");
            expect.push(("completed_at", Value::String(now.into())));
        }
        fm.append_transition(status.as_str(), now);
        changed.push("transitions");
    }
    if let Some(priority) = change.priority
        && old.priority != Some(priority)
    {
        fm.set_scalar("priority", priority.as_str(), &["status"], Anchor::Start);
        changed.push("priority");
        expect.push(("priority", Value::String(priority.as_str().into())));
    }
    let new_tags = merged(
        &old.tags,
        change.set_tags.as_deref(),
        &change.add_tags,
        &change.remove_tags,
    );
    if new_tags != old.tags {
        fm.set_list("tags", &new_tags, &["priority", "status"]);
        changed.push("tags");
        expect.push(("tags", string_seq(&new_tags)));
    }
    let new_deps = merged(
        &old.depends_on,
        None,
        &change.add_depends_on,
        &change.remove_depends_on,
    );
    if new_deps != old.depends_on {
        fm.set_list("depends_on", &new_deps, &["tags", "priority", "status"]);
        changed.push("depends_on");
        expect.push(("depends_on", string_seq(&new_deps)));
    }
    for (key, value) in [("parent", &change.parent), ("assignee", &change.assignee)] {
        let Some(value) = value else { continue };
        if old.string(key) == Some(value.as_str())
            || (value.is_empty() && old.string(key).is_none())
        {
            continue;
        }
        if value.is_empty() {
            fm.remove_key(key);
            expect.push((key, Value::Null));
        } else {
            fm.set_scalar(key, value, &[], Anchor::End);
            expect.push((key, Value::String(value.clone())));
        }
        changed.push(key);
    }

    if changed.is_empty() {
        return Ok(Edited {
            text: text.to_string(),
            changed_keys: changed,
        });
    }
    let new_yaml = fm.join();
    verify(
        &old_map,
        &new_yaml,
        &expect,
        &old.transitions,
        change.status,
        now,
    )?;
    let mut out = String::with_capacity(text.len() + 128);
    out.push_str(&text[..yaml_range.start]);
    out.push_str(&new_yaml);
    out.push_str(&text[yaml_range.end..]);
    Ok(Edited {
        text: out,
        changed_keys: changed,
    })
}

/// old − removed (− not in `set`) + added (+ new in `set`), order kept, no duplicates.
fn merged(
    old: &[String],
    set: Option<&[String]>,
    add: &[String],
    remove: &[String],
) -> Vec<String> {
    let mut out: Vec<String> = old
        .iter()
        .filter(|t| !remove.contains(t) && set.is_none_or(|s| s.contains(t)))
        .cloned()
        .collect();
    for t in set.unwrap_or_default().iter().chain(add) {
        if !out.contains(t) && !remove.contains(t) {
            out.push(t.clone());
        }
    }
    out
}

fn string_seq(items: &[String]) -> Value {
    Value::Sequence(items.iter().map(|s| Value::String(s.clone())).collect())
}

fn parse_mapping(yaml: &str) -> Result<Mapping, String> {
    match serde_yaml::from_str::<Value>(yaml) {
        Ok(Value::Mapping(m)) => Ok(m),
        Ok(Value::Null) => Ok(Mapping::new()),
        Ok(_) => Err("the frontmatter is not a mapping of keys".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Lists compare by their string form (so `[45]` equals `["45"]`: the scanner reads both
/// the same way); everything else compares exactly.
fn same_value(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Sequence(x)), Some(Value::Sequence(y))) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(p, q)| scalar_string(p) == scalar_string(q))
        }
        (None, Some(Value::Null)) | (Some(Value::Null), None) => true,
        _ => a == b,
    }
}

fn verify(
    old: &Mapping,
    new_yaml: &str,
    expect: &[(&'static str, Value)],
    old_transitions: &[frontmatter::Transition],
    status: Option<Status>,
    now: &str,
) -> Result<(), EditError> {
    let new = parse_mapping(new_yaml)
        .map_err(|e| EditError::Unsafe(format!("edited frontmatter does not parse: {e}")))?;
    let touched = |k: &str| expect.iter().any(|(e, _)| *e == k) || k == "transitions";
    for key in old.keys().chain(new.keys()) {
        let Some(name) = key.as_str() else { continue };
        if touched(name) {
            continue;
        }
        if !same_value(old.get(key), new.get(key)) {
            return Err(EditError::Unsafe(format!("key {name:?} would change")));
        }
    }
    for (key, want) in expect {
        let got = new.get(*key);
        let ok = match want {
            Value::Null => got.is_none() || got == Some(&Value::Null),
            Value::String(s) => got.and_then(scalar_string).as_deref() == Some(s.as_str()),
            other => same_value(got, Some(other)),
        };
        if !ok {
            return Err(EditError::Unsafe(format!(
                "key {key:?} would not hold the new value"
            )));
        }
    }
    let new_fm = frontmatter::parse(new_yaml);
    let old_len = old_transitions.len();
    let appended = status.is_some_and(|_| expect.iter().any(|(k, _)| *k == "status"));
    let want_len = old_len + usize::from(appended);
    let transitions_ok = new_fm.transitions.len() == want_len
        && new_fm.transitions[..old_len] == *old_transitions
        && (!appended
            || new_fm
                .transitions
                .last()
                .is_some_and(|t| t.status == status && t.at.as_deref() == Some(now)));
    if !transitions_ok {
        return Err(EditError::Unsafe(
            "transitions would not gain exactly one entry".into(),
        ));
    }
    Ok(())
}

/// Where to put a key that is not there yet, when none of its neighbours is.
#[derive(Clone, Copy)]
enum Anchor {
    Start,
    End,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    Plain,
    Single,
    Double,
}

/// The frontmatter as lines (split on `\n`, so each may end in `\r`); joining with `\n`
/// gives back the exact text. Line 0 is the rest of the opening `---` line.
struct Lines {
    lines: Vec<String>,
    cr: bool,
}

/// A scalar token found in a line: its byte range and its quoting.
struct Token {
    start: usize,
    end: usize,
    quote: Quote,
}

impl Lines {
    fn new(yaml: &str) -> Lines {
        Lines {
            lines: yaml.split('\n').map(str::to_string).collect(),
            cr: yaml.contains("\r\n"),
        }
    }

    fn join(&self) -> String {
        self.lines.join("\n")
    }

    fn eol(&self) -> &'static str {
        if self.cr { "\r" } else { "" }
    }

    /// The top-level key a line opens, if it opens one.
    fn key_of(line: &str) -> Option<&str> {
        let first = line.chars().next()?;
        if first.is_whitespace() || matches!(first, '#' | '-' | '[' | '{' | '?') {
            return None;
        }
        let (key, quoted) = match first {
            '\'' | '"' => {
                let end = line[1..].find(first)? + 1;
                (&line[1..end], true)
            }
            _ => {
                let colon = line.find(':')?;
                (&line[..colon], false)
            }
        };
        let after = if quoted {
            &line[key.len() + 2..]
        } else {
            &line[key.len()..]
        };
        let rest = after.strip_prefix(':')?;
        (rest.is_empty() || rest.starts_with([' ', '\t', '\r'])).then_some(key.trim_end())
    }

    /// The line range `[start, end)` of a top-level key: its line and the lines after it
    /// that are indented or are block-sequence items.
    fn span(&self, key: &str) -> Option<(usize, usize)> {
        let start = (1..self.lines.len()).find(|&i| Self::key_of(&self.lines[i]) == Some(key))?;
        let mut end = start + 1;
        while end < self.lines.len() && self.lines[end].starts_with([' ', '\t', '-']) {
            end += 1;
        }
        Some((start, end))
    }

    /// The value token on a `key: value  # comment` line, after byte `from`.
    fn token(line: &str, from: usize) -> Token {
        let bytes = line.as_bytes();
        let mut start = from;
        while start < bytes.len() && (bytes[start] == b' ' || bytes[start] == b'\t') {
            start += 1;
        }
        let quote = match bytes.get(start) {
            Some(b'\'') => Quote::Single,
            Some(b'"') => Quote::Double,
            _ => Quote::Plain,
        };
        let end = match quote {
            Quote::Single => {
                let mut i = start + 1;
                loop {
                    match bytes.get(i) {
                        None => break bytes.len(),
                        Some(b'\'') if bytes.get(i + 1) == Some(&b'\'') => i += 2,
                        Some(b'\'') => break i + 1,
                        Some(_) => i += 1,
                    }
                }
            }
            Quote::Double => {
                let mut i = start + 1;
                loop {
                    match bytes.get(i) {
                        None => break bytes.len(),
                        Some(b'\\') => i += 2,
                        Some(b'"') => break i + 1,
                        Some(_) => i += 1,
                    }
                }
            }
            Quote::Plain => {
                let rest = &line[start..];
                let stop = rest
                    .find(" #")
                    .or_else(|| rest.find("\t#"))
                    .unwrap_or(rest.len());
                start + rest[..stop].trim_end_matches([' ', '\t', '\r']).len()
            }
        };
        // An escape may have stepped into a multi-byte character: move to its end.
        let mut end = end.min(line.len());
        while !line.is_char_boundary(end) {
            end += 1;
        }
        Token { start, end, quote }
    }

    fn key_colon_end(line: &str, key: &str) -> usize {
        // `key_of` trims whitespace after the key, Unicode whitespace included
        // (`status\u{a0}: x`), so the colon is searched for, never assumed to follow the
        // key: an assumed offset can fall inside a multi-byte character. Both starts are
        // character boundaries (the key is a prefix of the line, after its quote).
        let start = match line.chars().next() {
            Some('\'') | Some('"') => key.len() + 1,
            _ => key.len(),
        };
        line.get(start..)
            .and_then(|rest| rest.find(':'))
            .map_or(line.len(), |i| start + i + 1)
    }

    /// Sets a scalar, keeping the old value's quoting and any trailing comment; inserts
    /// the key after the first present neighbour (else at `anchor`) when it is missing.
    fn set_scalar(&mut self, key: &str, value: &str, after: &[&str], anchor: Anchor) {
        match self.span(key) {
            Some((start, end)) if end == start + 1 => {
                let line = &self.lines[start];
                let colon = Self::key_colon_end(line, key);
                let tok = Self::token(line, colon);
                let rendered = render(value, tok.quote);
                let mut new = String::with_capacity(line.len() + value.len());
                new.push_str(&line[..colon]);
                new.push_str(if tok.start == colon {
                    " "
                } else {
                    &line[colon..tok.start]
                });
                new.push_str(&rendered);
                new.push_str(&line[tok.end..]);
                self.lines[start] = new;
            }
            Some((start, end)) => {
                let line = format!("{key}: {}{}", render(value, Quote::Plain), self.eol());
                self.lines.splice(start..end, [line]);
            }
            None => {
                let quote = self.timestamp_quote(key);
                let line = format!("{key}: {}{}", render(value, quote), self.eol());
                let at = self.insert_point(after, anchor);
                self.lines.insert(at, line);
            }
        }
    }

    /// Quoting for a new key: timestamps follow the file's other timestamps.
    fn timestamp_quote(&self, key: &str) -> Quote {
        if !key.ends_with("_at") {
            return Quote::Plain;
        }
        for other in ["created_at", "updated_at", "completed_at"] {
            if let Some((s, e)) = self.span(other)
                && e == s + 1
            {
                let line = &self.lines[s];
                return Self::token(line, Self::key_colon_end(line, other)).quote;
            }
        }
        Quote::Single
    }

    fn insert_point(&self, after: &[&str], anchor: Anchor) -> usize {
        for a in after {
            if let Some((_, end)) = self.span(a) {
                return end;
            }
        }
        match anchor {
            Anchor::Start => 1,
            Anchor::End => {
                // Before trailing blank lines, so the closing `---` keeps its spacing.
                let mut at = self.lines.len();
                while at > 1 && self.lines[at - 1].trim().is_empty() {
                    at -= 1;
                }
                at
            }
        }
    }

    fn remove_key(&mut self, key: &str) {
        if let Some((start, end)) = self.span(key) {
            self.lines.drain(start..end);
        }
    }

    /// The item prefix (`"  - "`) and quoting of block lists in the file, if any.
    fn block_style(&self, prefer: &str) -> Option<(String, Quote)> {
        for key in [prefer, "tags", "depends_on", "transitions"] {
            if let Some((s, e)) = self.span(key) {
                for line in &self.lines[s + 1..e] {
                    let trimmed = line.trim_start();
                    if let Some(after) = trimmed.strip_prefix("- ") {
                        let prefix_len = line.len() - after.len();
                        let quote = Self::token(line, prefix_len).quote;
                        return Some((line[..prefix_len].to_string(), quote));
                    }
                }
            }
        }
        None
    }

    /// Sets a list of strings, keeping flow or block style, item quoting, comments and
    /// the lines of items that stay.
    fn set_list(&mut self, key: &str, items: &[String], after: &[&str]) {
        let eol = self.eol();
        let Some((start, end)) = self.span(key) else {
            let at = self.insert_point(after, Anchor::End);
            let new = match self.block_style(key) {
                Some((prefix, quote)) if !items.is_empty() => {
                    let mut v = vec![format!("{key}:{eol}")];
                    v.extend(
                        items
                            .iter()
                            .map(|i| format!("{prefix}{}{eol}", render(i, quote))),
                    );
                    v
                }
                _ => vec![format!(
                    "{key}: {}{eol}",
                    flow(items, Quote::Plain, ", ", false)
                )],
            };
            self.lines.splice(at..at, new);
            return;
        };
        let line = self.lines[start].clone();
        let colon = Self::key_colon_end(&line, key);
        let value = line[colon..].trim_start();
        if value.starts_with('[') {
            // Flow list on one line (or spilling over: then it is rewritten on one line).
            let open = colon + (line[colon..].len() - value.len());
            let close = if end == start + 1 {
                line.rfind(']').filter(|&c| c > open)
            } else {
                None
            };
            let inner = close.map_or("", |c| &line[open + 1..c]);
            let quote = if inner.contains('"') {
                Quote::Double
            } else if inner.contains('\'') {
                Quote::Single
            } else {
                Quote::Plain
            };
            let sep = if inner.contains(", ") || !inner.contains(',') {
                ", "
            } else {
                ","
            };
            let padded = inner.starts_with(' ') && inner.ends_with(' ');
            let tail = close.map_or(eol.to_string(), |c| line[c + 1..].to_string());
            let new = format!("{}{}{tail}", &line[..open], flow(items, quote, sep, padded));
            self.lines.splice(start..end, [new]);
            return;
        }
        // Block list (or an empty value, which we fill as a block list).
        let mut kept: Vec<String> = Vec::new();
        let mut old_items = Vec::new();
        let mut style: Option<(String, Quote)> = None;
        for l in &self.lines[start + 1..end] {
            let trimmed = l.trim_start();
            if let Some(after) = trimmed
                .strip_prefix("- ")
                .or_else(|| (trimmed == "-").then_some(""))
            {
                let prefix_len = l.len() - after.len();
                let tok = Self::token(l, prefix_len);
                let item: Option<String> = serde_yaml::from_str::<Value>(&l[tok.start..tok.end])
                    .ok()
                    .as_ref()
                    .and_then(scalar_string);
                if style.is_none() {
                    style = Some((l[..prefix_len].to_string(), tok.quote));
                }
                match item {
                    Some(i) if items.contains(&i) && !old_items.contains(&i) => {
                        old_items.push(i);
                        kept.push(l.clone());
                    }
                    Some(_) => {}
                    None => kept.push(l.clone()),
                }
            } else {
                kept.push(l.clone());
            }
        }
        if items.is_empty() {
            let new = format!("{key}: []{eol}");
            self.lines.splice(start..end, [new]);
            return;
        }
        let (prefix, quote) = style
            .or_else(|| self.block_style(key))
            .unwrap_or(("  - ".into(), Quote::Plain));
        let mut first = line.clone();
        if !value.is_empty() && !value.starts_with('#') && value != "\r" {
            first = format!("{key}:{eol}");
        }
        let mut new = vec![first];
        new.extend(kept);
        for item in items.iter().filter(|i| !old_items.contains(i)) {
            new.push(format!("{prefix}{}{eol}", render(item, quote)));
        }
        self.lines.splice(start..end, new);
    }

    /// Appends `{status, at}` to `transitions`, copying the last entry's layout.
    fn append_transition(&mut self, status: &str, at: &str) {
        let eol = self.eol();
        let at_quote = self.timestamp_quote("transitions_at");
        match self.span("transitions") {
            Some((start, end)) if end > start + 1 => {
                // Find the last entry's dash line and the indentation of its next key.
                let dash = (start + 1..end)
                    .rev()
                    .find(|&i| self.lines[i].trim_start().starts_with("- "));
                let (prefix, inner, quote) = match dash {
                    Some(d) => {
                        let line = &self.lines[d];
                        let prefix_len = line.len() - line.trim_start().len() + 2;
                        let inner = " ".repeat(prefix_len);
                        let quote = (d + 1..end)
                            .find_map(|i| {
                                let l = &self.lines[i];
                                let t = l.trim_start().strip_prefix("at:")?;
                                Some(Self::token(l, l.len() - t.len()).quote)
                            })
                            .or_else(|| {
                                let t = line.trim_start()[2..].strip_prefix("at:")?;
                                Some(Self::token(line, line.len() - t.len()).quote)
                            })
                            .unwrap_or(at_quote);
                        (line[..prefix_len].to_string(), inner, quote)
                    }
                    None => ("  - ".into(), "    ".into(), at_quote),
                };
                let new = [
                    format!("{prefix}status: {status}{eol}"),
                    format!("{inner}at: {}{eol}", render(at, quote)),
                ];
                self.lines.splice(end..end, new);
            }
            existing => {
                let (prefix, _) = self
                    .block_style("transitions")
                    .unwrap_or(("  - ".into(), Quote::Plain));
                let inner = " ".repeat(prefix.len());
                let new = vec![
                    format!("transitions:{eol}"),
                    format!("{prefix}status: {status}{eol}"),
                    format!("{inner}at: {}{eol}", render(at, at_quote)),
                ];
                match existing {
                    Some((start, end)) => {
                        self.lines.splice(start..end, new);
                    }
                    None => {
                        let at = self.insert_point(&[], Anchor::End);
                        self.lines.splice(at..at, new);
                    }
                }
            }
        }
    }
}

fn flow(items: &[String], quote: Quote, sep: &str, padded: bool) -> String {
    let inner: Vec<String> = items.iter().map(|i| render_in_flow(i, quote)).collect();
    if padded && !items.is_empty() {
        format!("[ {} ]", inner.join(sep))
    } else {
        format!("[{}]", inner.join(sep))
    }
}

fn render_in_flow(value: &str, quote: Quote) -> String {
    // Flow context forbids more plain characters than block context.
    if quote == Quote::Plain && value.contains([',', '[', ']', '{', '}']) {
        return render(value, Quote::Single);
    }
    render(value, quote)
}

/// A value in the wanted quoting; plain falls back to single quotes when the plain form
/// would not read back as the same string.
fn render(value: &str, quote: Quote) -> String {
    match quote {
        Quote::Single => format!("'{}'", value.replace('\'', "''")),
        Quote::Double => format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\"")),
        Quote::Plain => {
            let safe = !value.is_empty()
                && !value.starts_with(|c: char| "!&*>|%@`'\"#{}[],?:- ".contains(c))
                && !value.contains(": ")
                && !value.contains(" #")
                && !value.ends_with(':')
                && matches!(serde_yaml::from_str::<Value>(value), Ok(Value::String(ref s)) if s == value);
            if safe {
                value.to_string()
            } else {
                render(value, Quote::Single)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-23T10:00:00.000Z";

    fn edit(text: &str, change: MetadataChange) -> String {
        match apply_change(text, &change, NOW) {
            Ok(e) => e.text,
            Err(e) => panic!("edit failed: {e}"),
        }
    }

    /// Issue 11: a key followed by Unicode whitespace before its colon made the editor
    /// slice inside a character (a panic any member's edit could trigger).
    #[test]
    fn keys_followed_by_unicode_whitespace_are_edited_without_panic() {
        for gap in ["\u{a0}", "\u{3000}", "\u{2003}\t", " ", "\u{feff}"] {
            let t = format!(
                "---\nstatus{gap}: planned\npriority{gap}: low\ntags{gap}: [a]\ncreated_at{gap}: '2025-01-01T00:00:00Z'\n---\n\n# T\n"
            );
            let change = MetadataChange {
                status: Some(Status::InProgress),
                priority: Some(Priority::High),
                add_tags: vec!["b".into()],
                ..Default::default()
            };
            // Either an edit that re-parses with the new values, or a clear refusal.
            if let Ok(e) = apply_change(&t, &change, NOW) {
                let layout = crate::spec::layout(&e.text);
                let fm = crate::spec::parse_frontmatter(&e.text[layout.yaml.expect("frontmatter")]);
                assert_eq!(
                    fm.status,
                    Some(Status::InProgress),
                    "gap {gap:?}: {}",
                    e.text
                );
                assert_eq!(fm.priority, Some(Priority::High), "gap {gap:?}");
                assert!(fm.tags.contains(&"b".to_string()), "gap {gap:?}");
            }
        }
    }

    #[test]
    fn status_change_follows_leanspec_updater() {
        let t = "---\nstatus: planned # keep me\ncreated: '2025-01-01'\ntags: [a, b]\ncreated_at: '2025-01-01T00:00:00Z'\n---\n\n# T\nbody\n";
        let out = edit(
            t,
            MetadataChange {
                status: Some(Status::Complete),
                ..Default::default()
            },
        );
        assert_eq!(
            out,
            "---\nstatus: complete # keep me\ncreated: '2025-01-01'\ntags: [a, b]\ncreated_at: '2025-01-01T00:00:00Z'\nupdated_at: '2026-11-23T10:00:00.000Z'\ncompleted_at: '2026-11-23T10:00:00.000Z'\ntransitions:\n  - status: complete\n    at: '2026-11-23T10:00:00.000Z'\n---\n\n# T\nbody\n"
        );
    }

    #[test]
    fn transitions_copy_the_last_entry_layout() {
        let t = "---\nstatus: planned\ncreated: 2025-01-01\ntransitions:\n- status: planned\n  at: 2026-01-16T06:55:18.893885Z\n---\n# T\n";
        let out = edit(
            t,
            MetadataChange {
                status: Some(Status::InProgress),
                ..Default::default()
            },
        );
        assert!(out.ends_with("- status: planned\n  at: 2026-01-16T06:55:18.893885Z\n- status: in-progress\n  at: 2026-11-23T10:00:00.000Z\n---\n# T\n"), "{out}");
    }

    #[test]
    fn block_tags_keep_their_lines_and_prefix() {
        let t = "---\nstatus: draft\ncreated: 2025-01-01\ntags:\n  - \"one\"   # first\n  - two\n---\n# T\n";
        let out = edit(
            t,
            MetadataChange {
                add_tags: vec!["three".into()],
                remove_tags: vec!["two".into()],
                ..Default::default()
            },
        );
        assert_eq!(
            out,
            "---\nstatus: draft\ncreated: 2025-01-01\ntags:\n  - \"one\"   # first\n  - \"three\"\n---\n# T\n"
        );
    }

    #[test]
    fn flow_tags_stay_flow_with_their_quoting() {
        let t = "---\nstatus: draft\ncreated: 2025-01-01\ntags: ['a', 'b'] # c\n---\n# T\n";
        let out = edit(
            t,
            MetadataChange {
                set_tags: Some(vec!["b".into(), "x y".into()]),
                ..Default::default()
            },
        );
        assert_eq!(
            out,
            "---\nstatus: draft\ncreated: 2025-01-01\ntags: ['b', 'x y'] # c\n---\n# T\n"
        );
    }

    #[test]
    fn crlf_and_body_bytes_survive() {
        let t = "---\r\nstatus: draft\r\ncreated: 2025-01-01\r\n---\r\n\r\n# T\r\n";
        let out = edit(
            t,
            MetadataChange {
                priority: Some(Priority::High),
                assignee: Some("ann".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            out,
            "---\r\nstatus: draft\r\npriority: high\r\ncreated: 2025-01-01\r\nassignee: ann\r\n---\r\n\r\n# T\r\n"
        );
    }

    #[test]
    fn values_that_need_quotes_get_them() {
        let t = "---\nstatus: draft\ncreated: 2025-01-01\ntags: [a]\n---\n";
        let out = edit(
            t,
            MetadataChange {
                add_tags: vec!["yes".into(), "a: b".into(), "1.5".into()],
                ..Default::default()
            },
        );
        let fm = frontmatter::parse(&out[layout(&out).yaml.unwrap()]);
        assert_eq!(fm.tags, ["a", "yes", "a: b", "1.5"]);
    }

    #[test]
    fn clearing_a_key_removes_its_line_only() {
        let t = "---\nstatus: draft\nparent: 001-x\ncreated: 2025-01-01\n---\n";
        let out = edit(
            t,
            MetadataChange {
                parent: Some(String::new()),
                ..Default::default()
            },
        );
        assert_eq!(out, "---\nstatus: draft\ncreated: 2025-01-01\n---\n");
    }

    #[test]
    fn bad_values_and_bad_files_are_refused() {
        let t = "---\nstatus: draft\ncreated: 2025-01-01\n---\n";
        let e = apply_change(
            t,
            &MetadataChange {
                add_tags: vec!["a\nb".into()],
                ..Default::default()
            },
            NOW,
        );
        assert!(matches!(e, Err(EditError::InvalidValue { .. })));
        let e = apply_change(
            "# no frontmatter",
            &MetadataChange {
                priority: Some(Priority::Low),
                ..Default::default()
            },
            NOW,
        );
        assert!(matches!(e, Err(EditError::NoFrontmatter)));
        let e = apply_change(
            "---\nstatus: [\n---\n",
            &MetadataChange {
                priority: Some(Priority::Low),
                ..Default::default()
            },
            NOW,
        );
        assert!(matches!(e, Err(EditError::InvalidFrontmatter(_))));
    }

    #[test]
    fn no_op_returns_the_same_text() {
        let t = "---\nstatus: draft\ncreated: 2025-01-01\ntags: [a]\n---\n";
        let e = apply_change(
            t,
            &MetadataChange {
                status: Some(Status::Draft),
                add_tags: vec!["a".into()],
                ..Default::default()
            },
            NOW,
        )
        .unwrap();
        assert!(e.changed_keys.is_empty());
        assert_eq!(e.text, t);
    }
}

#[cfg(test)]
mod style_tests {
    use super::*;

    #[test]
    fn new_transitions_follow_the_file_list_style() {
        let t = "---\nstatus: planned\ncreated: 2025-01-01\ntags:\n- a\n- b\n---\n# T\n";
        let out = apply_change(
            t,
            &MetadataChange {
                status: Some(Status::Archived),
                ..Default::default()
            },
            "2026-01-01T00:00:00.000Z",
        )
        .unwrap()
        .text;
        assert_eq!(
            out,
            "---\nstatus: archived\ncreated: 2025-01-01\nupdated_at: '2026-01-01T00:00:00.000Z'\ntags:\n- a\n- b\ntransitions:\n- status: archived\n  at: '2026-01-01T00:00:00.000Z'\n---\n# T\n"
        );
    }

    #[test]
    fn empty_frontmatter_and_empty_lists_are_filled() {
        let t = "---\nstatus: draft\ncreated: 2025-01-01\ntags: []\ndepends_on:\n---\nbody";
        let out = apply_change(
            t,
            &MetadataChange {
                add_tags: vec!["x".into()],
                add_depends_on: vec!["001-a".into()],
                ..Default::default()
            },
            "2026-01-01T00:00:00.000Z",
        )
        .unwrap()
        .text;
        assert_eq!(
            out,
            "---\nstatus: draft\ncreated: 2025-01-01\ntags: [x]\ndepends_on:\n  - 001-a\n---\nbody"
        );
    }
}
