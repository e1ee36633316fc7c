//! Store maintenance off the latency path (`Machine::defer_maintenance`): received
//! replicas are committed lazily (`store::Batch::lazy`: no fsync between a peer's change
//! and its event) and compaction waits. This task makes lazy commits durable within
//! [`EVERY`], so a crash costs at most that much of other machines' changes, which
//! their owners send again. Compaction (a full save, a transaction and redb's file
//! compaction: ~16 fsyncs, several milliseconds under the machine lock) waits for
//! [`QUIET`] without events, or [`MAX_WAIT`] under constant activity, so a save does
//! not queue behind it while the user is working.

use super::{Shared, lock, stopping};
use std::sync::Arc;
use std::time::Duration;

/// How long a received change may wait for the disk; also how often a due compaction
/// checks for quiet.
pub(crate) const EVERY: Duration = Duration::from_secs(1);
/// How long without events before a due compaction runs.
const QUIET: Duration = Duration::from_secs(2);
/// How long a compaction waits for quiet at most.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub(crate) async fn run(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stopping(&mut shutdown) => break,
        }
        maintain(&shared, false).await;
    }
    maintain(&shared, true).await;
}

async fn maintain(shared: &Arc<Shared>, closing: bool) {
    // Nearly always nothing waits: a check under the lock, no blocking task.
    let (flush, waited) = {
        let m = lock(&shared.local.machine);
        (m.has_unflushed(), m.compaction_waited())
    };
    let compact = waited
        .is_some_and(|waited| closing || waited >= MAX_WAIT || shared.local.quiet_for() >= QUIET);
    if !flush && !compact {
        return;
    }
    let s = shared.clone();
    let work = move || {
        let mut m = lock(&s.local.machine);
        if compact {
            m.maintain()
        } else {
            m.flush_store()
        }
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("store maintenance failed (retried in {EVERY:?}): {e}"),
        Err(e) => tracing::warn!("store maintenance task failed: {e}"),
    }
}
