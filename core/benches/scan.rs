//! Scan and store benchmark (plain `main`, no harness: medians and percentiles over
//! repeated runs, printed as the rows of BENCHMARKS.md).
//!
//!   cargo bench -p leanspec-peer-core --bench scan
//!
//! Environment: `LEANSPEC_CORPUS` (template files; default ../shared/corpus/...),
//! `BENCH_SPECS` (default 10000), `BENCH_RESCANS` (default 10000), `BENCH_RUNS` (5).
//!
//! Generated specs are copies of the real corpus READMEs (cycled, ~10 KB each), so file
//! sizes and frontmatter shapes are real. Files are in the page cache for every timed
//! run, ours and sha256sum's alike: "cold" means a new store, not a cold disk.

use leanspec_peer_core::Machine;
use leanspec_peer_core::doc::{MachineDoc, MachineInfo};
use leanspec_peer_core::identity::Identity;
use leanspec_peer_core::spec::{self, MetadataChange, Priority};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

mod common;
use common::{corpus, env_usize, pct};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn generate(root: &Path, n: usize) -> Vec<String> {
    let templates: Vec<Vec<u8>> = spec::walk_path(&corpus())
        .specs
        .iter()
        .filter_map(|f| fs::read(f.dir.join("README.md")).ok())
        .collect();
    assert!(
        !templates.is_empty(),
        "no corpus templates: set LEANSPEC_CORPUS"
    );
    let specs = root.join("specs");
    let old = SystemTime::now() - Duration::from_secs(3600);
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("{:05}-generated-spec-{i}", i + 1);
        let dir = specs.join(&name);
        fs::create_dir_all(&dir).expect("mkdir");
        let p = dir.join("README.md");
        fs::write(&p, &templates[i % templates.len()]).expect("write");
        // Old mtimes: the warm scan may trust the stat of files not touched since.
        fs::File::options()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_modified(old))
            .expect("mtime");
        fs::File::open(&dir)
            .and_then(|f| f.set_modified(old))
            .expect("dir mtime");
        names.push(name);
    }
    names
}

fn sha256sum_floor(specs: &Path) -> f64 {
    let start = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg("find . -name README.md -print0 | xargs -0 sha256sum > /dev/null")
        .current_dir(specs)
        .status()
        .expect("sha256sum");
    assert!(status.success());
    start.elapsed().as_secs_f64()
}

fn main() {
    let n = env_usize("BENCH_SPECS", 10_000);
    let rescans = env_usize("BENCH_RESCANS", 10_000);
    let runs = env_usize("BENCH_RUNS", 5).max(1);
    let project = tempfile::tempdir().expect("project");
    let t = Instant::now();
    let names = generate(project.path(), n);
    let bytes: u64 = names
        .iter()
        .map(|s| {
            fs::metadata(project.path().join("specs").join(s).join("README.md"))
                .map_or(0, |m| m.len())
        })
        .sum();
    eprintln!(
        "generated {n} specs, {:.1} MB, in {:.1}s",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    // Floor: every byte read and hashed once, by sha256sum.
    sha256sum_floor(&project.path().join("specs"));
    let mut floor: Vec<f64> = (0..runs)
        .map(|_| sha256sum_floor(&project.path().join("specs")))
        .collect();
    let floor = median(&mut floor);

    // Cold scan: a new home and store each run.
    let mut cold = Vec::new();
    for _ in 0..runs {
        let home = tempfile::tempdir().expect("home");
        let (mut m, _) = Machine::init(home.path(), Some("bench")).expect("init");
        let start = Instant::now();
        let (_, scan) = m.add_project(project.path(), Some("bench")).expect("add");
        cold.push(start.elapsed().as_secs_f64());
        assert_eq!(scan.specs, n);
    }
    let cold = median(&mut cold);

    // Warm rescan of unchanged files.
    let home = tempfile::tempdir().expect("home");
    let (mut m, _) = Machine::init(home.path(), Some("bench")).expect("init");
    m.add_project(project.path(), Some("bench")).expect("add");
    let mut warm = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let r = m.scan(&mut |_| {}).expect("scan");
        warm.push(start.elapsed().as_secs_f64());
        assert_eq!(
            r.projects[0].read, 0,
            "warm scan must not read unchanged files"
        );
    }
    let warm = median(&mut warm);

    let s0 = m.doc_stats().expect("stats");
    let fresh0 = m.doc().fresh_copy_size(m.id());

    // 10,000 single-field rescans: the editor flips one spec's priority, the watcher path
    // (rescan_spec) stores the change.
    let pid = m.project("bench").expect("project").id;
    let mut change_bytes = Vec::with_capacity(rescans);
    let mut rescan_ms = Vec::with_capacity(rescans);
    let now = "2026-11-23T00:00:00.000Z";
    let specs = spec::SpecsDir::open(&project.path().join("specs")).expect("specs");
    for i in 0..rescans {
        let name = &names[(i * 7919) % names.len()];
        let path = project.path().join("specs").join(name).join("README.md");
        let cur = spec::parse_bytes(name, &fs::read(&path).expect("read"), vec![]).priority;
        let next = if cur == Some(Priority::Low) {
            Priority::High
        } else {
            Priority::Low
        };
        spec::edit_file(
            &specs,
            name,
            &MetadataChange {
                priority: Some(next),
                ..Default::default()
            },
            now,
            None,
        )
        .expect("edit");
        let start = Instant::now();
        change_bytes.push(m.rescan_spec(&pid, name).expect("rescan") as f64);
        rescan_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let s1 = m.doc_stats().expect("stats");
    m.compact().expect("compact");
    let s2 = m.doc_stats().expect("stats");
    let fresh1 = m.doc().fresh_copy_size(m.id());

    // One field alone (no file hash change): the document-level cost of a one-field edit.
    let id = Identity::generate().expect("id").id();
    let info = MachineInfo {
        id: id.to_string(),
        label: "b".into(),
        version: "0".into(),
        os: "linux".into(),
    };
    let mut doc = MachineDoc::new(id, &info, 0);
    let mut s = spec::parse_bytes(
        "001-x",
        b"---\nstatus: planned\npriority: high\ncreated: 2025-01-01\n---\n# X\n",
        vec![],
    );
    doc.put_spec("p", &s);
    doc.commit(0);
    doc.save_incremental();
    s.priority = Some(Priority::Low);
    doc.put_spec("p", &s);
    doc.commit(1_800_000_000);
    let one_field = doc.save_incremental().len();

    println!("| specs | {n} ({:.1} MB) |", bytes as f64 / 1e6);
    println!(
        "| sha256sum floor (median of {runs}) | {:.0} ms |",
        floor * 1e3
    );
    println!(
        "| cold scan (new store, median of {runs}) | {:.0} ms = {:.2}x floor (target <= 5x) |",
        cold * 1e3,
        cold / floor
    );
    println!(
        "| warm rescan, unchanged (median of {runs}) | {:.0} ms = {:.2}x floor (target <= 1x) |",
        warm * 1e3,
        warm / floor
    );
    println!(
        "| stored after cold scan | document {} B in {} chunk(s), redb file {} B; fresh save {} B |",
        s0.chunk_bytes, s0.chunks, s0.file_bytes, fresh0
    );
    println!(
        "| {rescans} single-field rescans: change size | p50 {:.0} B, p99 {:.0} B (priority + file_hash) |",
        pct(&mut change_bytes.clone(), 0.5),
        pct(&mut change_bytes, 0.99)
    );
    println!("| one field alone (priority, no hash change) | {one_field} B (target <= 200) |");
    println!(
        "| rescan_spec time | p50 {:.2} ms, p99 {:.2} ms |",
        pct(&mut rescan_ms.clone(), 0.5),
        pct(&mut rescan_ms, 0.99)
    );
    println!(
        "| stored after rescans, before final compaction | document {} B in {} chunk(s), redb file {} B |",
        s1.chunk_bytes, s1.chunks, s1.file_bytes
    );
    println!(
        "| stored after compaction | document {} B, redb file {} B; fresh save of the same state {} B; ratio {:.2} (target <= 2) |",
        s2.chunk_bytes,
        s2.file_bytes,
        fresh1,
        s2.chunk_bytes as f64 / fresh1 as f64
    );

    println!(
        "| the redb file after the rescans and a compaction | {} B = {:.2}x the store after the cold scan ({} B; target <= 2) |",
        s2.file_bytes,
        s2.file_bytes as f64 / s0.file_bytes.max(1) as f64,
        s0.file_bytes
    );

    // What the redb file holds, table by table (the machine closed first).
    drop(m);
    let db = redb::Database::open(home.path().join(leanspec_peer_core::store::STORE_FILE))
        .expect("open the store");
    use redb::{ReadableDatabase as _, ReadableTableMetadata as _, TableHandle as _};
    let tx = db.begin_read().expect("read");
    let mut tables: Vec<(String, u64, u64)> = tx
        .list_tables()
        .expect("tables")
        .filter_map(|h| {
            let t = tx.open_untyped_table(h.clone()).ok()?;
            let rows = t.len().ok()?;
            let bytes = t.stats().ok()?.stored_bytes();
            Some((h.name().to_string(), rows, bytes))
        })
        .collect();
    tables.sort_by_key(|t| std::cmp::Reverse(t.2));
    let list: Vec<String> = tables
        .iter()
        .take(4)
        .map(|(n, rows, b)| format!("{n} {rows} rows {b} B"))
        .collect();
    println!(
        "| redb tables after the rescans (largest first) | {} |",
        list.join("; ")
    );
}
