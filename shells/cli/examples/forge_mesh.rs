//! A member that means harm, for `tests/ephemeral.rs` (not shipped: an example, built
//! with the tests). With the machine stopped, writes into its own store a mesh change of
//! its own, signed with its own key, as patched software could:
//!
//!   forge_mesh rewrite-own HOME LABEL
//!
//! rewrites the machine's own member record: `added_at` = i64::MAX, `added_by` = itself,
//! `ephemeral_after` deleted, and `label` = LABEL (the one field others show, so a test
//! can see the change arrived). Prints the change's hash.

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ROOT, ReadDoc};
use leanspec_peer_core::DocKey;
use leanspec_peer_core::authorship::ChangeSignature;
use leanspec_peer_core::identity::Identity;
use leanspec_peer_core::store::{Batch, Store};
use std::path::PathBuf;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, home, label] = args.as_slice() else {
        return Err("usage: forge_mesh rewrite-own HOME LABEL".into());
    };
    if mode != "rewrite-own" {
        return Err(format!("unknown mode {mode}"));
    }
    let home = PathBuf::from(home);
    let identity = Identity::load(&home)
        .map_err(|e| e.to_string())?
        .ok_or("no machine key in HOME")?;
    let me = identity.id();
    let store = Store::open(&home.join("store.redb")).map_err(|e| e.to_string())?;
    let mut doc = AutoCommit::new();
    for chunk in store.doc_chunks(b"mesh").map_err(|e| e.to_string())? {
        doc.load_incremental(&chunk).map_err(|e| e.to_string())?;
    }
    doc.set_actor(ActorId::from(&me.actor_bytes()[..]));
    let before = doc.get_heads();
    let members = match doc.get(ROOT, "members").map_err(|e| e.to_string())? {
        Some((_, m)) => m,
        None => return Err("the mesh has no members map".into()),
    };
    let record = match doc
        .get(&members, me.to_string().as_str())
        .map_err(|e| e.to_string())?
    {
        Some((_, r)) => r,
        None => return Err("this machine has no record".into()),
    };
    let put = |doc: &mut AutoCommit, k: &str, v: automerge::ScalarValue| {
        doc.put(&record, k, v).map_err(|e| e.to_string())
    };
    put(&mut doc, "added_at", i64::MAX.into())?;
    put(&mut doc, "added_by", me.to_string().into())?;
    put(&mut doc, "label", label.as_str().into())?;
    doc.delete(&record, "ephemeral_after")
        .map_err(|e| e.to_string())?;
    doc.commit();
    let changes = doc.get_changes(&before);
    let chunks: Vec<Vec<u8>> = changes.iter().map(|c| c.raw_bytes().to_vec()).collect();
    let chunk_rows: Vec<(&[u8], &[u8])> = chunks
        .iter()
        .map(|c| (b"mesh".as_slice(), c.as_slice()))
        .collect();
    let sigs: Vec<(&[u8], [u8; 32], [u8; 96])> = changes
        .iter()
        .map(|c| {
            let s = ChangeSignature::sign(&identity, DocKey::Mesh, &c.hash().0);
            (b"mesh".as_slice(), c.hash().0, s.to_stored())
        })
        .collect();
    store
        .commit(Batch {
            chunks: &chunk_rows,
            signatures: &sigs,
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
    for c in &changes {
        println!("{}", c.hash());
    }
    Ok(())
}
