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
        if s.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = s
                .sessions
                .iter()
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

    /// The CSRF token of a session: derived from the session id (which the page cannot
    /// read: the cookie is HttpOnly), handed to the page by a same-origin API call and
    /// sent back in a header with every state-changing request. A cross-site form can
    /// make the browser send the cookie but cannot learn this value.
    pub fn csrf_token(session: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"leanspec-peer ui csrf\0");
        h.update(session.as_bytes());
        hex::encode(h.finalize())
    }

    /// Whether `token` is `session`'s CSRF token (compared as hashes, so the time taken
    /// says nothing about how much of it matched).
    pub fn csrf_ok(session: &str, token: &str) -> bool {
        hash(&Self::csrf_token(session)) == hash(token)
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
        let t = UiLogins::csrf_token("s1");
        assert!(UiLogins::csrf_ok("s1", &t));
        assert!(!UiLogins::csrf_ok("s2", &t));
        assert!(!UiLogins::csrf_ok("s1", ""));
        assert_ne!(t, UiLogins::csrf_token("s2"));
    }
}
