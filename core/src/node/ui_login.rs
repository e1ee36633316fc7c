//! Who may use the web UI: a one-time login token handed to the user who can reach the
//! control socket (`leanspec-peer ui`), exchanged once for a session id the browser keeps
//! in an HttpOnly cookie. Both are random 256-bit values kept only as SHA-256 hashes, in
//! memory: a restart logs everyone out. IO-less apart from the random source.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a login token may wait to be used.
pub const LOGIN_TOKEN_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a session lasts without use.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 60 * 60);
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
    sessions: HashMap<[u8; 32], Instant>,
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

    /// Exchanges a login token (once, within its lifetime) for a new session id.
    pub fn redeem(&self, token: &str, now: Instant) -> Option<String> {
        let mut s = self.state();
        let made = s.tokens.remove(&hash(token))?;
        if now.duration_since(made) >= LOGIN_TOKEN_TTL {
            return None;
        }
        let session = random_hex()?;
        s.sessions
            .retain(|_, used| now.duration_since(*used) < SESSION_IDLE);
        if s.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = s.sessions.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k)
        {
            s.sessions.remove(&oldest);
        }
        s.sessions.insert(hash(&session), now);
        Some(session)
    }

    /// Whether `session` is live; using it keeps it alive.
    pub fn check(&self, session: &str, now: Instant) -> bool {
        let mut s = self.state();
        match s.sessions.get_mut(&hash(session)) {
            Some(used) if now.duration_since(*used) < SESSION_IDLE => {
                *used = now;
                true
            }
            _ => false,
        }
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
        assert!(l.check(&session, t0 + Duration::from_secs(60)));
        assert!(!l.check("forged", t0));
        assert!(!l.check(&session, t0 + Duration::from_secs(60) + SESSION_IDLE));
        let late = l.new_token(t0).expect("token");
        assert!(l.redeem(&late, t0 + LOGIN_TOKEN_TTL).is_none(), "expired");
        for _ in 0..(MAX_TOKENS * 2) {
            l.new_token(t0);
        }
        assert!(l.state().tokens.len() <= MAX_TOKENS);
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
