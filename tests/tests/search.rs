//! Fleet search over the real LeanSpec corpus: every answer checked against an
//! expectation computed independently from the files (serde_yaml over the frontmatter,
//! the first `# ` line for the title), not through the machine's parser.

use leanspec_peer_core::query::{all_views, parse, search};
use leanspec_peer_core::{Machine, SpecFilter};
use leanspec_peer_tests::{corpus_dir, frontmatter_lines};
use std::collections::BTreeSet;

/// What the test reads from one file by itself.
struct Expect {
    name: String,
    title: String,
    status: String,
    priority: Option<String>,
    tags: Vec<String>,
    depends_on: Vec<String>,
    created: String,
}

fn expectations() -> Vec<Expect> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(corpus_dir()).expect("corpus") {
        let dir = entry.expect("entry").path();
        let Ok(text) = std::fs::read_to_string(dir.join("README.md")) else {
            continue;
        };
        let yaml: serde_yaml::Mapping =
            serde_yaml::from_str(&frontmatter_lines(&text).join("\n")).expect("yaml");
        let get = |k: &str| yaml.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let list = |k: &str| -> Vec<String> {
            yaml.get(k)
                .and_then(|v| v.as_sequence())
                .map(|s| {
                    s.iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let tags = list("tags");
        let title = text
            .lines()
            .find_map(|l| l.strip_prefix("# "))
            .unwrap_or_default()
            .trim()
            .to_string();
        out.push(Expect {
            name: dir
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned(),
            title,
            status: get("status").unwrap_or_default(),
            priority: get("priority"),
            tags,
            depends_on: list("depends_on"),
            created: get("created").unwrap_or_default(),
        });
    }
    assert_eq!(out.len(), 304);
    out
}

/// A project folder holding a copy of the corpus as its `specs/`.
fn corpus_copy() -> tempfile::TempDir {
    let project = tempfile::tempdir().expect("project");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(corpus_dir())
        .arg(project.path().join("specs"))
        .status()
        .expect("cp");
    assert!(status.success());
    project
}

fn corpus_machine() -> (Machine, tempfile::TempDir, tempfile::TempDir) {
    let home = tempfile::tempdir().expect("home");
    let project = corpus_copy();
    let (mut m, _) = Machine::init(home.path(), Some("desk")).expect("init");
    m.add_project(project.path(), Some("lean-spec"))
        .expect("add");
    (m, home, project)
}

fn found(m: &Machine, q: &str) -> BTreeSet<String> {
    let tables = m.spec_tables(None).expect("tables");
    let query = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    search(&query, all_views(&tables), usize::MAX)
        .into_iter()
        .map(|h| h.row.spec.name)
        .collect()
}

fn expected(all: &[Expect], keep: impl Fn(&Expect) -> bool) -> BTreeSet<String> {
    all.iter()
        .filter(|e| keep(e))
        .map(|e| e.name.clone())
        .collect()
}

#[test]
fn search_over_the_corpus_matches_what_the_files_say() {
    let all = expectations();
    let (m, _home, _project) = corpus_machine();
    let has_tag = |e: &Expect, t: &str| e.tags.iter().any(|x| x == t);
    let cases: Vec<(&str, BTreeSet<String>)> = vec![
        (
            "status:archived",
            expected(&all, |e| e.status == "archived"),
        ),
        (
            "NOT status:complete",
            expected(&all, |e| e.status != "complete"),
        ),
        (
            "priority:high tag:cli",
            expected(&all, |e| {
                e.priority.as_deref() == Some("high") && has_tag(e, "cli")
            }),
        ),
        (
            "tag:mcp OR tag:search",
            expected(&all, |e| has_tag(e, "mcp") || has_tag(e, "search")),
        ),
        (
            "(tag:mcp OR tag:search) AND NOT priority:low",
            expected(&all, |e| {
                (has_tag(e, "mcp") || has_tag(e, "search")) && e.priority.as_deref() != Some("low")
            }),
        ),
        (
            "created:>=2025-12",
            expected(&all, |e| e.created.as_str() >= "2025-12"),
        ),
        (
            "created:2025-11-01..2025-11-15",
            expected(&all, |e| {
                ("2025-11-01"..="2025-11-15").contains(&e.created.as_str())
            }),
        ),
        (
            "search",
            expected(&all, |e| {
                e.name.contains("search")
                    || e.title.to_lowercase().contains("search")
                    || e.tags.iter().any(|t| t.to_lowercase().contains("search"))
            }),
        ),
        (
            "\"web ui\"",
            expected(&all, |e| {
                e.name.contains("web ui") || e.title.to_lowercase().contains("web ui")
            }),
        ),
        ("name:124", expected(&all, |e| e.name.starts_with("124-"))),
        ("machine:desk project:lean-spec", expected(&all, |_| true)),
        ("machine:laptop", BTreeSet::new()),
    ];
    for (q, want) in cases {
        let got = found(&m, q);
        assert_eq!(got, want, "{q}");
        if !matches!(q, "machine:laptop") {
            assert!(!got.is_empty(), "{q}: the expectation should not be empty");
        }
    }
    // Ranking: a title match outranks a tag-only match.
    let tables = m.spec_tables(None).expect("tables");
    let hits = search(&parse("search").expect("parse"), all_views(&tables), 5);
    assert!(
        hits[0].row.spec.title.to_lowercase().contains("search"),
        "{:?}",
        hits[0].row.spec.title
    );
    // A typo still finds the spec.
    assert!(found(&m, "advnced~").contains("124-advanced-search-capabilities"));
}

/// A copy of the corpus as a git checkout whose `origin` is `url`.
fn corpus_checkout(url: &str) -> tempfile::TempDir {
    let project = corpus_copy();
    std::fs::create_dir(project.path().join(".git")).expect(".git");
    std::fs::write(
        project.path().join(".git/config"),
        format!("[core]\n\tbare = false\n[remote \"origin\"]\n\turl = {url}\n"),
    )
    .expect("config");
    project
}

/// Issue 14: one project across machines. Two machines hold the corpus under the same
/// repository cloned by different URL forms (and named differently): both have one
/// fleet identity, replicated, and a project filter or query by any form of the URL
/// finds both machines' specs.
#[test]
fn one_project_across_machines_is_known_by_its_origin() {
    let (ha, hb) = (
        tempfile::tempdir().expect("home"),
        tempfile::tempdir().expect("home"),
    );
    let pa = corpus_checkout("git@github.com:codervisor/lean-spec.git");
    let pb = corpus_checkout("https://github.com/codervisor/lean-spec");
    let (mut a, _) = Machine::init(ha.path(), Some("desk")).expect("init");
    let (mut b, _) = Machine::init(hb.path(), Some("laptop")).expect("init");
    let (project_a, _) = a.add_project(pa.path(), Some("lean-spec")).expect("add");
    let (project_b, _) = b.add_project(pb.path(), Some("ls-fork")).expect("add");
    assert_eq!(project_a.fleet, "github.com/codervisor/lean-spec");
    assert_eq!(project_b.fleet, project_a.fleet);
    leanspec_peer_tests::pair_machines(&mut a, &mut b);
    let received = leanspec_peer_tests::sync_machines(&mut a, &mut b);
    // A first sync's changes (many: values from the machine's table) carry the values.
    let spec124 = received
        .iter()
        .find_map(|c| match c {
            leanspec_peer_core::DocChange::SpecChanged {
                machine,
                spec,
                values,
                ..
            } if *machine == b.id() && spec.starts_with("124-") => Some(values),
            _ => None,
        })
        .expect("spec 124 of the laptop announced to the desk");
    assert_eq!(spec124["status"], "complete");
    assert_eq!(spec124["title"], "Advanced Search Capabilities for Specs");
    assert!(spec124["tags"].is_array() && spec124["file_hash"].is_string());
    for by in [
        "github.com/codervisor/lean-spec",
        "ssh://git@github.com/codervisor/lean-spec.git",
    ] {
        let rows = a
            .specs(&SpecFilter {
                project: Some(by.into()),
                ..SpecFilter::default()
            })
            .expect("specs");
        let machines: BTreeSet<&str> = rows.iter().map(|r| r.machine_label.as_str()).collect();
        assert_eq!(machines, BTreeSet::from(["desk", "laptop"]), "{by}");
        assert_eq!(rows.len(), 2 * 304, "{by}");
    }
    // A change synced from the other machine shows in the next query (each machine's
    // table is cached until its document changes).
    let q = parse("machine:laptop name:124 status:archived").expect("parse");
    let before = search(&q, all_views(&b.spec_tables(None).expect("tables")), 9);
    let spec_124 = b
        .specs(&SpecFilter::default())
        .expect("specs")
        .into_iter()
        .find(|r| r.machine_label == "laptop" && r.spec.name.starts_with("124-"))
        .expect("spec 124");
    let file = pb
        .path()
        .join("specs")
        .join(&spec_124.spec.name)
        .join("README.md");
    let text = std::fs::read_to_string(&file).expect("read");
    let old_status = format!("status: {}", spec_124.spec.status.expect("status").as_str());
    assert!(text.contains(&old_status), "{old_status}");
    std::fs::write(&file, text.replacen(&old_status, "status: archived", 1)).expect("write");
    b.rescan_spec(&project_b.id, &spec_124.spec.name)
        .expect("rescan");
    let q_a = parse("machine:laptop name:124 status:archived").expect("parse");
    let cached_on_a = search(&q_a, all_views(&a.spec_tables(None).expect("tables")), 9);
    assert!(
        before.is_empty() && cached_on_a.is_empty(),
        "not archived before"
    );
    leanspec_peer_tests::sync_machines(&mut a, &mut b);
    let after = search(&q_a, all_views(&a.spec_tables(None).expect("tables")), 9);
    assert_eq!(
        after.len(),
        1,
        "the synced change replaced the cached table"
    );
    // By name, only the machine that calls it so.
    let q = parse("project:ls-fork status:archived").expect("parse");
    let hits = search(
        &q,
        all_views(&a.spec_tables(None).expect("tables")),
        usize::MAX,
    );
    assert!(!hits.is_empty() && hits.iter().all(|h| h.row.machine_label == "laptop"));
    let q =
        parse("project:\"https://github.com/codervisor/lean-spec.git\" name:124").expect("parse");
    let hits = search(
        &q,
        all_views(&a.spec_tables(None).expect("tables")),
        usize::MAX,
    );
    assert_eq!(hits.len(), 2, "spec 124 on both machines");
}

/// Issue 14, must show: three machines hold the corpus under one repository (three URL
/// forms); one changes a spec's status (and its `updated_at`), another a priority, and
/// two create spec 305 under different names. `check` finds exactly those, plus what the
/// corpus itself holds, computed here from the files: numbers used by two folders and
/// `depends_on` entries naming no folder.
#[test]
fn check_finds_exactly_the_fleet_problems() {
    use leanspec_peer_core::query::{Problem, check};
    let urls = [
        "git@github.com:codervisor/lean-spec.git",
        "https://github.com/codervisor/lean-spec",
        "ssh://git@github.com/codervisor/lean-spec.git",
    ];
    let dirs: Vec<tempfile::TempDir> = urls.iter().map(|u| corpus_checkout(u)).collect();
    let homes: Vec<tempfile::TempDir> =
        (0..3).map(|_| tempfile::tempdir().expect("home")).collect();
    let edit = |dir: &tempfile::TempDir, spec: &str, from: &str, to: &str| {
        let f = dir.path().join("specs").join(spec).join("README.md");
        let text = std::fs::read_to_string(&f).expect("read");
        assert!(text.contains(from), "{spec}: {from}");
        std::fs::write(&f, text.replacen(from, to, 1)).expect("write");
    };
    let spec124 = "124-advanced-search-capabilities";
    edit(&dirs[1], spec124, "status: complete", "status: archived");
    edit(
        &dirs[1],
        spec124,
        "updated_at: '2025-11-26T07:51:30.760Z'",
        "updated_at: '2026-11-29T00:00:00.000Z'",
    );
    let spec075 = "075-intelligent-search-engine";
    edit(&dirs[2], spec075, "priority: critical", "priority: low");
    for (dir, name) in [(&dirs[1], "900-bee-feature"), (&dirs[2], "900-cee-feature")] {
        let d = dir.path().join("specs").join(name);
        std::fs::create_dir(&d).expect("mkdir");
        std::fs::write(
            d.join("README.md"),
            "---\nstatus: planned\ncreated: '2026-11-29'\n---\n\n# New\n",
        )
        .expect("write");
    }
    let labels = ["a", "b", "c"];
    let mut machines: Vec<Machine> = homes
        .iter()
        .zip(&dirs)
        .zip(labels)
        .map(|((h, d), l)| {
            let (mut m, _) = Machine::init(h.path(), Some(l)).expect("init");
            m.add_project(d.path(), Some("lean-spec")).expect("add");
            m
        })
        .collect();
    let (a, rest) = machines.split_at_mut(1);
    let (b, c) = rest.split_at_mut(1);
    let (a, b, c) = (&mut a[0], &mut b[0], &mut c[0]);
    leanspec_peer_tests::pair_machines(a, b);
    leanspec_peer_tests::pair_machines(a, c);
    leanspec_peer_tests::sync_machines(a, b);
    leanspec_peer_tests::sync_machines(a, c);
    leanspec_peer_tests::sync_machines(a, b);
    let report = check(&a.specs(&SpecFilter::default()).expect("specs"));
    assert_eq!(report.specs, 3 * 304 + 2);
    assert_eq!(report.projects, 1, "one fleet project");

    // What the corpus holds, from the files alone.
    let corpus = expectations();
    let names: Vec<String> = corpus.iter().map(|e| e.name.clone()).collect();
    let num = |n: &str| -> Option<u64> {
        n.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    };
    let mut corpus_dups: BTreeSet<u64> = BTreeSet::new();
    for n in &names {
        if names
            .iter()
            .any(|o| o != n && num(o).is_some() && num(o) == num(n))
        {
            corpus_dups.extend(num(n));
        }
    }
    let mut dangling: BTreeSet<(String, String)> = BTreeSet::new();
    for e in &corpus {
        for d in &e.depends_on {
            let exists = names.iter().any(|n| {
                n == d
                    || n.ends_with(&format!("-{d}"))
                    || (d.chars().all(|c| c.is_ascii_digit()) && num(n) == d.parse().ok())
            });
            if !exists {
                dangling.insert((e.name.clone(), d.clone()));
            }
        }
    }

    let mut dup_numbers = BTreeSet::new();
    let mut divergent = BTreeSet::new();
    let mut found_dangling = BTreeSet::new();
    for p in &report.problems {
        match p {
            Problem::DuplicateNumber { number, specs, .. } => {
                dup_numbers.insert(*number);
                if *number == 900 {
                    let at: BTreeSet<(&str, &str)> = specs
                        .iter()
                        .map(|s| (s.machine_label.as_str(), s.spec.as_str()))
                        .collect();
                    assert_eq!(
                        at,
                        BTreeSet::from([("b", "900-bee-feature"), ("c", "900-cee-feature")])
                    );
                }
            }
            Problem::Divergent {
                spec,
                fields,
                latest,
                ..
            } => {
                divergent.insert((spec.clone(), fields.clone(), latest.clone()));
            }
            Problem::DanglingDependency { place, depends_on } => {
                found_dangling.insert((
                    place.machine_label.clone(),
                    place.spec.clone(),
                    depends_on.clone(),
                ));
            }
            Problem::ParseError { place, error } => panic!("{place:?}: {error}"),
        }
    }
    let mut want_dups = corpus_dups.clone();
    want_dups.insert(900);
    assert_eq!(dup_numbers, want_dups);
    assert_eq!(
        divergent,
        BTreeSet::from([
            (
                spec124.to_string(),
                vec!["status".to_string()],
                Some("b".to_string())
            ),
            (spec075.to_string(), vec!["priority".to_string()], None),
        ])
    );
    let want_dangling: BTreeSet<(String, String, String)> = labels
        .iter()
        .flat_map(|l| {
            dangling
                .iter()
                .map(move |(s, d)| (l.to_string(), s.clone(), d.clone()))
        })
        .collect();
    assert_eq!(found_dangling, want_dangling);
}

/// `stats`: per machine and for the fleet, where a spec held by two machines counts
/// once, as its most recently updated copy says; checked against the files.
#[test]
fn stats_count_per_machine_and_each_fleet_spec_once() {
    use leanspec_peer_core::query::stats;
    let all = expectations();
    let dirs = [
        corpus_checkout("git@github.com:codervisor/lean-spec.git"),
        corpus_checkout("https://github.com/codervisor/lean-spec"),
    ];
    // The laptop archives spec 124 and says so in updated_at: the fleet follows it.
    let f = dirs[1]
        .path()
        .join("specs/124-advanced-search-capabilities/README.md");
    let text = std::fs::read_to_string(&f).expect("read");
    let text = text
        .replacen("status: complete", "status: archived", 1)
        .replacen(
            "updated_at: '2025-11-26T07:51:30.760Z'",
            "updated_at: '2026-11-29T00:00:00.000Z'",
            1,
        );
    std::fs::write(&f, text).expect("write");
    let (a, _b, _homes) = desk_and_laptop(&dirs, ["lean-spec", "lean-spec"]);
    let s = stats(&a.specs(&SpecFilter::default()).expect("specs"));
    let count = |status: &str| all.iter().filter(|e| e.status == status).count();
    let desk = &s.machines[0];
    assert_eq!(desk.machine_label, "desk");
    assert_eq!(desk.counts.specs, 304);
    assert_eq!(
        desk.counts.by_status.get("complete"),
        Some(&count("complete"))
    );
    assert_eq!(
        desk.counts.by_status.get("archived"),
        Some(&count("archived"))
    );
    let tagged_cli = all
        .iter()
        .filter(|e| e.tags.iter().any(|t| t == "cli"))
        .count();
    assert_eq!(desk.counts.by_tag.get("cli"), Some(&tagged_cli));
    assert_eq!(
        s.machines[1].counts.by_status.get("archived"),
        Some(&(count("archived") + 1))
    );
    assert_eq!(s.fleet.specs, 304, "each fleet spec once");
    assert_eq!(
        s.fleet.by_status.get("archived"),
        Some(&(count("archived") + 1))
    );
    let live = 304 - (count("archived") + 1);
    let rate = (count("complete") - 1) as f64 / live as f64;
    assert!(
        (s.fleet.completion_rate - rate).abs() < 1e-9,
        "{}",
        s.fleet.completion_rate
    );
}

/// `board` and `deps` over two machines holding the corpus under one repository; the
/// laptop adds spec 950, which depends on the corpus's most-depended-on spec (only the
/// laptop has 950) and on a spec nobody has. Expectations come from the files.
#[test]
fn board_and_deps_across_machines_match_the_files() {
    use leanspec_peer_core::query::{DepsQuery, GroupBy, board, deps, filter};
    let all = expectations();
    let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
    let num = |n: &str| -> Option<u64> {
        n.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    };
    // What an entry names, by the rule LeanSpec documents: name, slug or number.
    let resolve = |d: &str| -> Vec<&str> {
        if names.contains(&d) {
            return vec![names[names.iter().position(|n| *n == d).unwrap_or(0)]];
        }
        let by_number: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| d.chars().all(|c| c.is_ascii_digit()) && num(n) == d.parse().ok())
            .collect();
        if !by_number.is_empty() {
            return by_number;
        }
        names
            .iter()
            .copied()
            .filter(|n| n.ends_with(&format!("-{d}")))
            .collect()
    };
    let dependents = |target: &str| -> BTreeSet<String> {
        all.iter()
            .filter(|e| e.depends_on.iter().any(|d| resolve(d).contains(&target)))
            .map(|e| e.name.clone())
            .collect()
    };
    let target = names
        .iter()
        .copied()
        .max_by_key(|n| (dependents(n).len(), std::cmp::Reverse(*n)))
        .expect("a spec");
    assert!(dependents(target).len() >= 2, "{target}");

    let dirs = [
        corpus_checkout("git@github.com:codervisor/lean-spec.git"),
        corpus_checkout("https://github.com/codervisor/lean-spec"),
    ];
    let new = dirs[1].path().join("specs/950-fleet-deps");
    std::fs::create_dir(&new).expect("mkdir");
    std::fs::write(
        new.join("README.md"),
        format!("---\nstatus: planned\ndepends_on:\n  - {target}\n  - 999-nowhere\n---\n\n# Fleet deps\n"),
    )
    .expect("write");
    let (a, _b, _homes) = desk_and_laptop(&dirs, ["lean-spec", "ls"]);
    let tables = a.spec_tables(None).expect("tables");

    // deps of 950, asked on the desk, which does not hold 950.
    let d = deps(all_views(&tables), None, "950", DepsQuery::default()).expect("deps");
    assert_eq!(d.fleet, "github.com/codervisor/lean-spec");
    assert_eq!(d.spec.machines, vec!["laptop"]);
    let up = d.upstream.expect("upstream");
    let direct: Vec<(Option<&str>, &str)> = up
        .iter()
        .filter(|e| e.depth == 1)
        .map(|e| (e.spec.as_ref().map(|s| s.name.as_str()), e.entry.as_str()))
        .collect();
    assert_eq!(direct, vec![(Some(target), target), (None, "999-nowhere")]);
    let first = &up[0];
    assert_eq!(first.spec.as_ref().map(|s| s.machines.len()), Some(2));
    // Its second level: the target's own entries, resolved as the files say.
    let target_entry = all.iter().find(|e| e.name == target).expect("target");
    let want_second: BTreeSet<String> = target_entry
        .depends_on
        .iter()
        .flat_map(|d| {
            let r = resolve(d);
            if r.is_empty() {
                vec![format!("? {d}")]
            } else {
                r.into_iter().map(str::to_string).collect()
            }
        })
        .collect();
    let second: BTreeSet<String> = up
        .iter()
        .filter(|e| e.depth == 2)
        .map(|e| {
            e.spec
                .as_ref()
                .map_or(format!("? {}", e.entry), |s| s.name.clone())
        })
        .collect();
    assert_eq!(second, want_second);
    // What depends on the target: the corpus's dependents, and 950 from the laptop.
    let down = deps(
        all_views(&tables),
        Some("https://github.com/codervisor/lean-spec"),
        target,
        DepsQuery {
            upstream: false,
            downstream: true,
            depth: 1,
        },
    )
    .expect("deps");
    let got: BTreeSet<String> = down
        .downstream
        .expect("downstream")
        .iter()
        .filter_map(|e| e.spec.as_ref().map(|s| s.name.clone()))
        .collect();
    let mut want = dependents(target);
    want.insert("950-fleet-deps".into());
    assert_eq!(got, want);

    // The board by status: every copy on every machine, in the column its file says.
    let b = board(all_views(&tables), GroupBy::Status);
    let keys: Vec<&str> = b.columns.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(
        keys,
        ["draft", "planned", "in-progress", "complete", "archived"]
    );
    for c in &b.columns {
        let got: BTreeSet<(String, String)> = c
            .specs
            .iter()
            .map(|r| (r.machine_label.clone(), r.spec.name.clone()))
            .collect();
        let mut want: BTreeSet<(String, String)> = all
            .iter()
            .filter(|e| e.status == c.key)
            .flat_map(|e| ["desk", "laptop"].map(|l| (l.to_string(), e.name.clone())))
            .collect();
        if c.key == "planned" {
            want.insert(("laptop".into(), "950-fleet-deps".into()));
        }
        assert_eq!(got, want, "column {}", c.key);
    }
    // By tag, only the desk's: a spec in each of its tags' columns, untagged in none.
    let q = parse("machine:desk").expect("parse");
    let b = board(filter(Some(&q), all_views(&tables)), GroupBy::Tag);
    for c in &b.columns {
        let got: BTreeSet<&str> = c.specs.iter().map(|r| r.spec.name.as_str()).collect();
        let want: BTreeSet<&str> = all
            .iter()
            .filter(|e| {
                if c.key == "none" {
                    e.tags.is_empty()
                } else {
                    e.tags.contains(&c.key)
                }
            })
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(got, want, "tag {}", c.key);
    }
    let tags: BTreeSet<&str> = all
        .iter()
        .flat_map(|e| e.tags.iter().map(String::as_str))
        .collect();
    assert_eq!(
        b.columns.len(),
        tags.len() + 1,
        "one column per tag, and none"
    );
}

/// Desk and laptop holding `dirs` as projects named `names`, paired and synced.
fn desk_and_laptop(
    dirs: &[tempfile::TempDir; 2],
    names: [&str; 2],
) -> (Machine, Machine, [tempfile::TempDir; 2]) {
    let homes = [
        tempfile::tempdir().expect("home"),
        tempfile::tempdir().expect("home"),
    ];
    let (mut a, _) = Machine::init(homes[0].path(), Some("desk")).expect("init");
    let (mut b, _) = Machine::init(homes[1].path(), Some("laptop")).expect("init");
    a.add_project(dirs[0].path(), Some(names[0])).expect("add");
    b.add_project(dirs[1].path(), Some(names[1])).expect("add");
    leanspec_peer_tests::pair_machines(&mut a, &mut b);
    leanspec_peer_tests::sync_machines(&mut a, &mut b);
    (a, b, homes)
}
