//! LeanSpec's search language, parsed into a [`Query`] and printed back.
//!
//! - words match names, titles and tags (case-insensitive); `"a phrase"` matches as a
//!   whole; `word~` tolerates a typo or two;
//! - `field:value` with `status`, `priority`, `tag`, `assignee`, `machine`, `project`,
//!   `title`, `name`, `parent`, `depends_on`, `created`; `created:>2025-11-01`,
//!   `created:<=2025-12`, `created:2025-11-01..2025-11-15`; values may be quoted;
//! - `AND` (or nothing: juxtaposition), `OR`, `NOT`, parentheses; `NOT` binds tightest,
//!   then `AND`, then `OR`.
//!
//! Invariant (fuzzed): every query the parser accepts prints ([`fmt::Display`]) to a text
//! that parses to the same query.

use std::fmt;

/// Longest query accepted, in bytes of its printed (canonical) form: measured on the
/// printed form so that every accepted query's printed form is accepted too (a typed
/// query can print longer: quotes, `AND`s).
pub const MAX_QUERY_BYTES: usize = 4096;
/// Longest text parsed at all.
const MAX_INPUT_BYTES: usize = 4 * MAX_QUERY_BYTES;
/// Deepest nesting of parentheses and `NOT`s accepted.
const MAX_DEPTH: usize = 64;

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// One condition.
    Term(Term),
    /// Every part (two or more, none itself an `And`).
    And(Vec<Query>),
    /// Any part (two or more, none itself an `Or`).
    Or(Vec<Query>),
    /// Not this.
    Not(Box<Query>),
}

/// One condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// Free text over names, titles and tags.
    Text {
        /// The text (not empty).
        text: String,
        /// Written in quotes: matched as a whole, never fuzzy.
        phrase: bool,
        /// Written `word~`: a typo or two tolerated.
        fuzzy: bool,
    },
    /// `field:value`.
    Field {
        /// Which field.
        field: Field,
        /// How the value compares.
        cmp: Cmp,
        /// The value (not empty).
        value: String,
    },
}

/// The fields a query can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `status:`
    Status,
    /// `priority:`
    Priority,
    /// `tag:`
    Tag,
    /// `assignee:`
    Assignee,
    /// `machine:` (label, id or short id)
    Machine,
    /// `project:` (name or id)
    Project,
    /// `title:` (contains)
    Title,
    /// `name:` (contains, or the number)
    Name,
    /// `parent:`
    Parent,
    /// `depends_on:`
    DependsOn,
    /// `created:` (a date, or a prefix of one)
    Created,
}

impl Field {
    const ALL: [Field; 11] = [
        Field::Status,
        Field::Priority,
        Field::Tag,
        Field::Assignee,
        Field::Machine,
        Field::Project,
        Field::Title,
        Field::Name,
        Field::Parent,
        Field::DependsOn,
        Field::Created,
    ];

    /// As written in a query.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Status => "status",
            Field::Priority => "priority",
            Field::Tag => "tag",
            Field::Assignee => "assignee",
            Field::Machine => "machine",
            Field::Project => "project",
            Field::Title => "title",
            Field::Name => "name",
            Field::Parent => "parent",
            Field::DependsOn => "depends_on",
            Field::Created => "created",
        }
    }

    fn parse(s: &str) -> Option<Field> {
        let s = s.to_ascii_lowercase();
        let s = match s.as_str() {
            "tags" => "tag",
            "depends" | "depends-on" | "dependson" => "depends_on",
            other => other,
        };
        Field::ALL.into_iter().find(|f| f.as_str() == s)
    }

    fn orders(self) -> bool {
        self == Field::Created
    }
}

/// How a field's value compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmp {
    /// Equal (for text fields: as each field defines).
    Eq,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `from..to`, both ends included; the value is `from`, this is `to`.
    Range(String),
}

/// Why a query was refused: what and where (a byte offset into the query).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {at})")]
pub struct QueryError {
    /// What is wrong, and what to write instead.
    pub message: String,
    /// Byte offset.
    pub at: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Open,
    Close,
}

fn tokens(input: &str) -> Result<Vec<(Token, usize)>, QueryError> {
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push((Token::Open, at));
            }
            ')' => {
                chars.next();
                out.push((Token::Close, at));
            }
            '"' => {
                chars.next();
                let text = quoted(&mut chars, at)?;
                out.push((Token::Quoted(text), at));
            }
            _ => {
                // A word runs to whitespace or a parenthesis; a quote inside it opens a
                // quoted value (`title:"two words"`), kept as one word.
                let mut word = String::new();
                while let Some(&(qat, c)) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' {
                        break;
                    }
                    chars.next();
                    if c == '"' {
                        word.push('"');
                        let inner = quoted(&mut chars, qat)?;
                        word.push_str(&escape(&inner));
                        word.push('"');
                    } else {
                        word.push(c);
                    }
                }
                out.push((Token::Word(word), at));
            }
        }
    }
    Ok(out)
}

/// The rest of a quoted string (the opening quote read), `\"` and `\\` escaped.
fn quoted(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    at: usize,
) -> Result<String, QueryError> {
    let mut text = String::new();
    while let Some((_, c)) = chars.next() {
        match c {
            '"' => return Ok(text),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => text.push(e),
                Some((eat, _)) => {
                    return Err(QueryError {
                        message: "only \\\" and \\\\ are escapes in quotes".into(),
                        at: eat,
                    });
                }
                None => break,
            },
            c => text.push(c),
        }
    }
    Err(QueryError {
        message: "a quote is not closed".into(),
        at,
    })
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Parses a query. Empty text is an error (there is nothing to search for).
pub fn parse(input: &str) -> Result<Query, QueryError> {
    let too_long = || QueryError {
        message: format!("the query is longer than {MAX_QUERY_BYTES} bytes"),
        at: input.len().min(MAX_QUERY_BYTES),
    };
    if input.len() > MAX_INPUT_BYTES {
        return Err(too_long());
    }
    let toks = tokens(input)?;
    let mut p = Parser {
        toks,
        pos: 0,
        end: input.len(),
    };
    if p.toks.is_empty() {
        return Err(QueryError {
            message: "the query is empty: give words or field:value conditions".into(),
            at: 0,
        });
    }
    let q = p.or(0)?;
    if let Some((_, at)) = p.toks.get(p.pos) {
        return Err(QueryError {
            message: "unexpected ')'".into(),
            at: *at,
        });
    }
    if q.to_string().len() > MAX_QUERY_BYTES {
        return Err(too_long());
    }
    Ok(q)
}

struct Parser {
    toks: Vec<(Token, usize)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(_, at)| *at)
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w == k)
    }

    fn or(&mut self, depth: usize) -> Result<Query, QueryError> {
        let mut parts = vec![self.and(depth)?];
        while self.keyword("OR") {
            self.pos += 1;
            parts.push(self.and(depth)?);
        }
        Ok(join(parts, Query::Or))
    }

    fn and(&mut self, depth: usize) -> Result<Query, QueryError> {
        let mut parts = vec![self.not(depth)?];
        loop {
            if self.keyword("AND") {
                self.pos += 1;
            } else if matches!(self.peek(), None | Some(Token::Close)) || self.keyword("OR") {
                break;
            }
            parts.push(self.not(depth)?);
        }
        Ok(join(parts, Query::And))
    }

    fn not(&mut self, depth: usize) -> Result<Query, QueryError> {
        if depth > MAX_DEPTH {
            return Err(QueryError {
                message: format!("nested more than {MAX_DEPTH} deep"),
                at: self.at(),
            });
        }
        if self.keyword("NOT") {
            self.pos += 1;
            let inner = self.not(depth + 1)?;
            return Ok(Query::Not(Box::new(inner)));
        }
        self.atom(depth)
    }

    fn atom(&mut self, depth: usize) -> Result<Query, QueryError> {
        let at = self.at();
        let Some((tok, _)) = self.toks.get(self.pos).cloned() else {
            return Err(QueryError {
                message: "a condition is missing at the end".into(),
                at,
            });
        };
        self.pos += 1;
        match tok {
            Token::Open => {
                let inner = self.or(depth + 1)?;
                if self.peek() != Some(&Token::Close) {
                    return Err(QueryError {
                        message: "a '(' is not closed".into(),
                        at,
                    });
                }
                self.pos += 1;
                Ok(inner)
            }
            Token::Close => Err(QueryError {
                message: "unexpected ')'".into(),
                at,
            }),
            Token::Quoted(text) if text.is_empty() => Err(QueryError {
                message: "an empty phrase".into(),
                at,
            }),
            Token::Quoted(text) => Ok(Query::Term(Term::Text {
                text,
                phrase: true,
                fuzzy: false,
            })),
            Token::Word(w) if matches!(w.as_str(), "AND" | "OR") => Err(QueryError {
                message: format!("{w} needs a condition on each side"),
                at,
            }),
            Token::Word(w) => word(&w, at).map(Query::Term),
        }
    }
}

/// `parts` joined by `make`, flattening nested ones of the same kind.
fn join(parts: Vec<Query>, make: fn(Vec<Query>) -> Query) -> Query {
    let mut flat = Vec::new();
    for p in parts {
        match (make(Vec::new()), p) {
            (Query::And(_), Query::And(inner)) | (Query::Or(_), Query::Or(inner)) => {
                flat.extend(inner)
            }
            (_, p) => flat.push(p),
        }
    }
    if flat.len() == 1 {
        flat.pop().unwrap_or(Query::And(Vec::new()))
    } else {
        make(flat)
    }
}

/// A bare word: `field:value` (value maybe quoted, maybe with a comparison) or text.
fn word(w: &str, at: usize) -> Result<Term, QueryError> {
    if let Some((name, value)) = w.split_once(':')
        && !name.is_empty()
        && !name.contains('"')
    {
        let Some(field) = Field::parse(name) else {
            return Err(QueryError {
                message: format!(
                    "unknown field {name:?}; fields: {}",
                    Field::ALL.map(Field::as_str).join(", ")
                ),
                at,
            });
        };
        return field_value(field, value, at);
    }
    if w.contains('"') {
        return Err(QueryError {
            message: "a quote inside a word: quote the whole phrase".into(),
            at,
        });
    }
    let (text, fuzzy) = match w.strip_suffix('~') {
        Some(t) if !t.is_empty() => (t.to_string(), true),
        _ => (w.to_string(), false),
    };
    // A word that would not print back bare (`x..y`, `:x`, `<x`) is taken as the
    // phrase it is, so the printed query parses to the same one.
    let prints_bare = if fuzzy {
        bare_ok(&format!("{text}x"))
    } else {
        bare_ok(&text)
    };
    if !prints_bare {
        return Ok(Term::Text {
            text: w.to_string(),
            phrase: true,
            fuzzy: false,
        });
    }
    Ok(Term::Text {
        text,
        phrase: false,
        fuzzy,
    })
}

fn field_value(field: Field, raw: &str, at: usize) -> Result<Term, QueryError> {
    let (cmp, rest) = if !field.orders() {
        (Cmp::Eq, raw)
    } else if let Some(r) = raw.strip_prefix(">=") {
        (Cmp::Ge, r)
    } else if let Some(r) = raw.strip_prefix("<=") {
        (Cmp::Le, r)
    } else if let Some(r) = raw.strip_prefix('>') {
        (Cmp::Gt, r)
    } else if let Some(r) = raw.strip_prefix('<') {
        (Cmp::Lt, r)
    } else {
        (Cmp::Eq, raw)
    };
    let value = unquote(rest, at)?;
    let (value, cmp) = match (&cmp, field.orders(), value.split_once("..")) {
        (Cmp::Eq, true, Some((from, to))) if !is_quoted(rest) => {
            (from.to_string(), Cmp::Range(to.to_string()))
        }
        _ => (value, cmp),
    };
    let empty = value.is_empty() || matches!(&cmp, Cmp::Range(to) if to.is_empty());
    if empty {
        return Err(QueryError {
            message: format!("{}: needs a value", field.as_str()),
            at,
        });
    }
    Ok(Term::Field { field, cmp, value })
}

fn is_quoted(s: &str) -> bool {
    s.starts_with('"')
}

/// A value as written: bare, or one quoted string (escapes as in phrases).
fn unquote(s: &str, at: usize) -> Result<String, QueryError> {
    if !is_quoted(s) {
        if s.contains('"') {
            return Err(QueryError {
                message: "a quote inside a value: quote the whole value".into(),
                at,
            });
        }
        return Ok(s.to_string());
    }
    let mut chars = s.char_indices().peekable();
    chars.next();
    let v = quoted(&mut chars, at)?;
    if chars.next().is_some() {
        return Err(QueryError {
            message: "text after a quoted value".into(),
            at,
        });
    }
    Ok(v)
}

/// Whether `s` prints bare and parses back as the same word.
fn bare_ok(s: &str) -> bool {
    !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '(' | ')' | '"' | ':' | '\\'))
        && !matches!(s, "AND" | "OR" | "NOT")
        && !s.ends_with('~')
        && !s.contains("..")
        && !s.starts_with(['<', '>'])
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = |f: &mut fmt::Formatter<'_>, v: &str| {
            if bare_ok(v) {
                f.write_str(v)
            } else {
                write!(f, "\"{}\"", escape(v))
            }
        };
        match self {
            Term::Text {
                text,
                phrase: false,
                fuzzy,
            } if bare_ok(text) || (*fuzzy && bare_ok(&format!("{text}x"))) => {
                f.write_str(text)?;
                if *fuzzy {
                    f.write_str("~")?;
                }
                Ok(())
            }
            Term::Text { text, .. } => write!(f, "\"{}\"", escape(text)),
            Term::Field {
                field,
                cmp,
                value: v,
            } => {
                write!(f, "{}:", field.as_str())?;
                match cmp {
                    Cmp::Eq => value(f, v),
                    Cmp::Gt => {
                        f.write_str(">")?;
                        value(f, v)
                    }
                    Cmp::Ge => {
                        f.write_str(">=")?;
                        value(f, v)
                    }
                    Cmp::Lt => {
                        f.write_str("<")?;
                        value(f, v)
                    }
                    Cmp::Le => {
                        f.write_str("<=")?;
                        value(f, v)
                    }
                    Cmp::Range(to) => write!(f, "{v}..{to}"),
                }
            }
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let part = |f: &mut fmt::Formatter<'_>, q: &Query| match q {
            Query::Term(_) | Query::Not(_) => write!(f, "{q}"),
            _ => write!(f, "({q})"),
        };
        match self {
            Query::Term(t) => write!(f, "{t}"),
            Query::Not(q) => {
                f.write_str("NOT ")?;
                part(f, q)
            }
            Query::And(qs) | Query::Or(qs) => {
                let sep = if matches!(self, Query::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                for (i, q) in qs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    part(f, q)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> Query {
        Query::Term(Term::Text {
            text: t.into(),
            phrase: false,
            fuzzy: false,
        })
    }

    fn field(field: Field, v: &str) -> Query {
        Query::Term(Term::Field {
            field,
            cmp: Cmp::Eq,
            value: v.into(),
        })
    }

    fn round_trip(q: &str) -> Query {
        let parsed = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let printed = parsed.to_string();
        assert_eq!(
            parse(&printed).as_ref(),
            Ok(&parsed),
            "{q} printed as {printed}"
        );
        parsed
    }

    #[test]
    fn precedence_and_grouping() {
        assert_eq!(
            round_trip("api auth OR web"),
            Query::Or(vec![
                Query::And(vec![text("api"), text("auth")]),
                text("web")
            ])
        );
        assert_eq!(
            round_trip("api AND (auth OR web) NOT deprecated"),
            Query::And(vec![
                text("api"),
                Query::Or(vec![text("auth"), text("web")]),
                Query::Not(Box::new(text("deprecated"))),
            ])
        );
        assert_eq!(
            round_trip("(a b) c"),
            Query::And(vec![text("a"), text("b"), text("c")]),
            "nested ANDs are flattened"
        );
    }

    #[test]
    fn fields_phrases_fuzzy_and_dates() {
        assert_eq!(
            round_trip("tag:api priority:HIGH status:in-progress"),
            Query::And(vec![
                field(Field::Tag, "api"),
                field(Field::Priority, "HIGH"),
                field(Field::Status, "in-progress"),
            ])
        );
        assert_eq!(
            round_trip("title:\"sync bridge\""),
            field(Field::Title, "sync bridge")
        );
        assert_eq!(
            round_trip("\"web ui\" authetication~"),
            Query::And(vec![
                Query::Term(Term::Text {
                    text: "web ui".into(),
                    phrase: true,
                    fuzzy: false
                }),
                Query::Term(Term::Text {
                    text: "authetication".into(),
                    phrase: false,
                    fuzzy: true
                }),
            ])
        );
        assert_eq!(
            round_trip("created:>=2025-11-01"),
            Query::Term(Term::Field {
                field: Field::Created,
                cmp: Cmp::Ge,
                value: "2025-11-01".into()
            })
        );
        assert_eq!(
            round_trip("created:2025-11-01..2025-11-15"),
            Query::Term(Term::Field {
                field: Field::Created,
                cmp: Cmp::Range("2025-11-15".into()),
                value: "2025-11-01".into()
            })
        );
        // A comparison only on fields that order; elsewhere the text is the value.
        assert_eq!(round_trip("title:>x"), field(Field::Title, ">x"));
        round_trip("\"a \\\"quoted\\\" \\\\ word\" tag:\"x y\" \"AND\" \"a~\" \"x..y\"");
    }

    #[test]
    fn mistakes_say_what_and_where() {
        for (q, says, at) in [
            ("", "empty", 0),
            ("   ", "empty", 0),
            ("a OR", "missing", 4),
            ("OR a", "each side", 0),
            ("(a b", "not closed", 0),
            ("a b)", "unexpected ')'", 3),
            ("\"open", "not closed", 0),
            ("colour:red", "unknown field", 0),
            ("status:", "needs a value", 0),
            ("created:2025..", "needs a value", 0),
            ("ab\"cd\"", "quote inside a word", 0),
        ] {
            let e = parse(q).expect_err(q);
            assert!(e.message.contains(says), "{q}: {e}");
            assert_eq!(e.at, at, "{q}: {e}");
        }
        let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).is_err());
        assert!(parse(&"a ".repeat(3000)).is_err(), "over the size limit");
        // Found by the fuzzer: a query whose printed form (quotes, ANDs) is longer than
        // the limit must be refused, or its printed form would not parse.
        assert!(parse(&"~ ".repeat(1000)).is_err());
        round_trip(&"~ ".repeat(100));
    }
}
