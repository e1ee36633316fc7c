//! Every redb table of the store, in one place. Key layout and format history live in
//! `docs/design.md`; bump [`super::SCHEMA_VERSION`] on any incompatible change here.

use redb::TableDefinition;

/// Store-wide values: `schema_version` (u32 LE), `label` (UTF-8).
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Projects by id: JSON [`super::ProjectRecord`] (holds local absolute paths: never replicated).
pub(crate) const PROJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("projects");

/// Every document this machine holds (its own, other machines', the mesh) as Automerge
/// chunks by `(document key, sequence)`. The key is the 32-byte machine id for machine
/// documents and `b"mesh"` for the mesh. Invariant: loading one document's chunks in
/// sequence order (the first is a full save after compaction, the rest incremental
/// saves) gives the document.
pub(crate) const DOC_CHUNKS: TableDefinition<(&[u8], u64), &[u8]> =
    TableDefinition::new("doc_chunks");

/// Automerge sync state by `(peer machine id, document key)`: the heads we share, so a
/// reconnect sends only what is missing.
pub(crate) const SYNC_STATES: TableDefinition<(&[u8], &[u8]), &[u8]> =
    TableDefinition::new("sync_states");

/// What we know of other machines, by machine id: JSON [`super::PeerRecord`]
/// (addresses, relay, last seen). Local only.
pub(crate) const PEERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("peers");

/// Invitations this machine issued, by SHA-256 of the secret: JSON [`super::InviteRecord`].
pub(crate) const INVITES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("invites");

/// What the last scan saw of each spec's files, by `"{project}\0{spec}"`, so a rescan
/// can skip files that did not change without reading them. Local only.
pub(crate) const STAT_CACHE: TableDefinition<&str, &[u8]> = TableDefinition::new("stat_cache");

/// The audit log, append-only, by sequence number: JSON [`crate::ops::AuditRecord`]
/// (operations this machine sent with their answers, and operations it received with
/// the decision). Local only; never rewritten.
pub(crate) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// Operation ids this machine has accepted for checking, with the unix milliseconds
/// after which the operation is expired anyway (then the id may be forgotten).
pub(crate) const OPS_SEEN: TableDefinition<&[u8], u64> = TableDefinition::new("ops_seen");

/// [`OPS_SEEN`] by expiry: `(expires_at_ms, operation id)` for every row of it, written
/// and removed in the same transactions, so forgetting expired ids costs what is
/// forgotten (a range at the index's start) instead of a pass over every live id on
/// every operation (issue 38: up to ~1.7 M live ids at the allowed rate). A store from
/// before it gets it built on first use.
pub(crate) const OPS_SEEN_BY_EXPIRY: TableDefinition<(u64, &[u8]), ()> =
    TableDefinition::new("ops_seen_by_expiry");

/// Author signatures of document changes by `(document key, change hash)`: the signer's
/// machine id (32 bytes) then the ed25519 signature (64 bytes), see
/// [`crate::authorship`]. Written in the same transaction as the chunks that hold the
/// changes; sent with them to peers that lack them.
pub(crate) const CHANGE_SIGS: TableDefinition<(&[u8], &[u8]), &[u8]> =
    TableDefinition::new("change_sigs");

/// The latest checkpoint of a machine document by document key
/// ([`crate::authorship::Checkpoint`], stored form): the owner's signature over heads,
/// proving every change in their history. Written by the owner when it compacts its
/// document (with the full save, in one transaction, which also drops the change
/// signatures it covers); kept by every replica that received one whose heads it
/// holds. At most one row per machine document.
pub(crate) const CHECKPOINTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("checkpoints");

/// Spec bodies read from their owners (the read protocol), by `(owner machine id,
/// "{project}\0{spec}")`: JSON [`super::CachedBody`], the last copy fetched with its
/// file hash and time, shown when the owner is offline. Local only; one per spec asked
/// for, each at most `spec::MAX_SPEC_BYTES` (the reader refuses a larger answer), all of
/// them at most `Limits::body_cache_bytes` ([`BODIES_BY_FETCH`]).
pub(crate) const BODIES: TableDefinition<(&[u8], &str), &[u8]> = TableDefinition::new("bodies");

/// [`BODIES`] by when each was fetched: `(fetched_at ms, owner machine id, "{project}\0{spec}")`
/// → the row's bytes, written and removed with it, so the cache is kept within its size
/// (`Limits::body_cache_bytes`) by dropping the least recently fetched first. A store from
/// before it gets it built on first use.
pub(crate) const BODIES_BY_FETCH: TableDefinition<(u64, &[u8], &str), u64> =
    TableDefinition::new("bodies_by_fetch");

/// Web UI accounts of this machine, by name: JSON `node::ui_accounts::AccountRecord`
/// (role, argon2id PHC string, password epoch). Local only, never replicated.
pub(crate) const UI_ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("ui_accounts");
