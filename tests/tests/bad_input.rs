//! Bad input on disk: every case gets a clear message and never stops a scan.

use leanspec_peer_core::Machine;
use leanspec_peer_core::spec::{self, Status};
use leanspec_peer_tests::{TempProject, spec_text};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;

fn scan_one(
    project: &TempProject,
) -> (Machine, tempfile::TempDir, leanspec_peer_core::ProjectScan) {
    let home = tempfile::tempdir().expect("home");
    let (mut m, _) = Machine::init(home.path(), Some("t")).expect("init");
    let (_, scan) = m.add_project(project.root(), Some("p")).expect("add");
    (m, home, scan)
}

fn error_of(m: &Machine, name: &str) -> String {
    m.spec("p", name)
        .expect("spec is kept")
        .spec
        .parse_error
        .unwrap_or_default()
}

#[test]
fn every_bad_file_is_kept_with_a_clear_error_and_the_scan_goes_on() {
    let p = TempProject::new();
    p.write("001-good", spec_text("planned", "Good"));
    p.write("002-crlf", spec_text("draft", "Crlf").replace('\n', "\r\n"));
    p.write(
        "003-bom",
        format!("\u{feff}{}", spec_text("complete", "Bom")),
    );
    p.write("004-no-frontmatter", "# Just a title\n\nno metadata\n");
    p.write(
        "005-unterminated",
        "---\nstatus: draft\ncreated: 2025-01-01\n# Title\n",
    );
    p.write(
        "006-invalid-yaml",
        "---\nstatus: [draft\ncreated: : :\n---\n# T\n",
    );
    p.write(
        "007-binary",
        b"---\nstatus: draft\n---\n\x00\x01\x02\xff".as_slice(),
    );
    p.write(
        "008-not-utf8",
        b"---\nstatus: draft\ncreated: 2025-01-01\n---\n# caf\xe9\n".as_slice(),
    );
    let huge = p.write("009-huge", spec_text("draft", "Huge"));
    let f = fs::OpenOptions::new()
        .append(true)
        .open(&huge)
        .expect("open");
    f.set_len(spec::MAX_SPEC_BYTES + 1).expect("grow");
    p.write(
        "010-unknown-priority",
        "---\nstatus: planned\npriority: p1\ncreated: 20251101\ntags: [x]\n---\n# P\n",
    );
    // A README that is a symlink loop, and a symlinked folder that loops back.
    fs::create_dir_all(p.specs().join("011-loop")).expect("mkdir");
    symlink("README.md", p.specs().join("011-loop/README.md")).expect("symlink");
    symlink(p.specs(), p.specs().join("012-folder-loop")).expect("symlink");
    // A folder whose name is not UTF-8.
    let bad_name = p.specs().join(OsStr::from_bytes(b"013-\xff\xfe"));
    fs::create_dir_all(&bad_name).expect("mkdir");
    fs::write(bad_name.join("README.md"), spec_text("draft", "Bad name")).expect("write");
    // A digit folder with no README that is not a group: ignored.
    fs::create_dir_all(p.specs().join("014-empty")).expect("mkdir");

    let (m, _home, scan) = scan_one(&p);
    assert_eq!(scan.specs, 11, "{scan:?}");
    assert!(
        scan.warnings.iter().any(|w| w.contains("non-UTF-8 name")),
        "{:?}",
        scan.warnings
    );
    assert!(
        scan.warnings
            .iter()
            .any(|w| w.contains("not following symlinked folder")),
        "{:?}",
        scan.warnings
    );

    assert_eq!(error_of(&m, "001-good"), "");
    let crlf = m.spec("p", "002-crlf").expect("crlf").spec;
    assert_eq!(
        (crlf.status, crlf.parse_error, crlf.title.as_str()),
        (Some(Status::Draft), None, "Crlf")
    );
    let bom = m.spec("p", "003-bom").expect("bom").spec;
    assert_eq!(
        (bom.status, bom.parse_error),
        (Some(Status::Complete), None)
    );
    assert!(error_of(&m, "004-no-frontmatter").contains("no frontmatter"));
    assert_eq!(
        m.spec("p", "004-no-frontmatter").expect("kept").spec.title,
        "Just a title"
    );
    assert!(error_of(&m, "005-unterminated").contains("never closes"));
    assert!(error_of(&m, "006-invalid-yaml").contains("invalid YAML"));
    assert!(error_of(&m, "007-binary").contains("binary"));
    assert!(error_of(&m, "008-not-utf8").contains("not UTF-8"));
    let huge = m.spec("p", "009-huge").expect("kept").spec;
    assert!(
        huge.parse_error
            .unwrap_or_default()
            .contains("larger than the 4 MiB limit")
    );
    let unknown = m.spec("p", "010-unknown-priority").expect("kept").spec;
    assert_eq!(unknown.status, Some(Status::Planned));
    assert_eq!(unknown.created.as_deref(), Some("2025-11-01"));
    assert_eq!(unknown.tags, ["x"]);
    assert!(
        unknown
            .parse_error
            .unwrap_or_default()
            .contains("unknown priority \"p1\"")
    );
    assert!(
        error_of(&m, "011-loop").contains("symlink loop"),
        "{}",
        error_of(&m, "011-loop")
    );
}

#[test]
fn sub_files_belong_to_their_spec_and_deleting_one_keeps_the_spec() {
    let p = TempProject::new();
    let readme = p.write("001-a", spec_text("planned", "A"));
    let sub = readme.with_file_name("DESIGN.md");
    fs::write(&sub, "# design").expect("write");
    fs::write(readme.with_file_name("notes.txt"), "not markdown").expect("write");
    let (mut m, _home, _) = scan_one(&p);
    assert_eq!(
        m.spec("p", "001-a").expect("a").spec.sub_files,
        ["DESIGN.md"]
    );
    fs::remove_file(&sub).expect("rm");
    let report = m.scan(&mut |_| {}).expect("scan");
    assert_eq!(report.projects[0].removed, 0);
    assert!(
        m.spec("p", "001-a")
            .expect("still there")
            .spec
            .sub_files
            .is_empty()
    );
    fs::remove_dir_all(readme.parent().expect("dir")).expect("rm dir");
    let report = m.scan(&mut |_| {}).expect("scan");
    assert_eq!(report.projects[0].removed, 1);
    assert!(m.spec("p", "001-a").is_err());
}

#[test]
fn nested_groups_up_to_three_levels() {
    let p = TempProject::new();
    p.write("20251101/002-x", spec_text("draft", "Nested"));
    p.write("1/2/003-y", spec_text("draft", "Deep"));
    p.write("1/2/3/004-too-deep", spec_text("draft", "Too deep"));
    let (m, _home, scan) = scan_one(&p);
    assert_eq!(scan.specs, 2);
    assert_eq!(
        m.spec("p", "20251101/002-x").expect("nested").spec.title,
        "Nested"
    );
    assert_eq!(m.spec("p", "3").expect("by number").spec.name, "1/2/003-y");
}

#[test]
fn specs_folder_detection_follows_leanspec() {
    for (layout, config) in [
        (".lean-spec/specs", None),
        ("docs/specs", None),
        ("doc/specs", None),
        ("custom/place", Some(r#"{"specsDir": "custom/place"}"#)),
    ] {
        let root = tempfile::tempdir().expect("root");
        let dir = root.path().join(layout).join("001-x");
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("README.md"), spec_text("draft", "X")).expect("write");
        if let Some(c) = config {
            fs::create_dir_all(root.path().join(".lean-spec")).expect("mkdir");
            fs::write(root.path().join(".lean-spec/config.json"), c).expect("write");
        }
        assert_eq!(
            spec::find_specs_dir(root.path()),
            Some(root.path().join(layout)),
            "{layout}"
        );
    }
    let empty = tempfile::tempdir().expect("root");
    assert_eq!(spec::find_specs_dir(empty.path()), None);
}

#[test]
fn a_missing_project_folder_keeps_the_last_known_specs() {
    let p = TempProject::new();
    p.write("001-a", spec_text("planned", "A"));
    let (mut m, _home, _) = scan_one(&p);
    fs::rename(p.specs(), p.root().join("moved")).expect("move");
    let report = m.scan(&mut |_| {}).expect("scan");
    assert_eq!(report.projects[0].removed, 0);
    assert!(report.projects[0].warnings[0].contains("keeping the last scanned specs"));
    assert!(m.spec("p", "001-a").is_ok());
}

#[test]
fn edit_file_writes_atomically_and_guards_the_hash() {
    let p = TempProject::new();
    let path = p.write("001-a", spec_text("planned", "A"));
    let before = fs::read(&path).expect("read");
    let change = spec::MetadataChange {
        status: Some(Status::InProgress),
        ..Default::default()
    };
    let specs = spec::SpecsDir::open(&p.specs()).expect("specs");
    let stale = spec::edit_file(
        &specs,
        "001-a",
        &change,
        "2026-01-01T00:00:00.000Z",
        Some(&"0".repeat(64)),
    );
    assert!(
        matches!(stale, Err(spec::EditError::Stale { .. })),
        "{stale:?}"
    );
    assert_eq!(
        fs::read(&path).expect("read"),
        before,
        "a refused edit leaves the file alone"
    );
    let out = spec::edit_file(
        &specs,
        "001-a",
        &change,
        "2026-01-01T00:00:00.000Z",
        Some(&spec::sha256_hex(&before)),
    )
    .expect("edit");
    let after = fs::read(&path).expect("read");
    assert_eq!(out.new_file_hash, spec::sha256_hex(&after));
    assert_eq!(
        spec::parse_bytes("001-a", &after, vec![]).status,
        Some(Status::InProgress)
    );
    let leftovers: Vec<_> = fs::read_dir(path.parent().expect("dir"))
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temp files left: {leftovers:?}");
    // Symlinked spec files are not edited through.
    let link = p.specs().join("002-link");
    fs::create_dir_all(&link).expect("mkdir");
    symlink(&path, link.join("README.md")).expect("symlink");
    let e = spec::edit_file(
        &specs,
        "002-link",
        &change,
        "2026-01-01T00:00:00.000Z",
        None,
    );
    assert!(
        matches!(e, Err(spec::EditError::NotEditable { .. })),
        "{e:?}"
    );
}
