//! Spec bodies from their owner (ALPN `leanspec-peer/read/1`): one connection, one
//! bi-stream, `{project, spec}` one way and the README's text with its hash the other.
//! Members only, decided before a byte is read, and within the same per-member budget
//! as operations (each read costs the owner a file read).

use super::{Shared, exchange, lock};
use crate::ErrorKind;
use crate::identity::MachineId;
use crate::net::{READ_ALPN, close};
use crate::spec::MAX_SPEC_BYTES;
use iroh::endpoint::Connection;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

const KIND_READ: u8 = 7;
const KIND_BODY: u8 = 8;
/// A request names a project id and a spec name: far below this.
const MAX_REQUEST_BYTES: usize = 4 * 1024;
/// The largest answer: a spec at its size cap, JSON-escaped (6 bytes per control
/// character at worst), and the envelope.
const MAX_ANSWER_BYTES: usize = MAX_SPEC_BYTES as usize * 6 + 4 * 1024;

#[derive(Debug, Serialize, Deserialize)]
struct ReadRequest {
    project: String,
    spec: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
enum ReadAnswer {
    Body { file_hash: String, text: String },
    Error { kind: ErrorKind, message: String },
}

/// Why a read did not bring a body.
#[derive(Debug)]
pub(crate) enum ReadFailed {
    /// The owner could not be reached (offline, no address, timeout).
    Unavailable(String),
    /// The owner answered with an error (unknown spec, unreadable file) or refused.
    Answered(ErrorKind, String),
}

/// Owner side: one read per connection.
pub(crate) async fn accept(shared: Arc<Shared>, conn: Connection) {
    if exchange::admit(&shared, &conn, "a read").is_none() {
        return;
    }
    let Some((send, read)) = exchange::request(&conn, MAX_REQUEST_BYTES).await else {
        return;
    };
    let answer = match read {
        Ok((KIND_READ, body)) => match serde_json::from_slice::<ReadRequest>(&body) {
            Ok(req) => answer(&shared, &req),
            Err(e) => ReadAnswer::Error {
                kind: ErrorKind::InvalidArgument,
                message: format!("unreadable request: {e}"),
            },
        },
        Ok(_) => ReadAnswer::Error {
            kind: ErrorKind::InvalidArgument,
            message: "expected a read request".into(),
        },
        Err(e) => {
            conn.close(close::PROTOCOL.into(), e.to_string().as_bytes());
            return;
        }
    };
    let body = serde_json::to_vec(&answer).unwrap_or_default();
    exchange::answer(&conn, send, KIND_BODY, &body).await;
}

fn answer(shared: &Shared, req: &ReadRequest) -> ReadAnswer {
    // The path under the lock; the file read without it.
    let path = lock(&shared.local.machine).body_path(&req.project, &req.spec);
    match path.and_then(|p| crate::machine::read_body(&p)) {
        Ok((text, file_hash)) => ReadAnswer::Body { file_hash, text },
        Err(e) => ReadAnswer::Error {
            kind: e.kind(),
            message: e.to_string(),
        },
    }
}

/// Reader side: the text and hash of `owner`'s spec, checked against each other.
pub(crate) async fn read(
    shared: &Arc<Shared>,
    owner: MachineId,
    project: &str,
    spec: &str,
    timeout: Duration,
) -> Result<(String, String), ReadFailed> {
    let request = serde_json::to_vec(&ReadRequest {
        project: project.to_string(),
        spec: spec.to_string(),
    })
    .map_err(|e| ReadFailed::Answered(ErrorKind::InvalidArgument, e.to_string()))?;
    let exchange = exchange::ask(
        shared,
        owner,
        READ_ALPN,
        (KIND_READ, &request),
        (KIND_BODY, MAX_ANSWER_BYTES),
    );
    let answer = match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(body)) => serde_json::from_slice::<ReadAnswer>(&body)
            .map_err(|e| ReadFailed::Unavailable(format!("unreadable answer: {e}")))?,
        Ok(Err(exchange::Failed::Refused(_, why))) => {
            return Err(ReadFailed::Answered(ErrorKind::Refused, why));
        }
        Ok(Err(exchange::Failed::Other(e))) => return Err(ReadFailed::Unavailable(e)),
        Err(_) => {
            return Err(ReadFailed::Unavailable(format!(
                "no answer within {} s",
                timeout.as_secs_f64()
            )));
        }
    };
    checked(owner, answer)
}

/// What the reader accepts of an owner's answer: a text of at most a spec's size whose
/// hash is the one the owner sent with it.
fn checked(owner: MachineId, answer: ReadAnswer) -> Result<(String, String), ReadFailed> {
    match answer {
        ReadAnswer::Body { file_hash, text } => {
            // A spec is at most 4 MiB where it is read; the frame allows its JSON
            // escaping (up to 6 bytes a byte), not a larger text (issue 38: 24 MiB
            // bodies were accepted and cached).
            if text.len() > MAX_SPEC_BYTES as usize {
                return Err(ReadFailed::Answered(
                    ErrorKind::Refused,
                    format!(
                        "{}'s answer is {} bytes, more than a spec may be ({MAX_SPEC_BYTES} bytes)",
                        owner.short(),
                        text.len()
                    ),
                ));
            }
            // The owner's claim is checked: the hash is of the text it sent.
            let actual = crate::spec::sha256_hex(text.as_bytes());
            if actual != file_hash {
                return Err(ReadFailed::Answered(
                    ErrorKind::Refused,
                    format!("{}'s answer does not match its own hash", owner.short()),
                ));
            }
            Ok((text, file_hash))
        }
        ReadAnswer::Error { kind, message } => Err(ReadFailed::Answered(kind, clean(&message))),
    }
}

/// The owner's text, shown to people: short, no control characters.
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(300).collect()
}

/// The protocol handler for [`READ_ALPN`]: spec bodies for members.
#[derive(Debug, Clone)]
pub(crate) struct ReadProtocol(pub(crate) Arc<Shared>);

impl iroh::protocol::ProtocolHandler for ReadProtocol {
    async fn accept(&self, conn: Connection) -> Result<(), iroh::protocol::AcceptError> {
        accept(self.0.clone(), conn).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 38: a body over a spec's size is refused (nothing is cached), one at it is
    /// taken, and a body that does not match its hash is refused.
    #[test]
    fn the_reader_takes_at_most_a_spec_and_only_with_its_hash() {
        let owner = crate::identity::Identity::generate().expect("key").id();
        let body = |text: String| ReadAnswer::Body {
            file_hash: crate::spec::sha256_hex(text.as_bytes()),
            text,
        };
        let max = MAX_SPEC_BYTES as usize;
        assert!(checked(owner, body("x".repeat(max))).is_ok());
        match checked(owner, body("x".repeat(max + 1))) {
            Err(ReadFailed::Answered(ErrorKind::Refused, why)) => {
                assert!(why.contains("more than a spec may be"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        let forged = ReadAnswer::Body {
            file_hash: crate::spec::sha256_hex(b"other"),
            text: "text".into(),
        };
        assert!(matches!(
            checked(owner, forged),
            Err(ReadFailed::Answered(ErrorKind::Refused, _))
        ));
    }
}
