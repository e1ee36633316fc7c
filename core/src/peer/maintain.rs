//! Store maintenance off the latency path (`Machine::defer_maintenance`): received
//! replicas are committed lazily (`store::Batch::lazy`: no fsync between a peer's change
//! and its event) and compaction waits; this task does both within [`EVERY`], so a
//! crash costs at most that much of other machines' changes, which their owners send
//! again.

use super::{Shared, lock, stopping};
use std::sync::Arc;
use std::time::Duration;

/// How long a received change may wait for the disk, and a compaction to run.
pub(crate) const EVERY: Duration = Duration::from_secs(1);

pub(crate) async fn run(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stopping(&mut shutdown) => break,
        }
        maintain(&shared).await;
    }
    maintain(&shared).await;
}

async fn maintain(shared: &Arc<Shared>) {
    // Nearly always nothing waits: a flag check, no blocking task.
    if !lock(&shared.local.machine).needs_maintenance() {
        return;
    }
    let s = shared.clone();
    match tokio::task::spawn_blocking(move || lock(&s.local.machine).maintain()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("store maintenance failed (retried in {EVERY:?}): {e}"),
        Err(e) => tracing::warn!("store maintenance task failed: {e}"),
    }
}
