//! Which commits are on disk. Every [`super::Store::commit`] gets the next generation;
//! a lazy one ([`super::Batch::lazy`]) is durable only once a later durable commit or a
//! flush has run. A sender of this machine's own changes waits for the generation of
//! the commit that stored them ([`Durable::covers`]), so a change is never sent before
//! it is on disk, while the fsync runs beside making and signing the message
//! (docs/design.md, store invariant 7).
//!
//! Invariants:
//! - generations only grow, also across a reopen after an I/O error;
//! - `durable <= written`, and every commit numbered `<= durable` is on disk;
//! - a reopen that lost lazy commits adds one to `losses`: a waiter that saw the old
//!   count holds something that may no longer exist and must give it up.

use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::sync::watch;

/// What is on disk, as sessions see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Durable {
    /// Every commit up to this generation is on disk.
    pub generation: u64,
    /// How many reopens lost lazy commits.
    pub losses: u64,
}

impl Durable {
    /// Whether a commit of `generation`, made when `losses` reopens had lost commits,
    /// is on disk: `Some(true)` yes, `Some(false)` not yet, `None` never (a reopen
    /// lost it).
    pub fn covers(&self, generation: u64, losses: u64) -> Option<bool> {
        (self.losses == losses).then_some(self.generation >= generation)
    }
}

/// Generation counters; their lock is held for a whole write transaction, so the
/// numbers follow redb's commit order.
#[derive(Debug, Default)]
pub(super) struct Generations {
    pub(super) written: u64,
    durable: u64,
    losses: u64,
}

#[derive(Debug)]
pub(super) struct Tracker {
    gens: Mutex<Generations>,
    published: watch::Sender<Durable>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            gens: Mutex::default(),
            published: watch::Sender::new(Durable::default()),
        }
    }
}

impl Tracker {
    /// The counters, held while a transaction runs. A panic elsewhere cannot leave
    /// them inconsistent (each update is a plain assignment), so poisoning is ignored.
    pub(super) fn lock(&self) -> MutexGuard<'_, Generations> {
        self.gens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a commit; a durable one makes every earlier one durable too.
    pub(super) fn committed(&self, gens: &mut Generations, durable: bool) -> u64 {
        gens.written += 1;
        if durable {
            self.durable_up_to(gens, gens.written);
        }
        gens.written
    }

    /// Records that a flush made everything up to `generation` durable.
    pub(super) fn durable_up_to(&self, gens: &mut Generations, generation: u64) {
        gens.durable = gens.durable.max(generation);
        self.publish(gens);
    }

    /// Records a reopen: commits after the last durable one are gone. Returns whether
    /// there were any.
    pub(super) fn reopened(&self, gens: &mut Generations) -> bool {
        let lost = gens.written > gens.durable;
        if lost {
            gens.losses += 1;
            gens.durable = gens.written;
            self.publish(gens);
        }
        lost
    }

    pub(super) fn has_unflushed(gens: &Generations) -> bool {
        gens.written > gens.durable
    }

    fn publish(&self, gens: &Generations) {
        self.published.send_replace(Durable {
            generation: gens.durable,
            losses: gens.losses,
        });
    }

    pub(super) fn now(&self) -> Durable {
        *self.published.borrow()
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<Durable> {
        self.published.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lazy_commit_is_covered_only_once_flushed_and_never_after_a_loss() {
        let t = Tracker::default();
        let mut g = t.lock();
        let first = t.committed(&mut g, false);
        assert_eq!(t.now().covers(first, 0), Some(false));
        let second = t.committed(&mut g, false);
        t.durable_up_to(&mut g, first);
        assert_eq!(t.now().covers(first, 0), Some(true));
        assert_eq!(t.now().covers(second, 0), Some(false));
        assert!(t.reopened(&mut g), "the second commit was not durable");
        assert_eq!(t.now().covers(second, 0), None, "lost: never covered");
        let third = t.committed(&mut g, true);
        assert!(third > second, "generations only grow");
        assert_eq!(t.now().covers(third, 1), Some(true));
        assert!(
            !t.reopened(&mut g),
            "nothing to lose after a durable commit"
        );
    }
}
