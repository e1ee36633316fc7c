//! What this machine remembers about each bucket (store meta `buckets`, JSON): where
//! its own sequence is, what it pushed, what it imported from each writer, and the
//! figures `bucket status` shows.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One bucket's state here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BucketState {
    /// The number of this machine's last stored object (0: none yet).
    pub seq: u64,
    /// Chunks written since the last snapshot.
    pub chunks_since_snapshot: u64,
    /// Heads of each document (`DocKey` hex) as of the last stored object.
    pub pushed: BTreeMap<String, Vec<String>>,
    /// The recipients of the last snapshot (sorted machine ids, hex): a change of them
    /// makes the next object a snapshot.
    pub recipients: Vec<String>,
    /// The number of the last object imported from each writer (machine id hex).
    pub imported: BTreeMap<String, u64>,
    /// Unix seconds of the last stored object.
    pub last_push_at: Option<i64>,
    /// Unix seconds of the last completed pull.
    pub last_pull_at: Option<i64>,
    /// Objects this machine stored.
    pub objects_pushed: u64,
    /// Bytes this machine stored.
    pub bytes_pushed: u64,
    /// Objects imported.
    pub objects_pulled: u64,
    /// Bytes downloaded.
    pub bytes_pulled: u64,
    /// Objects refused (not decryptable, forged, replayed, too large, changes refused).
    pub refused: u64,
    /// The last refusal, with the object's name.
    pub last_refusal: Option<String>,
    /// The last failure of a round, if the round after it has not succeeded.
    pub last_error: Option<String>,
    /// This machine's user accepted the bucket (consent.rs); `None`: proposed only,
    /// nothing is sent to it.
    pub accepted: Option<super::Acceptance>,
    /// Unix seconds of that failure.
    pub last_error_at: Option<i64>,
}
