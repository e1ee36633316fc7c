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
//! ```

use crate::identity::{Identity, MachineId};
use crate::machine::DocKey;

/// Prepended to what is signed, so a change signature is never valid for anything else
/// the machine key signs (operations use their own domain).
const DOMAIN: &[u8] = b"leanspec-peer/change/v1\0";

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

    /// The stored form: signer, then signature.
    pub(crate) fn to_stored(self) -> [u8; 96] {
        let mut b = [0u8; 96];
        b[..32].copy_from_slice(self.signer.as_bytes());
        b[32..].copy_from_slice(&self.signature);
        b
    }

    /// From the stored form (`None` if it is not 96 bytes).
    pub(crate) fn from_stored(b: &[u8]) -> Option<ChangeSignature> {
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
}

/// Signatures as decoded from the wire: matched to changes by hash prefix.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceivedSignatures(Vec<([u8; PREFIX], ChangeSignature)>);

impl ReceivedSignatures {
    /// The signature sent for the change with this hash, if any.
    pub fn for_hash(&self, hash: &[u8; 32]) -> impl Iterator<Item = &ChangeSignature> {
        self.0
            .iter()
            .filter(move |(p, _)| p[..] == hash[..PREFIX])
            .map(|(_, s)| s)
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
        if !r.rest().is_empty() {
            return Err(DecodeError::Malformed("trailing bytes"));
        }
        Ok((message, ReceivedSignatures(out)))
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
        };
        assert_eq!(m.encode(doc).len(), 4 + 2 + 72);
    }
}
