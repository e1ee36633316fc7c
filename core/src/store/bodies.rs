//! The body cache: the last copy of another machine's spec README fetched over the read
//! protocol, so a spec's body can be shown (marked with its age) while its owner is
//! offline.

use super::tables::{BODIES, BODIES_BY_FETCH};
use super::{Store, StoreError};
use crate::identity::MachineId;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
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

    /// The kept bodies of one machine: (project, spec, body). Unreadable entries are
    /// skipped. Search reads one machine's at a time, so never all of them at once.
    pub fn cached_bodies_of(
        &self,
        owner: MachineId,
    ) -> Result<Vec<(String, String, CachedBody)>, StoreError> {
        let tx = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let table = match tx.open_table(BODIES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let owner = owner.as_bytes().as_slice();
        let mut out = Vec::new();
        for row in table.range((owner, "")..).map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let (o, key) = k.value();
            if o != owner {
                break;
            }
            let Some((project, spec)) = key.split_once('\0') else {
                continue;
            };
            if let Ok(body) = serde_json::from_slice::<CachedBody>(v.value()) {
                out.push((project.to_string(), spec.to_string(), body));
            }
        }
        Ok(out)
    }

    /// Keeps `body` as the latest copy of `owner`'s spec, then drops the least recently
    /// fetched bodies until all of them take at most `max_bytes` (at least the newest is
    /// kept). Returns how many were dropped.
    pub fn cache_body(
        &self,
        owner: MachineId,
        project: &str,
        spec: &str,
        body: &CachedBody,
        max_bytes: u64,
    ) -> Result<usize, StoreError> {
        let bytes = serde_json::to_vec(body).map_err(|e| StoreError::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        let k = key(project, spec);
        let owner = owner.as_bytes().as_slice();
        let at = |b: &CachedBody| u64::try_from(b.fetched_at).unwrap_or(0);
        let tx = self.db()?.begin_write().map_err(|e| self.err(e))?;
        let dropped;
        {
            let mut bodies = tx.open_table(BODIES).map_err(|e| self.err(e))?;
            let mut by_fetch = tx.open_table(BODIES_BY_FETCH).map_err(|e| self.err(e))?;
            if by_fetch.is_empty().map_err(|e| self.err(e))?
                && !bodies.is_empty().map_err(|e| self.err(e))?
            {
                // A store from before the index: built once.
                for row in bodies.iter().map_err(|e| self.err(e))? {
                    let (rk, v) = row.map_err(|e| self.err(e))?;
                    let (o, key) = rk.value();
                    let fetched =
                        serde_json::from_slice::<CachedBody>(v.value()).map_or(0, |b| at(&b));
                    by_fetch
                        .insert((fetched, o, key), v.value().len() as u64)
                        .map_err(|e| self.err(e))?;
                }
            }
            let old = bodies
                .insert((owner, k.as_str()), bytes.as_slice())
                .map_err(|e| self.err(e))?
                .and_then(|v| serde_json::from_slice::<CachedBody>(v.value()).ok());
            if let Some(old) = old {
                by_fetch
                    .remove((at(&old), owner, k.as_str()))
                    .map_err(|e| self.err(e))?;
            }
            by_fetch
                .insert((at(body), owner, k.as_str()), bytes.len() as u64)
                .map_err(|e| self.err(e))?;
            let mut total: u64 = 0;
            for row in by_fetch.iter().map_err(|e| self.err(e))? {
                let (_, v) = row.map_err(|e| self.err(e))?;
                total = total.saturating_add(v.value());
            }
            let mut gone = 0;
            while total > max_bytes && by_fetch.len().map_err(|e| self.err(e))? > 1 {
                let Some((first, size)) = by_fetch.pop_first().map_err(|e| self.err(e))? else {
                    break;
                };
                let (_, o, key) = first.value();
                let (o, key) = (o.to_vec(), key.to_string());
                let size = size.value();
                drop(first);
                bodies
                    .remove((o.as_slice(), key.as_str()))
                    .map_err(|e| self.err(e))?;
                total = total.saturating_sub(size);
                gone += 1;
            }
            dropped = gone;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 38: the body cache stays within its size, dropping the least recently
    /// fetched first; a body fetched again moves to the back.
    #[test]
    fn the_body_cache_keeps_within_its_size_dropping_the_oldest_fetch() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("store.redb")).expect("open");
        let owner = crate::identity::Identity::generate().expect("key").id();
        let body = |at: i64| CachedBody {
            file_hash: "h".into(),
            fetched_at: at,
            text: "x".repeat(1000),
        };
        let size = serde_json::to_vec(&body(1)).expect("json").len() as u64;
        // Room for three (times of two digits take a byte more).
        let cap = size * 3 + 10;
        for (i, spec) in ["a", "b", "c"].iter().enumerate() {
            assert_eq!(
                store
                    .cache_body(owner, "p", spec, &body(i as i64), cap)
                    .expect("keep"),
                0
            );
        }
        // "a" fetched again: now the newest.
        store
            .cache_body(owner, "p", "a", &body(10), cap)
            .expect("keep");
        assert_eq!(
            store
                .cache_body(owner, "p", "d", &body(11), cap)
                .expect("keep"),
            1
        );
        let held = |spec: &str| store.cached_body(owner, "p", spec).expect("read").is_some();
        assert!(!held("b"), "the least recently fetched went");
        assert!(held("a") && held("c") && held("d"));
        // One body over the cap on its own is still kept (the newest always is).
        assert_eq!(
            store
                .cache_body(owner, "p", "e", &body(12), 1)
                .expect("keep"),
            3
        );
        assert!(held("e"));
        assert_eq!(store.cached_bodies().expect("all").len(), 1);
    }
}
