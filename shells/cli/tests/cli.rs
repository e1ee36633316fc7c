//! The `leanspec-peer` binary, run as a real process on real files.

use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_leanspec-peer");

fn run(home: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("LEANSPEC_PEER_HOME", home)
        .env_remove("LEANSPEC_PEER_LOG")
        .output()
        .expect("run leanspec-peer")
}

fn ok_json(home: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = run(home, &all);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn write_spec(root: &Path, name: &str, text: &str) {
    let d = root.join("specs").join(name);
    fs::create_dir_all(&d).expect("mkdir");
    fs::write(d.join("README.md"), text).expect("write");
}

fn project() -> tempfile::TempDir {
    let p = tempfile::tempdir().expect("project");
    write_spec(
        p.path(),
        "001-alpha",
        "---\nstatus: planned\npriority: high\ncreated: '2025-01-01'\ntags: [core, sync]\n---\n\n# Alpha\n",
    );
    write_spec(
        p.path(),
        "002-beta",
        "---\nstatus: complete\npriority: low\ncreated: 2025-02-01\ntags:\n  - ui\ndepends_on:\n  - 001-alpha\n---\n\n# Beta\n",
    );
    p
}

#[test]
fn init_add_scan_and_query_with_stable_json() {
    let home = tempfile::tempdir().expect("home");
    let p = project();
    let init = ok_json(home.path(), &["init", "--label", "laptop"]);
    assert_eq!(init["created"], true);
    assert_eq!(init["machine"]["label"], "laptop");

    let added = ok_json(
        home.path(),
        &[
            "project",
            "add",
            p.path().to_str().expect("utf8"),
            "--name",
            "demo",
        ],
    );
    assert_eq!(added["scan"]["added"], 2);

    let specs = ok_json(home.path(), &["specs"]);
    let rows = specs.as_array().expect("array");
    assert_eq!(rows.len(), 2);
    let keys: Vec<&str> = rows[0]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = vec![
        "machine",
        "machine_label",
        "project",
        "project_id",
        "fleet",
        "spec",
        "title",
        "status",
        "priority",
        "tags",
        "depends_on",
        "parent",
        "assignee",
        "created",
        "updated_at",
        "content_hash",
        "file_hash",
        "parse_error",
    ];
    want.sort_unstable();
    assert_eq!(keys, want, "specs --json has exactly the documented keys");
    assert_eq!(rows[0]["spec"], "001-alpha");
    assert_eq!(rows[0]["machine_label"], "laptop");
    assert_eq!(rows[0]["project"], "demo");
    assert_eq!(rows[0]["fleet"], "demo", "no git remote: the name");
    assert_eq!(rows[0]["tags"], serde_json::json!(["core", "sync"]));
    assert_eq!(rows[1]["depends_on"], serde_json::json!(["001-alpha"]));
    let file = fs::read(p.path().join("specs/001-alpha/README.md")).expect("read");
    assert_eq!(rows[0]["file_hash"].as_str().expect("hash").len(), 64);
    assert_eq!(
        rows[0]["file_hash"],
        leanspec_peer_core::spec::sha256_hex(&file)
    );

    let filtered = ok_json(
        home.path(),
        &["specs", "--status", "complete", "--tag", "ui"],
    );
    assert_eq!(filtered.as_array().expect("array").len(), 1);
    let filtered = ok_json(home.path(), &["specs", "--priority", "urgent"]);
    assert_eq!(filtered.as_array().expect("array").len(), 0);

    let status = ok_json(home.path(), &["status"]);
    let machine = status["machine"].as_object().expect("machine");
    for k in ["id", "short_id", "label"] {
        assert!(machine.contains_key(k), "status.machine.{k}");
    }
    assert_eq!(status["machine"]["id"], rows[0]["machine"]);
    assert_eq!(status["specs"], 2);

    let show = ok_json(home.path(), &["show", "demo", "2"]);
    assert_eq!(show["title"], "Beta");
    let text = run(home.path(), &["show", "demo", "alpha"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("Alpha"));

    // A file edit shows up on the next scan.
    write_spec(
        p.path(),
        "001-alpha",
        "---\nstatus: in-progress\npriority: high\ncreated: '2025-01-01'\n---\n\n# Alpha\n",
    );
    let scan = ok_json(home.path(), &["scan"]);
    assert_eq!(scan["projects"][0]["updated"], 1);
    let show = ok_json(home.path(), &["show", "demo", "001-alpha"]);
    assert_eq!(show["status"], "in-progress");

    let removed = ok_json(home.path(), &["project", "remove", "demo"]);
    assert_eq!(removed["removed"]["name"], "demo");
    assert_eq!(
        ok_json(home.path(), &["specs"])
            .as_array()
            .expect("array")
            .len(),
        0
    );
    assert!(
        p.path().join("specs/001-alpha/README.md").exists(),
        "files are not touched"
    );
}

/// Issue 11: titles and tags come from files (and other machines); printed raw, an
/// escape sequence or a bidi override in them would drive the terminal.
#[test]
fn text_output_escapes_what_could_drive_a_terminal() {
    let home = tempfile::tempdir().expect("home");
    let p = project();
    write_spec(
        p.path(),
        "009-evil",
        "---\nstatus: planned\ncreated: '2025-01-01'\ntags: [\"a\\rb\", \"\\u202egnp.exe\"]\n---\n\n# \u{1b}[2J\u{1b}[31mred title\n",
    );
    let dir = p.path().display().to_string();
    assert!(run(home.path(), &["init"]).status.success());
    let added = run(home.path(), &["project", "add", &dir]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let name = p
        .path()
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    for args in [&["specs"][..], &["show", &name, "9"]] {
        let out = run(home.path(), args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("utf8");
        assert!(!text.contains('\u{1b}'), "{args:?}: raw escape in {text:?}");
        assert!(
            !text.contains('\u{202e}'),
            "{args:?}: raw bidi override in {text:?}"
        );
        assert!(
            !text.contains('\r'),
            "{args:?}: raw carriage return in {text:?}"
        );
        assert!(text.contains("\\u{1b}[31mred title"), "{args:?}: {text}");
    }
    // JSON carries the values as they are (JSON escapes control characters itself).
    let rows = ok_json(home.path(), &["specs"]);
    let evil = rows
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["spec"] == "009-evil" || r["name"] == "009-evil")
        .expect("the spec");
    assert!(evil["title"].as_str().expect("title").contains('\u{1b}'));
}

#[test]
fn errors_go_to_stderr_with_a_next_step_and_an_exit_code_by_kind() {
    let home = tempfile::tempdir().expect("home");
    let out = run(home.path(), &["specs"]);
    assert_eq!(out.status.code(), Some(6), "not initialised");
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `leanspec-peer init`"));

    ok_json(home.path(), &["init"]);
    let empty = tempfile::tempdir().expect("no specs");
    let out = run(
        home.path(),
        &["project", "add", empty.path().to_str().expect("utf8")],
    );
    assert_eq!(out.status.code(), Some(9), "invalid argument");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no specs folder"));

    let out = run(home.path(), &["show", "nope", "1"]);
    assert_eq!(out.status.code(), Some(7), "not found");
    assert!(String::from_utf8_lossy(&out.stderr).contains("project list"));

    let out = run(home.path(), &["specs", "--status", "finished"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected one of"));

    let out = run(home.path(), &["specs", "--machine", "elsewhere"]);
    assert_eq!(out.status.code(), Some(7), "not found");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no machine \"elsewhere\""));

    for (args, code, kind) in [
        (&["invite"][..], 5, "not_running"),
        (&["events"][..], 5, "not_running"),
        (&["join", "not-a-ticket"][..], 10, "ticket"),
        (&["show", "nope", "1"][..], 7, "not_found"),
        (&["rename", "nobody", "x"][..], 7, "not_found"),
    ] {
        let mut all = args.to_vec();
        all.push("--json");
        let out = run(home.path(), &all);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let v: Value = serde_json::from_slice(&out.stdout).expect("--json errors are JSON");
        assert_eq!(v["error"]["kind"], kind, "{args:?}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
    }
}

#[test]
fn up_once_initialises_and_shares_a_project_on_a_fresh_home() {
    let home = tempfile::tempdir().expect("home");
    let p = project();
    let out = run(
        home.path(),
        &[
            "up",
            "--once",
            "--project",
            p.path().to_str().expect("utf8"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let specs = ok_json(home.path(), &["specs"]);
    assert_eq!(specs.as_array().expect("array").len(), 2);
}

/// A machine labelled `laptop` sharing [`project`].
fn initialised_with_project() -> (tempfile::TempDir, tempfile::TempDir) {
    let home = tempfile::tempdir().expect("home");
    let p = project();
    ok_json(home.path(), &["init", "--label", "laptop"]);
    let added = run(
        home.path(),
        &["project", "add", p.path().to_str().expect("utf8")],
    );
    assert!(added.status.success());
    (home, p)
}

/// `search`: the query language over every machine's specs, ranked, as JSON with a
/// score; a malformed query says where and exits 9 (`invalid_argument`).
#[test]
fn search_finds_ranks_and_explains_bad_queries() {
    let (home, _project) = initialised_with_project();
    let hits = ok_json(home.path(), &["search", "tag:core OR tag:ui"]);
    let names: Vec<&str> = hits
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|h| h["spec"].as_str())
        .collect();
    assert_eq!(names, vec!["001-alpha", "002-beta"]);
    let hits = ok_json(home.path(), &["search", "beta OR depends_on:1"]);
    assert_eq!(hits[0]["spec"], "002-beta");
    assert!(hits[0]["score"].as_u64().is_some_and(|s| s > 0));
    let hits = ok_json(home.path(), &["search", "status:complete machine:laptop"]);
    assert_eq!(hits.as_array().map(Vec::len), Some(1));
    let out = run(home.path(), &["search", "status:planned (core OR"]);
    assert_eq!(out.status.code(), Some(9), "invalid_argument");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid query") && err.contains("at character"),
        "{err}"
    );
    let text = run(home.path(), &["search", "alpha"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("001-alpha"));
    // `stats`: one machine, one planned and one complete spec.
    let s = ok_json(home.path(), &["stats"]);
    assert_eq!(s["fleet"]["specs"], 2);
    assert_eq!(s["fleet"]["by_status"]["planned"], 1);
    assert_eq!(s["fleet"]["completion_rate"], 0.5);
    assert_eq!(s["machines"][0]["machine_label"], "laptop");
}

/// `check`: exit 0 when nothing is wrong, 1 (for CI) with the problems listed when
/// something is: here a dependency on a spec that is not there.
#[test]
fn check_exits_one_when_it_finds_problems() {
    let (home, p) = initialised_with_project();
    let clean = ok_json(home.path(), &["check"]);
    assert_eq!(clean["problems"], serde_json::json!([]));
    assert_eq!(clean["specs"], 2);
    write_spec(
        p.path(),
        "003-gamma",
        "---\nstatus: draft\ncreated: '2025-03-01'\ndepends_on:\n  - 042-missing\n---\n\n# Gamma\n",
    );
    assert!(run(home.path(), &["scan"]).status.success());
    let out = run(home.path(), &["check", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["problems"][0]["kind"], "dangling_dependency");
    assert_eq!(report["problems"][0]["depends_on"], "042-missing");
    assert_eq!(report["problems"][0]["place"]["spec"], "003-gamma");
    let text = run(home.path(), &["check"]);
    assert_eq!(text.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&text.stdout).contains("depends on 042-missing"));
}

/// `board` and `deps` as a user runs them: JSON shapes, text fitted to `--width`, a
/// bad grouping refused, an unknown spec `not_found` (exit 7).
#[test]
fn board_and_deps_in_json_and_text() {
    let (home, _project) = initialised_with_project();
    let b = ok_json(home.path(), &["board"]);
    assert_eq!(b["group_by"], "status");
    let col = |b: &Value, key: &str| -> Vec<String> {
        b["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .find(|c| c["key"] == key)
            .map(|c| {
                assert_eq!(c["count"], c["specs"].as_array().map_or(0, Vec::len));
                c["specs"]
                    .as_array()
                    .expect("specs")
                    .iter()
                    .filter_map(|s| s["spec"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(col(&b, "planned"), vec!["001-alpha"]);
    assert_eq!(col(&b, "complete"), vec!["002-beta"]);
    let by_tag = ok_json(
        home.path(),
        &["board", "status:planned", "--group-by", "tag"],
    );
    assert_eq!(col(&by_tag, "core"), vec!["001-alpha"]);
    assert!(
        col(&by_tag, "ui").is_empty(),
        "the query keeps planned specs only"
    );
    let text = run(home.path(), &["board", "--width", "60"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.lines().all(|l| l.chars().count() <= 60), "{text}");
    assert!(
        text.contains("PLANNED (1)") && text.contains("001 Alpha"),
        "{text}"
    );
    let out = run(home.path(), &["board", "--group-by", "colour"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses the value");
    assert!(String::from_utf8_lossy(&out.stderr).contains("status, priority"));

    let d = ok_json(home.path(), &["deps", "beta"]);
    assert_eq!(d["spec"]["name"], "002-beta");
    assert_eq!(d["upstream"][0]["spec"]["name"], "001-alpha");
    assert_eq!(d["upstream"][0]["depth"], 1);
    assert_eq!(d["downstream"], serde_json::json!([]));
    let d = ok_json(home.path(), &["deps", "1", "--downstream"]);
    assert_eq!(d["upstream"], Value::Null, "not asked");
    assert_eq!(d["downstream"][0]["spec"]["name"], "002-beta");
    let text = run(home.path(), &["deps", "2"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("depends on:\n  001-alpha  Alpha  [planned]  on laptop"),
        "{text}"
    );
    let out = run(home.path(), &["deps", "42"]);
    assert_eq!(out.status.code(), Some(7), "not_found");
}
