//! An Automerge document with what the store and the sync layer need around it: the
//! heads as of the last save (for incremental saves) and sync with an authorship check.

use automerge::sync::{self, SyncDoc};
use automerge::{ActorId, AutoCommit, ChangeHash};

/// Why a received sync message was refused. The document is left as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The bytes are not an Automerge sync message.
    #[error("malformed sync message: {0}")]
    Decode(String),
    /// Automerge refused the changes.
    #[error("sync message refused by automerge: {0}")]
    Apply(#[from] automerge::AutomergeError),
    /// A change was authored by someone not allowed to write this document.
    #[error("change by actor {actor} is not allowed in this document")]
    Unauthorized {
        /// The actor (hex).
        actor: String,
    },
    /// A change came without a valid signature of the machine its actor names
    /// (docs/threat-model.md: the actor id is a claim, the signature is the proof).
    #[error("change {hash} (actor {actor}) has no valid signature of its author")]
    Unsigned {
        /// The change hash (hex).
        hash: String,
        /// The actor it claims (hex).
        actor: String,
    },
    /// A mesh change by a machine written after its revocation.
    #[error("a mesh change by machine {machine}, written after it was revoked")]
    RevokedAuthor {
        /// The revoked machine (hex).
        machine: String,
    },
    /// The message goes over a limit (docs/limits.md).
    #[error(transparent)]
    OverLimit(#[from] crate::limits::Exceeded),
    /// The signatures that came with the message are malformed.
    #[error(transparent)]
    Signatures(#[from] crate::authorship::DecodeError),
}

/// Most changes a peer that holds part of a document is sent one by one (see
/// [`Tracked::generate_sync`]); past this a whole document, columnar and compressed, is
/// likely the smaller message (a one-field change is ~400 bytes with its signature; a
/// 1,000-spec document ~80 KB).
const INCREMENTAL_UP_TO: usize = 64;

/// A document plus its save cursor.
#[derive(Debug)]
pub(crate) struct Tracked {
    pub(crate) doc: AutoCommit,
    /// Heads as of the last save to the store. Automerge's own save cursor starts empty
    /// after a load, which would make the first incremental save repeat the whole
    /// document; this one starts at the loaded heads.
    saved_heads: Vec<ChangeHash>,
    /// What the last received message changed, logged while it applied (see
    /// [`Tracked::spec_changes`]).
    received: Option<Received>,
}

/// The patches of one received message and the heads before and after it.
#[derive(Debug)]
struct Received {
    before: Vec<ChangeHash>,
    after: Vec<ChangeHash>,
    patches: Vec<automerge::Patch>,
}

impl Tracked {
    pub(crate) fn new(doc: AutoCommit) -> Tracked {
        let mut doc = doc;
        let saved_heads = doc.get_heads();
        Tracked {
            doc,
            saved_heads,
            received: None,
        }
    }

    /// A new, empty document not yet saved anywhere.
    pub(crate) fn empty() -> Tracked {
        Tracked {
            doc: AutoCommit::new(),
            saved_heads: Vec::new(),
            received: None,
        }
    }

    pub(crate) fn load<'a>(
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Tracked, automerge::AutomergeError> {
        let mut doc = AutoCommit::new();
        for chunk in chunks {
            doc.load_incremental(chunk)?;
        }
        Ok(Tracked::new(doc))
    }

    /// The changes since the last save (empty when none).
    /// Where [`Tracked::save_incremental`] continues from.
    pub(crate) fn saved_heads(&self) -> Vec<ChangeHash> {
        self.saved_heads.clone()
    }

    /// Moves the save cursor back, after the bytes of a save were not stored (a failed
    /// transaction): the next save covers those changes again.
    pub(crate) fn rewind_save(&mut self, heads: Vec<ChangeHash>) {
        self.saved_heads = heads;
    }

    pub(crate) fn save_incremental(&mut self) -> Vec<u8> {
        let heads = self.doc.get_heads();
        if heads == self.saved_heads {
            return Vec::new();
        }
        let bytes = self.doc.save_after(&self.saved_heads);
        self.saved_heads = heads;
        bytes
    }

    /// The whole document, compressed; changes still waiting for their dependencies
    /// are left out (Automerge keeps them by default: a member's orphans would be
    /// stored and sent to every joiner).
    pub(crate) fn save(&mut self) -> Vec<u8> {
        self.saved_heads = self.doc.get_heads();
        self.doc.save_with_options(automerge::SaveOptions {
            retain_orphans: false,
            ..Default::default()
        })
    }

    /// Whether changes wait for missing dependencies.
    pub(crate) fn has_orphans(&self) -> bool {
        use automerge::ReadDoc;
        !self.doc.get_missing_deps(&[]).is_empty()
    }

    /// The changes among `among` that are in the history of `heads` (heads included):
    /// a walk down the dependencies from `heads` that stops at changes outside `among`,
    /// so it costs at most `among.len()` lookups.
    pub(crate) fn history_within(
        &mut self,
        heads: &[ChangeHash],
        among: &std::collections::HashSet<ChangeHash>,
    ) -> std::collections::HashSet<ChangeHash> {
        let mut found = std::collections::HashSet::new();
        let mut next: Vec<ChangeHash> = heads.to_vec();
        while let Some(h) = next.pop() {
            if !among.contains(&h) || !found.insert(h) {
                continue;
            }
            if let Some(meta) = self.doc.get_change_meta_by_hash(&h) {
                next.extend(meta.deps.iter().copied());
            }
        }
        found
    }

    /// Whether this document holds change `hash`.
    pub(crate) fn has_change(&mut self, hash: &ChangeHash) -> bool {
        self.doc.get_change_meta_by_hash(hash).is_some()
    }

    /// How many changes are not covered by `heads` (what a peer holding `heads` lacks).
    pub(crate) fn changes_after(&mut self, heads: &[ChangeHash]) -> usize {
        self.doc.get_changes_meta(heads).len()
    }

    /// The changes not covered by `heads` (those after them), as a set.
    pub(crate) fn hashes_after(
        &mut self,
        heads: &[ChangeHash],
    ) -> std::collections::HashSet<ChangeHash> {
        self.doc
            .get_changes_meta(heads)
            .iter()
            .map(|c| c.hash)
            .collect()
    }

    pub(crate) fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// The next sync message for a peer, encoded, if there is anything to say, with the
    /// hashes of the changes it carries (for their signatures).
    /// `whole` says whether it carries a whole document (then the receiver holds every
    /// change up to these heads once it applies).
    pub(crate) fn generate_sync(
        &mut self,
        state: &mut sync::State,
    ) -> Option<(Vec<u8>, Vec<ChangeHash>, bool)> {
        let before = state.sent_hashes.clone();
        // Automerge sends a whole document instead of changes when they are more than a
        // third of the document's changes: a young machine document (one change per scan)
        // went whole to every member for a batch of nine one-field edits (81 KB instead
        // of ~4 KB per member at 1,000 specs, issue 15). Hiding the peer's support for
        // whole documents (message v2) keeps it incremental; flags still travel, so the
        // peer's view of us does not change.
        let capabilities = state.their_capabilities.clone();
        if self.incremental(state)
            && let Some(caps) = state.their_capabilities.as_mut()
        {
            caps.retain(|c| *c != sync::Capability::MessageV2);
        }
        let message = self.doc.sync().generate_sync_message(state);
        state.their_capabilities = capabilities;
        let message = message?;
        // A message that carries a whole document (Automerge does so when a peer lacks
        // much of it) carries every change, also ones sent before in this session that
        // the peer dropped: all of them need their signatures. Otherwise it carries
        // exactly the hashes it added to `sent_hashes`.
        let whole = message.changes.iter().any(is_document_chunk);
        let carried = if whole {
            self.all_changes()
        } else {
            state.sent_hashes.difference(&before).copied().collect()
        };
        Some((message.encode(), carried, whole))
    }

    /// Whether the peer is sent changes one by one whatever Automerge would choose: it
    /// holds part of the document (heads we know) and lacks at most
    /// [`INCREMENTAL_UP_TO`] changes of it.
    fn incremental(&mut self, state: &sync::State) -> bool {
        let Some(theirs) = state.their_heads.as_deref().filter(|h| !h.is_empty()) else {
            return false;
        };
        // Metadata only: `get_change_by_hash` rebuilds the change from the op set, and
        // a peer's heads are often the first scan (every op of the document): at 10
        // machines that was a fifth of a storm's CPU.
        if theirs
            .iter()
            .any(|h| self.doc.get_change_meta_by_hash(h).is_none())
        {
            return false;
        }
        self.doc.get_changes_meta(theirs).len() <= INCREMENTAL_UP_TO
    }

    /// The actor of a change this document holds.
    pub(crate) fn change_actor(&mut self, hash: &ChangeHash) -> Option<ActorId> {
        self.doc
            .get_change_meta_by_hash(hash)
            .map(|c| c.actor.into_owned())
    }

    /// Hashes of every change (its whole history).
    pub(crate) fn all_changes(&mut self) -> Vec<ChangeHash> {
        self.doc
            .get_changes_meta(&[])
            .iter()
            .map(|c| c.hash)
            .collect()
    }

    /// Hashes of the changes by `actor` not saved yet (what its author signs at commit).
    pub(crate) fn unsaved_changes_by(&mut self, actor: &ActorId) -> Vec<ChangeHash> {
        let saved = self.saved_heads.clone();
        self.changes_by(actor, &saved)
    }

    /// Hashes of the changes by `actor` not covered by `heads` (all of them for `[]`).
    pub(crate) fn changes_by(&mut self, actor: &ActorId, heads: &[ChangeHash]) -> Vec<ChangeHash> {
        self.doc
            .get_changes_meta(heads)
            .iter()
            .filter(|c| c.actor.as_ref() == actor)
            .map(|c| c.hash)
            .collect()
    }

    /// Applies a sync message and returns the changes it added, `(hash, actor)` (empty if
    /// it added none). The caller checks them and, on refusal, reloads the document from
    /// the store: a change cannot be un-applied, but nothing is persisted before the check.
    pub(crate) fn receive_sync(
        &mut self,
        state: &mut sync::State,
        message: sync::Message,
    ) -> Result<Vec<(ChangeHash, ActorId)>, ReceiveError> {
        // `get_heads` also closes an open transaction, which the logging receive
        // (unlike the plain one) does not do itself.
        let before = self.doc.get_heads();
        self.received = None;
        // A first sync logs nothing: its receiver lists the specs instead.
        let mut log = if before.is_empty() {
            automerge::PatchLog::null()
        } else {
            automerge::PatchLog::active()
        };
        self.doc
            .sync()
            .receive_sync_message_log_patches(state, message, &mut log)?;
        let after = self.doc.get_heads();
        if after == before {
            return Ok(Vec::new());
        }
        if !before.is_empty() {
            let patches = self.doc.make_patches(&mut log);
            self.received = Some(Received {
                before: before.clone(),
                after,
                patches,
            });
        }
        Ok(self
            .doc
            .get_changes_meta(&before)
            .into_iter()
            .map(|c| (c.hash, c.actor.into_owned()))
            .collect())
    }

    /// Logs the patches of the local changes made from now on, until
    /// [`Tracked::stop_logging_local`]: [`Tracked::spec_changes`] from the heads of now
    /// to the heads after them then reads the log instead of diffing every op (a diff
    /// costs ~8 % of a saved file's CPU on the way to the peers).
    pub(crate) fn log_local(&mut self) {
        self.doc.update_diff_cursor();
    }

    /// Stops the log of [`Tracked::log_local`] (logging costs each op a little).
    pub(crate) fn stop_logging_local(&mut self) {
        self.doc.reset_diff_cursor();
    }

    /// The spec names of `project` as of `heads`.
    fn spec_names_at(&self, project: &str, heads: &[ChangeHash]) -> Vec<String> {
        use automerge::{ObjType, ROOT, ReadDoc, Value};
        let obj = |parent: &automerge::ObjId, key: &str| match self.doc.get_at(parent, key, heads) {
            Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
            _ => None,
        };
        obj(&ROOT, "projects")
            .and_then(|ps| obj(&ps, project))
            .and_then(|p| obj(&p, "specs"))
            .map(|specs| self.doc.keys_at(&specs, heads).collect())
            .unwrap_or_default()
    }

    /// The spec-level changes between two heads of a machine document:
    /// `(project, spec, Some(fields))` for changed specs, `(project, spec, None)` for
    /// removed ones.
    pub(crate) fn spec_changes(
        &mut self,
        before: &[ChangeHash],
        after: &[ChangeHash],
    ) -> Vec<(String, String, Option<Vec<String>>)> {
        use automerge::{PatchAction, Prop};
        let mut out: Vec<(String, String, Option<Vec<String>>)> = Vec::new();
        // The patches logged while the last message applied, when they are these two
        // heads' difference: a diff reads every op of the document (at 1,000 specs a
        // fifth of a change storm's CPU at 10 machines), the log costs what the
        // changes cost.
        let patches = match self.received.take() {
            Some(r) if r.before == before && r.after == after => r.patches,
            _ => self.doc.diff(before, after),
        };
        for patch in patches {
            let keys: Vec<String> = patch
                .path
                .iter()
                .map(|(_, p)| match p {
                    Prop::Map(k) => k.to_string(),
                    Prop::Seq(i) => i.to_string(),
                })
                .collect();
            if keys.first().map(String::as_str) != Some("projects") {
                continue;
            }
            let action_key = match &patch.action {
                PatchAction::PutMap { key, .. } => Some((key.to_string(), false)),
                PatchAction::DeleteMap { key } => Some((key.to_string(), true)),
                _ => None,
            };
            if let (1, Some((project, true))) = (keys.len(), &action_key) {
                // A whole project removed: each spec it held before is removed.
                for spec in self.spec_names_at(project, before) {
                    out.retain(|(p, s, _)| !(p == project && *s == spec));
                    out.push((project.clone(), spec, None));
                }
                continue;
            }
            let (project, spec, field, removed) = match (keys.len(), action_key) {
                // projects/<p>/specs: a spec added whole or removed.
                (3, Some((name, deleted))) if keys[2] == "specs" => {
                    (keys[1].clone(), name, None, deleted)
                }
                // projects/<p>/specs/<s>: one field.
                (n, Some((field, _))) if n >= 4 && keys[2] == "specs" => {
                    (keys[1].clone(), keys[3].clone(), Some(field), false)
                }
                _ => continue,
            };
            let entry = out.iter_mut().find(|(p, s, _)| *p == project && *s == spec);
            match (entry, removed) {
                (Some(e), true) => e.2 = None,
                (Some(e), false) => {
                    if let (Some(fields), Some(f)) = (e.2.as_mut(), field) {
                        if !fields.contains(&f) {
                            fields.push(f);
                        }
                    } else if e.2.is_none() {
                        e.2 = Some(Vec::new());
                    }
                }
                (None, true) => out.push((project, spec, None)),
                (None, false) => out.push((project, spec, Some(field.into_iter().collect()))),
            }
        }
        // A diff lists a spec's fields in key order, a log in the order they were
        // written: the same order whichever was read.
        for (_, _, fields) in &mut out {
            if let Some(f) = fields {
                f.sort_unstable();
            }
        }
        out
    }
}

/// Whether a chunk of a sync message is a whole document (Automerge's storage format:
/// 4 magic bytes, 4 checksum bytes, then the chunk type, 0 for a document).
pub(crate) fn is_document_chunk(chunk: &[u8]) -> bool {
    chunk.get(8) == Some(&0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    /// Issue 15: a batch of small edits to a document made in one big change goes to a
    /// peer that holds the rest as those changes, not as the whole document.
    #[test]
    fn a_few_changes_to_a_young_document_are_sent_as_changes() {
        let mut a = Tracked::new(AutoCommit::new());
        for i in 0..1_000 {
            a.doc
                .put(automerge::ROOT, format!("spec-{i}"), "planned")
                .expect("put");
        }
        a.doc.commit();
        let mut b = Tracked::empty();
        let (mut sa, mut sb) = (sync::State::new(), sync::State::new());
        for _ in 0..10 {
            let ab = a.generate_sync(&mut sa);
            if let Some((m, _, _)) = &ab {
                let m = sync::Message::decode(m).expect("decode");
                b.receive_sync(&mut sb, m).expect("receive");
            }
            let ba = b.generate_sync(&mut sb);
            if let Some((m, _, _)) = &ba {
                let m = sync::Message::decode(m).expect("decode");
                a.receive_sync(&mut sa, m).expect("receive");
            }
            if ab.is_none() && ba.is_none() {
                break;
            }
        }
        assert_eq!(a.heads(), b.heads());
        for i in 0..9 {
            a.doc
                .put(automerge::ROOT, format!("spec-{i}"), "archived")
                .expect("put");
            a.doc.commit();
        }
        let (message, carried, whole) = a.generate_sync(&mut sa).expect("a message");
        assert!(!whole, "the whole document went ({} bytes)", message.len());
        assert_eq!(carried.len(), 9);
        assert!(message.len() < 4_000, "{} bytes", message.len());
        let m = sync::Message::decode(&message).expect("decode");
        b.receive_sync(&mut sb, m).expect("receive");
        assert_eq!(a.heads(), b.heads());
    }

    /// Syncs `a` into `b` until both have nothing to say (bounded).
    fn sync_into(a: &mut Tracked, b: &mut Tracked, sa: &mut sync::State, sb: &mut sync::State) {
        for _ in 0..10 {
            let ab = a.generate_sync(sa);
            if let Some((m, _, _)) = &ab {
                b.receive_sync(sb, sync::Message::decode(m).expect("decode"))
                    .expect("receive");
            }
            let ba = b.generate_sync(sb);
            if let Some((m, _, _)) = &ba {
                a.receive_sync(sa, sync::Message::decode(m).expect("decode"))
                    .expect("receive");
            }
            if ab.is_none() && ba.is_none() {
                return;
            }
        }
        panic!("sync did not settle in 10 rounds");
    }

    /// The spec changes a received message makes are read from the patches logged while
    /// it applied (not a diff of the whole document), and they are the diff's.
    #[test]
    fn received_spec_changes_come_from_the_log_and_equal_the_diff() {
        use automerge::{ObjType, ROOT};
        let mut a = Tracked::new(AutoCommit::new());
        let projects = a.doc.put_object(ROOT, "projects", ObjType::Map).expect("p");
        let p = a.doc.put_object(&projects, "p1", ObjType::Map).expect("p1");
        let specs = a.doc.put_object(&p, "specs", ObjType::Map).expect("specs");
        let mut ids = Vec::new();
        for i in 0..5 {
            let spec = a
                .doc
                .put_object(&specs, format!("s{i}"), ObjType::Map)
                .expect("s");
            a.doc.put(&spec, "status", "planned").expect("status");
            a.doc.put(&spec, "priority", "low").expect("priority");
            ids.push(spec);
        }
        a.doc.commit();
        let mut b = Tracked::empty();
        let (mut sa, mut sb) = (sync::State::new(), sync::State::new());
        sync_into(&mut a, &mut b, &mut sa, &mut sb);
        let before = b.heads();
        a.doc.put(&ids[1], "status", "archived").expect("put");
        a.doc.commit();
        a.doc.delete(&specs, "s2").expect("delete");
        a.doc.put(&ids[3], "priority", "high").expect("put");
        a.doc.commit();
        a.doc.put(&ids[3], "priority", "critical").expect("put");
        let added = a.doc.put_object(&specs, "s9", ObjType::Map).expect("s9");
        a.doc.put(&added, "status", "draft").expect("put");
        a.doc.commit();
        sync_into(&mut a, &mut b, &mut sa, &mut sb);
        let after = b.heads();
        assert_eq!(after, a.heads());
        // The three changes came in one message, whose patches were kept.
        assert!(
            b.received
                .as_ref()
                .is_some_and(|r| r.before == before && r.after == after)
        );
        let sorted = |mut v: Vec<(String, String, Option<Vec<String>>)>| {
            v.sort();
            v
        };
        let from_log = sorted(b.spec_changes(&before, &after));
        assert!(b.received.is_none(), "the log is used once");
        let from_diff = sorted(b.spec_changes(&before, &after));
        assert_eq!(from_log, from_diff);
        let names: Vec<(&str, bool)> = from_log
            .iter()
            .map(|(_, s, f)| (s.as_str(), f.is_some()))
            .collect();
        assert_eq!(
            names,
            [("s1", true), ("s2", false), ("s3", true), ("s9", true)]
        );
    }

    /// A machine's own changes, logged as they are made, list the same spec changes as
    /// a diff of the document (a copy loaded from its bytes, which has no log).
    #[test]
    fn own_changes_logged_as_made_equal_the_diff() {
        use automerge::{ObjType, ROOT};
        let mut a = Tracked::new(AutoCommit::new());
        let projects = a.doc.put_object(ROOT, "projects", ObjType::Map).expect("p");
        let p = a.doc.put_object(&projects, "p1", ObjType::Map).expect("p1");
        let specs = a.doc.put_object(&p, "specs", ObjType::Map).expect("specs");
        let mut ids = Vec::new();
        for i in 0..4 {
            let spec = a
                .doc
                .put_object(&specs, format!("s{i}"), ObjType::Map)
                .expect("s");
            a.doc.put(&spec, "status", "planned").expect("status");
            ids.push(spec);
        }
        a.doc.commit();
        let before = a.heads();
        a.log_local();
        // What makes the diff read the log: the cursor is where the changes start.
        assert_eq!(a.doc.diff_cursor(), before);
        a.doc.put(&ids[0], "status", "complete").expect("put");
        a.doc.put(&ids[0], "priority", "high").expect("put");
        a.doc.commit();
        a.doc.delete(&specs, "s1").expect("delete");
        let added = a.doc.put_object(&specs, "s7", ObjType::Map).expect("s7");
        a.doc.put(&added, "status", "draft").expect("put");
        a.doc.commit();
        let after = a.heads();
        let sorted = |mut v: Vec<(String, String, Option<Vec<String>>)>| {
            v.sort();
            v
        };
        let from_log = sorted(a.spec_changes(&before, &after));
        a.stop_logging_local();
        let mut copy = Tracked::new(AutoCommit::load(&a.doc.save()).expect("load"));
        let from_diff = sorted(copy.spec_changes(&before, &after));
        assert_eq!(from_log, from_diff);
        assert_eq!(
            from_log,
            [
                (
                    "p1".into(),
                    "s0".into(),
                    Some(vec!["priority".into(), "status".into()])
                ),
                ("p1".into(), "s1".into(), None),
                ("p1".into(), "s7".into(), Some(vec!["status".into()])),
            ]
        );
    }
}
