//! Replication between machines at the document level (the network layer drives the
//! same calls): documents converge, multi-hop works, forged authors are refused.

use leanspec_peer_core::authorship::{ChangeSignature, SignedMessage};
use leanspec_peer_core::doc::{MachineDoc, MachineInfo};
use leanspec_peer_core::identity::{Identity, MachineId};
use leanspec_peer_core::{DocKey, Machine, SyncError};
use leanspec_peer_tests::{TempProject, spec_text};
use std::collections::HashMap;

struct Node {
    m: Machine,
    _home: tempfile::TempDir,
    project: TempProject,
}

fn node(label: &str) -> Node {
    let project = TempProject::new();
    project.write("001-first", spec_text("planned", &format!("{label} first")));
    let home = tempfile::tempdir().expect("home");
    let (mut m, _) = Machine::init(home.path(), Some(label)).expect("init");
    m.add_project(project.root(), Some(label)).expect("add");
    Node {
        m,
        _home: home,
        project,
    }
}

/// Pairs `joiner` into `inviter`'s mesh, as the join protocol does.
fn pair(inviter: &mut Machine, joiner: &mut Machine) {
    let label = joiner.label();
    inviter.add_member(joiner.id(), &label).expect("add member");
    let mesh = inviter.mesh_bytes();
    let signatures = inviter.mesh_signatures().expect("signatures");
    joiner.adopt_mesh(&mesh, &signatures).expect("adopt");
}

/// Runs the sync protocol between two machines until neither has anything to say.
fn sync(a: &mut Machine, b: &mut Machine) {
    let mut states: HashMap<(bool, DocKey), automerge::sync::State> = HashMap::new();
    for _round in 0..50 {
        let mut sent = false;
        for from_a in [true, false] {
            let (src, dst) = if from_a {
                (&mut *a, &mut *b)
            } else {
                (&mut *b, &mut *a)
            };
            let mut keys = src.sync_keys();
            for k in dst.sync_keys() {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
            for key in keys {
                let st = states.entry((from_a, key)).or_default();
                if let Some(msg) = src.generate_sync(key, st) {
                    sent = true;
                    let src_id = src.id();
                    let rst = states.entry((!from_a, key)).or_default();
                    match dst.receive_sync(src_id, key, rst, &msg) {
                        Ok(_) | Err(SyncError::UnknownDoc) => {}
                        Err(e) => panic!("sync refused: {e}"),
                    }
                }
            }
        }
        if !sent {
            return;
        }
    }
    panic!("sync did not settle in 50 rounds");
}

fn titles(m: &Machine) -> Vec<String> {
    let mut t: Vec<String> = m
        .specs(&Default::default())
        .expect("specs")
        .into_iter()
        .map(|r| r.spec.title)
        .collect();
    t.sort();
    t
}

/// A, B and C, B and C paired through A, every document synced.
fn three_members() -> (Node, Node, Node) {
    let (mut a, mut b, mut c) = (node("a"), node("b"), node("c"));
    pair(&mut a.m, &mut b.m);
    pair(&mut a.m, &mut c.m);
    sync(&mut a.m, &mut b.m);
    sync(&mut a.m, &mut c.m);
    sync(&mut a.m, &mut b.m);
    (a, b, c)
}

#[test]
fn three_machines_converge_through_the_middle_one() {
    let (mut a, mut b, mut c) = (node("a"), node("b"), node("c"));
    pair(&mut a.m, &mut b.m);
    sync(&mut a.m, &mut b.m);
    pair(&mut b.m, &mut c.m);
    sync(&mut b.m, &mut c.m);
    // C learns A's specs from B; A learns C's by the same path.
    sync(&mut a.m, &mut b.m);
    let want = ["a first", "b first", "c first"];
    assert_eq!(titles(&c.m), want);
    assert_eq!(titles(&a.m), want);
    assert_eq!(c.m.machines().len(), 3);
    assert_eq!(c.m.machine_label(a.m.id()), "a");

    // A changes a file; the change reaches C through B.
    a.project
        .write("001-first", spec_text("complete", "a first"));
    a.m.scan(&mut |_| {}).expect("scan");
    sync(&mut a.m, &mut b.m);
    sync(&mut b.m, &mut c.m);
    let row = c.m.spec_on(Some("a"), "a", "1").expect("A's spec on C");
    assert_eq!(row.spec.status.map(|s| s.as_str()), Some("complete"));
    assert_eq!(row.machine_label, "a");

    // Everything C learned is stored: reopening C shows A's specs without any peer.
    let home = c.m.home().to_path_buf();
    drop(c.m);
    let reopened = Machine::open(&home).expect("reopen");
    assert_eq!(titles(&reopened), want);
}

/// The signatures a forger attaches to the changes a message carries.
type Signer<'a> = &'a dyn Fn(&[automerge::ChangeHash]) -> Vec<([u8; 32], ChangeSignature)>;

/// Runs the sync protocol for document `key` between a hand-made Automerge document
/// (`forged`, offered with `signatures`) and machine `to`, as if `from` sent it. Returns
/// the first refusal.
fn offer(
    forged: &mut automerge::AutoCommit,
    signatures: Signer<'_>,
    to: &mut Machine,
    from: MachineId,
    key: DocKey,
) -> Option<SyncError> {
    use automerge::sync::SyncDoc;
    let (mut st, mut rst) = (automerge::sync::State::new(), automerge::sync::State::new());
    for _ in 0..10 {
        let before = st.sent_hashes.clone();
        let msg = forged.sync().generate_sync_message(&mut st)?;
        let carried: Vec<_> = st.sent_hashes.difference(&before).copied().collect();
        let wire = SignedMessage {
            message: msg.encode(),
            signatures: signatures(&carried),
        }
        .encode(key);
        if let Err(e) = to.receive_sync(from, key, &mut rst, &wire) {
            return Some(e);
        }
        if let Some(reply) = to.generate_sync(key, &mut rst) {
            let (reply, _) = SignedMessage::decode(key, &reply).expect("decode");
            let reply = automerge::sync::Message::decode(&reply).expect("decode");
            forged
                .sync()
                .receive_sync_message(&mut st, reply)
                .expect("forger receives");
        }
    }
    None
}

#[test]
fn changes_to_a_machine_document_by_another_author_are_refused() {
    let (mut a, mut b) = (node("a"), node("b"));
    pair(&mut a.m, &mut b.m);
    sync(&mut a.m, &mut b.m);
    // A forger writes a "document of B" with its own key and offers it to A.
    let forger = Identity::generate().expect("id").id();
    let info = MachineInfo {
        id: b.m.id().to_string(),
        label: "b".into(),
        version: "0".into(),
        os: "linux".into(),
    };
    let mut forged = MachineDoc::new(forger, &info, 0);
    forged.put_project("p", "evil");
    forged.commit(1);
    let before = titles(&a.m);
    let mut fdoc = automerge::AutoCommit::load(&forged.save()).expect("load");
    let key = DocKey::Machine(b.m.id());
    let e = offer(&mut fdoc, &|_| Vec::new(), &mut a.m, b.m.id(), key)
        .expect("the forged changes must be refused");
    assert!(e.to_string().contains("no valid signature"), "{e}");
    assert_eq!(titles(&a.m), before, "nothing applied");
    // Garbage is refused too, and a document of a non-member is unknown.
    let mut rst = automerge::sync::State::new();
    assert!(
        a.m.receive_sync(b.m.id(), DocKey::Mesh, &mut rst, b"\x00garbage")
            .is_err()
    );
    let empty = SignedMessage::default().encode(DocKey::Machine(forger));
    assert!(matches!(
        a.m.receive_sync(b.m.id(), DocKey::Machine(forger), &mut rst, &empty),
        Err(SyncError::UnknownDoc)
    ));
}

/// Issue 11: a member writes a change with another member's actor id and next sequence
/// number. The actor is a claim; without the owner's signature the change is refused by
/// every machine, the owner included, nothing of it is stored, and the owner's real next
/// change (the same actor and sequence number) still reaches everyone.
#[test]
fn a_change_forged_with_another_members_actor_is_refused_everywhere() {
    let (mut a, mut b, mut c) = three_members();
    let (b_id, c_id) = (b.m.id(), c.m.id());
    let key = DocKey::Machine(b_id);
    // C, a member, holds B's document: it adds a change as B (B's actor, next seq).
    let mut fdoc = automerge::AutoCommit::new();
    for chunk in c.m.store().doc_chunks(b_id.as_bytes()).expect("chunks") {
        fdoc.load_incremental(&chunk).expect("load");
    }
    fdoc.set_actor(automerge::ActorId::from(&b_id.actor_bytes()[..]));
    use automerge::transaction::Transactable;
    fdoc.put(automerge::ROOT, "forged", "by c").expect("put");
    fdoc.commit();
    let c_key = Identity::load(c._home.path()).expect("key").expect("key");
    // Signed with C's own key (the wire names no signer for a machine document: the
    // signature is checked against B, the owner) and unsigned.
    let signed_by_c = |hashes: &[automerge::ChangeHash]| {
        hashes
            .iter()
            .map(|h| (h.0, ChangeSignature::sign(&c_key, key, &h.0)))
            .collect::<Vec<_>>()
    };
    let stored = |m: &Machine| m.store().doc_chunks(b_id.as_bytes()).expect("chunks");
    for (to, name) in [(&mut a.m, "a"), (&mut b.m, "b (the owner)")] {
        let before = stored(to);
        let e = offer(&mut fdoc.clone(), &signed_by_c, to, c_id, key)
            .unwrap_or_else(|| panic!("{name} accepted a forged change"));
        assert!(e.to_string().contains("no valid signature"), "{name}: {e}");
        let e = offer(&mut fdoc.clone(), &|_| Vec::new(), to, c_id, key)
            .unwrap_or_else(|| panic!("{name} accepted an unsigned change"));
        assert!(e.to_string().contains("no valid signature"), "{name}: {e}");
        assert_eq!(stored(to), before, "{name} stored nothing");
    }
    // B's real next change, with the sequence number the forger used, reaches A and C.
    b.project
        .write("001-first", spec_text("in-progress", "b first"));
    b.m.scan(&mut |_| {}).expect("scan");
    sync(&mut a.m, &mut b.m);
    sync(&mut a.m, &mut c.m);
    for m in [&a.m, &c.m] {
        let row = m.spec_on(Some("b"), "b", "1").expect("B's spec");
        assert_eq!(row.spec.status.map(|s| s.as_str()), Some("in-progress"));
    }
}

/// Issue 11: revocation is final. A member (C, signing with its own key, so the
/// signature check passes) writes a mesh change that removes B's revocation: A, which
/// knew of the revocation, refuses it and B stays revoked.
#[test]
fn a_mesh_change_that_undoes_a_revocation_is_refused() {
    use automerge::ReadDoc;
    use automerge::transaction::Transactable;
    let (mut a, b, mut c) = three_members();
    let (b_id, c_id) = (b.m.id(), c.m.id());
    a.m.revoke_machine(b_id).expect("revoke");
    sync(&mut a.m, &mut c.m);
    assert!(!c.m.mesh().is_current_member(b_id), "C knows B is revoked");
    // C undoes it by hand: deletes B's revocation fields and the list's entries.
    let mut fdoc = automerge::AutoCommit::new();
    for chunk in c.m.store().doc_chunks(b"mesh").expect("chunks") {
        fdoc.load_incremental(&chunk).expect("load");
    }
    fdoc.set_actor(automerge::ActorId::from(&c_id.actor_bytes()[..]));
    let (_, members) = fdoc
        .get(automerge::ROOT, "members")
        .expect("get")
        .expect("members");
    let (_, record) = fdoc
        .get(&members, b_id.to_string().as_str())
        .expect("get")
        .expect("record");
    fdoc.delete(&record, "revoked_at").expect("delete");
    fdoc.delete(&record, "revoked_by").expect("delete");
    let (_, list) = fdoc
        .get(automerge::ROOT, "revocations")
        .expect("get")
        .expect("list");
    while fdoc.length(&list) > 0 {
        fdoc.delete(&list, 0).expect("delete entry");
    }
    fdoc.commit();
    let c_key = Identity::load(c._home.path()).expect("key").expect("key");
    let signed_by_c = |hashes: &[automerge::ChangeHash]| {
        hashes
            .iter()
            .map(|h| (h.0, ChangeSignature::sign(&c_key, DocKey::Mesh, &h.0)))
            .collect::<Vec<_>>()
    };
    let e = offer(&mut fdoc, &signed_by_c, &mut a.m, c_id, DocKey::Mesh)
        .expect("the un-revocation must be refused");
    assert!(e.to_string().contains("undo the revocation"), "{e}");
    assert!(!a.m.mesh().is_current_member(b_id), "B stays revoked");
}

/// Issue 11: a revoked machine's document stops syncing. Its last-known state stays
/// listed (marked revoked); what it writes afterwards reaches no member, through any path.
#[test]
fn a_revoked_machines_document_stops_syncing() {
    let (mut a, mut b, mut c) = three_members();
    let b_id = b.m.id();
    a.m.revoke_machine(b_id).expect("revoke");
    sync(&mut a.m, &mut c.m);
    // B (not yet told, or ignoring it) changes its spec and offers its document to C.
    b.project
        .write("001-first", spec_text("complete", "b first"));
    b.m.scan(&mut |_| {}).expect("scan");
    sync(&mut b.m, &mut c.m);
    for m in [&a.m, &c.m] {
        assert!(!m.sync_keys().contains(&DocKey::Machine(b_id)));
        let row = m
            .spec_on(Some("b"), "b", "1")
            .expect("B's last-known spec is kept");
        assert_eq!(row.spec.status.map(|s| s.as_str()), Some("planned"));
        assert!(
            m.machines().iter().any(|r| r.id == b_id && r.revoked),
            "listed as revoked"
        );
    }
}

/// Issue 11: any member can pick any label, so a label that names several machines is
/// refused as a selector (`edit`, `revoke`, `rename` would act on the wrong machine).
#[test]
fn a_label_that_names_several_machines_asks_for_the_id() {
    let (mut a, b, mut c) = three_members();
    let c_id = c.m.id();
    c.m.rename_machine(c_id, "b").expect("C takes B's label");
    sync(&mut a.m, &mut c.m);
    let e = a.m.find_machine("b").expect_err("ambiguous");
    assert_eq!(e.kind(), leanspec_peer_core::ErrorKind::Ambiguous, "{e}");
    assert!(e.to_string().contains("use the id"), "{e}");
    assert_eq!(a.m.find_machine(&c_id.short()).expect("by id"), c_id);
    assert_eq!(
        a.m.find_machine(&b.m.id().to_string()).expect("by id"),
        b.m.id()
    );
}

#[test]
fn a_machine_with_peers_cannot_adopt_another_mesh() {
    let (mut a, mut b, mut c) = (node("a"), node("b"), node("c"));
    pair(&mut a.m, &mut b.m);
    c.m.add_member(b.m.id(), "b").expect("add");
    let mesh = c.m.mesh_bytes();
    let e = b.m.adopt_mesh(&mesh, &[]).expect_err("two meshes");
    assert!(e.to_string().contains("not merged"), "{e}");
}
