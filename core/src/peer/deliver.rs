//! Signed operations on the wire (ALPN `leanspec-peer/op/1`): one connection, one
//! bi-stream, the operation one way and the verdict the other. Nothing is queued: if
//! the target cannot be reached within the timeout the answer is `unavailable`.

use super::{Event, PeerError, Shared, exchange, lock};
use crate::identity::MachineId;
use crate::machine::DocKey;
use crate::net::{self, OP_ALPN, close};
use crate::ops::verify::{self, Received};
use crate::ops::{
    AuditRecord, Direction, OpBody, Operation, Outcome, Reason, SignedOperation, Verdict,
    wire::MAX_OP_BYTES,
};
use iroh::endpoint::Connection;
use std::sync::Arc;
use std::time::Duration;

const KIND_OP: u8 = 5;
const KIND_VERDICT: u8 = 6;
/// A verdict is a short JSON object; anything larger is a broken target.
const MAX_VERDICT_BYTES: usize = 16 * 1024;

pub(crate) fn now_ms() -> i64 {
    crate::time::now_ms()
}

/// Target side: one operation per connection. Members only, and within their rate,
/// decided on the key the connection authenticated, before a byte of the operation is
/// read: a stranger's flood is counted, never audited or stored.
pub(crate) async fn accept(shared: Arc<Shared>, conn: Connection) {
    let Some(sender) = exchange::admit(&shared, &conn, "an operation") else {
        return;
    };
    // The frame header is 2 bytes on top of the operation.
    let Some((send, read)) = exchange::request(&conn, MAX_OP_BYTES + 2).await else {
        return;
    };
    let received = match read {
        Ok((KIND_OP, body)) => receive_local(&shared, Some(sender), &body),
        Err(net::FrameError::TooLarge(n)) => refuse_undecodable(
            &shared,
            sender,
            Reason::TooLarge,
            format!(
                "the operation frame is {n} bytes, over the {} byte limit",
                MAX_OP_BYTES + 2
            ),
        ),
        Ok(_) => refuse_undecodable(
            &shared,
            sender,
            Reason::Malformed,
            "expected an operation frame".into(),
        ),
        Err(e) => refuse_undecodable(&shared, sender, Reason::Malformed, e.to_string()),
    };
    let body = serde_json::to_vec(&received.verdict).unwrap_or_default();
    exchange::answer(&conn, send, KIND_VERDICT, &body).await;
}

fn refuse_undecodable(
    shared: &Shared,
    sender: MachineId,
    reason: Reason,
    message: String,
) -> Received {
    let verdict = Verdict::rejected(String::new(), reason, message);
    let m = lock(&shared.local.machine);
    verify::append(
        &m,
        AuditRecord::undecodable(Some(sender.to_string()), &verdict, now_ms()),
    );
    drop(m);
    tracing::warn!(peer = %sender.short(), "refused an operation: {}", verdict.message);
    shared.emit(Event::EditReceived {
        machine: sender.to_string(),
        op_id: String::new(),
        project: String::new(),
        spec: String::new(),
        result: Outcome::Rejected.as_str().into(),
        reason: verdict.message.clone(),
    });
    Received {
        verdict,
        op: None,
        changes: Vec::new(),
    }
}

/// Runs the verification pipeline on this machine and tells the host what happened.
pub(crate) fn receive_local(
    shared: &Arc<Shared>,
    sender: Option<MachineId>,
    bytes: &[u8],
) -> Received {
    let received = {
        let mut m = lock(&shared.local.machine);
        verify::receive(&mut m, sender, bytes, now_ms())
    };
    let v = &received.verdict;
    match &received.op {
        Some(op) => {
            if v.result == Outcome::Rejected {
                tracing::warn!(author = %op.author.short(), op = %op.id_hex(), "refused an operation: {}", v.message);
            } else {
                tracing::info!(author = %op.author.short(), op = %op.id_hex(), "{} an operation", v.result.as_str());
            }
            match &op.body {
                // The machine that delivered it (authenticated by its connection),
                // not the author the operation claims: a refused operation's claim is
                // unproven.
                OpBody::Edit { project, spec, .. } => shared.emit(Event::EditReceived {
                    machine: sender.unwrap_or(op.author).to_string(),
                    op_id: op.id_hex(),
                    project: project.clone(),
                    spec: spec.clone(),
                    result: v.result.as_str().into(),
                    reason: if v.result == Outcome::Rejected {
                        v.message.clone()
                    } else {
                        String::new()
                    },
                }),
                OpBody::ExecRequest { payload } if v.result == Outcome::Delivered => {
                    shared.emit(Event::ExecRequest {
                        machine: op.author.to_string(),
                        op_id: op.id_hex(),
                        payload: payload.clone(),
                    });
                }
                OpBody::ExecRequest { .. } => {}
            }
        }
        None => {
            let who = sender.map(|s| s.to_string()).unwrap_or_default();
            tracing::warn!(peer = %who, "refused an operation: {}", v.message);
            shared.emit(Event::EditReceived {
                machine: who,
                op_id: String::new(),
                project: String::new(),
                spec: String::new(),
                result: v.result.as_str().into(),
                reason: v.message.clone(),
            });
        }
    }
    if !received.changes.is_empty() {
        shared.announce(DocKey::Machine(shared.me), &received.changes);
    }
    received
}

/// Author side: signs `op`, sends it to its target (or checks it here when the target
/// is this machine), records the answer in the audit log.
pub(crate) async fn send(
    shared: &Arc<Shared>,
    op: Operation,
    timeout: Duration,
) -> Result<Verdict, PeerError> {
    let signed = {
        let m = lock(&shared.local.machine);
        op.sign(m.identity())
            .map_err(|e| PeerError::Invalid(e.to_string()))?
    };
    let verdict = deliver(shared, &signed, timeout).await;
    let m = lock(&shared.local.machine);
    verify::append(
        &m,
        AuditRecord::of(&signed.op, Direction::Sent, &verdict, now_ms()),
    );
    Ok(verdict)
}

/// Delivers a signed operation and waits for the verdict (no audit on this side: see
/// [`send`]). Exposed for tests that send hand-made operations.
pub(crate) async fn deliver(
    shared: &Arc<Shared>,
    signed: &SignedOperation,
    timeout: Duration,
) -> Verdict {
    deliver_bytes(
        shared,
        signed.op.target,
        &signed.op.id_hex(),
        &signed.to_bytes(),
        timeout,
    )
    .await
}

/// Delivers raw bytes to `target` (tests use it for tampered operations).
pub(crate) async fn deliver_bytes(
    shared: &Arc<Shared>,
    target: MachineId,
    op_id: &str,
    bytes: &[u8],
    timeout: Duration,
) -> Verdict {
    if target == shared.me {
        return receive_local(shared, Some(shared.me), bytes).verdict;
    }
    let exchange = exchange::ask(
        shared,
        target,
        OP_ALPN,
        (KIND_OP, bytes),
        (KIND_VERDICT, MAX_VERDICT_BYTES),
    );
    let answer = match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(body)) => serde_json::from_slice::<Verdict>(&body)
            .map_err(|e| exchange::Failed::Other(format!("unreadable answer: {e}"))),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            return Verdict::unavailable(
                op_id.to_string(),
                format!(
                    "{} did not answer within {} s; nothing was queued",
                    target.short(),
                    timeout.as_secs_f64()
                ),
            );
        }
    };
    match answer {
        Ok(v) => v,
        Err(exchange::Failed::Refused(code, why)) => Verdict::rejected(
            op_id.to_string(),
            match code {
                close::NOT_MEMBER => Reason::NotMember,
                close::REVOKED => Reason::Revoked,
                _ => Reason::RateLimited,
            },
            format!("{} refused the connection: {why}", target.short()),
        ),
        Err(exchange::Failed::Other(e)) => Verdict::unavailable(
            op_id.to_string(),
            format!("{} is unreachable: {e}", target.short()),
        ),
    }
}

/// The protocol handler for [`OP_ALPN`](crate::net::OP_ALPN): signed operations from
/// members (anyone else is refused before its bytes are read).
#[derive(Debug, Clone)]
pub(crate) struct OpProtocol(pub(crate) Arc<Shared>);

impl iroh::protocol::ProtocolHandler for OpProtocol {
    async fn accept(&self, conn: Connection) -> Result<(), iroh::protocol::AcceptError> {
        accept(self.0.clone(), conn).await;
        Ok(())
    }
}
