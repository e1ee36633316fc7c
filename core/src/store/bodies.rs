//! The body cache: the last copy of another machine's spec README fetched over the read
//! protocol, so a spec's body can be shown (marked with its age) while its owner is
//! offline.

use super::tables::BODIES;
use super::{Store, StoreError};
use crate::identity::MachineId;
use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};

/// A cached body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedBody {
    /// SHA-256 of the file the text came from (hex).
    pub file_hash: String,
    /// When it was fetched (unix milliseconds).
    pub fetched_at: i64,
    /// The whole README.md.
    pub text: String,
}

fn key(project: &str, spec: &str) -> String {
    format!("{project}\0{spec}")
}

impl Store {
    /// The cached body of `owner`'s spec, if one was fetched.
    pub fn cached_body(
        &self,
        owner: MachineId,
        project: &str,
        spec: &str,
    ) -> Result<Option<CachedBody>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = match tx.open_table(BODIES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let k = key(project, spec);
        let Some(v) = table
            .get((owner.as_bytes().as_slice(), k.as_str()))
            .map_err(|e| self.err(e))?
        else {
            return Ok(None);
        };
        // An unreadable entry is a miss (it is only a cache).
        Ok(serde_json::from_slice(v.value()).ok())
    }

    /// Keeps `body` as the latest copy of `owner`'s spec.
    pub fn cache_body(
        &self,
        owner: MachineId,
        project: &str,
        spec: &str,
        body: &CachedBody,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(body).map_err(|e| StoreError::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        let k = key(project, spec);
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        tx.open_table(BODIES)
            .map_err(|e| self.err(e))?
            .insert((owner.as_bytes().as_slice(), k.as_str()), bytes.as_slice())
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }
}
