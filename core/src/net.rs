//! The network layer: iroh endpoint, framing, tickets, and one protocol per ALPN
//! (`sync` for replication, `join` for pairing). Everything here drives the
//! document-level calls of [`crate::machine::Machine`]; no protocol logic lives in the
//! shells.

pub mod frame;
pub mod ticket;

pub use frame::{FrameError, MAX_FRAME};
pub use ticket::{Ticket, TicketError};

/// ALPN of the replication protocol (2: sync frames carry change signatures; 3: and a
/// machine document's checkpoint, `authorship::Checkpoint`).
pub const SYNC_ALPN: &[u8] = b"leanspec-peer/sync/4";
/// ALPN of the pairing protocol.
pub const JOIN_ALPN: &[u8] = b"leanspec-peer/join/1";
/// ALPN of signed operations (request → verdict).
pub const OP_ALPN: &[u8] = b"leanspec-peer/op/1";
/// ALPN of spec bodies read from their owner (request → body).
pub const READ_ALPN: &[u8] = b"leanspec-peer/read/1";

/// QUIC close codes we send, with their reasons on the wire.
pub mod close {
    /// The remote machine is not a member of this mesh.
    pub const NOT_MEMBER: u32 = 1;
    /// The remote machine was revoked.
    pub const REVOKED: u32 = 2;
    /// A newer connection to the same machine replaced this one.
    pub const DUPLICATE: u32 = 3;
    /// A frame broke the protocol (too large, malformed).
    pub const PROTOCOL: u32 = 4;
    /// The machine is shutting down.
    pub const SHUTDOWN: u32 = 5;
    /// The sender went over its operation rate; the reason says when to try again.
    pub const RATE_LIMITED: u32 = 6;
}
