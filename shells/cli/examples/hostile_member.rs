//! A revoked member that means harm, for `tests/hostile_member.rs` (not shipped: an
//! example, built with the tests). It speaks the sync protocol with its own key, as
//! patched software would; stock software refuses to (a machine that knows it is
//! revoked holds no sessions).
//!
//!   hostile_member unrevoke X_HOME SRC_HOME PEER_ID PEER_ADDR
//!
//! With X and SRC stopped: takes the mesh changes SRC holds and X does not (X's
//! revocation R among them, with SRC's stored signatures), writes U as X (a fresh
//! `members` map naming every member unrevoked and a fresh, empty `revocations` list,
//! signed with X's key), dials PEER (a member that was away during the revocation) as X
//! and sends it R and U in one mesh sync message. Prints `U <hash>`, `sent N changes`,
//! then how the connection ended (`closed: …`), or `refused: …` when PEER refuses X at
//! once.

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjType, ROOT};
use iroh::endpoint::presets;
use iroh::{Endpoint, EndpointAddr, RelayMode, SecretKey};
use leanspec_peer_core::DocKey;
use leanspec_peer_core::authorship::{ChangeSignature, SignedMessage};
use leanspec_peer_core::identity::Identity;
use leanspec_peer_core::net::{SYNC_ALPN, frame};
use leanspec_peer_core::store::Store;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

const KIND_HELLO: u8 = 0;
const KIND_SYNC: u8 = 1;

fn mesh(store: &Store) -> Result<AutoCommit, String> {
    let mut doc = AutoCommit::new();
    for chunk in store.doc_chunks(b"mesh").map_err(|e| e.to_string())? {
        doc.load_incremental(&chunk).map_err(|e| e.to_string())?;
    }
    Ok(doc)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, x_home, src_home, peer_id, peer_addr] = args.as_slice() else {
        return Err("usage: hostile_member unrevoke X_HOME SRC_HOME PEER_ID PEER_ADDR".into());
    };
    if mode != "unrevoke" {
        return Err(format!("unknown mode {mode}"));
    }
    let x_home = PathBuf::from(x_home);
    let x = Identity::load(&x_home)
        .map_err(|e| e.to_string())?
        .ok_or("no machine key in X_HOME")?;
    let x_store = Store::open(&x_home.join("store.redb")).map_err(|e| e.to_string())?;
    let src_store =
        Store::open(&PathBuf::from(src_home).join("store.redb")).map_err(|e| e.to_string())?;
    let mut doc = mesh(&x_store)?;
    let held = doc.get_heads();
    let mut src = mesh(&src_store)?;
    let learned = doc.get_changes_added(&mut src);
    let hashes: Vec<[u8; 32]> = learned.iter().map(|c| c.hash().0).collect();
    let stored = src_store
        .change_signatures(b"mesh", &hashes)
        .map_err(|e| e.to_string())?;
    let mut signatures: Vec<([u8; 32], ChangeSignature)> = hashes
        .iter()
        .zip(stored)
        .filter_map(|(h, s)| Some((*h, ChangeSignature::from_stored(&s?)?)))
        .collect();
    doc.apply_changes(learned).map_err(|e| e.to_string())?;
    // U: X, having learned R, replaces what revokes it.
    doc.set_actor(ActorId::from(&x.id().actor_bytes()[..]));
    let ids: Vec<String> = {
        use automerge::ReadDoc;
        match doc.get(ROOT, "members").map_err(|e| e.to_string())? {
            Some((_, m)) => doc.keys(&m).collect(),
            None => return Err("no members".into()),
        }
    };
    let members = doc
        .put_object(ROOT, "members", ObjType::Map)
        .map_err(|e| e.to_string())?;
    for id in &ids {
        let rec = doc
            .put_object(&members, id.as_str(), ObjType::Map)
            .map_err(|e| e.to_string())?;
        doc.put(&rec, "label", "member")
            .map_err(|e| e.to_string())?;
        doc.put(&rec, "added_at", 1).map_err(|e| e.to_string())?;
    }
    doc.put_object(ROOT, "revocations", ObjType::List)
        .map_err(|e| e.to_string())?;
    let u = doc.commit().ok_or("U was not written")?;
    println!("U {u}");
    let changes = doc.get_changes(&held);
    for c in &changes {
        if !signatures.iter().any(|(h, _)| *h == c.hash().0) {
            signatures.push((
                c.hash().0,
                ChangeSignature::sign(&x, DocKey::Mesh, &c.hash().0),
            ));
        }
    }
    let message = automerge::sync::Message {
        heads: Vec::new(),
        need: Vec::new(),
        have: Vec::new(),
        changes: changes
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect::<Vec<_>>()
            .into(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    };
    let signed = SignedMessage {
        message: message.encode(),
        signatures,
        checkpoint: None,
    }
    .encode(DocKey::Mesh);
    let key = DocKey::Mesh.to_bytes();
    let mut body = vec![key.len() as u8];
    body.extend_from_slice(&key);
    body.extend_from_slice(&signed);

    let endpoint = Endpoint::builder(presets::Minimal)
        .secret_key(SecretKey::from_bytes(&x.secret_bytes()))
        .relay_mode(RelayMode::Disabled)
        .clear_ip_transports()
        .bind_addr(SocketAddr::from(([127, 0, 0, 1], 0)))
        .map_err(|e| e.to_string())?
        .bind()
        .await
        .map_err(|e| e.to_string())?;
    let peer: iroh::PublicKey = peer_id.parse().map_err(|e| format!("peer id: {e}"))?;
    let addr: SocketAddr = peer_addr
        .parse()
        .map_err(|e| format!("peer address: {e}"))?;
    let talk = async {
        let conn = endpoint
            .connect(EndpointAddr::new(peer).with_ip_addr(addr), SYNC_ALPN)
            .await
            .map_err(|e| format!("refused: {e}"))?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| format!("refused: {e}"))?;
        frame::write(&mut send, KIND_HELLO, &1u64.to_be_bytes())
            .await
            .map_err(|e| format!("refused: {e}"))?;
        match frame::read_max(&mut recv, 64).await {
            Ok((KIND_HELLO, _)) => {}
            Ok((kind, _)) => return Err(format!("refused: frame {kind} instead of a hello")),
            Err(e) => return Err(format!("refused: {e}")),
        }
        frame::write(&mut send, KIND_SYNC, &body)
            .await
            .map_err(|e| format!("closed: {e}"))?;
        println!("sent {} changes", changes.len());
        // Read whatever comes until the peer ends the session.
        loop {
            if let Err(e) = frame::read(&mut recv).await {
                return Ok::<String, String>(format!("closed: {e} ({:?})", conn.close_reason()));
            }
        }
    };
    let outcome = match tokio::time::timeout(Duration::from_secs(20), talk).await {
        Ok(Ok(s)) | Ok(Err(s)) => s,
        Err(_) => "closed: still open after 20 s".to_string(),
    };
    println!("{outcome}");
    endpoint.close().await;
    Ok(())
}
