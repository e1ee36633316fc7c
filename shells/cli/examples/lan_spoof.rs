//! A hostile LAN host for `tests/lan.rs` (not shipped: an example, built with the
//! tests): announces, by mDNS under leanspec-peer's service name, an endpoint id it does
//! not own with addresses of its choosing, as anyone on a LAN can.
//!
//!   lan_spoof ENDPOINT_ID_HEX ADDR,ADDR,... [ADDR,ADDR,... ...]
//!
//! The lists are announced in turn, one every 2 s, over and over until killed; prints
//! `announced N` after the first announcement of each.

use iroh::address_lookup::{AddressLookup, EndpointData};
use iroh::{EndpointId, TransportAddr};
use iroh_mdns_address_lookup::MdnsAddressLookup;
use std::net::SocketAddr;
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let id: EndpointId = args
        .next()
        .ok_or("usage: lan_spoof ENDPOINT_ID_HEX ADDR,ADDR,...")?
        .parse()
        .map_err(|e| format!("endpoint id: {e}"))?;
    let lists: Vec<Vec<SocketAddr>> = args
        .map(|l| {
            l.split(',')
                .map(|a| a.parse().map_err(|e| format!("{a}: {e}")))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<_, _>>()?;
    let mdns = MdnsAddressLookup::builder()
        .service_name("leanspec-peer")
        .discovery_cadence(Duration::from_millis(500))
        .build(id)
        .map_err(|e| e.to_string())?;
    // In turn, every 2 s, until killed (bounded: 10 minutes). Each is a change, so a
    // listener that was resolving the id when one came hears the next.
    for round in 0..150 {
        for (n, list) in lists.iter().enumerate() {
            mdns.publish(&EndpointData::from_iter(
                list.iter().map(|a| TransportAddr::Ip(*a)),
            ));
            if round == 0 {
                eprintln!("announced {}", n + 1);
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    Ok(())
}
