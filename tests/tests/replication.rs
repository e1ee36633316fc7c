//! Replication between machines at the document level (the network layer drives the
//! same calls): documents converge, multi-hop works, forged authors are refused.

use leanspec_peer_core::doc::{MachineDoc, MachineInfo};
use leanspec_peer_core::identity::Identity;
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
    joiner.adopt_mesh(&mesh).expect("adopt");
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
    let bytes = forged.save();
    // Run the sync protocol for "B's document" between the forger and A.
    let mut fdoc = automerge::AutoCommit::load(&bytes).expect("load");
    let (mut st, mut rst) = (automerge::sync::State::new(), automerge::sync::State::new());
    let key = DocKey::Machine(b.m.id());
    let mut refusal = None;
    let mut last_msg = Vec::new();
    for _ in 0..10 {
        let Some(msg) = automerge::sync::SyncDoc::generate_sync_message(&fdoc.sync(), &mut st)
        else {
            break;
        };
        last_msg = msg.clone().encode();
        match a.m.receive_sync(b.m.id(), key, &mut rst, &last_msg) {
            Ok(_) => {}
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
        if let Some(reply) = a.m.generate_sync(key, &mut rst) {
            let reply = automerge::sync::Message::decode(&reply).expect("decode");
            automerge::sync::SyncDoc::receive_sync_message(&mut fdoc.sync(), &mut st, reply)
                .expect("forger receives");
        }
    }
    let e = refusal.expect("the forged changes must be refused");
    assert!(e.to_string().contains("not allowed"), "{e}");
    let msg = last_msg;
    assert_eq!(titles(&a.m), before, "nothing applied");
    // Garbage is refused too, and a document of a non-member is unknown.
    assert!(
        a.m.receive_sync(b.m.id(), DocKey::Mesh, &mut rst, b"\x00garbage")
            .is_err()
    );
    let stranger = DocKey::Machine(forger);
    assert!(matches!(
        a.m.receive_sync(b.m.id(), stranger, &mut rst, &msg),
        Err(SyncError::UnknownDoc)
    ));
}

#[test]
fn a_machine_with_peers_cannot_adopt_another_mesh() {
    let (mut a, mut b, mut c) = (node("a"), node("b"), node("c"));
    pair(&mut a.m, &mut b.m);
    c.m.add_member(b.m.id(), "b").expect("add");
    let mesh = c.m.mesh_bytes();
    let e = b.m.adopt_mesh(&mesh).expect_err("two meshes");
    assert!(e.to_string().contains("not merged"), "{e}");
}
