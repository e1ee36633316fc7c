//! Spec bodies from their owner (ALPN `leanspec-peer/read/1`): one connection, one
//! bi-stream, `{project, spec}` one way and the README's text with its hash the other.
//! Members only, decided before a byte is read, and within the same per-member budget
//! as operations (each read costs the owner a file read).

use super::{Shared, endpoint_addr, lock};
use crate::ErrorKind;
use crate::identity::MachineId;
use crate::net::{READ_ALPN, close, frame};
use crate::node::Refused;
use crate::proto::link;
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
/// How long a reader may take to send its request once connected.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

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
    let reader = MachineId::from_bytes(*conn.remote_id().as_bytes());
    let admitted = link::admit_session(lock(&shared.local.machine).mesh(), shared.me, reader);
    if let Err(refusal) = admitted {
        super::session::refuse(&shared, &conn, reader, refusal);
        return;
    }
    let allowed = lock(&shared.local.op_budget).allow(reader, std::time::Instant::now());
    if !allowed {
        if shared.local.refusals.count(Refused::RateLimited) {
            tracing::warn!(peer = %reader.short(), "refused a read: over the operation rate");
        }
        conn.close(
            close::RATE_LIMITED.into(),
            b"too many requests; try again shortly",
        );
        return;
    }
    let Ok(Ok((mut send, mut recv))) =
        tokio::time::timeout(RECEIVE_TIMEOUT, conn.accept_bi()).await
    else {
        return;
    };
    let read = tokio::time::timeout(
        RECEIVE_TIMEOUT,
        frame::read_max(&mut recv, MAX_REQUEST_BYTES),
    )
    .await;
    let answer = match read {
        Ok(Ok((KIND_READ, body))) => match serde_json::from_slice::<ReadRequest>(&body) {
            Ok(req) => answer(&shared, &req),
            Err(e) => ReadAnswer::Error {
                kind: ErrorKind::InvalidArgument,
                message: format!("unreadable request: {e}"),
            },
        },
        Ok(Ok(_)) => ReadAnswer::Error {
            kind: ErrorKind::InvalidArgument,
            message: "expected a read request".into(),
        },
        Ok(Err(e)) => {
            conn.close(close::PROTOCOL.into(), e.to_string().as_bytes());
            return;
        }
        Err(_) => return,
    };
    let body = serde_json::to_vec(&answer).unwrap_or_default();
    if frame::write(&mut send, KIND_BODY, &body).await.is_ok() {
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
    }
}

fn answer(shared: &Shared, req: &ReadRequest) -> ReadAnswer {
    // The path under the lock; the file read without it.
    let path = lock(&shared.local.machine).body_path(&req.project, &req.spec);
    match path.and_then(|p| crate::machine::read_body(&p, &req.spec)) {
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
    let record = lock(&shared.local.machine)
        .store()
        .peer(owner)
        .map_err(|e| ReadFailed::Unavailable(format!("cannot read the address book: {e}")))?;
    let addr = record.as_ref().and_then(endpoint_addr).ok_or_else(|| {
        ReadFailed::Unavailable(format!("no known address for {}", owner.short()))
    })?;
    let request = serde_json::to_vec(&ReadRequest {
        project: project.to_string(),
        spec: spec.to_string(),
    })
    .map_err(|e| ReadFailed::Answered(ErrorKind::InvalidArgument, e.to_string()))?;
    let exchange = async {
        let conn = shared
            .endpoint
            .connect(addr, READ_ALPN)
            .await
            .map_err(|e| ReadFailed::Unavailable(format!("cannot connect: {e}")))?;
        let answer = async {
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
            frame::write(&mut send, KIND_READ, &request)
                .await
                .map_err(|e| e.to_string())?;
            let _ = send.finish();
            let (kind, body) = frame::read_max(&mut recv, MAX_ANSWER_BYTES)
                .await
                .map_err(|e| format!("no answer: {e}"))?;
            conn.close(0u32.into(), b"done");
            if kind != KIND_BODY {
                return Err("the owner answered with an unexpected frame".to_string());
            }
            serde_json::from_slice::<ReadAnswer>(&body)
                .map_err(|e| format!("unreadable answer: {e}"))
        };
        match answer.await {
            Ok(a) => Ok(a),
            Err(e) => Err(match refused(&conn) {
                Some(why) => ReadFailed::Answered(ErrorKind::Refused, why),
                None => ReadFailed::Unavailable(e),
            }),
        }
    };
    let answer = match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(ReadFailed::Unavailable(format!(
                "no answer within {} s",
                timeout.as_secs_f64()
            )));
        }
    };
    match answer {
        ReadAnswer::Body { file_hash, text } => {
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

/// The owner's refusal text when it closed the connection at accept.
fn refused(conn: &Connection) -> Option<String> {
    let iroh::endpoint::ConnectionError::ApplicationClosed(c) = conn.close_reason()? else {
        return None;
    };
    let code = u32::try_from(c.error_code.into_inner()).ok()?;
    matches!(
        code,
        close::NOT_MEMBER | close::REVOKED | close::RATE_LIMITED
    )
    .then(|| clean(&String::from_utf8_lossy(&c.reason)))
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
