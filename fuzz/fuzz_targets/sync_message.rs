//! Sync messages from a member: any bytes, and well-formed messages carrying any chunks
//! (signed by the member when they parse as changes). The receiving machine never
//! panics, stays within its limits (a small inflate budget here), and a refused message
//! leaves its store as it was.
#![no_main]

use arbitrary::Arbitrary;
use leanspec_peer_core::authorship::{ChangeSignature, Checkpoint, SignedMessage};
use leanspec_peer_core::identity::Identity;
use leanspec_peer_core::limits::Limits;
use leanspec_peer_core::{DocKey, Machine};
use libfuzzer_sys::fuzz_target;
use std::sync::{Mutex, OnceLock};

#[derive(Debug, Arbitrary)]
enum Input {
    Raw { mesh: bool, bytes: Vec<u8> },
    Chunks { mesh: bool, chunks: Vec<Vec<u8>>, heads: u8 },
    /// A real signed message of B's document (a whole document, then a change), with
    /// bytes flipped: reaches the chunk walk, signature checks and Automerge.
    Template { whole: bool, flips: Vec<(u16, u8)>, cut: Option<u16> },
}

struct World {
    a: Machine,
    b: Machine,
    b_key: Identity,
    /// B's document as a first sync sends it (whole), and one later change.
    templates: [Vec<u8>; 2],
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
        let proj = tempfile::tempdir().expect("project");
        let spec = proj.path().join("specs/001-x");
        std::fs::create_dir_all(&spec).expect("mkdir");
        let write = |status: &str| {
            std::fs::write(
                spec.join("README.md"),
                format!("---\nstatus: {status}\ncreated: '2025-01-01'\ntags: [a]\n---\n\n# X\n"),
            )
            .expect("write")
        };
        write("planned");
        let (mut b, _) = Machine::init(hb.path(), Some("b")).expect("init");
        b.add_project(proj.path(), Some("p")).expect("add");
        a.set_limits(Limits {
            max_inflated_bytes: 1 << 20,
            max_changes_per_message: 1_000,
            ..Limits::default()
        });
        let label = b.label();
        a.add_member(b.id(), &label, None).expect("member");
        let mesh = a.mesh_bytes();
        let signatures = a.mesh_signatures().expect("signatures");
        b.adopt_mesh(&mesh, &signatures).expect("adopt");
        // The whole document, as B sends it to a machine that has none of it.
        let key = DocKey::Machine(b.id());
        let whole = b
            .generate_sync(key, &mut automerge::sync::State::new())
            .expect("a first message");
        sync(&mut a, &mut b);
        // One more change, as B sends it to a machine that holds the rest (a state
        // saying so; A does not apply it, so the template stays new to A).
        let before = b.heads(key);
        write("complete");
        b.scan(&mut |_| {}).expect("scan");
        let mut st = automerge::sync::State::new();
        st.their_heads = Some(before.clone());
        st.their_need = Some(Vec::new());
        st.their_have = Some(vec![automerge::sync::Have {
            last_sync: before.clone(),
            bloom: automerge::sync::BloomFilter::default(),
        }]);
        st.shared_heads = before;
        let change = b.generate_sync(key, &mut st).unwrap_or_default();
        let b_key = Identity::load(hb.path()).expect("key").expect("key");
        std::mem::forget(proj);
        Mutex::new(World { a, b, b_key, templates: [whole, change], _homes: (ha, hb) })
    })
}

fuzz_target!(|input: Input| {
    let mut w = world().lock().unwrap_or_else(|p| p.into_inner());
    let b_id = w.b.id();
    let (key, bytes) = match input {
        Input::Raw { mesh, bytes } => (if mesh { DocKey::Mesh } else { DocKey::Machine(b_id) }, bytes),
        Input::Chunks { mesh, chunks, heads } => {
            let key = if mesh { DocKey::Mesh } else { DocKey::Machine(b_id) };
            let hashes: Vec<[u8; 32]> = chunks
                .iter()
                .filter_map(|c| automerge::Change::from_bytes(c.clone()).ok())
                .map(|c| c.hash().0)
                .collect();
            // Half the time the owner's checkpoint over the chunks instead of their own
            // signatures: the proof walk runs on whatever history they claim.
            let (signatures, checkpoint) = if heads & 4 == 0 {
                let s = hashes.iter().map(|h| (*h, ChangeSignature::sign(&w.b_key, key, h))).collect();
                (s, None)
            } else {
                (Vec::new(), Checkpoint::sign(&w.b_key, &hashes))
            };
            let message = automerge::sync::Message {
                heads: (0..heads % 4).map(|i| automerge::ChangeHash([i; 32])).collect(),
                need: Vec::new(),
                have: Vec::new(),
                changes: chunks.into(),
                flags: None,
                version: automerge::sync::MessageVersion::V1,
            };
            (key, SignedMessage { message: message.encode(), signatures, checkpoint }.encode(key))
        }
        Input::Template { whole, flips, cut } => {
            let mut bytes = w.templates[usize::from(!whole)].clone();
            for (at, x) in flips {
                let n = bytes.len().max(1);
                if let Some(b) = bytes.get_mut(usize::from(at) % n) {
                    *b ^= x;
                }
            }
            if let Some(c) = cut {
                bytes.truncate(usize::from(c));
            }
            (DocKey::Machine(b_id), bytes)
        }
    };
    let stored = |m: &Machine| m.store().doc_chunks(&key.to_bytes()).unwrap_or_default();
    let before = stored(&w.a);
    let mut state = automerge::sync::State::new();
    if w.a.receive_sync(b_id, key, &mut state, &bytes).is_err() {
        assert_eq!(stored(&w.a), before, "a refused message stores nothing");
    }
});
