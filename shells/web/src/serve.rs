//! The UI's connections: who may hold one, and for how long (issue 39). A flood of idle
//! clients must cost the UI at most its own slots, never the descriptors the peer needs
//! for its store, scans and control socket (a scan that cannot open files keeps the last
//! known state, but the peer should not get there because of a browser).
//!
//! 1. Every connection holds a [`Slot`] from the moment it is accepted (TLS handshakes
//!    included) until it closes: at most [`Limits::per_address`] from one IP address and
//!    [`Limits::total`] overall. Over either, the connection is closed at once: the
//!    accept loop keeps draining the kernel's queue, so a refused client costs one
//!    descriptor for microseconds, and other addresses still get in.
//! 2. [`Limits::total`] follows the descriptor limit: [`RESERVED_FDS`] stay for the
//!    peer's own work, the UI gets half of the rest (at most [`MAX_TOTAL`]).
//! 3. A request's head must arrive within [`HEADER_READ`]; hyper times the wait for
//!    every head, the first and each keep-alive one, so it is the idle timeout too.
//! 4. Request bodies are capped at [`MAX_BODY`] (`DefaultBodyLimit`, in `lib.rs`).
//! 5. Live event streams (SSE) are capped at [`MAX_LIVE`] (`read::events`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Descriptors kept for the peer itself (store, scan threads, watcher, iroh sockets,
/// control socket, bucket client).
pub(crate) const RESERVED_FDS: u64 = 128;
/// The most UI connections at once, whatever the descriptor limit.
pub(crate) const MAX_TOTAL: usize = 512;
/// The most UI connections from one IP address.
pub(crate) const MAX_PER_ADDRESS: usize = 32;
/// How long a request's head may take to arrive (also the keep-alive idle time).
pub(crate) const HEADER_READ: Duration = Duration::from_secs(10);
/// The largest request body read (edits and logins are far smaller).
pub(crate) const MAX_BODY: usize = 64 * 1024;
/// The most live event streams (open pages) at once.
pub(crate) const MAX_LIVE: usize = 64;

/// How many connections the UI may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Overall.
    pub total: usize,
    /// From one IP address.
    pub per_address: usize,
}

impl Limits {
    /// From this process's descriptor limit (rule 2), raised to the hard limit first.
    pub(crate) fn from_descriptors() -> Limits {
        let soft = raise_nofile();
        let total = (soft.saturating_sub(RESERVED_FDS) / 2).clamp(8, MAX_TOTAL as u64) as usize;
        Limits {
            total,
            per_address: MAX_PER_ADDRESS.min(total / 2).max(1),
        }
    }
}

/// Raises the soft descriptor limit to the hard one (what servers do at start) and
/// returns the soft limit now in force.
fn raise_nofile() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let Some(hard) = limit.maximum
        && limit.current.is_some_and(|s| s < hard)
    {
        limit.current = Some(hard);
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    limit.current.unwrap_or(u64::MAX / 4)
}

/// Who holds connections now.
#[derive(Debug, Clone)]
pub(crate) struct Slots {
    limits: Limits,
    held: Arc<Mutex<Held>>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

impl Slots {
    pub(crate) fn new(limits: Limits) -> Slots {
        Slots {
            limits,
            held: Arc::new(Mutex::new(Held::default())),
        }
    }

    /// A slot for a connection from `ip`, or `None` when it is over a limit (rule 1).
    pub(crate) fn admit(&self, ip: IpAddr) -> Option<Slot> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let mine = held.by_address.get(&ip).copied().unwrap_or(0);
        if held.total >= self.limits.total || mine >= self.limits.per_address {
            return None;
        }
        held.total += 1;
        held.by_address.insert(ip, mine + 1);
        Some(Slot {
            ip,
            held: self.held.clone(),
        })
    }
}

/// One held connection; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    ip: IpAddr,
    held: Arc<Mutex<Held>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.by_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.by_address.remove(&self.ip);
            }
        }
    }
}

/// A connection's stream with the slot it holds.
pub(crate) struct Admitted<S> {
    pub(crate) inner: S,
    pub(crate) _slot: Slot,
}

impl<S: AsyncRead + Unpin> AsyncRead for Admitted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Admitted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_cannot_take_every_slot_and_slots_come_back() {
        let slots = Slots::new(Limits {
            total: 4,
            per_address: 2,
        });
        let (a, b, c) = (
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from([127, 0, 0, 2]),
            IpAddr::from([127, 0, 0, 3]),
        );
        let a1 = slots.admit(a).expect("a1");
        let _a2 = slots.admit(a).expect("a2");
        assert!(slots.admit(a).is_none(), "a third from one address");
        let _b1 = slots.admit(b).expect("b1");
        let _b2 = slots.admit(b).expect("b2");
        assert!(slots.admit(c).is_none(), "over the total");
        drop(a1);
        assert!(slots.admit(c).is_some(), "a freed slot is reused");
    }

    #[test]
    fn the_total_follows_the_descriptor_limit() {
        let l = Limits::from_descriptors();
        assert!(l.total >= 8 && l.total <= MAX_TOTAL, "{l:?}");
        assert!(l.per_address <= l.total);
    }
}
