//! Who wrote a document change, proven: the author signs every change hash (ed25519,
//! domain-separated), the signatures travel with the sync messages that carry the
//! changes, are stored beside the chunks, and are forwarded on multi-hop. A change's
//! Automerge actor id is a claim anyone can write; the signature is what is checked.
//!
//! Rules (enforced by `Machine::receive_sync` before anything is stored):
//! - a change of machine X's document is signed by X, and its actor is X's;
//! - a change of the mesh is signed by the member whose actor it carries, and that
//!   member is in the mesh and not revoked.
//!
//! A signed sync message (the body of a sync frame after the document key):
//!
//! ```text
//! u32 BE  length of the Automerge sync message
//! bytes   the Automerge sync message
//! u16 BE  number of signatures
//! each:   8 bytes   the first bytes of the change hash (which new change it is for)
//!         32 bytes  the signer's machine id (mesh only; a machine document's signer is
//!                   its owner)
//!         64 bytes  ed25519 signature over DOMAIN ‖ document key ‖ the full change hash
//! then, only for a machine document and only when the sender holds one (absent bytes
//! mean none, so a message without a checkpoint is what earlier versions send):
//!         u16 BE    number of heads of the checkpoint (1..=MAX_CHECKPOINT_HEADS)
//!         32 bytes  each head
//!         64 bytes  the owner's signature over CHECKPOINT_DOMAIN ‖ document key ‖
//!                   u16 BE count ‖ the heads, sorted
//! ```
//!
//! A **checkpoint** is the owner's signature over a set of heads of its own document.
//! Automerge change hashes chain (a change's hash covers the hashes of its
//! dependencies), so a signature over heads proves every change in their history: a
//! forged ancestor would need a SHA-256 collision. The owner signs one when it compacts
//! its document and then drops the per-change signatures it covers, so a machine's
//! store keeps one signature per compaction instead of one per change (issue 15 item
//! 6: 100,000 edits left 16 MB of signatures). A change of a machine document is
//! accepted when its own signature verifies **or** a checkpoint of the owner has it in
//! its history. The mesh, written by many machines, keeps per-change signatures (one
//! member must not vouch for another's change).

use crate::identity::{Identity, MachineId};
use crate::machine::DocKey;

/// Prepended to what is signed, so a change signature is never valid for anything else
/// the machine key signs (operations use their own domain).
const DOMAIN: &[u8] = b"leanspec-peer/change/v1\0";

/// Prepended to a checkpoint's signed bytes: never valid as a change signature, nor
/// the reverse.
const CHECKPOINT_DOMAIN: &[u8] = b"leanspec-peer/checkpoint/v1\0";

/// Most heads a checkpoint may name (a machine document has one writer: one head,
/// more only while concurrent changes from a restore are not yet merged).
pub const MAX_CHECKPOINT_HEADS: usize = 256;

/// Bytes of a change hash that name it in a signed message.
const PREFIX: usize = 8;

/// Most signatures one message may carry (a sync message carries at most the changes
/// a peer lacks; a first sync of a long history can carry many).
pub const MAX_SIGNATURES: usize = 65_535;

/// A change's author signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeSignature {
    /// Who signed.
    pub signer: MachineId,
    /// The ed25519 signature.
    pub signature: [u8; 64],
}

fn signed_bytes(doc: DocKey, hash: &[u8; 32]) -> Vec<u8> {
    let key = doc.to_bytes();
    let mut m = Vec::with_capacity(DOMAIN.len() + key.len() + 32);
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(&key);
    m.extend_from_slice(hash);
    m
}

impl ChangeSignature {
    /// Signs change `hash` of document `doc` with this machine's key.
    pub fn sign(identity: &Identity, doc: DocKey, hash: &[u8; 32]) -> ChangeSignature {
        ChangeSignature {
            signer: identity.id(),
            signature: identity.sign(&signed_bytes(doc, hash)),
        }
    }

    /// Whether this is `signer`'s valid signature over change `hash` of `doc`.
    pub fn verifies(&self, doc: DocKey, hash: &[u8; 32]) -> bool {
        self.signer
            .verify(&signed_bytes(doc, hash), &self.signature)
    }

    /// The stored form (a row of `change_sigs`, `store::Batch::signatures`): signer, then
    /// signature.
    pub fn to_stored(self) -> [u8; 96] {
        let mut b = [0u8; 96];
        b[..32].copy_from_slice(self.signer.as_bytes());
        b[32..].copy_from_slice(&self.signature);
        b
    }

    /// From the stored form (`None` if it is not 96 bytes).
    pub fn from_stored(b: &[u8]) -> Option<ChangeSignature> {
        let b: &[u8; 96] = b.try_into().ok()?;
        let mut signer = [0u8; 32];
        signer.copy_from_slice(&b[..32]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&b[32..]);
        Some(ChangeSignature {
            signer: MachineId::from_bytes(signer),
            signature,
        })
    }
}

/// The owner's signature over heads of its machine document: proves every change in
/// their history (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The heads, sorted, at most [`MAX_CHECKPOINT_HEADS`], at least one.
    heads: Vec<[u8; 32]>,
    /// The owner's ed25519 signature.
    signature: [u8; 64],
}

fn checkpoint_bytes(doc: DocKey, heads: &[[u8; 32]]) -> Vec<u8> {
    let key = doc.to_bytes();
    let mut m = Vec::with_capacity(CHECKPOINT_DOMAIN.len() + key.len() + 2 + 32 * heads.len());
    m.extend_from_slice(CHECKPOINT_DOMAIN);
    m.extend_from_slice(&key);
    m.extend_from_slice(&(heads.len() as u16).to_be_bytes());
    for h in heads {
        m.extend_from_slice(h);
    }
    m
}

impl Checkpoint {
    /// Signs `heads` of this machine's own document (`None` for no heads or too many:
    /// nothing to prove, or a document no checkpoint can name).
    pub fn sign(identity: &Identity, heads: &[[u8; 32]]) -> Option<Checkpoint> {
        if heads.is_empty() || heads.len() > MAX_CHECKPOINT_HEADS {
            return None;
        }
        let mut heads = heads.to_vec();
        heads.sort_unstable();
        heads.dedup();
        let doc = DocKey::Machine(identity.id());
        let signature = identity.sign(&checkpoint_bytes(doc, &heads));
        Some(Checkpoint { heads, signature })
    }

    /// The heads it proves the history of.
    pub fn heads(&self) -> &[[u8; 32]] {
        &self.heads
    }

    /// The heads as Automerge change hashes.
    pub fn change_hashes(&self) -> Vec<automerge::ChangeHash> {
        self.heads
            .iter()
            .map(|h| automerge::ChangeHash(*h))
            .collect()
    }

    /// Whether this is the owner's valid checkpoint of machine document `doc` (never
    /// for the mesh, which has no owner).
    pub fn verifies(&self, doc: DocKey) -> bool {
        match doc {
            DocKey::Machine(owner) => {
                owner.verify(&checkpoint_bytes(doc, &self.heads), &self.signature)
            }
            DocKey::Mesh => false,
        }
    }

    /// The stored (and wire) form: u16 BE count, the heads, the signature.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(2 + 32 * self.heads.len() + 64);
        b.extend_from_slice(&(self.heads.len() as u16).to_be_bytes());
        for h in &self.heads {
            b.extend_from_slice(h);
        }
        b.extend_from_slice(&self.signature);
        b
    }

    /// From the stored form (`None` if malformed or with trailing bytes).
    pub fn decode(b: &[u8]) -> Option<Checkpoint> {
        let mut r = crate::wire::Reader::new(b, ());
        let c = Checkpoint::read(&mut r).ok()?;
        r.rest().is_empty().then_some(c)
    }

    fn read<E: Clone>(r: &mut crate::wire::Reader<'_, E>) -> Result<Checkpoint, E> {
        let n = u16::from_be_bytes(r.take::<2>()?) as usize;
        let mut heads = Vec::with_capacity(n.min(MAX_CHECKPOINT_HEADS));
        for _ in 0..n.min(MAX_CHECKPOINT_HEADS + 1) {
            heads.push(r.take::<32>()?);
        }
        let signature = r.take::<64>()?;
        Ok(Checkpoint { heads, signature })
    }

    /// Whether the counts are in range and the heads sorted without repeats (what
    /// [`Checkpoint::sign`] writes; anything else is refused before verifying).
    fn well_formed(&self) -> bool {
        !self.heads.is_empty()
            && self.heads.len() <= MAX_CHECKPOINT_HEADS
            && self.heads.windows(2).all(|w| w[0] < w[1])
    }
}

/// Why a signed sync message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end too early or carry trailing garbage.
    #[error("malformed signed sync message: {0}")]
    Malformed(&'static str),
}

/// An Automerge sync message with the signatures of the changes it carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignedMessage {
    /// The Automerge sync message.
    pub message: Vec<u8>,
    /// `(full change hash, signature)`; on the wire only the hash's first bytes travel.
    pub signatures: Vec<([u8; 32], ChangeSignature)>,
    /// The owner's latest checkpoint, sent when some carried change has no signature of
    /// its own (machine documents only; ignored for the mesh).
    pub checkpoint: Option<Checkpoint>,
}

/// Signatures as decoded from the wire: matched to changes by hash prefix.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceivedSignatures {
    signatures: Vec<([u8; PREFIX], ChangeSignature)>,
    checkpoint: Option<Checkpoint>,
}

impl ReceivedSignatures {
    /// The signature sent for the change with this hash, if any.
    pub fn for_hash(&self, hash: &[u8; 32]) -> impl Iterator<Item = &ChangeSignature> {
        self.signatures
            .iter()
            .filter(move |(p, _)| p[..] == hash[..PREFIX])
            .map(|(_, s)| s)
    }

    /// The checkpoint that came along, not yet verified.
    pub fn checkpoint(&self) -> Option<&Checkpoint> {
        self.checkpoint.as_ref()
    }
}

impl SignedMessage {
    /// The wire form (see the module doc); `doc` decides whether signers are written.
    pub fn encode(&self, doc: DocKey) -> Vec<u8> {
        let with_signer = doc == DocKey::Mesh;
        let n = self.signatures.len().min(MAX_SIGNATURES);
        let per = PREFIX + 64 + if with_signer { 32 } else { 0 };
        let mut b = Vec::with_capacity(6 + self.message.len() + n * per);
        b.extend_from_slice(&(self.message.len() as u32).to_be_bytes());
        b.extend_from_slice(&self.message);
        b.extend_from_slice(&(n as u16).to_be_bytes());
        for (hash, s) in self.signatures.iter().take(n) {
            b.extend_from_slice(&hash[..PREFIX]);
            if with_signer {
                b.extend_from_slice(s.signer.as_bytes());
            }
            b.extend_from_slice(&s.signature);
        }
        if let (DocKey::Machine(_), Some(c)) = (doc, &self.checkpoint) {
            b.extend_from_slice(&c.encode());
        }
        b
    }

    /// Decodes the wire form for document `doc`. A machine document's signatures are
    /// attributed to its owner (what they claim is checked, not trusted).
    pub fn decode(doc: DocKey, b: &[u8]) -> Result<(Vec<u8>, ReceivedSignatures), DecodeError> {
        let mut r = crate::wire::Reader::new(b, DecodeError::Malformed("ends early"));
        let len = u32::from_be_bytes(r.take::<4>()?) as usize;
        let message = r.bytes(len)?.to_vec();
        let n = u16::from_be_bytes(r.take::<2>()?) as usize;
        let mut out = Vec::with_capacity(n.min(r.rest().len() / (PREFIX + 64) + 1));
        for _ in 0..n {
            let prefix = r.take::<PREFIX>()?;
            let signer = match doc {
                DocKey::Mesh => MachineId::from_bytes(r.take::<32>()?),
                DocKey::Machine(owner) => owner,
            };
            let signature = r.take::<64>()?;
            out.push((prefix, ChangeSignature { signer, signature }));
        }
        let checkpoint = match doc {
            _ if r.rest().is_empty() => None,
            DocKey::Mesh => return Err(DecodeError::Malformed("trailing bytes")),
            DocKey::Machine(_) => {
                let c = Checkpoint::read(&mut r)?;
                if !c.well_formed() {
                    return Err(DecodeError::Malformed("checkpoint heads"));
                }
                Some(c)
            }
        };
        if !r.rest().is_empty() {
            return Err(DecodeError::Malformed("trailing bytes"));
        }
        Ok((
            message,
            ReceivedSignatures {
                signatures: out,
                checkpoint,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_for_its_change_and_document_only() {
        let id = Identity::generate().expect("key");
        let other = Identity::generate().expect("key");
        let doc = DocKey::Machine(id.id());
        let hash = [7u8; 32];
        let s = ChangeSignature::sign(&id, doc, &hash);
        assert!(s.verifies(doc, &hash));
        assert!(!s.verifies(doc, &[8u8; 32]), "another change");
        assert!(!s.verifies(DocKey::Mesh, &hash), "another document");
        let claimed = ChangeSignature {
            signer: other.id(),
            ..s
        };
        assert!(!claimed.verifies(doc, &hash), "another signer");
        assert_eq!(ChangeSignature::from_stored(&s.to_stored()), Some(s));
    }

    #[test]
    fn the_wire_form_round_trips_and_refuses_damage() {
        let id = Identity::generate().expect("key");
        for doc in [DocKey::Mesh, DocKey::Machine(id.id())] {
            let hash = [9u8; 32];
            let m = SignedMessage {
                message: b"automerge".to_vec(),
                signatures: vec![(hash, ChangeSignature::sign(&id, doc, &hash))],
                checkpoint: None,
            };
            let wire = m.encode(doc);
            let (message, sigs) = SignedMessage::decode(doc, &wire).expect("decode");
            assert_eq!(message, b"automerge");
            let found: Vec<_> = sigs.for_hash(&hash).collect();
            assert_eq!(found.len(), 1);
            assert!(found[0].verifies(doc, &hash));
            assert_eq!(sigs.for_hash(&[1u8; 32]).count(), 0);
            for cut in 0..wire.len() {
                assert!(
                    SignedMessage::decode(doc, &wire[..cut]).is_err(),
                    "cut at {cut}"
                );
            }
            let mut longer = wire.clone();
            longer.push(0);
            assert!(SignedMessage::decode(doc, &longer).is_err());
        }
        // A machine document's entry is 72 bytes: prefix and signature, no signer.
        let doc = DocKey::Machine(id.id());
        let m = SignedMessage {
            message: Vec::new(),
            signatures: vec![([0; 32], ChangeSignature::sign(&id, doc, &[0; 32]))],
            checkpoint: None,
        };
        assert_eq!(m.encode(doc).len(), 4 + 2 + 72);
    }

    #[test]
    fn a_checkpoint_holds_for_its_owner_and_heads_only() {
        let id = Identity::generate().expect("key");
        let other = Identity::generate().expect("key");
        let doc = DocKey::Machine(id.id());
        let c = Checkpoint::sign(&id, &[[3u8; 32], [1u8; 32], [3u8; 32]]).expect("sign");
        assert_eq!(c.heads(), &[[1u8; 32], [3u8; 32]], "sorted, no repeats");
        assert!(c.verifies(doc));
        assert!(
            !c.verifies(DocKey::Machine(other.id())),
            "another machine's document"
        );
        assert!(!c.verifies(DocKey::Mesh), "the mesh has no owner");
        let mut moved = c.clone();
        moved.heads[0][0] ^= 1;
        assert!(!moved.verifies(doc), "other heads");
        // A change signature over the same bytes is not a checkpoint, nor the reverse.
        let as_change = ChangeSignature::sign(&id, doc, &[1u8; 32]);
        let single = Checkpoint::sign(&id, &[[1u8; 32]]).expect("sign");
        assert_ne!(as_change.signature, single.signature);
        assert_eq!(Checkpoint::decode(&c.encode()), Some(c.clone()));
        assert!(Checkpoint::sign(&id, &[]).is_none());
        assert!(Checkpoint::sign(&id, &vec![[0u8; 32]; MAX_CHECKPOINT_HEADS + 1]).is_none());
    }

    #[test]
    fn a_checkpoint_travels_for_machine_documents_only_and_damage_is_refused() {
        let id = Identity::generate().expect("key");
        let doc = DocKey::Machine(id.id());
        let checkpoint = Checkpoint::sign(&id, &[[5u8; 32], [6u8; 32]]);
        let m = SignedMessage {
            message: b"automerge".to_vec(),
            signatures: Vec::new(),
            checkpoint: checkpoint.clone(),
        };
        let wire = m.encode(doc);
        let (_, sent) = SignedMessage::decode(doc, &wire).expect("decode");
        assert_eq!(sent.checkpoint(), checkpoint.as_ref());
        // Every cut inside the checkpoint is refused (a cut right before it is a
        // message without one, which is valid).
        let without = SignedMessage {
            checkpoint: None,
            ..m.clone()
        }
        .encode(doc)
        .len();
        for cut in without + 1..wire.len() {
            assert!(
                SignedMessage::decode(doc, &wire[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        // Heads out of order or repeated: refused before any signature check.
        let mut unsorted = wire.clone();
        let first = without + 2;
        unsorted[first..first + 32].copy_from_slice(&[7u8; 32]);
        assert!(SignedMessage::decode(doc, &unsorted).is_err());
        // The mesh never carries one: the same bytes after a mesh message are refused.
        assert_eq!(m.encode(DocKey::Mesh).len(), 4 + 9 + 2);
        let mut mesh = m.encode(DocKey::Mesh);
        mesh.extend_from_slice(&checkpoint.expect("signed").encode());
        assert!(SignedMessage::decode(DocKey::Mesh, &mesh).is_err());
    }
}
