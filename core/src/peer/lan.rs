//! LAN discovery: members on one local network find each other's current addresses by
//! mDNS, with no relay and no internet (iroh's `iroh-mdns-address-lookup`).
//!
//! What is announced: this machine's endpoint id and its direct IP addresses, under the
//! service name [`SERVICE`], and nothing else (no label, no mesh, no project). Anyone on
//! the LAN can see that an endpoint with that id is there, as anyone on the path can see
//! its QUIC packets; nothing they learn lets them connect (a member's key is needed).
//!
//! What is believed: an announcement is a claim by whoever sent it. Only announcements
//! naming a current member are used, only as addresses to dial (the connection proves
//! the key), and at most [`MAX_LAN_ADDRS`] of them go first in the member's address book,
//! so a hostile host on the LAN can make us dial a wrong address but cannot push the
//! member's other known addresses out.

use super::{Shared, addrs, spawn_dialers};
use crate::identity::MachineId;
use iroh::Endpoint;
use iroh::address_lookup::AddrFilter;
use iroh_mdns_address_lookup::{DiscoveryEvent, MdnsAddressLookup};
use n0_future::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// The mDNS service name: leanspec-peer machines see each other, not other iroh apps.
pub(crate) const SERVICE: &str = "leanspec-peer";
/// How often the LAN is asked who is there (swarm-discovery adds jitter).
const CADENCE: Duration = Duration::from_secs(3);
/// Most addresses one announcement puts in a member's address book.
const MAX_LAN_ADDRS: usize = 4;

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
        let found: Vec<String> = endpoint_info
            .ip_addrs()
            .take(MAX_LAN_ADDRS)
            .map(ToString::to_string)
            .collect();
        if id == shared.me || found.is_empty() {
            continue;
        }
        if addrs::learn_first_hand(&shared, id, found) {
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
