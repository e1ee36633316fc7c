//! A bucket as a rendezvous and off-site copy (docs/bucket.md): an S3-compatible bucket
//! that members never need to trust. Each machine writes only under its own prefix,
//! `PREFIX/<machine id>/<seq>.snap|chunk`: a snapshot of its own document and of the
//! mesh, then chunks of the changes made since, numbered from 1. Every object is
//! encrypted with age to the mesh's current members (each member's ssh-ed25519 form of
//! its machine key: no other key to distribute) and, inside the encryption, signed by
//! its writer over its writer, number and kind ([`object`]).
//!
//! A reader lists the prefixes of current members only, opens each object newer than the
//! last it imported from that writer, and refuses one that is not the writer's or whose
//! inner number or kind differs from its name (a replayed or reordered object), then
//! imports the documents through the same checks as sync (every change signed by its
//! author: `Machine::import_bucket`). The bucket operator sees machine ids in names,
//! sizes and times; never a spec, a title or a label.
//!
//! Invariants:
//! - a writer takes the next number before it puts the object, so a number is never
//!   used twice: a gap is a put that failed, and the next object carries all it had
//!   (it holds the changes since the last object *stored*);
//! - a snapshot follows every change of the recipients (a new member can read it: it
//!   could not read the chunks before it joined) and every `snapshot_every` chunks
//!   (default [`SNAPSHOT_EVERY`]); objects older than the `keep_snapshots`-th newest
//!   snapshot (default [`KEEP_SNAPSHOTS`]) are then deleted.

mod consent;
mod location;
pub mod object;
mod remote;
mod round;
mod state;

pub use consent::Acceptance;
pub(crate) use consent::check_transport;
pub use location::{BucketError, BucketSetting, BucketUrl, Credentials};
pub(crate) use round::sync_all;
pub use round::{BucketReport, Round};
pub use state::BucketState;

/// Chunks written between two snapshots.
pub const SNAPSHOT_EVERY: u64 = 64;

/// Snapshots (with the chunks after each) kept in the bucket; older objects are deleted.
pub const KEEP_SNAPSHOTS: u64 = 2;

/// Largest object a reader downloads (a snapshot of a machine at the document limit,
/// with its signatures, fits).
pub const MAX_OBJECT_BYTES: u64 = 128 * 1024 * 1024;
