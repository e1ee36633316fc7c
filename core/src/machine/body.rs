//! A spec's README.md as its owner holds it: read here for this machine's specs, and
//! served to members over the read protocol (`peer::read`).

use super::{Error, Machine, Result};
use crate::spec;
use std::path::{Path, PathBuf};

impl Machine {
    /// Where this machine's spec `name` of project `project_id` is on disk. Only a spec
    /// the document lists has a path, so a name can never lead outside the project's
    /// specs folder.
    pub fn body_path(&self, project_id: &str, name: &str) -> Result<PathBuf> {
        let project = self
            .projects()?
            .into_iter()
            .find(|p| p.id == project_id)
            .ok_or_else(|| Error::UnknownProject {
                selector: project_id.to_string(),
                known: String::new(),
            })?;
        if self.doc.spec(project_id, name).is_none() {
            return Err(Error::UnknownSpec {
                selector: name.to_string(),
                project: project.name,
            });
        }
        let dir = project.specs_dir.ok_or_else(|| Error::BodyUnreadable {
            spec: name.to_string(),
            reason: "the project's specs folder is not there now".into(),
        })?;
        Ok(dir.join(name).join("README.md"))
    }
}

/// The text and SHA-256 (hex) of the README.md at `path` (at most
/// [`spec::MAX_SPEC_BYTES`], UTF-8), read without holding the machine.
pub fn read_body(path: &Path, name: &str) -> Result<(String, String)> {
    let unreadable = |reason: String| Error::BodyUnreadable {
        spec: name.to_string(),
        reason,
    };
    let bytes = spec::read_capped(path).map_err(unreadable)?;
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
        let path = m.body_path(&p.id, "001-a").expect("listed");
        assert!(path.ends_with("specs/001-a/README.md"));
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
}
