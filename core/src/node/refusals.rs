//! Counts of what this machine refused without reading or storing it: connections
//! from strangers and revoked machines, operations over a member's rate, sync messages
//! over a limit. Counted, not audited: a stranger must not be able to grow the store
//! or the log by knocking (threat-model.md, guarantee "strangers cost nothing").

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// What was refused, by kind, since this process opened the node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalReport {
    /// Connections (sync or operation) from machines that are not members.
    pub strangers: u64,
    /// Connections from revoked machines.
    pub revoked: u64,
    /// Operations refused because their sender went over its rate.
    pub rate_limited: u64,
    /// Sync messages refused for going over a limit (size, changes, orphans, members).
    pub over_limit: u64,
    /// Join attempts refused (bad, expired, used or revoked invitation).
    pub joins: u64,
}

/// Counters behind [`RefusalReport`].
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    strangers: AtomicU64,
    revoked: AtomicU64,
    rate_limited: AtomicU64,
    over_limit: AtomicU64,
    joins: AtomicU64,
}

/// One kind of refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Stranger,
    Revoked,
    RateLimited,
    OverLimit,
    Join,
}

impl Refusals {
    /// Counts one refusal; true when it is worth a log line and an event: the first
    /// ten of a kind, then every power of two, so a flood costs a few lines, not one
    /// per attempt.
    pub(crate) fn count(&self, kind: Refused) -> bool {
        let counter = match kind {
            Refused::Stranger => &self.strangers,
            Refused::Revoked => &self.revoked,
            Refused::RateLimited => &self.rate_limited,
            Refused::OverLimit => &self.over_limit,
            Refused::Join => &self.joins,
        };
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        n <= 10 || n.is_power_of_two()
    }

    pub(crate) fn report(&self) -> RefusalReport {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RefusalReport {
            strangers: get(&self.strangers),
            revoked: get(&self.revoked),
            rate_limited: get(&self.rate_limited),
            over_limit: get(&self.over_limit),
            joins: get(&self.joins),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_counted_in_full_and_logged_sparingly() {
        let r = Refusals::default();
        let logged = (0..10_000).filter(|_| r.count(Refused::Stranger)).count();
        assert_eq!(r.report().strangers, 10_000);
        assert_eq!(r.report().revoked, 0);
        // 1..=10, then 16, 32, …, 8192.
        assert_eq!(logged, 10 + 10);
    }
}
