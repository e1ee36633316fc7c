//! The canonical byte form of an operation (docs/protocol.md) and its signature.
//!
//! Invariant: decoding is strict, so for every byte string `b` that decodes,
//! `encode(decode(b)) == b`: one operation has exactly one encoding, and the signature
//! covers exactly the bytes a verifier decoded. The fuzz target `operation` checks it.

use super::{Change, OpBody, Operation};
use crate::identity::{Identity, MachineId};

/// Wire version of the operation encoding: 1, or 2 for an operation that names the
/// account it was made for (see [`Operation::on_behalf_of`]). An operation without one
/// is always encoded as version 1, so older peers still read it.
pub const VERSION: u8 = 2;
/// Longest account name an operation can carry.
pub const MAX_ACCOUNT_BYTES: usize = 64;
/// Prepended to the encoded operation before signing, so a signature over an operation
/// can never be valid for any other message the machine key signs.
pub const DOMAIN: &[u8] = b"leanspec-peer/op/1\n";
/// Largest encoded operation, signature included.
pub const MAX_OP_BYTES: usize = 64 * 1024;
/// Largest project name, spec name or metadata value.
pub const MAX_FIELD_BYTES: usize = 1024;
/// Most entries in one list.
pub const MAX_LIST: usize = 256;
/// Largest execution request payload.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;

const KIND_EDIT: u8 = 1;
const KIND_EXEC: u8 = 2;
const SIGNATURE_BYTES: usize = 64;

/// Why bytes are not an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// More than [`MAX_OP_BYTES`].
    #[error("operation of {0} bytes is larger than the {MAX_OP_BYTES} byte limit")]
    TooLarge(usize),
    /// A version this build does not speak.
    #[error("operation version {0} is not supported (this build speaks {VERSION})")]
    Version(u8),
    /// Anything else: truncated, trailing bytes, bad tag, bad UTF-8, over a bound.
    #[error("malformed operation: {0}")]
    Malformed(&'static str),
}

/// An operation with its author's signature, as sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedOperation {
    /// The operation.
    pub op: Operation,
    /// Ed25519 signature by `op.author` over [`DOMAIN`] ‖ the encoded operation.
    pub signature: [u8; 64],
}

impl Operation {
    /// The canonical encoding (without signature).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(256);
        w.push(if self.on_behalf_of.is_some() { 2 } else { 1 });
        w.push(match self.body {
            OpBody::Edit { .. } => KIND_EDIT,
            OpBody::ExecRequest { .. } => KIND_EXEC,
        });
        w.extend_from_slice(&self.id);
        w.extend_from_slice(self.author.as_bytes());
        w.extend_from_slice(self.target.as_bytes());
        w.extend_from_slice(&self.issued_at_ms.to_be_bytes());
        w.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        match &self.body {
            OpBody::Edit {
                project,
                spec,
                base_file_hash,
                change,
            } => {
                put_str(&mut w, project);
                put_str(&mut w, spec);
                w.extend_from_slice(base_file_hash);
                put_opt_str(&mut w, change.status.as_deref());
                put_opt_str(&mut w, change.priority.as_deref());
                match &change.set_tags {
                    None => w.push(0),
                    Some(tags) => {
                        w.push(1);
                        put_list(&mut w, tags);
                    }
                }
                put_list(&mut w, &change.add_tags);
                put_list(&mut w, &change.remove_tags);
                put_list(&mut w, &change.add_depends_on);
                put_list(&mut w, &change.remove_depends_on);
                put_opt_str(&mut w, change.parent.as_deref());
                put_opt_str(&mut w, change.assignee.as_deref());
            }
            OpBody::ExecRequest { payload } => put_str(&mut w, payload),
        }
        if let Some(account) = &self.on_behalf_of {
            put_str(&mut w, account);
        }
        w
    }

    /// Signs the operation with `identity`, which must be its author.
    pub fn sign(self, identity: &Identity) -> Result<SignedOperation, DecodeError> {
        if identity.id() != self.author {
            return Err(DecodeError::Malformed(
                "the signing key is not the operation's author",
            ));
        }
        let signature = identity.sign(&signed_message(&self.encode()));
        Ok(SignedOperation {
            op: self,
            signature,
        })
    }
}

fn signed_message(encoded: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + encoded.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(encoded);
    m
}

impl SignedOperation {
    /// The wire bytes: the encoded operation, then the 64-byte signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.op.encode();
        b.extend_from_slice(&self.signature);
        b
    }

    /// Decodes wire bytes (does not check the signature: see [`Self::signature_valid`]).
    pub fn decode(bytes: &[u8]) -> Result<SignedOperation, DecodeError> {
        if bytes.len() > MAX_OP_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let split = bytes
            .len()
            .checked_sub(SIGNATURE_BYTES)
            .ok_or(DecodeError::Malformed("shorter than a signature"))?;
        let (body, sig) = bytes.split_at(split);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(sig);
        let op = decode_op(body)?;
        Ok(SignedOperation { op, signature })
    }

    /// Whether the signature is the author's over exactly this operation.
    pub fn signature_valid(&self) -> bool {
        self.op
            .author
            .verify(&signed_message(&self.op.encode()), &self.signature)
    }
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    // Lengths are bounded by the caps checked on decode; an over-long local value
    // still encodes (and the target refuses it), it is never silently cut.
    w.extend_from_slice(&(s.len() as u32).to_be_bytes());
    w.extend_from_slice(s.as_bytes());
}

fn put_opt_str(w: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => w.push(0),
        Some(s) => {
            w.push(1);
            put_str(w, s);
        }
    }
}

fn put_list(w: &mut Vec<u8>, items: &[String]) {
    w.extend_from_slice(&(items.len() as u16).to_be_bytes());
    for i in items {
        put_str(w, i);
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Malformed("truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn string(&mut self, max: usize) -> Result<String, DecodeError> {
        let len = u32::from_be_bytes(self.array()?) as usize;
        if len > max {
            return Err(DecodeError::Malformed("a field is longer than allowed"));
        }
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|_| DecodeError::Malformed("a field is not UTF-8"))
    }

    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Malformed("bad option tag")),
        }
    }

    fn opt_string(&mut self) -> Result<Option<String>, DecodeError> {
        if self.flag()? {
            Ok(Some(self.string(MAX_FIELD_BYTES)?))
        } else {
            Ok(None)
        }
    }

    fn list(&mut self) -> Result<Vec<String>, DecodeError> {
        let n = usize::from(u16::from_be_bytes(self.array()?));
        if n > MAX_LIST {
            return Err(DecodeError::Malformed("a list is longer than allowed"));
        }
        (0..n).map(|_| self.string(MAX_FIELD_BYTES)).collect()
    }
}

fn decode_op(bytes: &[u8]) -> Result<Operation, DecodeError> {
    let mut r = Reader { rest: bytes };
    let version = r.u8()?;
    if version != 1 && version != 2 {
        return Err(DecodeError::Version(version));
    }
    let kind = r.u8()?;
    let id = r.array::<16>()?;
    let author = MachineId::from_bytes(r.array()?);
    let target = MachineId::from_bytes(r.array()?);
    let issued_at_ms = r.i64()?;
    let expires_at_ms = r.i64()?;
    let body = match kind {
        KIND_EDIT => {
            let project = r.string(MAX_FIELD_BYTES)?;
            let spec = r.string(MAX_FIELD_BYTES)?;
            let base_file_hash = r.array::<32>()?;
            let status = r.opt_string()?;
            let priority = r.opt_string()?;
            let set_tags = if r.flag()? { Some(r.list()?) } else { None };
            let change = Change {
                status,
                priority,
                set_tags,
                add_tags: r.list()?,
                remove_tags: r.list()?,
                add_depends_on: r.list()?,
                remove_depends_on: r.list()?,
                parent: r.opt_string()?,
                assignee: r.opt_string()?,
            };
            OpBody::Edit {
                project,
                spec,
                base_file_hash,
                change,
            }
        }
        KIND_EXEC => OpBody::ExecRequest {
            payload: r.string(MAX_PAYLOAD_BYTES)?,
        },
        _ => return Err(DecodeError::Malformed("unknown operation kind")),
    };
    let on_behalf_of = if version == 2 {
        // Present and non-empty: an empty name would have a second encoding (version 1).
        let account = r.string(MAX_ACCOUNT_BYTES)?;
        if account.is_empty() {
            return Err(DecodeError::Malformed("an empty account name"));
        }
        Some(account)
    } else {
        None
    };
    if !r.rest.is_empty() {
        return Err(DecodeError::Malformed("trailing bytes"));
    }
    Ok(Operation {
        id,
        author,
        target,
        issued_at_ms,
        expires_at_ms,
        body,
        on_behalf_of,
    })
}
