//! One bucket object: its name, and its bytes sealed for the mesh.
//!
//! Name: `<machine id hex>/<seq, 20 digits>.snap|chunk` under the bucket's prefix.
//!
//! Bytes: an age file (one ssh-ed25519 recipient per current member, whose key is the
//! member's machine key) whose plaintext is
//!
//! ```text
//! 6 bytes   "lspb1\n"
//! 32 bytes  writer machine id
//! u64 BE    sequence number
//! u8        kind (1 snapshot, 2 chunk)
//! i64 BE    written at (unix seconds)
//! u16 BE    number of sections, each:
//!             u16 BE length + document key (`DocKey::to_bytes`)
//!             u32 BE length + signed sync message (`authorship::SignedMessage`)
//! 64 bytes  ed25519 signature by the writer over DOMAIN ‖ everything above
//! ```
//!
//! The signature and the number inside make the name honest: a reader refuses an object
//! whose writer, number or kind differs from its name (moved, replayed or reordered by
//! whoever controls the bucket), and one that does not decrypt or verify (tampered).

use crate::identity::{Identity, MachineId};
use crate::machine::DocKey;
use std::io::{Read, Write};

const MAGIC: &[u8; 6] = b"lspb1\n";
/// Prepended to what the writer signs: never valid for anything else its key signs.
const DOMAIN: &[u8] = b"leanspec-peer/bucket-object/v1\0";
/// Most sections an object holds (this machine's document and the mesh).
const MAX_SECTIONS: usize = 8;

/// What an object holds relative to the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Whole documents: a reader needs nothing older.
    Snapshot,
    /// Changes since the object before.
    Chunk,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Snapshot => 1,
            Kind::Chunk => 2,
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Kind::Snapshot => "snap",
            Kind::Chunk => "chunk",
        }
    }
}

/// The part of an object's path after the bucket prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectName {
    /// The writer, whose prefix it is under.
    pub writer: MachineId,
    /// Its number in the writer's sequence (from 1).
    pub seq: u64,
    /// Snapshot or chunk.
    pub kind: Kind,
}

impl ObjectName {
    /// `<writer>/<seq>.<kind>`.
    pub fn path(&self) -> String {
        format!("{}/{:020}.{}", self.writer, self.seq, self.kind.extension())
    }

    /// The object's file name (`<seq>.<kind>`), under the writer's folder; `None` for
    /// anything else (it is ignored).
    pub fn parse(writer: MachineId, file: &str) -> Option<ObjectName> {
        let (seq, ext) = file.split_once('.')?;
        if seq.len() != 20 || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let kind = match ext {
            "snap" => Kind::Snapshot,
            "chunk" => Kind::Chunk,
            _ => return None,
        };
        Some(ObjectName {
            writer,
            seq: seq.parse().ok()?,
            kind,
        })
    }
}

/// What an object carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    /// Its name (writer, number, kind), also signed inside.
    pub name: ObjectName,
    /// When it was written (unix seconds, the writer's clock).
    pub written_at: i64,
    /// `(document, signed sync message)`.
    pub sections: Vec<(DocKey, Vec<u8>)>,
}

/// Why an object was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectError {
    /// None of the object's recipients is this machine.
    #[error("not a recipient of this bucket's objects")]
    NotRecipient,
    /// It does not decrypt: altered, truncated or not an age file.
    #[error("the object does not decrypt (altered or truncated): {0}")]
    Undecryptable(String),
    /// Decrypted, but not an object of ours.
    #[error("malformed object: {0}")]
    Malformed(&'static str),
    /// Its writer did not sign it.
    #[error("the object's signature is not its writer's")]
    BadSignature,
    /// Signed by its writer, but under another name: replayed or moved.
    #[error("the object says it is {inside}, but is stored as {name}: replayed or moved")]
    Misnamed {
        /// What its name says.
        name: String,
        /// What it says inside.
        inside: String,
    },
    /// Could not be encrypted (no recipients) or decrypted with this machine's key.
    #[error("cannot encrypt or decrypt: {0}")]
    Encrypt(String),
}

/// The age recipient of a machine: its ed25519 key in OpenSSH's `ssh-ed25519` form.
fn recipient(id: MachineId) -> Option<age::ssh::Recipient> {
    let text = format!(
        "ssh-ed25519 {}",
        data_encoding::BASE64.encode(&ssh_public_key(id))
    );
    text.parse().ok()
}

/// OpenSSH's wire form of an ed25519 public key.
fn ssh_public_key(id: MachineId) -> Vec<u8> {
    let mut b = Vec::with_capacity(51);
    b.extend_from_slice(&11u32.to_be_bytes());
    b.extend_from_slice(b"ssh-ed25519");
    b.extend_from_slice(&32u32.to_be_bytes());
    b.extend_from_slice(id.as_bytes());
    b
}

/// This machine's age identity, from its machine key: the key in OpenSSH's private key
/// format (unencrypted), as age reads an `~/.ssh/id_ed25519` file.
fn age_identity(identity: &Identity) -> Option<age::ssh::Identity> {
    let string = |b: &mut Vec<u8>, s: &[u8]| {
        b.extend_from_slice(&(s.len() as u32).to_be_bytes());
        b.extend_from_slice(s);
    };
    let public = ssh_public_key(identity.id());
    let mut pair = Vec::with_capacity(64);
    pair.extend_from_slice(&identity.secret_bytes());
    pair.extend_from_slice(identity.id().as_bytes());
    let mut private = Vec::new();
    private.extend_from_slice(&[0x6c, 0x73, 0x70, 0x62, 0x6c, 0x73, 0x70, 0x62]);
    string(&mut private, b"ssh-ed25519");
    string(&mut private, identity.id().as_bytes());
    string(&mut private, &pair);
    string(&mut private, b"");
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }
    let mut file = b"openssh-key-v1\0".to_vec();
    string(&mut file, b"none");
    string(&mut file, b"none");
    string(&mut file, b"");
    file.extend_from_slice(&1u32.to_be_bytes());
    string(&mut file, &public);
    string(&mut file, &private);
    let encoded = data_encoding::BASE64.encode(&file);
    let mut pem = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for line in encoded.as_bytes().chunks(70) {
        pem.push_str(std::str::from_utf8(line).ok()?);
        pem.push('\n');
    }
    pem.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    age::ssh::Identity::from_buffer(pem.as_bytes(), None).ok()
}

fn plaintext(c: &Contents) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(c.name.writer.as_bytes());
    b.extend_from_slice(&c.name.seq.to_be_bytes());
    b.push(c.name.kind.byte());
    b.extend_from_slice(&c.written_at.to_be_bytes());
    let n = c.sections.len().min(MAX_SECTIONS);
    b.extend_from_slice(&(n as u16).to_be_bytes());
    for (key, body) in c.sections.iter().take(n) {
        let key = key.to_bytes();
        b.extend_from_slice(&(key.len() as u16).to_be_bytes());
        b.extend_from_slice(&key);
        b.extend_from_slice(&(body.len() as u32).to_be_bytes());
        b.extend_from_slice(body);
    }
    b
}

fn signed(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + body.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(body);
    m
}

/// Seals `contents` for `recipients` (the current members), signed by `identity` (its
/// writer).
pub fn seal(
    identity: &Identity,
    recipients: &[MachineId],
    contents: &Contents,
) -> Result<Vec<u8>, ObjectError> {
    let mut body = plaintext(contents);
    let signature = identity.sign(&signed(&body));
    body.extend_from_slice(&signature);
    let keys: Vec<age::ssh::Recipient> =
        recipients.iter().filter_map(|id| recipient(*id)).collect();
    let encryptor = age::Encryptor::with_recipients(keys.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| ObjectError::Encrypt(e.to_string()))?;
    let mut out = Vec::with_capacity(body.len() + 512);
    let mut w = encryptor
        .wrap_output(&mut out)
        .map_err(|e| ObjectError::Encrypt(e.to_string()))?;
    w.write_all(&body)
        .and_then(|_| w.finish().map(|_| ()))
        .map_err(|e| ObjectError::Encrypt(e.to_string()))?;
    Ok(out)
}

/// Opens an object found at `name`: decrypts it with this machine's key, checks its
/// writer's signature and that it is what its name says. At most `max` plaintext bytes
/// are read.
pub fn open(
    identity: &Identity,
    name: &ObjectName,
    bytes: &[u8],
    max: u64,
) -> Result<Contents, ObjectError> {
    let decryptor =
        age::Decryptor::new(bytes).map_err(|e| ObjectError::Undecryptable(e.to_string()))?;
    let me = age_identity(identity).ok_or(ObjectError::Encrypt(
        "this machine's key has no age form".into(),
    ))?;
    let mut reader = decryptor
        .decrypt(std::iter::once(&me as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => ObjectError::NotRecipient,
            e => ObjectError::Undecryptable(e.to_string()),
        })?;
    let mut body = Vec::new();
    reader
        .by_ref()
        .take(max)
        .read_to_end(&mut body)
        .map_err(|e| ObjectError::Undecryptable(e.to_string()))?;
    let contents = parse(&body)?;
    let (signed_part, signature) = body.split_at(body.len() - 64);
    let mut sig = [0u8; 64];
    sig.copy_from_slice(signature);
    if !contents.name.writer.verify(&signed(signed_part), &sig) {
        return Err(ObjectError::BadSignature);
    }
    if contents.name != *name {
        return Err(ObjectError::Misnamed {
            name: name.path(),
            inside: contents.name.path(),
        });
    }
    Ok(contents)
}

/// Parses a plaintext (signature not checked).
pub fn parse(b: &[u8]) -> Result<Contents, ObjectError> {
    let mut r = crate::wire::Reader::new(b, ObjectError::Malformed("ends early"));
    if r.bytes(MAGIC.len())? != MAGIC {
        return Err(ObjectError::Malformed("not a leanspec-peer bucket object"));
    }
    let writer = MachineId::from_bytes(r.take::<32>()?);
    let seq = u64::from_be_bytes(r.take::<8>()?);
    let kind = match r.take::<1>()?[0] {
        1 => Kind::Snapshot,
        2 => Kind::Chunk,
        _ => return Err(ObjectError::Malformed("unknown kind")),
    };
    let written_at = i64::from_be_bytes(r.take::<8>()?);
    let n = u16::from_be_bytes(r.take::<2>()?) as usize;
    if n > MAX_SECTIONS {
        return Err(ObjectError::Malformed("too many sections"));
    }
    let mut sections = Vec::with_capacity(n);
    for _ in 0..n {
        let len = u16::from_be_bytes(r.take::<2>()?) as usize;
        let key = DocKey::from_bytes(r.bytes(len)?)
            .ok_or(ObjectError::Malformed("unknown document key"))?;
        let len = u32::from_be_bytes(r.take::<4>()?) as usize;
        sections.push((key, r.bytes(len)?.to_vec()));
    }
    if r.rest().len() != 64 {
        return Err(ObjectError::Malformed("no signature at the end"));
    }
    Ok(Contents {
        name: ObjectName { writer, seq, kind },
        written_at,
        sections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(writer: MachineId, seq: u64) -> Contents {
        Contents {
            name: ObjectName {
                writer,
                seq,
                kind: Kind::Chunk,
            },
            written_at: 1_700_000_000,
            sections: vec![
                (DocKey::Machine(writer), b"message".to_vec()),
                (DocKey::Mesh, b"mesh".to_vec()),
            ],
        }
    }

    #[test]
    fn members_open_what_a_member_sealed_and_others_cannot() {
        let (a, b, c) = (
            Identity::generate().expect("key"),
            Identity::generate().expect("key"),
            Identity::generate().expect("key"),
        );
        let sealed = seal(&a, &[a.id(), b.id()], &contents(a.id(), 3)).expect("seal");
        let name = contents(a.id(), 3).name;
        assert_eq!(open(&b, &name, &sealed, u64::MAX), Ok(contents(a.id(), 3)));
        assert_eq!(open(&a, &name, &sealed, u64::MAX), Ok(contents(a.id(), 3)));
        assert_eq!(
            open(&c, &name, &sealed, u64::MAX),
            Err(ObjectError::NotRecipient)
        );
        // The plaintext is nowhere in the sealed bytes.
        assert!(!sealed.windows(7).any(|w| w == b"message"));
    }

    #[test]
    fn replayed_moved_tampered_and_forged_objects_are_refused() {
        let (a, b) = (
            Identity::generate().expect("key"),
            Identity::generate().expect("key"),
        );
        let sealed = seal(&a, &[a.id(), b.id()], &contents(a.id(), 3)).expect("seal");
        let mut later = contents(a.id(), 9).name;
        assert!(matches!(
            open(&b, &later, &sealed, u64::MAX),
            Err(ObjectError::Misnamed { .. })
        ));
        later.seq = 3;
        later.kind = Kind::Snapshot;
        assert!(matches!(
            open(&b, &later, &sealed, u64::MAX),
            Err(ObjectError::Misnamed { .. })
        ));
        // Under another writer's folder.
        let moved = ObjectName {
            writer: b.id(),
            ..contents(a.id(), 3).name
        };
        assert!(matches!(
            open(&b, &moved, &sealed, u64::MAX),
            Err(ObjectError::Misnamed { .. })
        ));
        // A flipped byte in the payload.
        let mut tampered = sealed.clone();
        let last = tampered.len() - 20;
        tampered[last] ^= 1;
        assert!(matches!(
            open(&b, &contents(a.id(), 3).name, &tampered, u64::MAX),
            Err(ObjectError::Undecryptable(_))
        ));
        // Truncated.
        assert!(
            open(
                &b,
                &contents(a.id(), 3).name,
                &sealed[..sealed.len() / 2],
                u64::MAX
            )
            .is_err()
        );
        // B seals an object that claims to be A's: the signature is B's.
        let forged = seal(&b, &[a.id(), b.id()], &contents(a.id(), 3)).expect("seal");
        assert_eq!(
            open(&a, &contents(a.id(), 3).name, &forged, u64::MAX),
            Err(ObjectError::BadSignature)
        );
    }

    #[test]
    fn names_print_and_parse_back() {
        let id = Identity::generate().expect("key").id();
        let n = ObjectName {
            writer: id,
            seq: 42,
            kind: Kind::Snapshot,
        };
        let path = n.path();
        let file = path.rsplit('/').next().expect("file");
        assert_eq!(ObjectName::parse(id, file), Some(n));
        assert_eq!(ObjectName::parse(id, "42.snap"), None);
        assert_eq!(ObjectName::parse(id, "00000000000000000042.tmp"), None);
    }
}
