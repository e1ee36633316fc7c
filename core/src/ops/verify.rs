//! The target side: checks an operation in a fixed order, each check with its own
//! reason, applies it only if every check passes, and records the decision.
//!
//! Order (docs/protocol.md): size and decoding; signature; author is a current member
//! (and the machine that sent it); target is this machine; validity window; replay;
//! project and spec exist and the path stays inside the specs folder; values; base
//! `file_hash` equals the file on disk now. Cheap, input-only checks come first so a
//! hostile sender costs us as little as possible, and nothing touches the disk before
//! the signature is known good.

use super::audit::{AuditRecord, Direction};
use super::wire::{MAX_OP_BYTES, SignedOperation};
use super::{CLOCK_SKEW, MAX_TTL, OpBody, Operation, Outcome, Reason, Verdict};
use crate::identity::MachineId;
use crate::machine::{DocChange, Machine};
use crate::spec::{self, EditError};
use std::path::Path;

/// What receiving an operation did.
#[derive(Debug)]
pub struct Received {
    /// The answer for the author.
    pub verdict: Verdict,
    /// The operation, when it decoded.
    pub op: Option<Operation>,
    /// Changes to this machine's document (an applied edit, rescanned), to announce.
    pub changes: Vec<DocChange>,
}

/// Checks `bytes` from `sender` (the authenticated remote machine, `None` for a local
/// call) and applies them if every check passes. Always appends one audit record.
pub fn receive(m: &mut Machine, sender: Option<MachineId>, bytes: &[u8], now_ms: i64) -> Received {
    let decoded = if bytes.len() > MAX_OP_BYTES {
        Err(Verdict::rejected(
            String::new(),
            Reason::TooLarge,
            format!(
                "the operation is {} bytes, over the {MAX_OP_BYTES} byte limit",
                bytes.len()
            ),
        ))
    } else {
        SignedOperation::decode(bytes)
            .map_err(|e| Verdict::rejected(String::new(), Reason::Malformed, e.to_string()))
    };
    let signed = match decoded {
        Ok(s) => s,
        Err(verdict) => {
            let record = AuditRecord::undecodable(sender.map(|s| s.to_string()), &verdict, now_ms);
            append(m, record);
            return Received {
                verdict,
                op: None,
                changes: Vec::new(),
            };
        }
    };
    // A store that failed earlier (disk full) is reopened first: replay protection
    // needs to record the operation, and an edit is refused while it cannot.
    if let Err(e) = m.recover_store() {
        tracing::debug!("the store is still failing: {e}");
    }
    let (verdict, changes) = decide(m, sender, &signed, now_ms);
    let mut record = AuditRecord::of(&signed.op, Direction::Received, &verdict, now_ms);
    record.sender = sender.map(|s| s.to_string()).unwrap_or_default();
    append(m, record);
    Received {
        verdict,
        op: Some(signed.op),
        changes,
    }
}

/// Appends to the audit log; a failure is logged (the decision stands either way).
pub(crate) fn append(m: &Machine, record: AuditRecord) {
    match serde_json::to_vec(&record) {
        Ok(bytes) => {
            if let Err(e) = m.store().append_audit(&bytes, m.audit_retention()) {
                tracing::error!("cannot append to the audit log: {e}");
            }
        }
        Err(e) => tracing::error!("cannot encode an audit record: {e}"),
    }
}

fn decide(
    m: &mut Machine,
    sender: Option<MachineId>,
    signed: &SignedOperation,
    now_ms: i64,
) -> (Verdict, Vec<DocChange>) {
    let op = &signed.op;
    let reject =
        |reason, message: String| (Verdict::rejected(op.id_hex(), reason, message), Vec::new());
    if !signed.signature_valid() {
        return reject(
            Reason::BadSignature,
            format!(
                "the signature is not {}'s over this operation",
                op.author.short()
            ),
        );
    }
    match m.mesh().member(op.author) {
        None => {
            return reject(
                Reason::NotMember,
                format!("{} is not a member of this mesh", op.author.short()),
            );
        }
        Some(member) if member.revoked_at.is_some() => {
            return reject(
                Reason::Revoked,
                format!("{} was revoked from the mesh", op.author.short()),
            );
        }
        Some(_) => {}
    }
    if let Some(sender) = sender
        && sender != op.author
    {
        return reject(
            Reason::WrongSender,
            format!(
                "the operation is by {} but was sent by {}",
                op.author.short(),
                sender.short()
            ),
        );
    }
    if op.target != m.id() {
        return reject(
            Reason::WrongTarget,
            format!(
                "the operation is for {}, this is {}",
                op.target.short(),
                m.id().short()
            ),
        );
    }
    let skew = CLOCK_SKEW.as_millis() as i64;
    if now_ms > op.expires_at_ms {
        return reject(
            Reason::Expired,
            format!(
                "the operation expired {} s ago",
                // A remote picks the expiry: i64::MIN must not overflow.
                now_ms.saturating_sub(op.expires_at_ms) / 1000
            ),
        );
    }
    if op.expires_at_ms.saturating_sub(op.issued_at_ms) > MAX_TTL.as_millis() as i64 {
        return reject(
            Reason::Expired,
            "the operation's validity is longer than the 24 h allowed".into(),
        );
    }
    if op.issued_at_ms > now_ms.saturating_add(skew) {
        return reject(
            Reason::NotYetValid,
            format!(
                "the operation was issued {} s in the future; check the author's clock",
                op.issued_at_ms.saturating_sub(now_ms) / 1000
            ),
        );
    }
    // Ids are kept until their operation expires (plus the skew window), so the
    // table stays as small as the operations still valid.
    let forget_before = now_ms.saturating_sub(skew).max(0) as u64;
    match m
        .store()
        .mark_op_seen(&op.id, op.expires_at_ms.max(0) as u64, forget_before)
    {
        Ok(true) => {}
        Ok(false) => {
            return reject(
                Reason::Replayed,
                "this operation was received before; replays are refused".into(),
            );
        }
        Err(e) => {
            return reject(
                Reason::EditFailed,
                format!("cannot record the operation: {e}"),
            );
        }
    }
    match &op.body {
        OpBody::ExecRequest { .. } => (
            Verdict {
                op_id: op.id_hex(),
                result: Outcome::Delivered,
                reason: None,
                message: "handed to the host application".into(),
                file_hash: None,
                current_file_hash: None,
            },
            Vec::new(),
        ),
        OpBody::Edit {
            project,
            spec: name,
            base_file_hash,
            change,
        } => match apply_edit(m, project, name, base_file_hash, change) {
            Ok((file_hash, changes)) => (
                Verdict {
                    op_id: op.id_hex(),
                    result: Outcome::Applied,
                    reason: None,
                    message: "applied".into(),
                    file_hash: Some(file_hash),
                    current_file_hash: None,
                },
                changes,
            ),
            Err((reason, message, current)) => {
                let mut v = Verdict::rejected(op.id_hex(), reason, message);
                v.current_file_hash = current;
                (v, Vec::new())
            }
        },
    }
}

type Refusal = (Reason, String, Option<String>);

fn apply_edit(
    m: &mut Machine,
    project: &str,
    name: &str,
    base_file_hash: &[u8; 32],
    change: &super::Change,
) -> Result<(String, Vec<DocChange>), Refusal> {
    let refuse = |reason, message: String| (reason, message, None);
    let record = m
        .store()
        .projects()
        .map_err(|e| refuse(Reason::EditFailed, e.to_string()))?
        .into_iter()
        .find(|p| p.id == project)
        .ok_or_else(|| {
            refuse(
                Reason::UnknownProject,
                format!("this machine has no project {project:?}"),
            )
        })?;
    check_name(name).map_err(|why| refuse(Reason::BadPath, why))?;
    if m.doc().spec(project, name).is_none() {
        return Err(refuse(
            Reason::UnknownSpec,
            format!("project {} has no spec {name:?}", record.name),
        ));
    }
    let specs_dir = spec::find_specs_dir(&record.root).ok_or_else(|| {
        refuse(
            Reason::UnknownSpec,
            format!("the specs folder of project {} is missing", record.name),
        )
    })?;
    let specs = spec::SpecsDir::open(&specs_dir).map_err(|e| {
        refuse(
            Reason::EditFailed,
            format!(
                "cannot open the specs folder of project {}: {e}",
                record.name
            ),
        )
    })?;
    let typed = change
        .to_metadata_change()
        .map_err(|e| refuse(Reason::InvalidValue, e))?;
    if typed.is_empty() {
        return Err(refuse(
            Reason::InvalidValue,
            "the operation changes nothing".into(),
        ));
    }
    let now = crate::time::now_rfc3339();
    let expected = hex::encode(base_file_hash);
    let outcome =
        spec::edit_file(&specs, name, &typed, &now, Some(&expected)).map_err(|e| match e {
            EditError::Stale { actual, .. } => (
                Reason::Stale,
                "the file changed since the author saw it; re-read it and retry".to_string(),
                Some(actual),
            ),
            e @ EditError::InvalidValue { .. } => (Reason::InvalidValue, e.to_string(), None),
            // A symlink on the way, or not a regular file (`beneath.rs` rule 2).
            e @ EditError::NotEditable { .. } => (Reason::BadPath, e.to_string(), None),
            e => (Reason::EditFailed, e.to_string(), None),
        })?;
    // The file is written; replicate it. A failure here leaves the file edited and the
    // document behind until the next rescan, which the caller is told.
    let before = m.own_heads();
    if let Err(e) = m.rescan_spec(project, name) {
        tracing::error!("edited {project}/{name} but cannot rescan it: {e}");
    }
    let changes = m.own_changes_since(&before);
    Ok((outcome.new_file_hash, changes))
}

/// A spec name is a relative path of plain folder names.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains('\\') || name.contains('\0') {
        return Err(format!("{name:?} is not a spec name"));
    }
    if Path::new(name).is_absolute() {
        return Err(format!("{name:?} is absolute; spec names are relative"));
    }
    // Segment by segment: `Path::components` would quietly drop `.` and empty parts.
    for segment in name.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(format!("{name:?} is not a plain relative spec name"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn spec_names_stay_relative_and_inside() {
        assert!(check_name("001-x").is_ok());
        assert!(check_name("group/001-x").is_ok());
        for bad in [
            "",
            "../x",
            "a/../../x",
            "/etc",
            "a\\b",
            "./x",
            "a/./b",
            "a//b",
            "a/",
            "x\0",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}

/// Each refusal of the pipeline, called directly on a real machine (redb store, spec file
/// on disk): the verdict names its reason, the file is untouched, and every call leaves
/// exactly one audit record.
#[cfg(test)]
mod refusals {
    use super::*;
    use crate::identity::Identity;
    use crate::ops::Change;
    use std::path::PathBuf;

    const TEXT: &str = "---\nstatus: planned\ncreated: '2025-01-01'\n---\n\n# X\n";

    struct World {
        m: Machine,
        me: Identity,
        project: String,
        file: PathBuf,
        _dirs: (tempfile::TempDir, tempfile::TempDir),
    }

    fn world() -> World {
        let home = tempfile::tempdir().expect("home");
        let proj = tempfile::tempdir().expect("project");
        let dir = proj.path().join("specs/001-x");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join("README.md");
        std::fs::write(&file, TEXT).expect("write");
        let (mut m, _) = Machine::init(home.path(), Some("t")).expect("init");
        let (project, _) = m.add_project(proj.path(), Some("p")).expect("add");
        let me = Identity::load(home.path()).expect("key").expect("key");
        World {
            m,
            me,
            project: project.id,
            file,
            _dirs: (home, proj),
        }
    }

    const NOW: i64 = 1_800_000_000_000;

    fn edit(w: &World, author: &Identity, spec: &str, status: &str, hash: [u8; 32]) -> Operation {
        static N: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
        let mut id = [0u8; 16];
        id[0] = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Operation {
            id,
            author: author.id(),
            target: w.m.id(),
            issued_at_ms: NOW,
            expires_at_ms: NOW + 60_000,
            body: OpBody::Edit {
                project: w.project.clone(),
                spec: spec.into(),
                base_file_hash: hash,
                change: Change {
                    status: Some(status.into()),
                    ..Change::default()
                },
            },
            on_behalf_of: None,
        }
    }

    fn good_hash() -> [u8; 32] {
        let mut h = [0u8; 32];
        hex::decode_to_slice(spec::sha256_hex(TEXT.as_bytes()), &mut h).expect("hex");
        h
    }

    /// Receives `bytes`; checks the reason, that the file is as it was and that one
    /// audit record was added.
    fn refused(w: &mut World, sender: Option<MachineId>, bytes: &[u8], reason: Reason) {
        let audits = w.m.store().audit(usize::MAX).expect("audit").len();
        let r = receive(&mut w.m, sender, bytes, NOW);
        assert_eq!(r.verdict.result, Outcome::Rejected, "{:?}", r.verdict);
        assert_eq!(r.verdict.reason, Some(reason), "{}", r.verdict.message);
        assert!(!r.verdict.message.is_empty());
        assert!(r.changes.is_empty());
        assert_eq!(std::fs::read_to_string(&w.file).expect("read"), TEXT);
        assert_eq!(
            w.m.store().audit(usize::MAX).expect("audit").len(),
            audits + 1
        );
    }

    fn signed(op: Operation, by: &Identity) -> Vec<u8> {
        op.sign(by).expect("sign").to_bytes()
    }

    #[test]
    fn every_refusal_has_its_reason_and_touches_nothing() {
        let mut w = world();
        let me = w.me.id();
        let stranger = Identity::generate().expect("key");

        refused(&mut w, None, &vec![0u8; MAX_OP_BYTES + 1], Reason::TooLarge);
        refused(&mut w, None, b"not an operation", Reason::Malformed);

        let mut bytes = signed(edit(&w, &w.me, "001-x", "complete", good_hash()), &w.me);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        refused(&mut w, None, &bytes, Reason::BadSignature);

        let by_stranger = signed(
            edit(&w, &stranger, "001-x", "complete", good_hash()),
            &stranger,
        );
        refused(&mut w, None, &by_stranger, Reason::NotMember);

        let revoked = Identity::generate().expect("key");
        w.m.add_member(revoked.id(), "r", None).expect("add");
        w.m.revoke_machine(revoked.id()).expect("revoke");
        let by_revoked = signed(
            edit(&w, &revoked, "001-x", "complete", good_hash()),
            &revoked,
        );
        refused(&mut w, Some(revoked.id()), &by_revoked, Reason::Revoked);

        let mine = signed(edit(&w, &w.me, "001-x", "complete", good_hash()), &w.me);
        refused(&mut w, Some(stranger.id()), &mine, Reason::WrongSender);

        let mut elsewhere = edit(&w, &w.me, "001-x", "complete", good_hash());
        elsewhere.target = stranger.id();
        let bytes = signed(elsewhere, &w.me);
        refused(&mut w, None, &bytes, Reason::WrongTarget);

        let mut old = edit(&w, &w.me, "001-x", "complete", good_hash());
        old.issued_at_ms = NOW - 120_000;
        old.expires_at_ms = NOW - 1_000;
        let bytes = signed(old, &w.me);
        refused(&mut w, None, &bytes, Reason::Expired);

        let mut long = edit(&w, &w.me, "001-x", "complete", good_hash());
        long.expires_at_ms = NOW + 25 * 3_600_000;
        let bytes = signed(long, &w.me);
        refused(&mut w, None, &bytes, Reason::Expired);

        let mut future = edit(&w, &w.me, "001-x", "complete", good_hash());
        future.issued_at_ms = NOW + 3_600_000;
        future.expires_at_ms = NOW + 3_660_000;
        let bytes = signed(future, &w.me);
        refused(&mut w, None, &bytes, Reason::NotYetValid);

        let mut unknown = edit(&w, &w.me, "001-x", "complete", good_hash());
        if let OpBody::Edit { project, .. } = &mut unknown.body {
            *project = "no-such-project".into();
        }
        let bytes = signed(unknown, &w.me);
        refused(&mut w, None, &bytes, Reason::UnknownProject);

        let nospec = signed(edit(&w, &w.me, "002-y", "complete", good_hash()), &w.me);
        refused(&mut w, None, &nospec, Reason::UnknownSpec);
        let escape = signed(edit(&w, &w.me, "../001-x", "complete", good_hash()), &w.me);
        refused(&mut w, None, &escape, Reason::BadPath);
        let bad_value = signed(edit(&w, &w.me, "001-x", "nearly-done", good_hash()), &w.me);
        refused(&mut w, None, &bad_value, Reason::InvalidValue);

        let stale = signed(edit(&w, &w.me, "001-x", "complete", [9; 32]), &w.me);
        let audits = w.m.store().audit(usize::MAX).expect("audit").len();
        let r = receive(&mut w.m, Some(me), &stale, NOW);
        assert_eq!(r.verdict.reason, Some(Reason::Stale));
        assert_eq!(
            r.verdict.current_file_hash,
            Some(spec::sha256_hex(TEXT.as_bytes()))
        );
        assert_eq!(std::fs::read_to_string(&w.file).expect("read"), TEXT);
        assert_eq!(
            w.m.store().audit(usize::MAX).expect("audit").len(),
            audits + 1
        );

        // Any byte of a signed operation changed after signing: refused before anything
        // else is looked at (the author's id is inside the signed bytes too).
        let good = signed(edit(&w, &w.me, "001-x", "complete", good_hash()), &w.me);
        for i in 0..good.len() {
            let mut t = good.clone();
            t[i] ^= 0x01;
            let r = receive(&mut w.m, Some(me), &t, NOW);
            assert_eq!(
                r.verdict.result,
                Outcome::Rejected,
                "byte {i}: {:?}",
                r.verdict
            );
            assert!(
                matches!(
                    r.verdict.reason,
                    Some(Reason::BadSignature | Reason::Malformed | Reason::WrongSender)
                ),
                "byte {i}: {:?}",
                r.verdict
            );
            assert_eq!(std::fs::read_to_string(&w.file).expect("read"), TEXT);
        }

        // The good one applies once; the same bytes again are a replay.
        let r = receive(&mut w.m, Some(me), &good, NOW);
        assert_eq!(r.verdict.result, Outcome::Applied, "{:?}", r.verdict);
        assert!(!r.changes.is_empty());
        let applied = std::fs::read_to_string(&w.file).expect("read");
        assert!(applied.contains("status: complete"), "{applied}");
        let audits = w.m.store().audit(usize::MAX).expect("audit").len();
        let again = receive(&mut w.m, Some(me), &good, NOW);
        assert_eq!(again.verdict.reason, Some(Reason::Replayed));
        assert_eq!(std::fs::read_to_string(&w.file).expect("read"), applied);
        assert_eq!(
            w.m.store().audit(usize::MAX).expect("audit").len(),
            audits + 1
        );
    }
}
