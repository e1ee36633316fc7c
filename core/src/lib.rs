//! leanspec-peer core: everything the shells (CLI, relay) and the bindings need, with
//! no knowledge of how it is presented.
//!
//! - [`spec`]: specs on disk (discovery, parsing, hashes, the format-preserving editor);
//! - [`identity`]: the machine key and ids;
//! - [`doc`]: the machine document (Automerge, one writer);
//! - [`store`]: the redb store;
//! - [`node`]: the facade every host calls ([`Node`]): queries, mutations, the network;
//! - [`machine`]: this machine's documents, store and projects (offline);
//! - [`peer`]: the network half of a node (iroh endpoint, sessions, events);
//! - [`authorship`]: signatures over document changes (who wrote a change, proven);
//! - [`ops`]: signed operations (remote edits, execution requests) and the audit log.

#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod authorship;
pub mod bucket;
pub mod control;
pub mod doc;
mod error_kind;
pub mod identity;
pub mod json;
pub mod limits;
pub mod machine;
pub mod mesh;
pub mod net;
pub mod node;
pub mod ops;
pub mod peer;
mod proto;
pub mod query;
pub mod spec;
pub mod store;
pub mod time;
mod tracked;
mod wire;

pub use error_kind::ErrorKind;
pub use node::{Node, UiLogins};
pub use tracked::ReceiveError;

pub use machine::{
    DocChange, DocKey, Error, Machine, MachineRow, Project, ProjectScan, ScanProgress, ScanReport,
    SpecFilter, SpecRow, SyncError,
};

/// The version of this crate (and of leanspec-peer).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
