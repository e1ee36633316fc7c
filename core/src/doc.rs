//! The machine document: one Automerge document per machine, written only by that
//! machine (its actor id is derived from the machine id). Nothing else in the crate
//! touches Automerge paths by string.
//!
//! Schema (root map):
//! ```text
//! machine:  { id: str(hex), label: str, version: str, os: str }
//! projects: { <project id>: { name: str, specs: { <spec name>: SPEC } } }
//! SPEC:     { title, status?, priority?, parent?, assignee?, created?, created_at?,
//!             updated_at?, completed_at?, parse_error?: str,
//!             tags?, depends_on?, sub_files?: str (a JSON array of strings),
//!             content_hash?, file_hash?: bytes(32) }
//! ```
//! Absent keys mean "none" or "empty". Lists are single JSON-string scalars: only the
//! owner writes them and always as a whole, so a CRDT list would cost one op per item
//! for nothing. Hashes are raw 32-byte values (half the size of hex).
//!
//! Local absolute paths are never written here: they stay in the store.

use crate::identity::MachineId;
use crate::spec::{Priority, Spec, Status};
use crate::tracked::Tracked;
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    ActorId, AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, ScalarValueRef, Value,
    ValueRef, hydrate,
};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Errors reading a machine document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocError {
    /// The stored bytes are not a valid Automerge document.
    #[error("the machine document could not be loaded: {0}")]
    Load(#[from] automerge::AutomergeError),
    /// The document does not have the expected shape.
    #[error("the machine document is malformed: {0}")]
    Malformed(&'static str),
}

/// The machine's own description, as replicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineInfo {
    /// Full machine id (hex).
    pub id: String,
    /// Human label (defaults to the hostname).
    pub label: String,
    /// leanspec-peer version that last wrote the document.
    pub version: String,
    /// Operating system (`linux`, `macos`, ...).
    pub os: String,
}

/// A project as replicated: its stable id and display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectEntry {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Identity across machines: the normalised `origin` remote, else the name
    /// (`spec::fleet_id`); the name for documents written before it existed.
    pub fleet: String,
}

/// A project's specs as read out of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectSpecs {
    /// The project.
    pub project: ProjectEntry,
    /// Its specs, sorted by name.
    pub specs: Vec<Spec>,
    /// Their titles, names and tags folded for text queries, in the same order.
    pub folded: crate::query::FoldedText,
}

/// Every spec of a document, read once per content version (queries over 10,000
/// specs spend almost all their time reading Automerge values otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecTable {
    /// Projects sorted by id.
    pub projects: Vec<ProjectSpecs>,
}

/// One machine's document.
///
/// Invariant: `table`, when set, is what [`MachineDoc::read_table`] returns for the
/// document's current content. Every write to `t.doc` goes through [`MachineDoc::doc_mut`]
/// or [`MachineDoc::tracked`], which clear it.
#[derive(Debug)]
pub struct MachineDoc {
    t: Tracked,
    table: OnceLock<Arc<SpecTable>>,
}

const ALL_FIELDS: [&str; 15] = Spec::FIELDS;

/// The plain string fields: `status` to `parse_error` in [`Spec::FIELDS`].
const STR_FIELDS: &[&str] = Spec::FIELDS.split_at(10).0.split_at(1).1;

impl MachineDoc {
    /// A new document for `info`'s machine, with its first change committed.
    pub fn new(owner: MachineId, info: &MachineInfo, now: i64) -> MachineDoc {
        let doc = AutoCommit::new().with_actor(ActorId::from(&owner.actor_bytes()[..]));
        let mut d = MachineDoc {
            t: Tracked::new(doc),
            table: OnceLock::new(),
        };
        d.set_machine_info(info);
        d.commit(now);
        d
    }

    /// Loads a document from stored chunks (a full save followed by incremental saves).
    pub fn load<'a>(
        owner: MachineId,
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<MachineDoc, DocError> {
        let mut t = Tracked::load(chunks)?;
        t.doc.set_actor(ActorId::from(&owner.actor_bytes()[..]));
        let d = MachineDoc {
            t,
            table: OnceLock::new(),
        };
        if d.map(&ROOT, "machine").is_none() {
            return Err(DocError::Malformed("no machine record"));
        }
        Ok(d)
    }

    /// An empty replica of another machine's document, to be filled by sync.
    pub(crate) fn empty_replica() -> MachineDoc {
        MachineDoc {
            t: Tracked::empty(),
            table: OnceLock::new(),
        }
    }

    /// The Automerge document and its save cursor, to receive changes into.
    pub(crate) fn tracked(&mut self) -> &mut Tracked {
        self.table = OnceLock::new();
        &mut self.t
    }

    /// The Automerge document and its save cursor, for what leaves the content as it
    /// is (saving, generating sync messages, reading heads and history): the spec
    /// table stays cached.
    pub(crate) fn tracked_unchanged(&mut self) -> &mut Tracked {
        &mut self.t
    }

    fn doc_mut(&mut self) -> &mut AutoCommit {
        self.table = OnceLock::new();
        &mut self.t.doc
    }

    /// Every project and spec, from the cache when the content has not changed since
    /// the last read.
    pub fn table(&self) -> Arc<SpecTable> {
        Arc::clone(self.table.get_or_init(|| Arc::new(self.read_table())))
    }

    fn read_table(&self) -> SpecTable {
        SpecTable {
            projects: self
                .projects()
                .into_iter()
                .map(|project| {
                    let specs = self.read_specs(&project.id);
                    ProjectSpecs {
                        folded: crate::query::FoldedText::of(&specs),
                        specs,
                        project,
                    }
                })
                .collect(),
        }
    }

    /// True when the document has no machine record yet (an empty replica).
    pub fn is_empty(&self) -> bool {
        self.map(&ROOT, "machine").is_none()
    }

    fn map(&self, parent: &ObjId, key: &str) -> Option<ObjId> {
        match self.t.doc.get(parent, key) {
            Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
            _ => None,
        }
    }

    fn ensure_map(&mut self, parent: &ObjId, key: &str) -> ObjId {
        if let Some(id) = self.map(parent, key) {
            return id;
        }
        // put_object on a map we own cannot fail; fall back to root if it ever did.
        self.doc_mut()
            .put_object(parent, key, ObjType::Map)
            .unwrap_or(ROOT)
    }

    fn get_str(&self, obj: &ObjId, key: &str) -> Option<String> {
        match self.t.doc.get(obj, key) {
            Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                ScalarValue::Str(s) => Some(s.to_string()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Puts `value` under `key` unless it is already there; `None` deletes. Returns
    /// whether anything was written.
    fn put_if_changed(&mut self, obj: &ObjId, key: &str, value: Option<ScalarValue>) -> bool {
        let current = match self.t.doc.get(obj, key) {
            Ok(Some((Value::Scalar(s), _))) => Some(s.into_owned()),
            Ok(Some(_)) => Some(ScalarValue::Null),
            _ => None,
        };
        if current == value {
            return false;
        }
        let result = match value {
            Some(v) => self.doc_mut().put(obj, key, v),
            None => self.doc_mut().delete(obj, key),
        };
        result.is_ok()
    }

    /// The machine record.
    pub fn machine_info(&self) -> MachineInfo {
        let m = self.map(&ROOT, "machine").unwrap_or(ROOT);
        MachineInfo {
            id: self.get_str(&m, "id").unwrap_or_default(),
            label: self.get_str(&m, "label").unwrap_or_default(),
            version: self.get_str(&m, "version").unwrap_or_default(),
            os: self.get_str(&m, "os").unwrap_or_default(),
        }
    }

    /// Updates the machine record; returns whether anything changed.
    pub fn set_machine_info(&mut self, info: &MachineInfo) -> bool {
        let m = self.ensure_map(&ROOT, "machine");
        let mut changed = false;
        for (k, v) in [
            ("id", &info.id),
            ("label", &info.label),
            ("version", &info.version),
            ("os", &info.os),
        ] {
            changed |= self.put_if_changed(&m, k, Some(ScalarValue::Str(v.as_str().into())));
        }
        changed
    }

    fn projects_obj(&self) -> Option<ObjId> {
        self.map(&ROOT, "projects")
    }

    /// Every project in the document, sorted by id.
    pub fn projects(&self) -> Vec<ProjectEntry> {
        let Some(p) = self.projects_obj() else {
            return Vec::new();
        };
        self.t
            .doc
            .keys(&p)
            .filter_map(|id| {
                let obj = self.map(&p, &id)?;
                let name = self.get_str(&obj, "name").unwrap_or_else(|| id.clone());
                let fleet = self
                    .get_str(&obj, "fleet")
                    .map(|f| crate::mesh::clean_label(&f))
                    .filter(|f| !f.is_empty())
                    .unwrap_or_else(|| name.clone());
                Some(ProjectEntry { id, name, fleet })
            })
            .collect()
    }

    /// Adds a project, or changes its name or fleet identity.
    pub fn put_project(&mut self, id: &str, name: &str, fleet: &str) {
        let p = self.ensure_map(&ROOT, "projects");
        let obj = self.ensure_map(&p, id);
        self.put_if_changed(&obj, "name", Some(ScalarValue::Str(name.into())));
        self.put_if_changed(&obj, "fleet", Some(ScalarValue::Str(fleet.into())));
        self.ensure_map(&obj, "specs");
    }

    /// Removes a project and its specs.
    pub fn remove_project(&mut self, id: &str) -> bool {
        match self.projects_obj() {
            Some(p) if self.map(&p, id).is_some() => self.doc_mut().delete(&p, id).is_ok(),
            _ => false,
        }
    }

    fn specs_obj(&self, project: &str) -> Option<ObjId> {
        let p = self.projects_obj()?;
        let obj = self.map(&p, project)?;
        self.map(&obj, "specs")
    }

    /// Names of a project's specs, sorted.
    pub fn spec_names(&self, project: &str) -> Vec<String> {
        match self.specs_obj(project) {
            Some(s) => self.t.doc.keys(&s).collect(),
            None => Vec::new(),
        }
    }

    /// Whether a project holds a spec of this name.
    pub fn has_spec(&self, project: &str, name: &str) -> bool {
        self.specs_obj(project)
            .is_some_and(|s| self.map(&s, name).is_some())
    }

    /// Number of specs in a project.
    pub fn spec_count(&self, project: &str) -> usize {
        self.specs_obj(project).map_or(0, |s| self.t.doc.length(&s))
    }

    /// One spec, if the project has it.
    pub fn spec(&self, project: &str, name: &str) -> Option<Spec> {
        let specs = self.specs_obj(project)?;
        let obj = self.map(&specs, name)?;
        Some(self.read_spec_fields(&obj, name))
    }

    /// Every spec of a project, sorted by name.
    pub fn specs(&self, project: &str) -> Vec<Spec> {
        // The cached table when a query built one; otherwise a direct read (building a
        // table, with its folded text, for one copy would cost more than it saves).
        match self.table.get() {
            Some(t) => t
                .projects
                .iter()
                .find(|p| p.project.id == project)
                .map(|p| p.specs.clone())
                .unwrap_or_default(),
            None => self.read_specs(project),
        }
    }

    fn read_specs(&self, project: &str) -> Vec<Spec> {
        let Some(specs) = self.specs_obj(project) else {
            return Vec::new();
        };
        // One pass over the specs map and one over each spec's fields: ~5x faster
        // than a lookup per key.
        self.t
            .doc
            .map_range(&specs, ..)
            .filter(|item| matches!(item.value, ValueRef::Object(ObjType::Map)))
            .map(|item| self.read_spec_fields(&item.id(), &item.key))
            .collect()
    }

    fn read_spec_fields(&self, obj: &ObjId, name: &str) -> Spec {
        let mut spec = Spec {
            name: name.to_string(),
            ..Spec::default()
        };
        for item in self.t.doc.map_range(obj, ..) {
            let ValueRef::Scalar(value) = &item.value else {
                continue;
            };
            match value {
                ScalarValueRef::Str(v) => {
                    let v: &str = v;
                    let list = || serde_json::from_str::<Vec<String>>(v).unwrap_or_default();
                    match &*item.key {
                        "title" => spec.title = v.to_string(),
                        "status" => spec.status = v.parse::<Status>().ok(),
                        "priority" => spec.priority = v.parse::<Priority>().ok(),
                        "tags" => spec.tags = list(),
                        "depends_on" => spec.depends_on = list(),
                        "sub_files" => spec.sub_files = list(),
                        "parent" => spec.parent = Some(v.to_string()),
                        "assignee" => spec.assignee = Some(v.to_string()),
                        "created" => spec.created = Some(v.to_string()),
                        "created_at" => spec.created_at = Some(v.to_string()),
                        "updated_at" => spec.updated_at = Some(v.to_string()),
                        "completed_at" => spec.completed_at = Some(v.to_string()),
                        "parse_error" => spec.parse_error = Some(v.to_string()),
                        _ => {}
                    }
                }
                ScalarValueRef::Bytes(b) => match &*item.key {
                    "content_hash" => spec.content_hash = hex::encode(b),
                    "file_hash" => spec.file_hash = hex::encode(b),
                    _ => {}
                },
                _ => {}
            }
        }
        spec
    }

    /// The spec's fields as stored (absent keys omitted).
    fn fields(spec: &Spec) -> Vec<(&'static str, ScalarValue)> {
        let str_values: [Option<&str>; 9] = [
            spec.status.map(Status::as_str),
            spec.priority.map(Priority::as_str),
            spec.parent.as_deref(),
            spec.assignee.as_deref(),
            spec.created.as_deref(),
            spec.created_at.as_deref(),
            spec.updated_at.as_deref(),
            spec.completed_at.as_deref(),
            spec.parse_error.as_deref(),
        ];
        let mut out = vec![("title", ScalarValue::Str(spec.title.as_str().into()))];
        for (k, v) in STR_FIELDS.iter().zip(str_values) {
            if let Some(v) = v {
                out.push((k, ScalarValue::Str(v.into())));
            }
        }
        for (k, v) in [
            ("tags", &spec.tags),
            ("depends_on", &spec.depends_on),
            ("sub_files", &spec.sub_files),
        ] {
            if !v.is_empty()
                && let Ok(j) = serde_json::to_string(v)
            {
                out.push((k, ScalarValue::Str(j.into())));
            }
        }
        for (k, v) in [
            ("content_hash", &spec.content_hash),
            ("file_hash", &spec.file_hash),
        ] {
            if let Ok(b) = hex::decode(v)
                && !b.is_empty()
            {
                out.push((k, ScalarValue::Bytes(b)));
            }
        }
        out
    }

    fn hydrated(spec: &Spec) -> hydrate::Value {
        let map: HashMap<String, hydrate::Value> = Self::fields(spec)
            .into_iter()
            .map(|(k, v)| (k.to_string(), hydrate::Value::Scalar(v)))
            .collect();
        hydrate::Value::Map(hydrate::Map::from(map))
    }

    /// Adds specs that are not in the document yet, as batch operations (one OpSet
    /// splice per spec, or one for all of them when the project has no specs yet:
    /// ~20x faster than one put per field). Specs already present are updated field by
    /// field instead.
    pub fn insert_specs(&mut self, project: &str, specs: &[Spec]) {
        if specs.is_empty() {
            return;
        }
        if self.specs_obj(project).is_none() {
            self.put_project(project, project, project);
        }
        let Some(specs_obj) = self.specs_obj(project) else {
            return;
        };
        if self.t.doc.length(&specs_obj) == 0 {
            let map: HashMap<String, hydrate::Value> = specs
                .iter()
                .map(|s| (s.name.clone(), Self::hydrated(s)))
                .collect();
            let project_obj = self.projects_obj().and_then(|p| self.map(&p, project));
            if let Some(project_obj) = project_obj {
                let value = hydrate::Value::Map(hydrate::Map::from(map));
                if self
                    .doc_mut()
                    .batch_create_object(&project_obj, "specs", &value, false)
                    .is_ok()
                {
                    return;
                }
            }
        }
        for spec in specs {
            // A spec already present, or one the batch insert refused, goes field by field.
            let created = self.map(&specs_obj, &spec.name).is_none()
                && self
                    .doc_mut()
                    .batch_create_object(
                        &specs_obj,
                        spec.name.as_str(),
                        &Self::hydrated(spec),
                        false,
                    )
                    .is_ok();
            if !created {
                self.put_spec(project, spec);
            }
        }
    }

    /// Whether a spec is recorded with a parse error (cheaper than reading the spec).
    pub fn has_parse_error(&self, project: &str, name: &str) -> bool {
        self.specs_obj(project)
            .and_then(|s| self.map(&s, name))
            .is_some_and(|obj| matches!(self.t.doc.get(&obj, "parse_error"), Ok(Some(_))))
    }

    /// Writes a spec, touching only the fields that differ from the document. Returns
    /// the number of fields written (0: the document already held this spec).
    pub fn put_spec(&mut self, project: &str, spec: &Spec) -> usize {
        let specs = match self.specs_obj(project) {
            Some(s) => s,
            None => {
                self.put_project(project, project, project);
                match self.specs_obj(project) {
                    Some(s) => s,
                    None => return 0,
                }
            }
        };
        let obj = self.ensure_map(&specs, &spec.name);
        let mut fields = Self::fields(spec);
        let mut n = 0;
        for key in ALL_FIELDS {
            let value = fields
                .iter()
                .position(|(k, _)| *k == key)
                .map(|i| fields.swap_remove(i).1);
            n += usize::from(self.put_if_changed(&obj, key, value));
        }
        n
    }

    /// Removes a spec; returns whether it was there.
    pub fn remove_spec(&mut self, project: &str, name: &str) -> bool {
        match self.specs_obj(project) {
            Some(s) if self.map(&s, name).is_some() => self.doc_mut().delete(&s, name).is_ok(),
            _ => false,
        }
    }

    /// Commits pending writes as one change; `None` when there was nothing to commit.
    pub fn commit(&mut self, unix_secs: i64) -> Option<automerge::ChangeHash> {
        // Nothing pending: committing would open a transaction only to drop it (a
        // cost on every received message, whose commit covers both our documents).
        if self.t.doc.pending_ops() == 0 {
            return None;
        }
        self.t
            .doc
            .commit_with(CommitOptions::default().with_time(unix_secs))
    }

    /// The changes since the last save (empty when none).
    pub fn save_incremental(&mut self) -> Vec<u8> {
        self.t.save_incremental()
    }

    /// The whole document, compressed.
    pub fn save(&mut self) -> Vec<u8> {
        self.t.save()
    }

    /// Current heads.
    pub(crate) fn head_hashes(&mut self) -> Vec<automerge::ChangeHash> {
        self.t.heads()
    }

    /// Current heads (hex), for display and sync checks.
    pub fn heads(&mut self) -> Vec<String> {
        self.t
            .doc
            .get_heads()
            .iter()
            .map(|h| h.to_string())
            .collect()
    }

    /// A copy of the current state with no history: what a fresh save of the same
    /// state costs. Used to report how close the stored size stays to it.
    pub fn fresh_copy_size(&self, owner: MachineId) -> usize {
        let mut fresh = MachineDoc::new(owner, &self.machine_info(), 0);
        for p in self.projects() {
            fresh.put_project(&p.id, &p.name, &p.fleet);
            fresh.insert_specs(&p.id, &self.specs(&p.id));
        }
        fresh.commit(0);
        fresh.save().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::spec::parse_bytes;

    fn doc() -> (MachineDoc, MachineId) {
        let id = Identity::generate().unwrap().id();
        let info = MachineInfo {
            id: id.to_string(),
            label: "t".into(),
            version: "0".into(),
            os: "linux".into(),
        };
        (MachineDoc::new(id, &info, 0), id)
    }

    fn spec(name: &str, status: &str, tags: &str) -> Spec {
        let text =
            format!("---\nstatus: {status}\ncreated: 2025-01-01\ntags: [{tags}]\n---\n# {name}\n");
        parse_bytes(name, text.as_bytes(), vec!["DESIGN.md".into()])
    }

    #[test]
    fn batch_inserts_and_field_updates_read_back_the_same() {
        let (mut d, id) = doc();
        d.put_project("p", "proj", "proj");
        let first = vec![
            spec("001-a", "draft", "x, y"),
            spec("002-b", "complete", ""),
        ];
        d.insert_specs("p", &first);
        // Into a project that already has specs: one batch per spec.
        d.insert_specs("p", &[spec("003-c", "planned", "z")]);
        d.commit(1);
        assert_eq!(d.spec_names("p"), ["001-a", "002-b", "003-c"]);
        assert_eq!(d.spec("p", "001-a").unwrap(), first[0]);
        assert_eq!(d.spec("p", "002-b").unwrap(), first[1]);
        d.save_incremental();
        // An unchanged spec writes nothing; one changed field writes one field.
        assert_eq!(d.put_spec("p", &first[0]), 0);
        let mut changed = first[0].clone();
        changed.priority = Some(Priority::High);
        assert_eq!(d.put_spec("p", &changed), 1);
        d.commit(2);
        let bytes = d.save_incremental();
        assert!(
            !bytes.is_empty() && bytes.len() <= 200,
            "one-field change is {} bytes",
            bytes.len()
        );
        // Round trip through the stored chunks.
        let full = d.save();
        let loaded = MachineDoc::load(id, [full.as_slice()]).unwrap();
        assert_eq!(loaded.spec("p", "001-a").unwrap(), changed);
        assert!(d.remove_spec("p", "002-b"));
        assert!(d.spec("p", "002-b").is_none());
    }

    /// The cached table follows every write: a field, a new spec, a removed spec, a
    /// removed project; a write of the same value keeps it.
    #[test]
    fn the_spec_table_follows_every_write() {
        let (mut d, _) = doc();
        d.put_project("p", "proj", "proj");
        d.insert_specs("p", &[spec("001-a", "draft", "x")]);
        let first = d.table();
        assert_eq!(first.projects[0].specs.len(), 1);
        assert!(Arc::ptr_eq(&first, &d.table()), "read once");
        let mut a = spec("001-a", "draft", "x");
        assert_eq!(d.put_spec("p", &a), 0);
        assert!(
            Arc::ptr_eq(&first, &d.table()),
            "an unchanged write keeps it"
        );
        a.status = Some(Status::Complete);
        d.put_spec("p", &a);
        assert_eq!(
            d.table().projects[0].specs[0].status,
            Some(Status::Complete)
        );
        assert_eq!(d.table().projects[0].folded.get(0).name, "001-a");
        d.insert_specs("p", &[spec("002-b", "planned", "")]);
        assert_eq!(d.table().projects[0].specs.len(), 2);
        d.remove_spec("p", "001-a");
        assert_eq!(d.table().projects[0].specs[0].name, "002-b");
        d.remove_project("p");
        assert!(d.table().projects.is_empty());
        d.tracked();
        assert!(
            d.table.get().is_none(),
            "handing out the document for writes drops it"
        );
    }

    #[test]
    fn garbage_does_not_load() {
        let (_, id) = doc();
        assert!(MachineDoc::load(id, [b"not automerge".as_slice()]).is_err());
        assert!(MachineDoc::load(id, std::iter::empty::<&[u8]>()).is_err());
    }
}
