//! Address book gossip: on connect (and when the mesh changes) each side tells the
//! other where it and the members it knows can be reached, so machines paired through
//! a third one find each other directly instead of only ever syncing through it.
//!
//! Addresses are hints, not trust: a connection is authenticated by the machine key, so a
//! lying member can at worst make us dial a wrong address. Entries are kept only for
//! current members and bounded in number, so a hostile member cannot grow the book.

use super::{Shared, lock};
use crate::identity::MachineId;
use crate::store::PeerRecord;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Most addresses kept per machine; newest first.
const MAX_ADDRS: usize = 8;
/// Most relay URLs kept per machine.
const MAX_RELAYS: usize = 4;
/// Most machines one frame may describe.
const MAX_ENTRIES: usize = 256;

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    id: MachineId,
    #[serde(default)]
    addrs: Vec<String>,
    #[serde(default)]
    relays: Vec<String>,
}

/// The frame body telling `to` where this machine and the members we know are.
pub(crate) fn outgoing(shared: &Shared, to: MachineId) -> Vec<u8> {
    let mut entries = Vec::new();
    entries.push(Entry {
        id: shared.me,
        addrs: shared.advertised_addrs(),
        relays: shared.relays.clone(),
    });
    {
        let m = lock(&shared.local.machine);
        let records = m.store().peers().unwrap_or_else(|e| {
            tracing::warn!("cannot read the address book to share it: {e}");
            Vec::new()
        });
        for record in records {
            let id = record.id;
            if id == to || id == shared.me || !m.mesh().is_current_member(id) {
                continue;
            }
            if record.addrs.is_empty() && record.relays.is_empty() {
                continue;
            }
            entries.push(Entry {
                id,
                addrs: record.addrs,
                relays: record.relays,
            });
        }
    }
    entries.truncate(MAX_ENTRIES);
    serde_json::to_vec(&entries).unwrap_or_default()
}

/// Merges what `from` told us. Returns whether anything new was learned (then the
/// caller starts dialers). A malformed body is ignored: addresses are only hints.
pub(crate) fn merge(shared: &Shared, from: MachineId, body: &[u8]) -> bool {
    let Ok(entries) = serde_json::from_slice::<Vec<Entry>>(body) else {
        tracing::debug!(peer = %from.short(), "ignored a malformed address frame");
        return false;
    };
    let m = lock(&shared.local.machine);
    let mut records = match m.store().peers() {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("cannot read the address book to merge into it: {e}");
            return false;
        }
    };
    let mut learned = false;
    for entry in entries.into_iter().take(MAX_ENTRIES) {
        if entry.id == shared.me || !m.mesh().is_current_member(entry.id) {
            continue;
        }
        let index = match records.iter().position(|r| r.id == entry.id) {
            Some(i) => i,
            None => {
                records.push(PeerRecord::new(entry.id));
                records.len() - 1
            }
        };
        let record = &mut records[index];
        let before = (record.addrs.clone(), record.relays.clone());
        // What a machine says about itself comes first; hearsay is appended.
        let first_hand = entry.id == from;
        let addrs = entry
            .addrs
            .into_iter()
            .filter(|a| a.parse::<SocketAddr>().is_ok());
        merge_list(&mut record.addrs, addrs, first_hand, MAX_ADDRS);
        let relays = entry
            .relays
            .into_iter()
            .filter(|r| r.parse::<iroh::RelayUrl>().is_ok());
        merge_list(&mut record.relays, relays, first_hand, MAX_RELAYS);
        if (record.addrs.clone(), record.relays.clone()) != before {
            learned = true;
            if let Err(e) = m.store().put_peer(record) {
                tracing::warn!("cannot store learned addresses: {e}");
            }
        }
    }
    learned
}

/// Puts `found` (addresses a member was just seen at, e.g. on the LAN) first in its
/// address book entry. Returns whether the entry changed. Only for current members.
pub(crate) fn learn_first_hand(shared: &Shared, id: MachineId, found: Vec<String>) -> bool {
    let m = lock(&shared.local.machine);
    if !m.mesh().is_current_member(id) {
        return false;
    }
    let mut record = match m.store().peer(id) {
        Ok(r) => r.unwrap_or_else(|| PeerRecord::new(id)),
        Err(e) => {
            tracing::warn!("cannot read the address book: {e}");
            return false;
        }
    };
    let before = record.addrs.clone();
    let found = found
        .into_iter()
        .filter(|a| a.parse::<SocketAddr>().is_ok());
    merge_list(&mut record.addrs, found, true, MAX_ADDRS);
    if record.addrs == before {
        return false;
    }
    if let Err(e) = m.store().put_peer(&record) {
        tracing::warn!("cannot store learned addresses: {e}");
        return false;
    }
    true
}

fn merge_list(
    list: &mut Vec<String>,
    new: impl Iterator<Item = String>,
    first_hand: bool,
    max: usize,
) {
    let new: Vec<String> = new.take(max).collect();
    if first_hand {
        let mut merged = new.clone();
        merged.extend(list.drain(..).filter(|a| !new.contains(a)));
        *list = merged;
    } else {
        for a in new {
            if !list.contains(&a) {
                list.push(a);
            }
        }
    }
    list.truncate(max);
}

#[cfg(test)]
mod tests {
    use super::merge_list;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn first_hand_addresses_go_first_and_the_list_is_bounded() {
        let mut list = s(&["1.1.1.1:1", "2.2.2.2:2"]);
        merge_list(
            &mut list,
            s(&["3.3.3.3:3", "1.1.1.1:1"]).into_iter(),
            true,
            3,
        );
        assert_eq!(list, s(&["3.3.3.3:3", "1.1.1.1:1", "2.2.2.2:2"]));
        merge_list(&mut list, s(&["4.4.4.4:4"]).into_iter(), false, 3);
        assert_eq!(list.len(), 3, "bounded");
        let many: Vec<String> = (0..100).map(|i| format!("10.0.0.{i}:1")).collect();
        merge_list(&mut list, many.into_iter(), false, 3);
        assert_eq!(list.len(), 3);
    }
}
