//! Operations from the network: any bytes, and well-signed operations with any
//! fields. Decoding is canonical (what decodes re-encodes to the same bytes), and the
//! verification pipeline of a real machine (redb store, spec files on disk) never
//! panics; whatever it decides, the spec file always parses afterwards.
#![no_main]

use arbitrary::Arbitrary;
use leanspec_peer_core::identity::Identity;
use leanspec_peer_core::ops::{Change, OpBody, Operation, SignedOperation, verify};
use leanspec_peer_core::{Machine, spec};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

#[derive(Debug, Arbitrary)]
enum Input {
    Raw(Vec<u8>),
    Signed {
        spec: String,
        use_real_project: bool,
        project: String,
        good_hash: bool,
        change: FuzzChange,
        ttl_ms: i64,
        issued_offset_ms: i64,
    },
}

#[derive(Debug, Arbitrary)]
struct FuzzChange {
    status: Option<String>,
    priority: Option<String>,
    add_tags: Vec<String>,
    remove_tags: Vec<String>,
    parent: Option<String>,
}

struct World {
    machine: Machine,
    identity: Identity,
    project: String,
    file: PathBuf,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn world() -> &'static Mutex<World> {
    static W: OnceLock<Mutex<World>> = OnceLock::new();
    W.get_or_init(|| {
        let home = tempfile::tempdir().expect("home");
        let proj = tempfile::tempdir().expect("project");
        let dir = proj.path().join("specs/001-x");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join("README.md");
        std::fs::write(&file, "---\nstatus: planned\ncreated: '2025-01-01'\ntags: [a]\n---\n\n# X\n")
            .expect("write");
        let (mut machine, _) = Machine::init(home.path(), Some("fuzz")).expect("init");
        let (project, _) = machine.add_project(proj.path(), Some("p")).expect("add");
        let identity = Identity::load(home.path()).expect("key").expect("key");
        Mutex::new(World {
            machine,
            identity,
            project: project.id,
            file,
            _dirs: (home, proj),
        })
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fuzz_target!(|input: Input| {
    let mut w = world().lock().unwrap_or_else(|p| p.into_inner());
    let me = w.machine.id();
    let bytes = match input {
        Input::Raw(bytes) => {
            if let Ok(op) = SignedOperation::decode(&bytes) {
                assert_eq!(op.to_bytes(), bytes, "decoding is canonical");
            }
            bytes
        }
        Input::Signed {
            spec,
            use_real_project,
            project,
            good_hash,
            change,
            ttl_ms,
            issued_offset_ms,
        } => {
            let hash = if good_hash {
                let text = std::fs::read(&w.file).unwrap_or_default();
                hex::decode(spec::sha256_hex(&text))
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .unwrap_or([0u8; 32])
            } else {
                [7u8; 32]
            };
            let issued = now_ms().saturating_add(issued_offset_ms % 120_000);
            let op = Operation {
                id: rand_id(),
                author: me,
                target: me,
                issued_at_ms: issued,
                expires_at_ms: issued.saturating_add(ttl_ms),
                body: OpBody::Edit {
                    project: if use_real_project { w.project.clone() } else { project },
                    spec,
                    base_file_hash: hash,
                    change: Change {
                        status: change.status,
                        priority: change.priority,
                        add_tags: change.add_tags,
                        remove_tags: change.remove_tags,
                        parent: change.parent,
                        ..Change::default()
                    },
                },
                on_behalf_of: None,
            };
            match op.sign(&w.identity) {
                Ok(s) => s.to_bytes(),
                Err(_) => return,
            }
        }
    };
    let World { machine, .. } = &mut *w;
    let _ = verify::receive(machine, Some(me), &bytes, now_ms());
    let text = std::fs::read(&w.file).unwrap_or_default();
    let parsed = spec::parse_bytes("001-x", &text, Vec::new());
    assert!(parsed.parse_error.is_none(), "the spec file always parses");
});

fn rand_id() -> [u8; 16] {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.to_le_bytes());
    id
}
