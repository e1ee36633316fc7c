//! What this machine's scans could not read, and since when (issue 39).
//!
//! A read that failed is not an absence: a spec folder the scan cannot list or whose
//! README.md it cannot open for any reason other than "not found" (EMFILE, EACCES, EIO,
//! an unmounted disk) keeps the state the document holds, and is named here with the
//! error and the time it was first seen, for `status` and the UI. The peer rescans with
//! backoff while anything is here (`peer/watch.rs`); an entry goes when a scan reads
//! the spec again (or confirms it gone).
//!
//! Memory only: after a restart the first scan finds what is still unreadable.

use std::collections::BTreeMap;

/// One thing a scan could not read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unreadable {
    /// The project's id.
    pub project_id: String,
    /// The project's name.
    pub project: String,
    /// The spec folder, or `None` for the whole project (its specs folder).
    pub spec: Option<String>,
    /// What failed, one sentence.
    pub reason: String,
    /// When it was first seen failing (Unix ms).
    pub since_ms: i64,
}

/// The unreadable set, by (project id, spec name or "").
#[derive(Debug, Default)]
pub(crate) struct Unreadables {
    map: BTreeMap<(String, String), Unreadable>,
}

impl Unreadables {
    /// Replaces what is known of project `id` with what its scan just found: entries
    /// that persist keep their `since_ms`.
    pub(crate) fn replace_project(
        &mut self,
        id: &str,
        name: &str,
        found: Vec<(Option<String>, String)>,
    ) {
        let mut old = BTreeMap::new();
        self.map.retain(|key, u| {
            if key.0 == id {
                old.insert(key.clone(), u.since_ms);
            }
            key.0 != id
        });
        let now = crate::time::now_ms();
        for (spec, reason) in found {
            let key = (id.to_string(), spec.clone().unwrap_or_default());
            let since_ms = old.get(&key).copied().unwrap_or(now);
            self.map.insert(
                key,
                Unreadable {
                    project_id: id.to_string(),
                    project: name.to_string(),
                    spec,
                    reason,
                    since_ms,
                },
            );
        }
    }

    /// Spec `spec` of project `id` could not be read (`Some`) or was read (`None`).
    pub(crate) fn set_spec(&mut self, id: &str, name: &str, spec: &str, failed: Option<String>) {
        let key = (id.to_string(), spec.to_string());
        match failed {
            None => {
                self.map.remove(&key);
            }
            Some(reason) => {
                let since_ms = self
                    .map
                    .get(&key)
                    .map_or_else(crate::time::now_ms, |u| u.since_ms);
                self.map.insert(
                    key,
                    Unreadable {
                        project_id: id.to_string(),
                        project: name.to_string(),
                        spec: Some(spec.to_string()),
                        reason,
                        since_ms,
                    },
                );
            }
        }
    }

    /// Forgets project `id` (removed from this machine).
    pub(crate) fn forget_project(&mut self, id: &str) {
        self.map.retain(|(p, _), _| p != id);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(crate) fn list(&self) -> Vec<Unreadable> {
        self.map.values().cloned().collect()
    }
}
