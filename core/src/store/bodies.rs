//! The body cache: the last copy of another machine's spec README fetched over the read
//! protocol, so a spec's body can be shown (marked with its age) while its owner is
//! offline.

use super::tables::BODIES;
use super::{Store, StoreError};
use crate::identity::MachineId;
use redb::{ReadableDatabase, ReadableTable};
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
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
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

    /// Every kept body: (owner, project, spec, body). Unreadable entries are skipped.
    pub fn cached_bodies(
        &self,
    ) -> Result<Vec<(MachineId, String, String, CachedBody)>, StoreError> {
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = match tx.open_table(BODIES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let (owner, key) = k.value();
            let (Ok(owner), Some((project, spec))) =
                (<[u8; 32]>::try_from(owner), key.split_once('\0'))
            else {
                continue;
            };
            if let Ok(body) = serde_json::from_slice::<CachedBody>(v.value()) {
                out.push((
                    MachineId::from_bytes(owner),
                    project.to_string(),
                    spec.to_string(),
                    body,
                ));
            }
        }
        Ok(out)
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
        let tx = self.db()?.begin_write().map_err(|e| self.err(e))?;
        tx.open_table(BODIES)
            .map_err(|e| self.err(e))?
            .insert((owner.as_bytes().as_slice(), k.as_str()), bytes.as_slice())
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }
}
