//! Every redb table of the store, in one place. Key layout and format history live in
//! `docs/design.md`; bump [`super::SCHEMA_VERSION`] on any incompatible change here.

use redb::TableDefinition;

/// Store-wide values: `schema_version` (u32 LE), `label` (UTF-8).
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Projects by id: JSON [`super::ProjectRecord`] (holds local absolute paths: never replicated).
pub(crate) const PROJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("projects");

/// The machine document as Automerge chunks by sequence number. Invariant: loading the
/// chunks in key order (the first is a full save after compaction, the rest are
/// incremental saves) gives the current document.
pub(crate) const DOC_CHUNKS: TableDefinition<u64, &[u8]> = TableDefinition::new("doc_chunks");

/// What the last scan saw of each spec's files, by `"{project}\0{spec}"`, so a rescan
/// can skip files that did not change without reading them. Local only.
pub(crate) const STAT_CACHE: TableDefinition<&str, &[u8]> = TableDefinition::new("stat_cache");
