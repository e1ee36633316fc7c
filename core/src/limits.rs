//! What a remote machine can make this one spend, and the defaults. Every limit here is
//! enforced before the work it bounds (docs/limits.md lists each with its error):
//! a stranger costs a refused handshake; a member costs at most these.

use std::time::Duration;

/// Bounds on what members may send. The defaults suit a fleet of tens of machines with
/// tens of thousands of specs each; raise them for more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes a received sync message may inflate to (compressed changes and compressed
    /// document columns, counted as they inflate, stopped at the limit).
    pub max_inflated_bytes: u64,
    /// Change chunks one sync message may carry.
    pub max_changes_per_message: usize,
    /// Operations the changes of one sync message may hold.
    pub max_ops_per_message: u64,
    /// Changes waiting for missing dependencies, per document. An honest peer leaves
    /// a few for one round trip (a Bloom-filter false positive); more is refused and
    /// the waiting changes dropped.
    pub max_orphans: usize,
    /// Bytes of one machine's stored document after a received message applies.
    pub max_document_bytes: u64,
    /// Members of the mesh (revoked ones included: they stay listed).
    pub max_members: usize,
    /// Operations a member may send in a burst.
    pub op_burst: u32,
    /// Operations per second a member may sustain after its burst.
    pub ops_per_second: u32,
    /// Audit records kept; the oldest go first.
    pub audit_max_records: u64,
    /// Bytes of audit records kept; the oldest go first.
    pub audit_max_bytes: u64,
    /// Bytes a member may have sent on one stream that this machine has not read yet
    /// (the QUIC stream receive window: a session's buffer at most; QUIC's default).
    pub stream_window: u32,
    /// Longest lifetime of a reusable invitation (auth key).
    pub max_reusable_ttl: Duration,
    /// Bytes of other machines' spec bodies kept for when their owner is offline (the
    /// body cache); the least recently fetched go first. At least one spec's size
    /// (`spec::MAX_SPEC_BYTES`) is kept whatever this says.
    pub body_cache_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_inflated_bytes: 64 * 1024 * 1024,
            max_changes_per_message: 100_000,
            max_ops_per_message: 5_000_000,
            max_orphans: 256,
            max_document_bytes: 64 * 1024 * 1024,
            max_members: 1_000,
            op_burst: 100,
            ops_per_second: 20,
            audit_max_records: 100_000,
            audit_max_bytes: 64 * 1024 * 1024,
            max_reusable_ttl: Duration::from_secs(90 * 24 * 3600),
            stream_window: 1_250_000,
            body_cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A limit a received message went over: the message is refused (for its document
/// only; the session goes on) and counted in `status` as `over_limit`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Exceeded {
    /// Its compressed parts inflate beyond the budget.
    #[error("the message inflates to more than {max} bytes (limit max_inflated_bytes)")]
    Inflated {
        /// The limit.
        max: u64,
    },
    /// It carries too many change chunks.
    #[error(
        "the message carries {count} changes, over the limit of {max} (max_changes_per_message)"
    )]
    Changes {
        /// Chunks counted.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Its changes hold too many operations.
    #[error(
        "the message's changes hold {count} operations, over the limit of {max} (max_ops_per_message)"
    )]
    Ops {
        /// Operations counted.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// Too many changes would wait for missing dependencies.
    #[error(
        "{count} changes would wait for missing dependencies, over the limit of {max} (max_orphans)"
    )]
    Orphans {
        /// Waiting changes.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The document is already at its size limit.
    #[error("the document is {bytes} bytes, at the limit of {max} (max_document_bytes)")]
    Document {
        /// Stored size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// The mesh would list too many members.
    #[error("the mesh would list {count} members, over the limit of {max} (max_members)")]
    Members {
        /// Members after the message.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A chunk is not one the sync protocol sends, or is cut short.
    #[error("malformed chunk: {0}")]
    Malformed(&'static str),
}
