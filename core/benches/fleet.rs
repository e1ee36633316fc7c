//! Fleet queries over five machines' documents of 10,000 specs each (50,000 rows), as
//! `Node::search` and `check` run them: share every machine's cached spec table, then
//! match; the first query after a change reads the changed machine's table again.
//! Medians and percentiles, printed as BENCHMARKS.md rows.
//!
//!   cargo bench -p leanspec-peer-core --bench fleet
//!
//! Environment: `LEANSPEC_CORPUS` (spec templates), `BENCH_FLEET_MACHINES` (default 5),
//! `BENCH_FLEET_SPECS` (default 10000), `BENCH_FLEET_RUNS` (default 30),
//! `BENCH_FLEET_QUERY` (run this search only, then stop: for profiling one query).

use leanspec_peer_core::query;
use leanspec_peer_core::{DocKey, Machine, SpecFilter, spec};
use std::collections::HashMap;
use std::fs;

use std::time::Instant;

mod common;
use common::{corpus, env_usize, pct};

/// One machine's project: `n` specs from the corpus templates, under one git origin.
fn project(n: usize) -> tempfile::TempDir {
    let templates: Vec<Vec<u8>> = spec::walk_path(&corpus())
        .specs
        .iter()
        .filter_map(|f| fs::read(f.dir.join("README.md")).ok())
        .collect();
    assert!(!templates.is_empty(), "no corpus at {}", corpus().display());
    let root = tempfile::tempdir().expect("project");
    for i in 0..n {
        let dir = root
            .path()
            .join("specs")
            .join(format!("{:05}-spec-{i}", i + 1));
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("README.md"), &templates[i % templates.len()]).expect("write");
    }
    fs::create_dir(root.path().join(".git")).expect(".git");
    fs::write(
        root.path().join(".git/config"),
        "[remote \"origin\"]\n\turl = git@example.com:team/specs.git\n",
    )
    .expect("config");
    root
}

/// Syncs every document from `src` to `dst` until `src` has nothing more to say.
fn push(src: &mut Machine, dst: &mut Machine) {
    let mut states: HashMap<(bool, DocKey), automerge::sync::State> = HashMap::new();
    for _ in 0..50 {
        let mut sent = false;
        for forward in [true, false] {
            let (from, to) = if forward {
                (&mut *src, &mut *dst)
            } else {
                (&mut *dst, &mut *src)
            };
            for key in from.sync_keys() {
                let st = states.entry((forward, key)).or_default();
                if let Some(msg) = from.generate_sync(key, st) {
                    sent = true;
                    let id = from.id();
                    let rst = states.entry((!forward, key)).or_default();
                    let _ = to.receive_sync(id, key, rst, &msg);
                }
            }
        }
        if !sent {
            return;
        }
    }
}

fn main() {
    let machines = env_usize("BENCH_FLEET_MACHINES", 5);
    let specs = env_usize("BENCH_FLEET_SPECS", 10_000);
    let runs = env_usize("BENCH_FLEET_RUNS", 30);
    let t0 = Instant::now();
    let mut homes = Vec::new();
    let mut projects = Vec::new();
    let mut ms: Vec<Machine> = Vec::new();
    for i in 0..machines {
        let home = tempfile::tempdir().expect("home");
        let p = project(specs);
        let (mut m, _) = Machine::init(home.path(), Some(&format!("m{i}"))).expect("init");
        m.add_project(p.path(), Some("specs")).expect("add");
        homes.push(home);
        projects.push(p);
        ms.push(m);
    }
    let (first, rest) = ms.split_at_mut(1);
    let a = &mut first[0];
    for other in rest.iter_mut() {
        let label = other.label();
        a.add_member(other.id(), &label, None).expect("member");
    }
    let mesh = a.mesh_bytes();
    let signatures = a.mesh_signatures().expect("signatures");
    for other in rest.iter_mut() {
        other.adopt_mesh(&mesh, &signatures).expect("adopt");
        push(other, a);
    }
    let rows = a.specs(&SpecFilter::default()).expect("specs").len();
    assert_eq!(rows, machines * specs, "every machine's specs on the first");
    eprintln!(
        "fleet: {machines} machines x {specs} specs ready in {:.1?}",
        t0.elapsed()
    );

    let queries = [
        "status:archived",
        "tag:cli priority:high",
        "search OR sync NOT status:archived",
        "\"web ui\" created:>=2025-11",
        "agent~",
    ];
    // BENCH_FLEET_QUERY: this query only (for profiling one).
    let only = std::env::var("BENCH_FLEET_QUERY").ok();
    let queries: Vec<&str> = match &only {
        Some(q) => vec![q.as_str()],
        None => queries.to_vec(),
    };
    for q in queries {
        let parsed = query::parse(q).expect("query");
        let mut times = Vec::with_capacity(runs);
        let mut hits = 0;
        for _ in 0..runs {
            // As Node::search: share the cached tables, then match.
            let t = Instant::now();
            let tables = a.spec_tables(None).expect("tables");
            hits = query::search(&parsed, query::all_views(&tables), 50).len();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "| search `{q}` over {machines} machines x {specs} specs ({hits} shown) | p50 {:.1} ms, p99 {:.1} ms |",
            pct(&mut times, 0.5),
            pct(&mut times, 0.99)
        );
    }
    if only.is_some() {
        return;
    }
    // A change to one machine's document drops that machine's cached table: the next
    // query reads its 10,000 specs again (the other machines' stay cached).
    let project_id = a.projects().expect("projects")[0].id.clone();
    let spec_dir = projects[0].path().join("specs/00001-spec-0");
    let readme = fs::read_to_string(spec_dir.join("README.md")).expect("readme");
    let parsed = query::parse("status:archived").expect("query");
    let mut after_change = Vec::with_capacity(runs);
    for i in 0..runs {
        fs::write(spec_dir.join("README.md"), format!("{readme}\nedit {i}\n")).expect("edit");
        a.rescan_spec(&project_id, "00001-spec-0").expect("rescan");
        let t = Instant::now();
        let tables = a.spec_tables(None).expect("tables");
        query::search(&parsed, query::all_views(&tables), 50);
        after_change.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "| search right after a change to one machine (its {specs} specs read again) | p50 {:.1} ms, p99 {:.1} ms |",
        pct(&mut after_change, 0.5),
        pct(&mut after_change, 0.99)
    );
    let mut read = Vec::with_capacity(runs);
    let mut check = Vec::with_capacity(runs);
    let mut problems = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let all = a.specs(&SpecFilter::default()).expect("specs");
        read.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        problems = query::check(&all).problems.len();
        check.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "| copying every machine's specs out of the cached tables ({} rows) | p50 {:.1} ms, p99 {:.1} ms |",
        machines * specs,
        pct(&mut read, 0.5),
        pct(&mut read, 0.99)
    );
    println!(
        "| check over the rows ({problems} problems: the corpus's own, x{machines}) | p50 {:.1} ms, p99 {:.1} ms |",
        pct(&mut check, 0.5),
        pct(&mut check, 0.99)
    );
}
