//! IO-less protocol cores: the rules of the sync protocol as plain functions and state
//! machines over the documents, with no sockets, timers or locks. The async drivers in
//! [`crate::peer`] only move bytes and wait; the simulation tests drive the same code
//! through an in-memory network that cuts, duplicates and partitions connections.

pub(crate) mod admission;
pub(crate) mod budget;
pub(crate) mod ephemeral;
pub(crate) mod inspect;
pub(crate) mod link;
pub(crate) mod sync;

#[cfg(test)]
pub(crate) mod sim;
