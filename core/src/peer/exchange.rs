//! One request, one answer, one connection: the shape of the operation and read
//! protocols. The owner side admits members within their budget before reading a byte;
//! the asking side dials from the address book and tells a refusal at accept (a close
//! code and the owner's reason) from a failure to reach it.

use super::{Shared, endpoint_addr, lock};
use crate::identity::MachineId;
use crate::net::{FrameError, close, frame};
use crate::node::Refused;
use crate::proto::link;
use iroh::endpoint::{Connection, SendStream};
use std::sync::Arc;
use std::time::Duration;

/// How long an asker may take to send its request once connected.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Owner side: the asker if it is a member within its budget; otherwise the connection
/// is closed with the close code that says why (and counted), and `None`.
pub(crate) fn admit(shared: &Arc<Shared>, conn: &Connection, what: &str) -> Option<MachineId> {
    let asker = MachineId::from_bytes(*conn.remote_id().as_bytes());
    let admitted = link::admit_session(lock(&shared.local.machine).mesh(), shared.me, asker);
    if let Err(refusal) = admitted {
        super::session::refuse(shared, conn, asker, refusal);
        return None;
    }
    let wait = {
        let mut budget = lock(&shared.local.op_budget);
        if budget.allow(asker, std::time::Instant::now()) {
            None
        } else {
            Some((budget.retry_after(asker), budget.rate()))
        }
    };
    let (wait, (burst, per_second)) = match wait {
        None => return Some(asker),
        Some(w) => w,
    };
    let reason = format!(
        "too many requests: {per_second} per second after a burst of {burst}; try again in {} ms",
        wait.as_millis().max(1)
    );
    if shared.local.refusals.count(Refused::RateLimited) {
        tracing::warn!(peer = %asker.short(), "refused {what}: {reason}");
    }
    conn.close(close::RATE_LIMITED.into(), reason.as_bytes());
    None
}

/// Owner side: the request's frame (at most `max` bytes of body) with the stream to
/// answer on; `None` when the asker sent nothing in time.
pub(crate) async fn request(
    conn: &Connection,
    max: usize,
) -> Option<(SendStream, Result<(u8, Vec<u8>), FrameError>)> {
    let Ok(Ok((send, mut recv))) = tokio::time::timeout(RECEIVE_TIMEOUT, conn.accept_bi()).await
    else {
        return None;
    };
    let read = tokio::time::timeout(RECEIVE_TIMEOUT, frame::read_max(&mut recv, max)).await;
    Some((send, read.ok()?))
}

/// Owner side: sends the answer, then lets it reach the asker before the connection
/// goes.
pub(crate) async fn answer(conn: &Connection, mut send: SendStream, kind: u8, body: &[u8]) {
    if frame::write(&mut send, kind, body).await.is_ok() {
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
    }
}

/// Why an exchange did not bring an answer.
#[derive(Debug)]
pub(crate) enum Failed {
    /// The owner closed the connection at accept: the close code and its reason (short,
    /// no control characters: it is shown to people).
    Refused(u32, String),
    /// It could not be reached, or the exchange broke.
    Other(String),
}

/// Asking side: sends one `kind` frame to `target` on `alpn` and returns the answer's
/// body if it is an `answer_kind` frame of at most `max_answer` bytes. Callers bound
/// the whole exchange with their own timeout.
pub(crate) async fn ask(
    shared: &Arc<Shared>,
    target: MachineId,
    alpn: &[u8],
    (kind, bytes): (u8, &[u8]),
    (answer_kind, max_answer): (u8, usize),
) -> Result<Vec<u8>, Failed> {
    let record = lock(&shared.local.machine)
        .store()
        .peer(target)
        .map_err(|e| Failed::Other(format!("cannot read the address book here: {e}")))?;
    let addr = record.as_ref().and_then(endpoint_addr).ok_or_else(|| {
        Failed::Other(format!(
            "no known address for {}: pair with it first (`leanspec-peer invite` / `join`)",
            target.short()
        ))
    })?;
    let conn = shared
        .endpoint
        .connect(addr, alpn)
        .await
        .map_err(|e| Failed::Other(format!("cannot connect: {e}")))?;
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        frame::write(&mut send, kind, bytes)
            .await
            .map_err(|e| e.to_string())?;
        let _ = send.finish();
        let (got, body) = frame::read_max(&mut recv, max_answer)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        conn.close(0u32.into(), b"done");
        if got != answer_kind {
            return Err("the other machine answered with an unexpected frame".to_string());
        }
        Ok(body)
    };
    exchange.await.map_err(|e| match refused_at_accept(&conn) {
        Some((code, why)) => Failed::Refused(code, why),
        None => Failed::Other(e),
    })
}

fn refused_at_accept(conn: &Connection) -> Option<(u32, String)> {
    let iroh::endpoint::ConnectionError::ApplicationClosed(c) = conn.close_reason()? else {
        return None;
    };
    let code = u32::try_from(c.error_code.into_inner()).ok()?;
    matches!(
        code,
        close::NOT_MEMBER | close::REVOKED | close::RATE_LIMITED
    )
    .then(|| {
        let why = String::from_utf8_lossy(&c.reason)
            .chars()
            .filter(|c| !c.is_control())
            .take(300)
            .collect();
        (code, why)
    })
}
