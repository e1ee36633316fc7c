//! The replay guard's cost per operation with millions of live operation ids (issue 38):
//! a store holding `BENCH_LIVE_IDS` live ids (default 2,000,000, the most the allowed
//! operation rate keeps alive is ~1.7 M), then `BENCH_OPS` operations marked one by one
//! as `ops::verify` does (one write transaction each, fsync included), a few of the
//! oldest ids expiring as they go. Prints p50/p99/max per operation.
//!
//!   cargo bench -p leanspec-peer-core --bench replay
//!
//! The store is in a temporary folder on the disk that holds `TMPDIR` (the home folder's
//! disk in a user's setup: the fsync is part of the cost).

use leanspec_peer_core::store::Store;
use std::time::Instant;

mod common;
use common::{env_usize, pct};

fn main() {
    let live = env_usize("BENCH_LIVE_IDS", 2_000_000);
    let ops = env_usize("BENCH_OPS", 1_000);
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(&dir.path().join("store.redb")).expect("store");
    let t0 = Instant::now();
    // Ids expire 1 ms apart from 1,000,000 on: operation i forgets the ids that
    // expired before 1,000,000 + i (one a step), as time passing does.
    let id = |n: u64| {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&n.to_be_bytes());
        b[8..].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
        b.to_vec()
    };
    let mut n = 0u64;
    while (n as usize) < live {
        let end = (n + 100_000).min(live as u64);
        store
            .mark_ops_seen_unchecked((n..end).map(|i| (id(i), 1_000_000 + i)))
            .expect("fill");
        n = end;
    }
    eprintln!(
        "{live} live ids stored in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let mut took = Vec::with_capacity(ops);
    for i in 0..ops as u64 {
        let t = Instant::now();
        let fresh = store
            .mark_op_seen(&id(u64::MAX - i), 10_000_000 + i, 1_000_000 + i)
            .expect("mark");
        took.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(fresh);
    }
    let max = took.iter().copied().fold(0.0, f64::max);
    println!(
        "| replay guard, {live} live ids, {ops} operations | p50 {:.3} ms | p99 {:.3} ms | max {:.3} ms |",
        pct(&mut took, 0.5),
        pct(&mut took, 0.99),
        max
    );
}
