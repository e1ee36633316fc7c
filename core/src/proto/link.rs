//! Connection-level rules: which of two connections to one machine survives, and how
//! long a dialer waits before trying again.

use crate::identity::MachineId;
use std::time::Duration;

/// A connection to a machine, as the tie-break sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Registered {
    /// Who opened it.
    pub(crate) dialer: MachineId,
    /// It has not been seen closed yet.
    pub(crate) alive: bool,
    /// The remote machine's incarnation, from its hello: a counter the machine stores
    /// and increments each time it starts.
    pub(crate) incarnation: u64,
}

/// When a new connection to a machine we already have a session with registers: true
/// keeps the existing one (the new one is closed), false replaces it.
///
/// 1. A connection from a newer incarnation of the machine replaces the old one at
///    once: the old process is gone (crashed, killed, lost its network), even if its
///    connection has not timed out yet. Without this a restarted machine waited for
///    the idle timeout (~12 s) before anything it changed was sent. A connection from
///    an older incarnation (delivered late) never replaces a newer one.
/// 2. Between connections of the same incarnations, both sides must pick the same one
///    without talking: the one opened by the smaller machine id wins.
/// 3. A connection seen closed never wins.
pub(crate) fn keep_existing(existing: Registered, new: Registered) -> bool {
    if !existing.alive {
        return false;
    }
    if new.incarnation != existing.incarnation {
        return existing.incarnation > new.incarnation;
    }
    existing.dialer < new.dialer
}

/// Exponential backoff with jitter for a dialer.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    /// First wait after a failure.
    pub(crate) const MIN: Duration = Duration::from_millis(250);
    /// Longest wait.
    pub(crate) const MAX: Duration = Duration::from_secs(30);
    /// A session that lasted this long resets the backoff.
    pub(crate) const HEALTHY: Duration = Duration::from_secs(10);

    /// A fresh backoff.
    pub(crate) fn new() -> Backoff {
        Backoff { next: Self::MIN }
    }

    /// The wait before the next attempt (80%..120% of the current step, from `jitter`
    /// in 0..=255, so machines restarted together do not dial in lockstep), and the
    /// step doubles up to [`Backoff::MAX`].
    pub(crate) fn next_wait(&mut self, jitter: u8) -> Duration {
        let wait = self.next.mul_f64(0.8 + 0.4 * f64::from(jitter) / 255.0);
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }

    /// Back to the shortest wait (after a healthy session).
    pub(crate) fn reset(&mut self) {
        self.next = Self::MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> MachineId {
        MachineId::from_bytes([b; 32])
    }

    fn conn(dialer: MachineId, alive: bool, incarnation: u64) -> Registered {
        Registered {
            dialer,
            alive,
            incarnation,
        }
    }

    #[test]
    fn both_sides_keep_the_connection_of_the_smaller_dialer() {
        let (a, b) = (id(1), id(2));
        // Side A saw its own connection first, side B saw B's first: both keep A's.
        assert!(keep_existing(conn(a, true, 1), conn(b, true, 1)));
        assert!(!keep_existing(conn(b, true, 1), conn(a, true, 1)));
        // A dead connection is replaced whoever dialed it.
        assert!(!keep_existing(conn(a, false, 1), conn(b, true, 1)));
        // The same dialer again (a redial) replaces its old connection.
        assert!(!keep_existing(conn(a, true, 1), conn(a, true, 1)));
    }

    #[test]
    fn a_restarted_machine_replaces_its_dead_connection_at_once() {
        let (a, b) = (id(1), id(2));
        // B crashed and restarted (incarnation 7 -> 8); A's connection to the old B
        // looks alive and was dialed by the smaller id, yet the new one wins.
        assert!(!keep_existing(conn(a, true, 7), conn(b, true, 8)));
        // A late connection of the old incarnation never replaces the new one.
        assert!(keep_existing(conn(b, true, 8), conn(a, true, 7)));
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_max_and_resets() {
        let mut b = Backoff::new();
        let w = b.next_wait(0);
        assert_eq!(w, Backoff::MIN.mul_f64(0.8));
        let w = b.next_wait(255);
        assert_eq!(w, (Backoff::MIN * 2).mul_f64(1.2));
        for _ in 0..20 {
            assert!(b.next_wait(255) <= Backoff::MAX.mul_f64(1.2));
        }
        b.reset();
        assert_eq!(b.next_wait(0), Backoff::MIN.mul_f64(0.8));
    }
}
