//! Login rate limits of the web UI: failed logins are counted per client address and
//! per account name over a sliding window; past a limit, further attempts are refused
//! (HTTP 429) without checking the password, until enough failures leave the window.
//! Successful logins do not reset the counts, so one known password does not buy
//! guesses at another. IO-less; memory is bounded whatever names and addresses arrive.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long a failed login counts.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed logins from one address within [`LOGIN_WINDOW`] before it is refused.
pub const MAX_FAILURES_PER_ADDRESS: usize = 20;
/// Failed logins for one account name (from anywhere) within [`LOGIN_WINDOW`] before
/// the name is refused: slows guessing spread over many addresses. The machine's own
/// user is never locked out by it (`leanspec-peer ui` needs no password).
pub const MAX_FAILURES_PER_ACCOUNT: usize = 50;
/// Most addresses and names tracked; past it the least recently failed is forgotten.
const MAX_TRACKED: usize = 4096;

/// Failures by key within the window.
#[derive(Debug)]
struct Failures<K> {
    limit: usize,
    by_key: HashMap<K, VecDeque<Instant>>,
}

impl<K: Hash + Eq + Clone> Failures<K> {
    fn new(limit: usize) -> Self {
        Failures {
            limit,
            by_key: HashMap::new(),
        }
    }

    /// `Some(wait)` while `key` is over its limit.
    fn blocked(&mut self, key: &K, now: Instant) -> Option<Duration> {
        let q = self.by_key.get_mut(key)?;
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= LOGIN_WINDOW)
        {
            q.pop_front();
        }
        if q.len() < self.limit {
            return None;
        }
        // Allowed again once the oldest counted failure leaves the window.
        let oldest = *q.front()?;
        Some(LOGIN_WINDOW.saturating_sub(now.duration_since(oldest)))
    }

    fn record(&mut self, key: K, now: Instant) {
        if !self.by_key.contains_key(&key) && self.by_key.len() >= MAX_TRACKED {
            self.by_key.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < LOGIN_WINDOW)
            });
            if self.by_key.len() >= MAX_TRACKED
                && let Some(stale) = self
                    .by_key
                    .iter()
                    .min_by_key(|(_, q)| q.back().copied())
                    .map(|(k, _)| k.clone())
            {
                self.by_key.remove(&stale);
            }
        }
        let q = self.by_key.entry(key).or_default();
        q.push_back(now);
        // Never more than the limit is needed to decide.
        while q.len() > self.limit {
            q.pop_front();
        }
    }
}

/// The login throttle of one UI server.
#[derive(Debug)]
pub(crate) struct Throttle {
    addresses: Failures<IpAddr>,
    accounts: Failures<String>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            addresses: Failures::new(MAX_FAILURES_PER_ADDRESS),
            accounts: Failures::new(MAX_FAILURES_PER_ACCOUNT),
        }
    }
}

impl Throttle {
    /// `Err(wait)` when a login from `addr` for `name` must be refused now.
    pub(crate) fn check(&mut self, addr: IpAddr, name: &str, now: Instant) -> Result<(), Duration> {
        let a = self.addresses.blocked(&addr, now);
        let n = self.accounts.blocked(&name.to_string(), now);
        match a.max(n) {
            Some(wait) => Err(wait.max(Duration::from_secs(1))),
            None => Ok(()),
        }
    }

    /// Counts a failed login.
    pub(crate) fn failed(&mut self, addr: IpAddr, name: &str, now: Instant) {
        self.addresses.record(addr, now);
        self.accounts.record(name.to_string(), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_its_failures_until_they_age_out() {
        let mut t = Throttle::default();
        let me: IpAddr = [192, 0, 2, 1].into();
        let other: IpAddr = [192, 0, 2, 2].into();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES_PER_ADDRESS {
            assert!(t.check(me, "ana", t0).is_ok(), "attempt {i}");
            t.failed(me, &format!("name{i}"), t0);
        }
        let wait = t.check(me, "bob", t0).expect_err("limited");
        assert_eq!(wait, LOGIN_WINDOW);
        assert!(t.check(other, "bob", t0).is_ok(), "another address is not");
        assert!(
            t.check(me, "bob", t0 + LOGIN_WINDOW).is_ok(),
            "the window passed"
        );
    }

    #[test]
    fn an_account_is_refused_after_failures_from_many_addresses() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES_PER_ACCOUNT {
            let addr: IpAddr = [10, 0, (i / 256) as u8, (i % 256) as u8].into();
            t.failed(addr, "ana", t0 + Duration::from_secs(i as u64));
        }
        let fresh: IpAddr = [198, 51, 100, 7].into();
        let later = t0 + Duration::from_secs(60);
        let wait = t.check(fresh, "ana", later).expect_err("limited");
        assert_eq!(wait, LOGIN_WINDOW - Duration::from_secs(60));
        assert!(t.check(fresh, "bob", later).is_ok());
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_names() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED * 3) {
            let addr: IpAddr = std::net::Ipv6Addr::from(i as u128).into();
            t.failed(addr, &format!("n{i}"), t0);
        }
        assert!(t.addresses.by_key.len() <= MAX_TRACKED);
        assert!(t.accounts.by_key.len() <= MAX_TRACKED);
    }
}
