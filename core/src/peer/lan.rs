//! LAN discovery: members on one local network find each other's current addresses by
//! mDNS, with no relay and no internet (iroh's `iroh-mdns-address-lookup`).
//!
//! What is announced: this machine's endpoint id and its direct IP addresses, under the
//! service name [`SERVICE`], and nothing else (no label, no mesh, no project). Anyone on
//! the LAN can see that an endpoint with that id is there, as anyone on the path can see
//! its QUIC packets; nothing they learn lets them connect (a member's key is needed).
//!
//! What is believed: an announcement is a claim by whoever sent it (anyone on the LAN
//! can announce any endpoint id with any addresses). Only announcements naming a current
//! member are used, and only as hints: their addresses (at most [`MAX_LAN_ADDRS`] of
//! one announcement) go to a small slot per member kept in memory ([`LanHints`], at most
//! [`MAX_HINTS`] addresses, updated at most once per [`HINT_EVERY`] per member), never
//! into the address book. A dial tries the book's addresses and the slot's; an address
//! is written to the book only once a connection over it proved the member's key
//! (`session::dial_loop`). So spoofed announcements can make us dial a wrong address,
//! but cannot push out an address that worked, and nothing they say is persisted
//! (issue 38: two spoofed announcements used to evict every known address for good).

use super::{Shared, lock, spawn_dialers};
use crate::identity::MachineId;
use iroh::Endpoint;
use iroh::address_lookup::AddrFilter;
use iroh_mdns_address_lookup::{DiscoveryEvent, MdnsAddressLookup};
use n0_future::StreamExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

/// The mDNS service name: leanspec-peer machines see each other, not other iroh apps.
pub(crate) const SERVICE: &str = "leanspec-peer";
/// How often the LAN is asked who is there (swarm-discovery adds jitter).
const CADENCE: Duration = Duration::from_secs(3);
/// Most addresses taken from one announcement.
const MAX_LAN_ADDRS: usize = 4;
/// Most LAN hints kept per member (newest first): room for the member's own
/// announcement beside two spoofed ones.
pub(crate) const MAX_HINTS: usize = 12;
/// A member's slot takes at most one announcement this often: a flood of spoofed
/// announcements does not churn it faster than the member's own cadence refills it.
pub(crate) const HINT_EVERY: Duration = Duration::from_secs(1);
/// Most members with a slot (members only, so at most the mesh; a bound all the same).
const MAX_SLOTS: usize = 1024;

/// Addresses LAN announcements claimed for members: hints to dial, in memory only.
#[derive(Debug, Default)]
pub(crate) struct LanHints {
    slots: HashMap<MachineId, Slot>,
}

#[derive(Debug)]
struct Slot {
    addrs: Vec<SocketAddr>,
    updated: Instant,
}

impl LanHints {
    /// Takes the addresses of one announcement for `id` (a current member) at `now`.
    /// Returns whether the slot changed (then dialers try again).
    pub(crate) fn offer(&mut self, id: MachineId, found: &[SocketAddr], now: Instant) -> bool {
        if !self.slots.contains_key(&id) && self.slots.len() >= MAX_SLOTS {
            return false;
        }
        let slot = self.slots.entry(id).or_insert_with(|| Slot {
            addrs: Vec::new(),
            updated: now.checked_sub(HINT_EVERY).unwrap_or(now),
        });
        let new: Vec<SocketAddr> = found
            .iter()
            .take(MAX_LAN_ADDRS)
            .filter(|a| !slot.addrs.contains(a))
            .copied()
            .collect();
        if new.is_empty() {
            return false;
        }
        if now.saturating_duration_since(slot.updated) < HINT_EVERY && !slot.addrs.is_empty() {
            return false;
        }
        slot.updated = now;
        let mut merged = new;
        merged.append(&mut slot.addrs);
        merged.truncate(MAX_HINTS);
        slot.addrs = merged;
        true
    }

    /// The hints for `id`, newest first.
    pub(crate) fn get(&self, id: MachineId) -> Vec<SocketAddr> {
        self.slots
            .get(&id)
            .map(|s| s.addrs.clone())
            .unwrap_or_default()
    }

    /// The members that have hints.
    pub(crate) fn members(&self) -> Vec<MachineId> {
        self.slots.keys().copied().collect()
    }
}

/// Starts announcing this endpoint on the LAN and returns the lookup (also registered
/// with the endpoint, so iroh's own address resolution uses it).
pub(crate) fn start(endpoint: &Endpoint) -> Result<MdnsAddressLookup, String> {
    let mdns = MdnsAddressLookup::builder()
        .service_name(SERVICE)
        .addr_filter(AddrFilter::ip_only())
        .discovery_cadence(CADENCE)
        .build(endpoint.id())
        .map_err(|e| e.to_string())?;
    endpoint
        .address_lookup()
        .map_err(|e| e.to_string())?
        .add(mdns.clone());
    tracing::info!(
        "looking for members on the LAN (mDNS service {SERVICE}; --no-lan turns it off)"
    );
    Ok(mdns)
}

/// Turns announcements of members into address book entries and prompt dials.
pub(crate) async fn watch(shared: Arc<Shared>, mdns: MdnsAddressLookup) {
    let mut events = mdns.subscribe().await;
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let event = tokio::select! {
            e = events.next() => e,
            _ = super::stopping(&mut shutdown) => return,
        };
        let Some(event) = event else { return };
        let DiscoveryEvent::Discovered { endpoint_info, .. } = event else {
            continue;
        };
        let id = MachineId::from_bytes(*endpoint_info.endpoint_id.as_bytes());
        let found: Vec<SocketAddr> = endpoint_info
            .ip_addrs()
            .take(MAX_LAN_ADDRS)
            .copied()
            .collect();
        if id == shared.me || found.is_empty() {
            continue;
        }
        if !lock(&shared.local.machine).mesh().is_current_member(id) {
            continue;
        }
        if lock(&shared.lan_hints).offer(id, &found, Instant::now()) {
            tracing::info!(peer = %id.short(), "found a member on the LAN");
            shared.addresses_changed.notify_waiters();
            spawn_dialers(&shared);
        }
    }
}

/// Whether LAN discovery runs for a bind address: not on loopback (nobody on the LAN
/// could reach us there, and tests on 127.0.0.1 must not multicast).
pub(crate) fn wanted(bind: Option<std::net::SocketAddr>) -> bool {
    !bind.is_some_and(|b| b.ip().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    /// Issue 38: spoofed announcements neither evict the member's own hint nor churn
    /// the slot faster than [`HINT_EVERY`], and the slot is bounded.
    #[test]
    fn lan_hints_are_bounded_rate_limited_and_keep_the_real_address() {
        let id = crate::identity::Identity::generate().expect("key").id();
        let mut hints = LanHints::default();
        let t = Instant::now();
        assert!(
            hints.offer(id, &[a("10.0.0.2:7000")], t),
            "the member's own"
        );
        let spoof: Vec<SocketAddr> = (0..4).map(|i| a(&format!("10.9.9.{i}:1"))).collect();
        assert!(!hints.offer(id, &spoof, t), "too soon");
        assert!(hints.offer(id, &spoof, t + HINT_EVERY));
        let spoof2: Vec<SocketAddr> = (4..8).map(|i| a(&format!("10.9.9.{i}:1"))).collect();
        assert!(hints.offer(id, &spoof2, t + HINT_EVERY * 2));
        assert!(
            hints.get(id).contains(&a("10.0.0.2:7000")),
            "two spoofs leave it"
        );
        let many: Vec<SocketAddr> = (0..100).map(|i| a(&format!("10.8.0.{i}:1"))).collect();
        for n in 3..40 {
            hints.offer(id, &many[(n % 25) * 4..], t + HINT_EVERY * n as u32);
        }
        assert!(hints.get(id).len() <= MAX_HINTS);
        assert!(
            !hints.offer(id, &[a("10.0.0.2:7000")], t + HINT_EVERY * 3),
            "not again so soon"
        );
    }
}
