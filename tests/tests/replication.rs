//! Replication between machines at the document level (the network layer drives the
//! same calls): documents converge, multi-hop works, forged authors are refused.

use leanspec_peer_core::authorship::{ChangeSignature, SignedMessage};
use leanspec_peer_core::doc::{MachineDoc, MachineInfo};
use leanspec_peer_core::identity::{Identity, MachineId};
use leanspec_peer_core::{DocKey, Machine, SyncError};
use leanspec_peer_tests::{TempProject, spec_text};

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

fn pair(inviter: &mut Machine, joiner: &mut Machine) {
    leanspec_peer_tests::pair_machines(inviter, joiner);
}

fn sync(a: &mut Machine, b: &mut Machine) {
    leanspec_peer_tests::sync_machines(a, b);
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
            checkpoint: None,
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
    forged.put_project("p", "evil", "evil");
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
    let mut fdoc = as_stored(c.m.store(), b_id.as_bytes(), b_id);
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

/// Issues 11 and 38: revocation is final. A member (C, signing with its own key, so the
/// signature check passes) writes a mesh change that removes B's revocation from the
/// state: the revocation is a fact of the history, so B stays revoked on A.
#[test]
fn a_mesh_change_that_undoes_a_revocation_changes_nothing() {
    use automerge::ReadDoc;
    use automerge::transaction::Transactable;
    let (mut a, b, mut c) = three_members();
    let (b_id, c_id) = (b.m.id(), c.m.id());
    a.m.revoke_machine(b_id).expect("revoke");
    sync(&mut a.m, &mut c.m);
    assert!(!c.m.mesh().is_current_member(b_id), "C knows B is revoked");
    // C undoes it by hand: deletes B's revocation fields and the list's entries.
    let mut fdoc = as_stored(c.m.store(), b"mesh", c_id);
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
    assert!(
        offer(&mut fdoc, &signed_by_c, &mut a.m, c_id, DocKey::Mesh).is_none(),
        "C is a member: its change applies"
    );
    assert!(!a.m.mesh().is_current_member(b_id), "B stays revoked");
    assert!(a.m.mesh().revoked().contains_key(&b_id));
}

/// Issue 38: a revoked machine cannot undo its revocation on a member that was away.
/// A revokes X while P is away; X learns of it (R) and writes U, a fresh `members` map
/// and a fresh `revocations` list, signed with its own key, then reaches P first with
/// R and U together: P keeps R, refuses U, counts X as revoked, agrees with A once they
/// meet, and still does after a restart.
#[test]
fn r38_a_revoked_machine_cannot_undo_its_revocation_on_a_member_that_was_away() {
    use automerge::ReadDoc;
    use automerge::transaction::Transactable;
    let (mut a, mut x, mut p) = three_members();
    let (x_id, p_id) = (x.m.id(), p.m.id());
    a.m.revoke_machine(x_id).expect("revoke");
    deliver_once(&mut a.m, &mut x.m, DocKey::Mesh).expect("X receives R");
    assert!(!x.m.mesh().is_current_member(x_id));
    let mut fdoc = as_stored(x.m.store(), b"mesh", x_id);
    let members = fdoc
        .put_object(automerge::ROOT, "members", automerge::ObjType::Map)
        .expect("map");
    for m in [a.m.id(), p_id, x_id] {
        let rec = fdoc
            .put_object(&members, m.to_string().as_str(), automerge::ObjType::Map)
            .expect("record");
        fdoc.put(&rec, "label", "m").expect("label");
        fdoc.put(&rec, "added_by", a.m.id().to_string())
            .expect("by");
        fdoc.put(&rec, "added_at", 1).expect("at");
    }
    fdoc.put_object(automerge::ROOT, "revocations", automerge::ObjType::List)
        .expect("list");
    fdoc.commit();
    assert_eq!(
        fdoc.length(
            fdoc.get(automerge::ROOT, "revocations")
                .expect("get")
                .expect("list")
                .1
        ),
        0
    );
    let x_key = Identity::load(x._home.path()).expect("key").expect("key");
    // R with A's signature (X holds it, as it received it), U with X's.
    let held: std::collections::HashMap<[u8; 32], ChangeSignature> =
        x.m.mesh_signatures()
            .expect("signatures")
            .into_iter()
            .collect();
    let signed_by_x = |hashes: &[automerge::ChangeHash]| {
        hashes
            .iter()
            .map(|h| {
                let s = held
                    .get(&h.0)
                    .copied()
                    .unwrap_or_else(|| ChangeSignature::sign(&x_key, DocKey::Mesh, &h.0));
                (h.0, s)
            })
            .collect::<Vec<_>>()
    };
    let u = fdoc.get_heads();
    // R and U in one message: R is kept, U dropped (the session with X then ends, as
    // with any revoked machine: `Shared::after_mesh_change`).
    if let Some(e) = offer(&mut fdoc, &signed_by_x, &mut p.m, x_id, DocKey::Mesh) {
        assert!(e.to_string().contains("after it was revoked"), "{e}");
    }
    assert!(!p.m.mesh().is_current_member(x_id), "P applied R");
    assert!(
        p.m.mesh_signatures()
            .expect("sigs")
            .iter()
            .all(|(h, _)| !u.iter().any(|u| u.0 == *h)),
        "U was not stored"
    );
    // Offered again, alone: refused.
    let e = offer(&mut fdoc, &signed_by_x, &mut p.m, x_id, DocKey::Mesh).expect("U is refused");
    assert!(e.to_string().contains("after it was revoked"), "{e}");
    assert!(p.m.mesh().revoked().contains_key(&x_id));
    sync(&mut a.m, &mut p.m);
    let listed = |m: &Machine| {
        m.mesh()
            .members()
            .into_iter()
            .map(|r| (r.id, r.revoked_at.is_some(), r.added_by))
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(&a.m), listed(&p.m), "A and P agree");
    assert_eq!(a.m.mesh().revoked(), p.m.mesh().revoked());
    let home = p._home.path().to_path_buf();
    drop(p.m);
    let reopened = Machine::open(&home).expect("reopen");
    assert!(!reopened.mesh().is_current_member(x_id), "R was stored");
}

/// Issues 13 and 38: an ephemeral machine cannot make itself permanent. R joined with an
/// ephemeral key; it signs, with its own key, a mesh change deleting its mark and
/// rewriting who admitted it and when: none of that is a fact, R stays what A made it.
#[test]
fn a_mesh_change_that_makes_an_ephemeral_machine_permanent_changes_nothing() {
    use automerge::ReadDoc;
    use automerge::transaction::Transactable;
    let (mut a, mut r) = (node("a"), node("r"));
    let r_id = r.m.id();
    a.m.add_member(r_id, "runner", Some(60)).expect("add");
    let signatures = a.m.mesh_signatures().expect("signatures");
    r.m.adopt_mesh(&a.m.mesh_bytes(), &signatures)
        .expect("adopt");
    assert_eq!(
        a.m.mesh().member(r_id).expect("member").ephemeral_after,
        Some(60)
    );
    let mut fdoc = as_stored(r.m.store(), b"mesh", r_id);
    let (_, members) = fdoc
        .get(automerge::ROOT, "members")
        .expect("get")
        .expect("members");
    let (_, record) = fdoc
        .get(&members, r_id.to_string().as_str())
        .expect("get")
        .expect("record");
    fdoc.delete(&record, "ephemeral_after").expect("delete");
    fdoc.put(&record, "added_at", i64::MAX).expect("put");
    fdoc.put(&record, "added_by", r_id.to_string())
        .expect("put");
    fdoc.commit();
    let r_key = Identity::load(r._home.path()).expect("key").expect("key");
    let signed_by_r = |hashes: &[automerge::ChangeHash]| {
        hashes
            .iter()
            .map(|h| (h.0, ChangeSignature::sign(&r_key, DocKey::Mesh, &h.0)))
            .collect::<Vec<_>>()
    };
    assert!(
        offer(&mut fdoc, &signed_by_r, &mut a.m, r_id, DocKey::Mesh).is_none(),
        "R is a member: its change applies"
    );
    let record = a.m.mesh().member(r_id).expect("member");
    assert_eq!(record.ephemeral_after, Some(60));
    assert_eq!(record.added_by, a.m.id().to_string(), "A admitted it");
    assert!(record.added_at < i64::MAX, "{record:?}");
}

/// Issue 11: a revoked machine writes no more. B, revoked by A, learns of it and then
/// writes the mesh (adds a machine of its own, renames itself): the change has the
/// revocation in its history, so every member that could apply it refuses it. The
/// revocation is kept in A's store apart from the document: reopened, A still has it.
#[test]
fn a_mesh_change_by_a_revoked_machine_is_refused_and_revocation_survives_restarts() {
    let (mut a, mut b, mut c) = three_members();
    let b_id = b.m.id();
    a.m.revoke_machine(b_id).expect("revoke");
    sync(&mut a.m, &mut c.m);
    // B gets the revoked mesh (as through a member that still talks to it).
    deliver_once(&mut c.m, &mut b.m, DocKey::Mesh).expect("B receives its revocation");
    assert!(!b.m.mesh().is_current_member(b_id));
    let sneaky = Identity::generate().expect("id").id();
    b.m.add_member(sneaky, "sneaky", None).expect("add");
    for to in [&mut a.m, &mut c.m] {
        let e = deliver_once(&mut b.m, to, DocKey::Mesh).expect_err("refused");
        assert!(e.to_string().contains("after it was revoked"), "{e}");
        assert!(to.mesh().member(sneaky).is_none(), "nothing of it applied");
    }
    // Restart A: the revocation is kept in its store, apart from the mesh document.
    let home = a._home.path().to_path_buf();
    drop(a.m);
    let reopened = Machine::open(&home).expect("reopen");
    assert!(reopened.mesh().pinned().contains_key(&b_id));
    assert!(!reopened.mesh().is_current_member(b_id));
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
    c.m.add_member(b.m.id(), "b", None).expect("add");
    let mesh = c.m.mesh_bytes();
    let e = b.m.adopt_mesh(&mesh, &[]).expect_err("two meshes");
    assert!(e.to_string().contains("not merged"), "{e}");
}

/// A and B paired and synced, with B's id, document key and signing key (B is the
/// member that means harm).
fn paired_with_b_key() -> (Node, Node, MachineId, DocKey, Identity) {
    let (mut a, mut b) = (node("a"), node("b"));
    pair(&mut a.m, &mut b.m);
    sync(&mut a.m, &mut b.m);
    let b_id = b.m.id();
    let b_key = Identity::load(b._home.path()).expect("key").expect("key");
    (a, b, b_id, DocKey::Machine(b_id), b_key)
}

/// The changes of `doc` after `heads`, as raw chunks.
fn chunks_after(doc: &mut automerge::AutoCommit, heads: &[automerge::ChangeHash]) -> Vec<Vec<u8>> {
    doc.get_changes(heads)
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect()
}

/// Document `doc` as `store` holds it, written as `actor` from now on: a hostile
/// member's copy to forge changes in.
fn as_stored(
    store: &leanspec_peer_core::store::Store,
    doc: &[u8],
    actor: MachineId,
) -> automerge::AutoCommit {
    let mut fdoc = automerge::AutoCommit::new();
    for chunk in store.doc_chunks(doc).expect("chunks") {
        fdoc.load_incremental(&chunk).expect("load");
    }
    fdoc.set_actor(automerge::ActorId::from(&actor.actor_bytes()[..]));
    fdoc
}

/// A sync message for `key` carrying `chunks` as they are, each change signed by `key`
/// (the sender is a member that means harm: its signatures are valid).
fn raw_message(chunks: Vec<Vec<u8>>, key: DocKey, signer: &Identity) -> Vec<u8> {
    let signatures = chunks
        .iter()
        .filter_map(|c| automerge::Change::from_bytes(c.clone()).ok())
        .map(|c| (c.hash().0, ChangeSignature::sign(signer, key, &c.hash().0)))
        .collect();
    let message = automerge::sync::Message {
        heads: Vec::new(),
        need: Vec::new(),
        have: Vec::new(),
        changes: chunks.into(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    };
    SignedMessage {
        message: message.encode(),
        signatures,
        checkpoint: None,
    }
    .encode(key)
}

/// Peak resident memory of this process (VmHWM), in bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Issue 11, must show: a member sends a compressed change that inflates to 1 GiB (a
/// 1 MiB frame): refused before Automerge parses it, counted against the inflate budget
/// as it inflates, so the receiver's memory does not grow by the bomb's size.
#[test]
fn a_decompression_bomb_from_a_member_is_refused_with_bounded_memory() {
    use std::io::Write;
    let (mut a, mut b) = (node("a"), node("b"));
    pair(&mut a.m, &mut b.m);
    sync(&mut a.m, &mut b.m);
    let key = DocKey::Machine(b.m.id());
    let b_key = Identity::load(b._home.path()).expect("key").expect("key");
    const INFLATED: usize = 1 << 30;
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..INFLATED / zeros.len() {
        e.write_all(&zeros).expect("deflate");
    }
    let data = e.finish().expect("deflate");
    // A compressed change chunk: magic, checksum, type 2, LEB128 length, data.
    let mut chunk = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 2];
    let mut len = data.len() as u64;
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        chunk.push(if len == 0 { byte } else { byte | 0x80 });
        if len == 0 {
            break;
        }
    }
    chunk.extend(&data);
    let frame = raw_message(vec![chunk], key, &b_key);
    let before = (
        titles(&a.m),
        a.m.store().doc_chunks(b.m.id().as_bytes()).expect("chunks"),
    );
    let peak_before = peak_rss();
    let mut st = automerge::sync::State::new();
    let e =
        a.m.receive_sync(b.m.id(), key, &mut st, &frame)
            .expect_err("the bomb must be refused");
    let grew = peak_rss().saturating_sub(peak_before);
    eprintln!(
        "bomb: {} byte frame inflating to {INFLATED} bytes refused; peak RSS grew {grew} bytes",
        frame.len()
    );
    assert!(e.to_string().contains("max_inflated_bytes"), "{e}");
    assert!(
        grew < (INFLATED / 4) as u64,
        "peak RSS grew {grew} bytes for a refused bomb"
    );
    let after = (
        titles(&a.m),
        a.m.store().doc_chunks(b.m.id().as_bytes()).expect("chunks"),
    );
    assert_eq!(after, before, "nothing of it was applied or stored");
}

/// Issue 11, must show: a member floods changes whose dependencies never come. A few
/// wait (an honest peer's Bloom-filter false positive resolves in a round trip); past
/// `max_orphans` the message is refused, nothing is stored, and waiting changes are
/// never saved (they would be sent to every joiner).
#[test]
fn a_flood_of_orphan_changes_is_refused_past_the_limit() {
    use automerge::transaction::Transactable;
    let (mut a, _b, b_id, key, b_key) = paired_with_b_key();
    let max = leanspec_peer_core::limits::Limits::default().max_orphans;
    // B's document as A holds it, then a change A never gets (the missing dependency)
    // and `max + 10` changes on top of it.
    let mut fork = as_stored(a.m.store(), b_id.as_bytes(), b_id);
    let heads = fork.get_heads();
    fork.put(automerge::ROOT, "missing", "never sent")
        .expect("put");
    fork.commit();
    let missing = fork.get_changes(&heads).len();
    assert_eq!(missing, 1);
    let after_missing = fork.get_heads();
    for i in 0..max + 10 {
        fork.put(automerge::ROOT, "orphan", i as i64).expect("put");
        fork.commit();
    }
    let orphans: Vec<Vec<u8>> = chunks_after(&mut fork, &after_missing);
    let stored = |m: &Machine| m.store().doc_chunks(b_id.as_bytes()).expect("chunks");
    let before = stored(&a.m);

    // All at once: refused, nothing stored.
    let mut st = automerge::sync::State::new();
    let e =
        a.m.receive_sync(
            b_id,
            key,
            &mut st,
            &raw_message(orphans.clone(), key, &b_key),
        )
        .expect_err("a flood of orphans must be refused");
    assert!(e.to_string().contains("max_orphans"), "{e}");
    assert_eq!(stored(&a.m), before);

    // In small messages: they wait until the limit, then the next one is refused.
    let mut accepted = 0;
    let mut refused = None;
    for batch in orphans.chunks(16) {
        match a.m.receive_sync(
            b_id,
            key,
            &mut st,
            &raw_message(batch.to_vec(), key, &b_key),
        ) {
            Ok(_) => accepted += batch.len(),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.expect("the limit applies across messages");
    assert!(e.to_string().contains("max_orphans"), "{e}");
    assert!(accepted <= max, "{accepted} orphans waited");
    // Waiting changes are not stored (a compaction leaves them out too).
    a.m.compact().expect("compact");
    assert_eq!(stored(&a.m), before, "waiting changes are never stored");
}

/// Syncs `key` from `from` to `to` (a few rounds); the first refusal, as text.
/// Issue 38: orphan signatures grow nothing. A member sends, 1,000 rounds over, a few
/// signed changes that wait for a dependency it never sends, then a change without a
/// valid signature (refused: the document is reloaded, the orphan count with it). The
/// waiting changes' signatures stay in memory (bounded) and are never stored: the
/// store holds no signature of a change it does not hold, and its file stays within a
/// bound. The owner's next honest change still arrives.
#[test]
fn r38_an_orphan_flood_stores_no_signatures() {
    use automerge::transaction::Transactable;
    let (mut a, mut b, b_id, key, b_key) = paired_with_b_key();
    let stranger = Identity::generate().expect("key");
    let mut fork = as_stored(a.m.store(), b_id.as_bytes(), b_id);
    let held_heads = fork.get_heads();
    let rows = |m: &Machine| {
        m.store()
            .signed_changes(b_id.as_bytes())
            .expect("rows")
            .len()
    };
    let file = |m: &Machine| m.store().stats(b_id.as_bytes()).expect("stats").file_bytes;
    let (rows_before, file_before) = (rows(&a.m), file(&a.m));
    let mut refused = 0;
    for round in 0..1_000i64 {
        // The dependency A never gets, and four changes on top of it.
        fork.put(automerge::ROOT, "missing", round).expect("put");
        fork.commit();
        let after_missing = fork.get_heads();
        for i in 0..4i64 {
            fork.put(automerge::ROOT, "orphan", round * 4 + i)
                .expect("put");
            fork.commit();
        }
        let orphans: Vec<Vec<u8>> = chunks_after(&mut fork, &after_missing);
        let mut st = automerge::sync::State::new();
        a.m.receive_sync(b_id, key, &mut st, &raw_message(orphans, key, &b_key))
            .expect("signed orphans wait");
        // A change that applies, signed by someone else: refused, reloaded.
        let mut other = fork.fork_at(&held_heads).expect("fork");
        other.set_actor(automerge::ActorId::from(&b_id.actor_bytes()[..]));
        other.put(automerge::ROOT, "unsigned", round).expect("put");
        other.commit();
        let unsigned: Vec<Vec<u8>> = chunks_after(&mut other, &held_heads);
        if a.m
            .receive_sync(b_id, key, &mut st, &raw_message(unsigned, key, &stranger))
            .is_err()
        {
            refused += 1;
        }
    }
    assert_eq!(refused, 1_000);
    // A waiting change must prove its author on arrival: it would apply later, with
    // another (honest) message that does not repeat its signature.
    fork.put(automerge::ROOT, "missing", -1).expect("put");
    fork.commit();
    let after_missing = fork.get_heads();
    fork.put(automerge::ROOT, "orphan", -1).expect("put");
    fork.commit();
    let forged: Vec<Vec<u8>> = chunks_after(&mut fork, &after_missing);
    let e =
        a.m.receive_sync(
            b_id,
            key,
            &mut automerge::sync::State::new(),
            &raw_message(forged, key, &stranger),
        )
        .expect_err("an unsigned orphan is refused before it can wait");
    assert!(e.to_string().contains("no valid signature"), "{e}");
    let (rows_after, file_after) = (rows(&a.m), file(&a.m));
    eprintln!(
        "orphan flood, 1,000 rounds: change_sigs rows {rows_before} -> {rows_after}, store file {file_before} -> {file_after} bytes"
    );
    assert_eq!(
        rows_after, rows_before,
        "no signature of a change not held was stored"
    );
    assert!(
        file_after <= file_before + 256 * 1024,
        "{file_before} -> {file_after}"
    );
    // The owner's next honest change still arrives.
    b.project
        .write("001-first", spec_text("complete", "b after the flood"));
    b.m.scan(&mut |_| {}).expect("scan");
    sync(&mut a.m, &mut b.m);
    assert!(
        titles(&a.m).contains(&"b after the flood".to_string()),
        "{:?}",
        titles(&a.m)
    );
}

fn deliver_once(from: &mut Machine, to: &mut Machine, key: DocKey) -> Result<(), String> {
    let mut states = (automerge::sync::State::new(), automerge::sync::State::new());
    for _ in 0..10 {
        let Some(msg) = from.generate_sync(key, &mut states.0) else {
            return Ok(());
        };
        to.receive_sync(from.id(), key, &mut states.1, &msg)
            .map_err(|e| e.to_string())?;
        if let Some(reply) = to.generate_sync(key, &mut states.1) {
            from.receive_sync(to.id(), key, &mut states.0, &reply)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Limits on what a member can make another store: members in the mesh, bytes of a
/// document. Past them the message is refused (for that document only: the session
/// driver goes on, see `proto/sync.rs` invariant 4).
#[test]
fn mesh_size_and_document_size_are_bounded() {
    let (mut a, mut b, mut c) = three_members();
    a.m.set_limits(leanspec_peer_core::limits::Limits {
        max_members: 4,
        ..Default::default()
    });
    // C adds two machines: the mesh would list five.
    for _ in 0..2 {
        let id = Identity::generate().expect("id").id();
        c.m.add_member(id, "extra", None).expect("add");
    }
    let e = deliver_once(&mut c.m, &mut a.m, DocKey::Mesh).expect_err("over max_members");
    assert!(e.to_string().contains("max_members"), "{e}");
    assert_eq!(a.m.mesh().members().len(), 3);
    // A already stores more than one byte of every document: B's next change is
    // refused, and so is any further mesh change.
    a.m.set_limits(leanspec_peer_core::limits::Limits {
        max_document_bytes: 1,
        ..Default::default()
    });
    b.project
        .write("002-second", spec_text("planned", "b second"));
    b.m.scan(&mut |_| {}).expect("scan");
    let b_id = b.m.id();
    let e = deliver_once(&mut b.m, &mut a.m, DocKey::Machine(b_id))
        .expect_err("over max_document_bytes");
    assert!(e.to_string().contains("max_document_bytes"), "{e}");
    assert!(!titles(&a.m).contains(&"b second".to_string()));
    b.m.rename_machine(b_id, "b2").expect("rename");
    let e = deliver_once(&mut b.m, &mut a.m, DocKey::Mesh).expect_err("the mesh too");
    assert!(e.to_string().contains("max_document_bytes"), "{e}");
}
