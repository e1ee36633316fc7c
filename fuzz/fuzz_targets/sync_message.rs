//! Sync messages from a member: any bytes, and well-formed messages carrying any chunks
//! (signed by the member when they parse as changes). The receiving machine never
//! panics, stays within its limits (a small inflate budget here), and a refused message
//! leaves its store as it was.
#![no_main]

use arbitrary::Arbitrary;
use leanspec_peer_core::authorship::{ChangeSignature, SignedMessage};
use leanspec_peer_core::identity::Identity;
use leanspec_peer_core::limits::Limits;
use leanspec_peer_core::{DocKey, Machine};
use libfuzzer_sys::fuzz_target;
use std::sync::{Mutex, OnceLock};

#[derive(Debug, Arbitrary)]
enum Input {
    Raw { mesh: bool, bytes: Vec<u8> },
    Chunks { mesh: bool, chunks: Vec<Vec<u8>>, heads: u8 },
}

struct World {
    a: Machine,
    b: Machine,
    b_key: Identity,
    _homes: (tempfile::TempDir, tempfile::TempDir),
}

fn sync(a: &mut Machine, b: &mut Machine) {
    let mut states = std::collections::HashMap::new();
    for _ in 0..20 {
        let mut sent = false;
        for from_a in [true, false] {
            let (src, dst) = if from_a { (&mut *a, &mut *b) } else { (&mut *b, &mut *a) };
            for key in src.sync_keys() {
                let st = states.entry((from_a, key)).or_insert_with(automerge::sync::State::new);
                if let Some(msg) = src.generate_sync(key, st) {
                    sent = true;
                    let id = src.id();
                    let rst = states.entry((!from_a, key)).or_insert_with(automerge::sync::State::new);
                    let _ = dst.receive_sync(id, key, rst, &msg);
                }
            }
        }
        if !sent {
            return;
        }
    }
}

fn world() -> &'static Mutex<World> {
    static W: OnceLock<Mutex<World>> = OnceLock::new();
    W.get_or_init(|| {
        let (ha, hb) = (tempfile::tempdir().expect("home"), tempfile::tempdir().expect("home"));
        let (mut a, _) = Machine::init(ha.path(), Some("a")).expect("init");
        let (mut b, _) = Machine::init(hb.path(), Some("b")).expect("init");
        a.set_limits(Limits {
            max_inflated_bytes: 1 << 20,
            max_changes_per_message: 1_000,
            ..Limits::default()
        });
        let label = b.label();
        a.add_member(b.id(), &label).expect("member");
        let mesh = a.mesh_bytes();
        let signatures = a.mesh_signatures().expect("signatures");
        b.adopt_mesh(&mesh, &signatures).expect("adopt");
        sync(&mut a, &mut b);
        let b_key = Identity::load(hb.path()).expect("key").expect("key");
        Mutex::new(World { a, b, b_key, _homes: (ha, hb) })
    })
}

fuzz_target!(|input: Input| {
    let mut w = world().lock().unwrap_or_else(|p| p.into_inner());
    let b_id = w.b.id();
    let (key, bytes) = match input {
        Input::Raw { mesh, bytes } => (if mesh { DocKey::Mesh } else { DocKey::Machine(b_id) }, bytes),
        Input::Chunks { mesh, chunks, heads } => {
            let key = if mesh { DocKey::Mesh } else { DocKey::Machine(b_id) };
            let signatures = chunks
                .iter()
                .filter_map(|c| automerge::Change::from_bytes(c.clone()).ok())
                .map(|c| (c.hash().0, ChangeSignature::sign(&w.b_key, key, &c.hash().0)))
                .collect();
            let message = automerge::sync::Message {
                heads: (0..heads % 4).map(|i| automerge::ChangeHash([i; 32])).collect(),
                need: Vec::new(),
                have: Vec::new(),
                changes: chunks.into(),
                flags: None,
                version: automerge::sync::MessageVersion::V1,
            };
            (key, SignedMessage { message: message.encode(), signatures }.encode(key))
        }
    };
    let stored = |m: &Machine| m.store().doc_chunks(&key.to_bytes()).unwrap_or_default();
    let before = stored(&w.a);
    let mut state = automerge::sync::State::new();
    if w.a.receive_sync(b_id, key, &mut state, &bytes).is_err() {
        assert_eq!(stored(&w.a), before, "a refused message stores nothing");
    }
});
