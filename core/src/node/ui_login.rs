//! Who may use the web UI, and as whom. Two ways in: a one-time login token handed to
//! the user who can reach the control socket (`leanspec-peer ui`: the machine's own user,
//! admin), or an account's name and password (`ui_accounts`). Either is exchanged for a
//! session id the browser keeps in an HttpOnly cookie. Tokens and session ids are random
//! 256-bit values kept only as SHA-256 hashes, in memory: a restart logs everyone out.
//! IO-less apart from the random source.

use super::ui_accounts::Role;
use super::ui_throttle::Throttle;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a login token may wait to be used.
pub const LOGIN_TOKEN_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a session lasts without use.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 60 * 60);
/// How long an account's session lasts at most, used or not.
pub const SESSION_MAX: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Bounds on what is kept (a flood of `ui` calls cannot grow memory).
const MAX_TOKENS: usize = 64;
const MAX_SESSIONS: usize = 256;
/// Sessions one account (or the machine's own user) holds at most: its own oldest goes
/// first, so one account logging in again and again never ends another's session.
pub(crate) const MAX_SESSIONS_PER_ACCOUNT: usize = 16;
/// Successful password logins of one account within [`LOGIN_WINDOW`]; more wait.
pub(crate) const MAX_LOGINS_PER_ACCOUNT: usize = 30;
/// The window of [`MAX_LOGINS_PER_ACCOUNT`].
pub(crate) const LOGIN_WINDOW: Duration = Duration::from_secs(10 * 60);

/// The logins of one node's web UI.
#[derive(Debug, Default)]
pub struct UiLogins {
    inner: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    tokens: HashMap<[u8; 32], Instant>,
    sessions: HashMap<[u8; 32], Session>,
    throttle: Throttle,
    /// When each account's recent successful logins were.
    logins: HashMap<String, Vec<Instant>>,
    /// The key of CSRF tokens (random, made at first use, per process).
    csrf_key: Option<[u8; 32]>,
}

/// Who a session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    /// The account, or `None` for the machine's own user (token login).
    pub account: Option<String>,
    /// What the session may do.
    pub role: Role,
}

#[derive(Debug)]
struct Session {
    who: Who,
    opened: Instant,
    used: Instant,
}

impl Session {
    fn live(&self, now: Instant) -> bool {
        now.duration_since(self.used) < SESSION_IDLE
            && (self.who.account.is_none() || now.duration_since(self.opened) < SESSION_MAX)
    }
}

fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn random_hex() -> Option<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).ok()?;
    Some(hex::encode(b))
}

impl UiLogins {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new one-time login token (`None` if the system has no randomness to give).
    pub fn new_token(&self, now: Instant) -> Option<String> {
        let token = random_hex()?;
        let mut s = self.state();
        s.tokens
            .retain(|_, made| now.duration_since(*made) < LOGIN_TOKEN_TTL);
        if s.tokens.len() >= MAX_TOKENS {
            // The oldest goes.
            if let Some(oldest) = s.tokens.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                s.tokens.remove(&oldest);
            }
        }
        s.tokens.insert(hash(&token), now);
        Some(token)
    }

    /// Exchanges a login token (once, within its lifetime) for a new session id of the
    /// machine's own user.
    pub fn redeem(&self, token: &str, now: Instant) -> Option<String> {
        let made = self.state().tokens.remove(&hash(token))?;
        if now.duration_since(made) >= LOGIN_TOKEN_TTL {
            return None;
        }
        self.open(
            Who {
                account: None,
                role: Role::Admin,
            },
            now,
        )
    }

    /// A new session for `who`.
    pub(crate) fn open(&self, who: Who, now: Instant) -> Option<String> {
        let session = random_hex()?;
        let mut s = self.state();
        s.sessions.retain(|_, v| v.live(now));
        // Room is made within the account first, then taken from whoever holds the
        // most: never from an account with fewer sessions than this one would have.
        let mine = s
            .sessions
            .values()
            .filter(|v| v.who.account == who.account)
            .count();
        let evict_from = if mine >= MAX_SESSIONS_PER_ACCOUNT {
            Some(who.account.clone())
        } else if s.sessions.len() >= MAX_SESSIONS {
            let mut counts: HashMap<&Option<String>, usize> = HashMap::new();
            for v in s.sessions.values() {
                *counts.entry(&v.who.account).or_default() += 1;
            }
            counts
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .map(|(a, _)| a.clone())
        } else {
            None
        };
        if let Some(account) = evict_from
            && let Some(oldest) = s
                .sessions
                .iter()
                .filter(|(_, v)| v.who.account == account)
                .min_by_key(|(_, v)| v.used)
                .map(|(k, _)| *k)
        {
            s.sessions.remove(&oldest);
        }
        s.sessions.insert(
            hash(&session),
            Session {
                who,
                opened: now,
                used: now,
            },
        );
        Some(session)
    }

    /// Who `session` is, while it is live; using it keeps it alive.
    pub fn check(&self, session: &str, now: Instant) -> Option<Who> {
        let mut s = self.state();
        match s.sessions.get_mut(&hash(session)) {
            Some(v) if v.live(now) => {
                v.used = now;
                Some(v.who.clone())
            }
            _ => None,
        }
    }

    /// Ends one session (logout).
    pub fn end(&self, session: &str) {
        self.state().sessions.remove(&hash(session));
    }

    /// Ends every session of `account` (its password changed, or it was removed).
    pub(crate) fn end_sessions_of(&self, account: &str) {
        self.state()
            .sessions
            .retain(|_, v| v.who.account.as_deref() != Some(account));
    }

    /// `Err(wait)` while logins from `addr` or for `name` are throttled.
    pub(crate) fn throttled(&self, addr: IpAddr, name: &str, now: Instant) -> Result<(), Duration> {
        self.state().throttle.check(addr, name, now)
    }

    /// Counts a failed login.
    pub(crate) fn login_failed(&self, addr: IpAddr, name: &str, now: Instant) {
        self.state().throttle.failed(addr, name, now);
    }

    /// `Err(wait)` while `name` has had [`MAX_LOGINS_PER_ACCOUNT`] successful logins
    /// within [`LOGIN_WINDOW`] (each one costs a password hash and a session).
    pub(crate) fn login_rate(&self, name: &str, now: Instant) -> Result<(), Duration> {
        let mut s = self.state();
        s.logins.retain(|_, t| {
            t.last()
                .is_some_and(|l| now.duration_since(*l) < LOGIN_WINDOW)
        });
        let Some(times) = s.logins.get_mut(name) else {
            return Ok(());
        };
        times.retain(|t| now.duration_since(*t) < LOGIN_WINDOW);
        match times.first() {
            Some(first) if times.len() >= MAX_LOGINS_PER_ACCOUNT => {
                Err(LOGIN_WINDOW.saturating_sub(now.duration_since(*first)))
            }
            _ => Ok(()),
        }
    }

    /// Counts a successful login of `name`.
    pub(crate) fn login_succeeded(&self, name: &str, now: Instant) {
        let mut s = self.state();
        if s.logins.len() < 4096 || s.logins.contains_key(name) {
            s.logins.entry(name.to_string()).or_default().push(now);
        }
    }

    /// The CSRF token of a session: HMAC-SHA256 of the session id under a key this
    /// process made at random, handed to the page by a same-origin API call and sent
    /// back in a header with every state-changing request. A cross-site form can make
    /// the browser send the cookie but cannot learn this value, and whoever learns the
    /// session id alone cannot compute it. `None` when the system has no randomness.
    pub fn csrf_token(&self, session: &str) -> Option<String> {
        use hmac::Mac;
        let key = {
            let mut s = self.state();
            match s.csrf_key {
                Some(k) => k,
                None => {
                    let mut k = [0u8; 32];
                    getrandom::fill(&mut k).ok()?;
                    s.csrf_key = Some(k);
                    k
                }
            }
        };
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&key).ok()?;
        mac.update(b"leanspec-peer ui csrf\0");
        mac.update(session.as_bytes());
        Some(hex::encode(mac.finalize().into_bytes()))
    }

    /// Whether `token` is `session`'s CSRF token (compared as hashes, so the time taken
    /// says nothing about how much of it matched).
    pub fn csrf_ok(&self, session: &str, token: &str) -> bool {
        self.csrf_token(session)
            .is_some_and(|t| hash(&t) == hash(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_logs_in_once_and_expires() {
        let l = UiLogins::default();
        let t0 = Instant::now();
        let token = l.new_token(t0).expect("token");
        assert!(l.redeem("not-a-token", t0).is_none());
        let session = l.redeem(&token, t0).expect("first use");
        assert!(l.redeem(&token, t0).is_none(), "one-time");
        let who = l
            .check(&session, t0 + Duration::from_secs(60))
            .expect("live");
        assert_eq!((who.account, who.role), (None, Role::Admin));
        assert!(l.check("forged", t0).is_none());
        assert!(
            l.check(&session, t0 + Duration::from_secs(60) + SESSION_IDLE)
                .is_none()
        );
        let late = l.new_token(t0).expect("token");
        assert!(l.redeem(&late, t0 + LOGIN_TOKEN_TTL).is_none(), "expired");
        for _ in 0..(MAX_TOKENS * 2) {
            l.new_token(t0);
        }
        assert!(l.state().tokens.len() <= MAX_TOKENS);
    }

    #[test]
    fn account_sessions_end_on_logout_password_change_and_age() {
        let l = UiLogins::default();
        let t0 = Instant::now();
        let ana = || Who {
            account: Some("ana".into()),
            role: Role::Editor,
        };
        let s1 = l.open(ana(), t0).expect("session");
        let s2 = l.open(ana(), t0).expect("session");
        let bob = l
            .open(
                Who {
                    account: Some("bob".into()),
                    role: Role::Viewer,
                },
                t0,
            )
            .expect("session");
        assert_eq!(l.check(&s1, t0), Some(ana()));
        l.end(&s1);
        assert!(l.check(&s1, t0).is_none(), "logged out");
        l.end_sessions_of("ana");
        assert!(l.check(&s2, t0).is_none(), "every session of ana");
        assert!(l.check(&bob, t0).is_some(), "not bob's");
        // Kept alive by use, an account's session still ends after SESSION_MAX.
        let mut t = t0;
        while t < t0 + SESSION_MAX - SESSION_IDLE {
            t += SESSION_IDLE / 2;
            assert!(l.check(&bob, t).is_some());
        }
        assert!(l.check(&bob, t0 + SESSION_MAX).is_none());
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let l = UiLogins::default();
        let t = l.csrf_token("s1").expect("token");
        assert!(l.csrf_ok("s1", &t));
        assert!(!l.csrf_ok("s2", &t));
        assert!(!l.csrf_ok("s1", ""));
        assert_ne!(Some(t.clone()), l.csrf_token("s2"));
        // Not computable from the session id: another process's key gives another token.
        assert_ne!(Some(t), UiLogins::default().csrf_token("s1"));
    }
}

#[cfg(test)]
mod per_account {
    use super::*;

    /// Issue 39: a viewer logging in 300 times ends none of an admin's sessions.
    #[test]
    fn one_account_logging_in_again_and_again_evicts_only_its_own_sessions() {
        let l = UiLogins::default();
        let t0 = Instant::now();
        let who = |a: &str, role| Who {
            account: Some(a.into()),
            role,
        };
        let admin = l.open(who("ann", Role::Admin), t0).expect("admin");
        let mut last = String::new();
        for i in 0..300 {
            last = l
                .open(who("vic", Role::Viewer), t0 + Duration::from_millis(i))
                .expect("viewer");
        }
        assert!(l.check(&admin, t0).is_some(), "the admin's session lives");
        assert!(l.check(&last, t0).is_some());
        let held = l
            .state()
            .sessions
            .values()
            .filter(|v| v.who.account.as_deref() == Some("vic"))
            .count();
        assert_eq!(held, MAX_SESSIONS_PER_ACCOUNT);
    }

    #[test]
    fn successful_logins_of_one_account_are_rate_limited() {
        let l = UiLogins::default();
        let t0 = Instant::now();
        for _ in 0..MAX_LOGINS_PER_ACCOUNT {
            assert!(l.login_rate("vic", t0).is_ok());
            l.login_succeeded("vic", t0);
        }
        assert!(l.login_rate("vic", t0).is_err());
        assert!(
            l.login_rate("ann", t0).is_ok(),
            "another account is not slowed"
        );
        assert!(l.login_rate("vic", t0 + LOGIN_WINDOW).is_ok());
    }
}
