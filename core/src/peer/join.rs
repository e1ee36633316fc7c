//! Pairing ([`JOIN_ALPN`]): the inviter's side admits a machine that presents an
//! invitation secret (the decision is [`admission::admit`], pure); the joiner's side
//! sends the request and adopts the inviter's mesh.

use super::Event;
use super::session::{CONNECT_TIMEOUT, LinkError, machine_id};
use super::{Joined, PeerError, Shared, endpoint_addr, lock, spawn_dialers};
use crate::authorship::ChangeSignature;
use crate::identity::MachineId;
use crate::machine::{DocKey, now_secs};
use crate::net::{JOIN_ALPN, Ticket, frame};
use crate::proto::admission;
use crate::store::PeerRecord;
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const KIND_JOIN_REQUEST: u8 = 2;
const KIND_JOIN_RESPONSE: u8 = 3;

/// Largest join request accepted (a secret, a label and a few addresses).
const MAX_REQUEST: usize = 4096;

/// The protocol handler for [`JOIN_ALPN`]: open to any machine (it holds no membership
/// yet); what it may do is bounded by [`admission::admit`] and [`MAX_REQUEST`].
#[derive(Debug, Clone)]
pub(crate) struct JoinProtocol(pub(crate) Arc<Shared>);

impl ProtocolHandler for JoinProtocol {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        accept_join(self.0.clone(), conn).await;
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct JoinRequest {
    secret: String,
    label: String,
    addrs: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct JoinResponse {
    ok: bool,
    error: Option<String>,
    /// The mesh document (base64 of a full save).
    mesh: Option<String>,
    /// Signatures of the mesh's changes, each hex of hash ‖ signer ‖ signature, so the
    /// joiner can forward them (absent from inviters older than signatures).
    #[serde(default)]
    signatures: Vec<String>,
}

/// Inviter side of pairing.
async fn accept_join(shared: Arc<Shared>, conn: Connection) {
    let joiner = machine_id(&conn);
    let Ok(Ok((mut send, mut recv))) =
        tokio::time::timeout(CONNECT_TIMEOUT, conn.accept_bi()).await
    else {
        return;
    };
    // Anyone may open this ALPN: a larger announced frame is refused before its body is
    // read or allocated.
    let read = frame::read_max(&mut recv, MAX_REQUEST);
    let request = match tokio::time::timeout(CONNECT_TIMEOUT, read).await {
        Ok(Ok((KIND_JOIN_REQUEST, body))) => serde_json::from_slice::<JoinRequest>(&body).ok(),
        _ => None,
    };
    let response = match request {
        None => JoinResponse {
            ok: false,
            error: Some(admission::Refusal::Malformed.to_string()),
            mesh: None,
            signatures: Vec::new(),
        },
        Some(req) => match admit(&shared, joiner, &req) {
            Ok((mesh, signatures)) => JoinResponse {
                ok: true,
                error: None,
                mesh: Some(data_encoding::BASE64.encode(&mesh)),
                signatures: signatures
                    .iter()
                    .map(|(h, s)| {
                        let mut b = h.to_vec();
                        b.extend_from_slice(&s.to_stored());
                        hex::encode(b)
                    })
                    .collect(),
            },
            Err(e) => {
                let reason = e.to_string();
                if shared.local.refusals.count(crate::node::Refused::Join) {
                    tracing::warn!(machine = %joiner, "refused to pair: {reason}");
                    shared.emit(Event::Refused {
                        machine: joiner.to_string(),
                        reason: reason.clone(),
                    });
                }
                JoinResponse {
                    ok: false,
                    error: Some(reason),
                    mesh: None,
                    signatures: Vec::new(),
                }
            }
        },
    };
    let ok = response.ok;
    if let Ok(body) = serde_json::to_vec(&response) {
        let _ = frame::write(&mut send, KIND_JOIN_RESPONSE, &body).await;
        let _ = send.finish();
        let _ = tokio::time::timeout(CONNECT_TIMEOUT, send.stopped()).await;
    }
    if ok {
        shared.announce(DocKey::Mesh, &[crate::machine::DocChange::MeshChanged]);
    }
}

/// Why the inviter did not admit a joiner: a refusal (the joiner is told why) or a
/// failure to record the pairing here.
#[derive(Debug, thiserror::Error)]
enum AdmitError {
    #[error(transparent)]
    Refused(#[from] admission::Refusal),
    #[error("the inviter could not record the pairing: {0}")]
    Store(#[from] crate::machine::Error),
}

impl From<crate::store::StoreError> for AdmitError {
    fn from(e: crate::store::StoreError) -> AdmitError {
        AdmitError::Store(e.into())
    }
}

/// Decides the join ([`admission::admit`]) and stores what it decided: the invitation's
/// use, the new member, the joiner's addresses. Returns the mesh to send.
type MeshWithSignatures = (Vec<u8>, Vec<([u8; 32], ChangeSignature)>);

fn admit(
    shared: &Shared,
    joiner: MachineId,
    req: &JoinRequest,
) -> Result<MeshWithSignatures, AdmitError> {
    let key = admission::invitation_key(&req.secret)?;
    let mut m = lock(&shared.local.machine);
    let stored = m.store().invite(&key)?;
    let now = now_secs().max(0) as u64;
    let admitted = admission::admit(stored.as_ref(), m.mesh(), joiner, &req.label, now)?;
    m.store().put_invite(&key, &admitted.invite)?;
    m.add_member(joiner, &admitted.label, admitted.invite.ephemeral_after)?;
    let mut record = m
        .store()
        .peer(joiner)?
        .unwrap_or_else(|| PeerRecord::new(joiner));
    for a in req.addrs.iter().take(16) {
        if a.parse::<std::net::SocketAddr>().is_ok() && !record.addrs.contains(a) {
            record.addrs.push(a.clone());
        }
    }
    m.store().put_peer(&record)?;
    let signatures = m.mesh_signatures()?;
    Ok((m.mesh_bytes(), signatures))
}

/// Joiner side of pairing.
pub(crate) async fn join(shared: &Arc<Shared>, ticket: &Ticket) -> Result<Joined, PeerError> {
    let inviter = ticket.machine()?;
    if inviter == shared.me {
        return Err(PeerError::Invalid(
            "this ticket was issued by this machine; use it on another one".into(),
        ));
    }
    let record = PeerRecord {
        addrs: ticket.addrs.clone(),
        relays: ticket.relays.clone(),
        ..PeerRecord::new(inviter)
    };
    let addr = endpoint_addr(&record)
        .ok_or_else(|| PeerError::Invalid("the ticket has no usable address".into()))?;
    let label = lock(&shared.local.machine).label();
    let addrs = shared.advertised_addrs();
    let request = serde_json::to_vec(&JoinRequest {
        secret: ticket.secret.clone(),
        label,
        addrs,
    })
    .map_err(|e| PeerError::Invalid(e.to_string()))?;
    let unreachable = |reason: LinkError| PeerError::Unreachable {
        machine: inviter.short(),
        reason: reason.to_string(),
    };
    let exchange = async {
        let conn = shared.endpoint.connect(addr, JOIN_ALPN).await?;
        let (mut send, mut recv) = conn.open_bi().await?;
        frame::write(&mut send, KIND_JOIN_REQUEST, &request).await?;
        let _ = send.finish();
        let (kind, body) = frame::read(&mut recv).await?;
        conn.close(0u32.into(), b"done");
        if kind != KIND_JOIN_RESPONSE {
            return Err(LinkError::Protocol("unexpected answer"));
        }
        Ok(serde_json::from_slice::<JoinResponse>(&body)?)
    };
    let response = tokio::time::timeout(CONNECT_TIMEOUT * 2, exchange)
        .await
        .map_err(|_| unreachable(LinkError::TimedOut))?
        .map_err(unreachable)?;
    if !response.ok {
        return Err(PeerError::JoinRefused(
            response.error.unwrap_or_else(|| "no reason given".into()),
        ));
    }
    let mesh = response
        .mesh
        .and_then(|b| data_encoding::BASE64.decode(b.as_bytes()).ok())
        .ok_or_else(|| PeerError::JoinRefused("the inviter sent no mesh".into()))?;
    // Malformed entries are skipped: each one is verified before it is kept anyway.
    let signatures: Vec<([u8; 32], ChangeSignature)> = response
        .signatures
        .iter()
        .filter_map(|h| {
            let b = hex::decode(h).ok()?;
            let hash: [u8; 32] = b.get(..32)?.try_into().ok()?;
            Some((hash, ChangeSignature::from_stored(b.get(32..)?)?))
        })
        .collect();
    let members = {
        let mut m = lock(&shared.local.machine);
        m.adopt_mesh(&mesh, &signatures)?;
        m.store()
            .put_peer(&record)
            .map_err(crate::machine::Error::from)?;
        if !ticket.relays.is_empty() {
            m.learn_relays(&ticket.relays)?;
        }
        m.mesh().members().len()
    };
    shared.announce(DocKey::Mesh, &[crate::machine::DocChange::MeshChanged]);
    spawn_dialers(shared);
    Ok(Joined { inviter, members })
}
