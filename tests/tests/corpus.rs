//! The real LeanSpec specs folder: every spec parses, the counts match LeanSpec's, and
//! the editor changes only the lines it should on every single spec.

use leanspec_peer_core::Machine;
use leanspec_peer_core::spec::{self, MetadataChange, Priority, Status};
use leanspec_peer_tests::{
    after_frontmatter, corpus_dir, frontmatter_lines, key_span, lines_without,
};
use std::collections::BTreeMap;
use std::fs;

const NOW: &str = "2026-11-23T12:34:56.789Z";

fn corpus_specs() -> Vec<(String, String)> {
    let walk = spec::walk_path(&corpus_dir());
    assert!(walk.warnings.is_empty(), "{:?}", walk.warnings);
    walk.specs
        .iter()
        .map(|f| {
            let text = fs::read_to_string(f.dir.join("README.md")).expect("corpus file");
            (f.name.clone(), text)
        })
        .collect()
}

#[test]
fn every_corpus_spec_parses_and_counts_match_leanspec() {
    let specs = corpus_specs();
    assert_eq!(specs.len(), 304);
    let mut status = BTreeMap::new();
    let mut priority = BTreeMap::new();
    let (mut tags, mut deps) = (0, 0);
    let (mut tags_key, mut deps_key, mut transitions_key) = (0, 0, 0);
    for (name, text) in &specs {
        let s = spec::parse_bytes(name, text.as_bytes(), Vec::new());
        assert_eq!(s.parse_error, None, "{name}");
        assert!(s.created.is_some(), "{name}: created");
        assert_eq!(s.file_hash, spec::sha256_hex(text.as_bytes()));
        assert_eq!(s.content_hash.len(), 64);
        *status
            .entry(s.status.expect("status").as_str())
            .or_insert(0) += 1;
        if let Some(p) = s.priority {
            *priority.entry(p.as_str()).or_insert(0) += 1;
        }
        tags += usize::from(!s.tags.is_empty());
        deps += usize::from(!s.depends_on.is_empty());
        // Key presence, read independently with serde_yaml.
        let yaml: serde_yaml::Mapping =
            serde_yaml::from_str(&frontmatter_lines(text).join("\n")).expect("corpus yaml");
        tags_key += usize::from(yaml.contains_key("tags"));
        deps_key += usize::from(yaml.contains_key("depends_on"));
        transitions_key += usize::from(yaml.contains_key("transitions"));
        let fm = spec::parse_frontmatter(&frontmatter_lines(text).join("\n"));
        assert_eq!(fm.tags, s.tags, "{name}");
    }
    assert_eq!((tags_key, deps_key, transitions_key), (298, 123, 228));
    assert_eq!(
        status,
        BTreeMap::from([("archived", 66), ("complete", 238)])
    );
    assert_eq!(
        priority,
        BTreeMap::from([("critical", 15), ("high", 196), ("low", 13), ("medium", 80)])
    );
    assert_eq!((tags, deps), (286, 122));
}

#[test]
fn content_hash_is_the_body_after_leading_newlines() {
    // LeanSpec's rule, checked independently on every corpus spec.
    for (name, text) in corpus_specs() {
        let s = spec::parse_bytes(&name, text.as_bytes(), Vec::new());
        let body = after_frontmatter(&text)[4..].trim_start_matches('\n');
        assert_eq!(s.content_hash, spec::sha256_hex(body.as_bytes()), "{name}");
    }
}

#[test]
fn status_edit_changes_only_leanspec_lines_on_every_spec() {
    for (name, text) in corpus_specs() {
        let old = spec::parse_bytes(&name, text.as_bytes(), Vec::new());
        let target = if old.status == Some(Status::InProgress) {
            Status::Planned
        } else {
            Status::InProgress
        };
        let change = MetadataChange {
            status: Some(target),
            ..Default::default()
        };
        let edited =
            spec::apply_change(&text, &change, NOW).unwrap_or_else(|e| panic!("{name}: {e}"));
        let new_text = edited.text;
        assert_eq!(
            after_frontmatter(&text),
            after_frontmatter(&new_text),
            "{name}: body bytes"
        );
        let (a, b) = (frontmatter_lines(&text), frontmatter_lines(&new_text));
        let touched = ["status", "updated_at", "transitions"];
        assert_eq!(
            lines_without(&a, &touched),
            lines_without(&b, &touched),
            "{name}: untouched lines"
        );
        assert_eq!(
            key_span(&b, "status"),
            [format!("status: {}", target.as_str())],
            "{name}"
        );
        // updated_at keeps its quoting style.
        let old_upd = key_span(&a, "updated_at");
        let new_upd = key_span(&b, "updated_at");
        assert_eq!(new_upd.len(), 1, "{name}");
        if let Some(o) = old_upd.first() {
            assert_eq!(
                o.contains('\''),
                new_upd[0].contains('\''),
                "{name}: quoting of updated_at"
            );
        }
        // transitions: the old lines stay, two new lines are appended.
        let (ot, nt) = (key_span(&a, "transitions"), key_span(&b, "transitions"));
        if !ot.is_empty() {
            assert_eq!(&nt[..ot.len()], &ot[..], "{name}: old transitions kept");
        }
        assert!(
            nt[nt.len() - 2].trim_start().starts_with("- status: "),
            "{name}: {nt:?}"
        );
        // Re-parse returns the new values, and nothing else moved.
        let new = spec::parse_bytes(&name, new_text.as_bytes(), Vec::new());
        assert_eq!(new.status, Some(target), "{name}");
        assert_eq!(new.updated_at.as_deref(), Some(NOW), "{name}");
        assert_eq!(new.content_hash, old.content_hash, "{name}");
        assert_eq!(
            (new.tags, new.priority, new.depends_on),
            (old.tags, old.priority, old.depends_on),
            "{name}"
        );
    }
}

#[test]
fn completing_sets_completed_at_on_every_spec() {
    for (name, text) in corpus_specs() {
        let old = spec::parse_bytes(&name, text.as_bytes(), Vec::new());
        if old.status == Some(Status::Complete) {
            continue;
        }
        let change = MetadataChange {
            status: Some(Status::Complete),
            ..Default::default()
        };
        let new_text = spec::apply_change(&text, &change, NOW)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .text;
        let touched = ["status", "updated_at", "completed_at", "transitions"];
        let (a, b) = (frontmatter_lines(&text), frontmatter_lines(&new_text));
        assert_eq!(
            lines_without(&a, &touched),
            lines_without(&b, &touched),
            "{name}"
        );
        let new = spec::parse_bytes(&name, new_text.as_bytes(), Vec::new());
        assert_eq!(new.completed_at.as_deref(), Some(NOW), "{name}");
    }
}

#[test]
fn tag_edit_changes_only_the_tags_lines_on_every_spec() {
    for (name, text) in corpus_specs() {
        let old = spec::parse_bytes(&name, text.as_bytes(), Vec::new());
        let change = MetadataChange {
            add_tags: vec!["peer-sync".into()],
            remove_tags: old.tags.first().cloned().into_iter().collect(),
            ..Default::default()
        };
        let new_text = spec::apply_change(&text, &change, NOW)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .text;
        assert_eq!(
            after_frontmatter(&text),
            after_frontmatter(&new_text),
            "{name}: body bytes"
        );
        let (a, b) = (frontmatter_lines(&text), frontmatter_lines(&new_text));
        assert_eq!(
            lines_without(&a, &["tags"]),
            lines_without(&b, &["tags"]),
            "{name}: untouched lines"
        );
        let (ot, nt) = (key_span(&a, "tags"), key_span(&b, "tags"));
        if ot.len() == 1 && ot[0].contains('[') {
            assert_eq!(nt.len(), 1, "{name}: flow list stays on one line: {nt:?}");
            assert!(nt[0].contains('['), "{name}: flow list stays flow");
        } else if ot.len() > 1 {
            // Block list: the first item's line is gone, the others are byte-identical,
            // and the new item uses the same prefix.
            let prefix = &ot[1][..ot[1].find("- ").expect("item") + 2];
            assert_eq!(&nt[1..nt.len() - 1], &ot[2..], "{name}: kept item lines");
            assert!(nt[nt.len() - 1].starts_with(prefix), "{name}: {nt:?}");
        }
        let new = spec::parse_bytes(&name, new_text.as_bytes(), Vec::new());
        let mut want: Vec<String> = old.tags.iter().skip(1).cloned().collect();
        want.push("peer-sync".into());
        assert_eq!(new.tags, want, "{name}");
        assert_eq!(
            (new.status, new.priority),
            (old.status, old.priority),
            "{name}"
        );
    }
}

#[test]
fn priority_and_dependency_edits_round_trip_on_every_spec() {
    for (name, text) in corpus_specs() {
        let old = spec::parse_bytes(&name, text.as_bytes(), Vec::new());
        let target = if old.priority == Some(Priority::Low) {
            Priority::Critical
        } else {
            Priority::Low
        };
        let change = MetadataChange {
            priority: Some(target),
            add_depends_on: vec!["001-typescript-cli-migration".into()],
            assignee: Some("marvin".into()),
            ..Default::default()
        };
        let new_text = spec::apply_change(&text, &change, NOW)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .text;
        let touched = ["priority", "depends_on", "assignee"];
        let (a, b) = (frontmatter_lines(&text), frontmatter_lines(&new_text));
        assert_eq!(
            lines_without(&a, &touched),
            lines_without(&b, &touched),
            "{name}"
        );
        let new = spec::parse_bytes(&name, new_text.as_bytes(), Vec::new());
        assert_eq!(new.priority, Some(target), "{name}");
        assert!(
            new.depends_on
                .contains(&"001-typescript-cli-migration".to_string()),
            "{name}"
        );
        assert_eq!(new.assignee.as_deref(), Some("marvin"), "{name}");
    }
}

#[test]
fn machine_scans_the_corpus_into_its_document() {
    let home = tempfile::tempdir().expect("home");
    let project = leanspec_peer_tests::corpus_project();
    let (mut m, _) = Machine::init(home.path(), Some("corpus")).expect("init");
    let (p, scan) = m.add_project(project.path(), None).expect("add");
    assert_eq!((scan.specs, scan.added, scan.parse_errors), (304, 304, 0));
    assert!(scan.warnings.is_empty(), "{:?}", scan.warnings);
    let rows = m.specs(&Default::default()).expect("specs");
    assert_eq!(rows.len(), 304);
    // The document holds exactly what the parser read, for every spec.
    let specs = spec::SpecsDir::open(&corpus_dir()).expect("corpus");
    for r in &rows {
        let mut w = Vec::new();
        let spec::Loaded::Spec(loaded) = spec::load(&specs, &r.spec.name, &mut w) else {
            panic!("{} unreadable", r.spec.name);
        };
        assert_eq!(r.spec, *loaded, "{}", r.spec.name);
    }
    // No absolute local path is in the replicated document.
    let mut doc = automerge::AutoCommit::new();
    for c in m.store().doc_chunks(m.id().as_bytes()).expect("chunks") {
        doc.load_incremental(&c).expect("load");
    }
    let doc_bytes = doc.save_nocompress();
    assert!(
        String::from_utf8_lossy(&doc_bytes).contains("005-structured-frontmatter"),
        "check can see strings"
    );
    let root = p.root.to_string_lossy().into_owned();
    assert!(
        !String::from_utf8_lossy(&doc_bytes).contains(&root),
        "local path leaked into the document"
    );
    let home_s = home.path().to_string_lossy().into_owned();
    assert!(!String::from_utf8_lossy(&doc_bytes).contains(&home_s));
}
