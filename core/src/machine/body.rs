//! A spec's README.md as its owner holds it: read here for this machine's specs, and
//! served to members over the read protocol (`peer::read`).

use super::{Error, Machine, Result};
use crate::identity::MachineId;
use crate::spec;
use crate::store::CachedBody;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// One machine's kept bodies, lower-cased for search: project id → spec name → text.
pub type BodyTexts = HashMap<String, HashMap<String, String>>;

impl Machine {
    /// Where this machine's spec `name` of project `project_id` is on disk. Only a spec
    /// the document lists has a place, and [`read_body`] opens it beneath the specs
    /// folder (`spec/beneath.rs`): a name or a symlink never leads outside it.
    pub fn body_path(&self, project_id: &str, name: &str) -> Result<BodyAt> {
        // One project's record and folder, not every project's (a read per request).
        let record = self.project_record(project_id)?;
        if self.doc.spec(project_id, name).is_none() {
            return Err(Error::UnknownSpec {
                selector: name.to_string(),
                project: record.name,
            });
        }
        let dir = spec::find_specs_dir(&record.root).ok_or_else(|| Error::BodyUnreadable {
            spec: name.to_string(),
            reason: "the project's specs folder is not there now".into(),
        })?;
        Ok(BodyAt {
            specs_dir: dir,
            name: name.to_string(),
        })
    }
}

impl Machine {
    /// Keeps `body` as the latest copy of `owner`'s spec (store and search), within the
    /// body cache's size (`Limits::body_cache_bytes`).
    pub fn keep_body(
        &self,
        owner: MachineId,
        project: &str,
        spec: &str,
        body: &CachedBody,
    ) -> Result<()> {
        let max = self.limits().body_cache_bytes.max(spec::MAX_SPEC_BYTES);
        self.store.cache_body(owner, project, spec, body, max)?;
        Ok(())
    }

    /// The bodies kept from `owner`, folded for search (`None` when there are none),
    /// read from the store when asked: nothing stays in memory between queries, and a
    /// search holds one machine's at a time (`Node::search`). A failed read leaves
    /// search to titles, names and tags, and says so.
    pub(crate) fn body_texts(&self, owner: MachineId) -> Option<Arc<BodyTexts>> {
        let list = match self.store.cached_bodies_of(owner) {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!("cannot read the kept spec bodies: {e}");
                return None;
            }
        };
        if list.is_empty() {
            return None;
        }
        let mut texts = BodyTexts::new();
        for (project, spec, body) in list {
            texts
                .entry(project)
                .or_default()
                .insert(spec, body.text.to_lowercase());
        }
        Some(Arc::new(texts))
    }
}

/// A spec's README.md on this machine: its specs folder and its name below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyAt {
    /// The project's specs folder.
    pub specs_dir: PathBuf,
    /// The spec's folder below it.
    pub name: String,
}

impl BodyAt {
    /// The README.md's path, for messages.
    pub fn path(&self) -> PathBuf {
        self.specs_dir.join(&self.name).join("README.md")
    }
}

/// The text and SHA-256 (hex) of the spec's README.md (at most
/// [`spec::MAX_SPEC_BYTES`], UTF-8), read without holding the machine, beneath the
/// specs folder: a README.md that leads out of it is refused, never read.
pub fn read_body(at: &BodyAt) -> Result<(String, String)> {
    let name = at.name.as_str();
    let unreadable = |reason: String| Error::BodyUnreadable {
        spec: name.to_string(),
        reason,
    };
    let specs = spec::SpecsDir::open(&at.specs_dir)
        .map_err(|e| unreadable(format!("cannot open the specs folder: {e}")))?;
    let bytes = match spec::read_readme(&specs, name) {
        spec::Readme::Bytes(b) => b,
        spec::Readme::Refused(why) | spec::Readme::Unreadable(why) => return Err(unreadable(why)),
        spec::Readme::NotFound => return Err(unreadable("README.md is not there now".into())),
    };
    let hash = spec::sha256_hex(&bytes);
    let text = String::from_utf8(bytes).map_err(|_| unreadable("README.md is not UTF-8".into()))?;
    Ok((text, hash))
}

#[cfg(test)]
mod tests {
    use crate::machine::{Error, Machine};

    /// Only names the document lists are read: a path out of the specs folder is
    /// an unknown spec, not a file read.
    #[test]
    fn only_listed_specs_have_a_path() {
        let home = tempfile::tempdir().expect("home");
        let project = tempfile::tempdir().expect("project");
        let dir = project.path().join("specs/001-a");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("README.md"), "---\nstatus: draft\n---\n# A\n").expect("write");
        let (mut m, _) = Machine::init(home.path(), Some("t")).expect("init");
        let (p, _) = m.add_project(project.path(), Some("p")).expect("add");
        let at = m.body_path(&p.id, "001-a").expect("listed");
        assert!(at.path().ends_with("specs/001-a/README.md"));
        for name in ["../../etc/passwd", "001-a/../../x", "/etc", "002-b"] {
            assert!(
                matches!(m.body_path(&p.id, name), Err(Error::UnknownSpec { .. })),
                "{name}"
            );
        }
        assert!(matches!(
            m.body_path("nope", "001-a"),
            Err(Error::UnknownProject { .. })
        ));
    }

    /// Kept bodies are searchable from the moment they are kept, and after a reopen
    /// (loaded from the store).
    #[test]
    fn kept_bodies_are_folded_for_search_and_survive_a_reopen() {
        let home = tempfile::tempdir().expect("home");
        let owner = crate::identity::Identity::generate().expect("key").id();
        let body = |text: &str| crate::store::CachedBody {
            file_hash: "00".repeat(32),
            fetched_at: 1,
            text: text.into(),
        };
        {
            let (m, _) = Machine::init(home.path(), Some("t")).expect("init");
            assert!(m.body_texts(owner).is_none());
            m.keep_body(owner, "p", "001-a", &body("Zanzibar"))
                .expect("keep");
            let texts = m.body_texts(owner).expect("kept");
            assert_eq!(texts["p"]["001-a"], "zanzibar");
            m.keep_body(owner, "p", "001-a", &body("Quokka"))
                .expect("keep");
            assert_eq!(m.body_texts(owner).expect("kept")["p"]["001-a"], "quokka");
        }
        let m = Machine::open(home.path()).expect("open");
        assert_eq!(m.body_texts(owner).expect("loaded")["p"]["001-a"], "quokka");
    }
}
