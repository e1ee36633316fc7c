//! Per-peer budgets: how many operations a machine may send us, as a token bucket per
//! sender (burst and rate from [`crate::limits::Limits`]). IO-less (the caller passes the time), so the rule is tested without sockets.

use crate::identity::MachineId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Senders remembered at once; the oldest bucket is forgotten beyond this (only
/// members reach the bucket, so this bounds memory, not fairness).
const MAX_SENDERS: usize = 4096;

/// One token bucket per sender. Invariant: `tokens <= burst` for every bucket.
#[derive(Debug)]
pub(crate) struct OpBudget {
    burst: f64,
    per_second: f64,
    buckets: HashMap<MachineId, (f64, Instant)>,
}

impl OpBudget {
    /// The burst and sustained rate, for messages.
    pub(crate) fn rate(&self) -> (f64, f64) {
        (self.burst, self.per_second)
    }

    pub(crate) fn new(burst: u32, per_second: u32) -> OpBudget {
        OpBudget {
            burst: f64::from(burst.max(1)),
            per_second: f64::from(per_second),
            buckets: HashMap::new(),
        }
    }

    /// Takes one token from `sender`'s bucket at time `now`; false when it is empty
    /// (the operation is refused without being read).
    pub(crate) fn allow(&mut self, sender: MachineId, now: Instant) -> bool {
        if !self.buckets.contains_key(&sender) && self.buckets.len() >= MAX_SENDERS {
            let oldest = self
                .buckets
                .iter()
                .min_by_key(|(_, b)| b.1)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.buckets.remove(&k);
            }
        }
        let (tokens, at) = self.buckets.entry(sender).or_insert((self.burst, now));
        let elapsed = now.saturating_duration_since(*at).as_secs_f64();
        *tokens = (*tokens + elapsed * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until `sender` may send again (zero when it may now).
    pub(crate) fn retry_after(&self, sender: MachineId) -> Duration {
        match self.buckets.get(&sender) {
            Some((tokens, _)) if *tokens < 1.0 && self.per_second > 0.0 => {
                Duration::from_secs_f64((1.0 - tokens) / self.per_second)
            }
            _ => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> MachineId {
        MachineId::from_bytes([b; 32])
    }

    #[test]
    fn a_burst_then_the_rate() {
        let mut b = OpBudget::new(3, 2);
        let t = Instant::now();
        assert!((0..3).all(|_| b.allow(id(1), t)));
        assert!(!b.allow(id(1), t), "the burst is spent");
        assert!(b.retry_after(id(1)) > Duration::ZERO);
        // Another sender has its own bucket.
        assert!(b.allow(id(2), t));
        // Half a second at 2/s gives one token back, not more.
        let later = t + Duration::from_millis(500);
        assert!(b.allow(id(1), later));
        assert!(!b.allow(id(1), later));
        // A long pause refills to the burst only.
        let much_later = t + Duration::from_secs(3600);
        assert_eq!((0..10).filter(|_| b.allow(id(1), much_later)).count(), 3);
    }

    #[test]
    fn memory_is_bounded() {
        let mut b = OpBudget::new(1, 1);
        let t = Instant::now();
        for i in 0..(MAX_SENDERS + 100) {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_be_bytes());
            b.allow(
                MachineId::from_bytes(k),
                t + Duration::from_micros(i as u64),
            );
        }
        assert!(b.buckets.len() <= MAX_SENDERS);
    }
}
