//! Keeps the mesh's buckets current while the network runs: a round at start, a push
//! shortly after each change of this machine's document or the mesh (changes made
//! meanwhile go in the same object), a pull on an interval, and after a failure a retry
//! with backoff (nothing is lost: what was not stored is pushed by the next round).

use super::Shared;
use crate::machine::DocKey;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(60);

pub(super) async fn run(shared: Arc<Shared>, pull_every: Duration, push_delay: Duration) {
    let mut changed = shared.changed.subscribe();
    let me = shared.me;
    let mut retry = FIRST_RETRY;
    let mut next_pull = Instant::now();
    loop {
        let pull = Instant::now() >= next_pull;
        let (rounds, imported) = crate::bucket::sync_all(&shared.local, pull).await;
        for (key, changes) in imported {
            shared.announce(key, &changes);
        }
        if rounds.iter().any(|r| r.error.is_some()) {
            next_pull = Instant::now() + retry;
            retry = (retry * 2).min(LAST_RETRY);
        } else {
            retry = FIRST_RETRY;
            if pull {
                next_pull = Instant::now() + pull_every;
            }
        }
        // Without a bucket there is nothing to pull: no timer, only a mesh change (which
        // may add one) wakes the task, so an idle daemon does not read the mesh each minute.
        tokio::select! {
            _ = tokio::time::sleep_until(next_pull), if !rounds.is_empty() => {}
            // Without a bucket only a mesh change can bring one: this machine's own
            // changes do not wake the task.
            more = own_change(&mut changed, me, !rounds.is_empty()) => {
                if !more {
                    return;
                }
                tokio::time::sleep(push_delay).await;
                // What came in while waiting goes in the same object.
                while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) =
                    changed.try_recv()
                {}
            }
        }
    }
}

/// Waits for a change of the mesh, or of this machine's document when `mine`; false
/// once the peer stops.
async fn own_change(
    changed: &mut tokio::sync::broadcast::Receiver<DocKey>,
    me: crate::identity::MachineId,
    mine: bool,
) -> bool {
    loop {
        match changed.recv().await {
            Ok(DocKey::Mesh) | Err(RecvError::Lagged(_)) => return true,
            Ok(DocKey::Machine(id)) if mine && id == me => return true,
            Ok(_) => {}
            Err(RecvError::Closed) => return false,
        }
    }
}
