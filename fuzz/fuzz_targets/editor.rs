//! Any text and any change: the editor never panics, and whenever it returns an edit,
//! the edited file re-parses with the new values and the same body bytes.
#![no_main]

use arbitrary::Arbitrary;
use leanspec_peer_core::spec::{self, MetadataChange, Priority, Status};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    text: String,
    /// When set, the text is prefixed by a frontmatter of known keys, each followed by
    /// the whitespace chosen here before its colon (Unicode and multi-byte included):
    /// the shapes that once made the editor slice inside a character.
    gaps: Option<Vec<u8>>,
    status: Option<u8>,
    priority: Option<u8>,
    add_tags: Vec<String>,
    remove_tags: Vec<String>,
    add_deps: Vec<String>,
    parent: Option<String>,
}

const NOW: &str = "2026-01-01T00:00:00.000Z";

/// Whitespace a key may be followed by before its colon.
const GAPS: [&str; 7] = ["", " ", "\t", "\u{a0}", "\u{3000}", "\u{2003}", "\u{feff}"];
const KEYS: [&str; 7] = [
    "status: planned",
    "priority: low",
    "tags: [a, b]",
    "depends_on:\n  - 001-x",
    "created_at: '2025-01-01T00:00:00Z'",
    "parent: 001-x",
    "'quoted key': v",
];

fn templated(gaps: &[u8], rest: &str) -> String {
    let mut t = String::from("---\n");
    for (i, kv) in KEYS.iter().enumerate() {
        let gap = GAPS[usize::from(gaps.get(i).copied().unwrap_or(0)) % GAPS.len()];
        let (k, v) = kv.split_once(':').unwrap_or((kv, ""));
        t.push_str(&format!("{k}{gap}:{v}\n"));
    }
    t.push_str("---\n");
    t.push_str(rest);
    t
}

fuzz_target!(|input: Input| {
    let mut input = input;
    if let Some(gaps) = &input.gaps {
        input.text = templated(gaps, &input.text);
    }
    let change = MetadataChange {
        status: input.status.map(|i| Status::ALL[usize::from(i) % Status::ALL.len()]),
        priority: input.priority.map(|i| Priority::ALL[usize::from(i) % Priority::ALL.len()]),
        add_tags: input.add_tags,
        remove_tags: input.remove_tags,
        add_depends_on: input.add_deps,
        parent: input.parent,
        ..Default::default()
    };
    let Ok(edited) = spec::apply_change(&input.text, &change, NOW) else {
        return;
    };
    if edited.changed_keys.is_empty() {
        assert_eq!(edited.text, input.text);
        return;
    }
    let before = spec::layout(&input.text);
    let after = spec::layout(&edited.text);
    assert_eq!(&input.text[before.body], &edited.text[after.body], "body bytes");
    let yaml = after.yaml.expect("edited text keeps its frontmatter");
    let fm = spec::parse_frontmatter(&edited.text[yaml]);
    if let Some(s) = change.status {
        assert_eq!(fm.status, Some(s));
    }
    if let Some(p) = change.priority {
        assert_eq!(fm.priority, Some(p));
    }
    for t in &change.add_tags {
        assert!(fm.tags.contains(t) || change.remove_tags.contains(t), "tag {t:?} added");
    }
    for t in &change.remove_tags {
        assert!(!fm.tags.contains(t), "tag {t:?} removed");
    }
    for d in &change.add_depends_on {
        assert!(fm.depends_on.contains(d), "dependency {d:?} added");
    }
    if let Some(p) = change.parent.as_deref().filter(|p| !p.is_empty()) {
        assert_eq!(fm.string("parent"), Some(p));
    }
});
