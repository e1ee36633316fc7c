//! Sessions: one QUIC connection and one bi-stream per connected member, over which
//! both sides run Automerge sync for every shared document; pairing (join) and the
//! dialer.

use super::{
    Event, Joined, PeerError, Shared, addrs, endpoint_addr, lock, spawn_dialers, stopping,
};
use crate::identity::MachineId;
use crate::machine::{DocKey, now_secs};
use crate::net::{self, JOIN_ALPN, SYNC_ALPN, Ticket, frame};
use crate::proto::sync::SyncSession;
use crate::proto::{admission, link};
use crate::store::PeerRecord;
use iroh::endpoint::{Connection, RecvStream, SendStream};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KIND_HELLO: u8 = 0;
const KIND_SYNC: u8 = 1;
const KIND_JOIN_REQUEST: u8 = 2;
const KIND_JOIN_RESPONSE: u8 = 3;
const KIND_ADDRS: u8 = 4;

/// How long a dial or a join may take before we call the peer unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What we know of a peer's presence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presence {
    /// Connected now.
    pub online: bool,
    /// Unix seconds of the last frame from it (0: never).
    pub last_seen: u64,
    /// Both sides hold the same heads of every shared document.
    pub in_sync: bool,
    /// The connection path: `direct`, `relayed` or empty when offline.
    pub path: String,
    /// Changes to this machine's document the peer has not acknowledged yet.
    pub pending: usize,
}

#[derive(Debug)]
pub(crate) struct SessionHandle {
    pub(crate) conn: Connection,
    /// Who opened the connection: when two connections to one machine race, the one
    /// opened by the smaller machine id wins on both sides.
    dialer: MachineId,
    /// The remote machine's incarnation, from its hello.
    incarnation: u64,
    serial: u64,
}

pub(crate) fn presence_snapshot(shared: &Shared) -> HashMap<MachineId, Presence> {
    let mut p = lock(&shared.presence).clone();
    let m = lock(&shared.local.machine);
    match m.store().peers() {
        Ok(records) => {
            for r in records {
                let e = p.entry(r.id).or_default();
                e.last_seen = e.last_seen.max(r.last_seen);
            }
        }
        // Presence of connected machines is still right; only "last seen" of the
        // others is missing.
        Err(e) => tracing::warn!("cannot read the address book: {e}"),
    }
    p
}

fn machine_id(conn: &Connection) -> MachineId {
    MachineId::from_bytes(*conn.remote_id().as_bytes())
}

/// Accepts a sync connection: members only.
pub(crate) async fn accept(shared: Arc<Shared>, conn: Connection) {
    let peer = machine_id(&conn);
    let admitted = link::admit_session(lock(&shared.local.machine).mesh(), shared.me, peer);
    if let Err(refusal) = admitted {
        let reason = refusal.to_string();
        tracing::warn!(peer = %peer, "refused connection: {reason}");
        shared.emit(Event::Refused {
            machine: peer.to_string(),
            reason: reason.clone(),
        });
        conn.close(refusal.close_code().into(), reason.as_bytes());
        return;
    }
    let Ok(Ok((send, mut recv))) = tokio::time::timeout(CONNECT_TIMEOUT, conn.accept_bi()).await
    else {
        return;
    };
    let hello = match tokio::time::timeout(CONNECT_TIMEOUT, frame::read_max(&mut recv, 64)).await {
        Ok(Ok((KIND_HELLO, body))) => link::parse_hello(&body),
        _ => None,
    };
    let Some(incarnation) = hello else {
        conn.close(net::close::PROTOCOL.into(), b"expected hello");
        return;
    };
    run(shared, conn, peer, peer, incarnation, send, recv).await;
}

fn register(
    shared: &Shared,
    peer: MachineId,
    conn: &Connection,
    dialer: MachineId,
    incarnation: u64,
) -> Option<u64> {
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let mut sessions = lock(&shared.sessions);
    // Checked under the sessions lock: `shutdown` sets the flag before it collects the
    // connections to close, so a session either is closed by it or never starts.
    if *shared.shutdown.borrow() {
        conn.close(net::close::SHUTDOWN.into(), b"shutting down");
        return None;
    }
    if let Some(old) = sessions.get(&peer) {
        let existing = link::Registered {
            dialer: old.dialer,
            alive: old.conn.close_reason().is_none(),
            incarnation: old.incarnation,
        };
        let new = link::Registered {
            dialer,
            alive: true,
            incarnation,
        };
        if link::keep_existing(existing, new) {
            conn.close(net::close::DUPLICATE.into(), b"duplicate connection");
            return None;
        }
        old.conn.close(
            net::close::DUPLICATE.into(),
            b"replaced by a newer connection",
        );
    }
    let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    sessions.insert(
        peer,
        SessionHandle {
            conn: conn.clone(),
            dialer,
            incarnation,
            serial,
        },
    );
    Some(serial)
}

fn path_of(conn: &Connection) -> String {
    let relayed = conn.paths().iter().any(|p| p.is_selected() && p.is_relay());
    if relayed {
        "relayed".into()
    } else {
        "direct".into()
    }
}

/// Runs one session until the connection ends.
async fn run(
    shared: Arc<Shared>,
    conn: Connection,
    peer: MachineId,
    dialer: MachineId,
    incarnation: u64,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let Some(serial) = register(&shared, peer, &conn, dialer, incarnation) else {
        return;
    };
    tracing::info!(peer = %peer.short(), "connected");
    {
        let mut p = lock(&shared.presence);
        let e = p.entry(peer).or_default();
        e.online = true;
        e.path = path_of(&conn);
        e.last_seen = now_secs().max(0) as u64;
    }
    shared.emit(Event::MachineOnline {
        machine: peer.to_string(),
    });
    let mut changed = shared.changed.subscribe();
    let mut session = SyncSession::new(peer, dialer == shared.me);
    let mut shutdown = shared.shutdown.subscribe();
    let result: Result<(), SessionEnd> = async {
        if dialer != shared.me {
            frame::write(&mut send, KIND_HELLO, &link::hello(shared.incarnation)).await?;
        }
        if shared.gossip {
            send_addrs(&shared, peer, &mut send).await?;
        }
        let step = session.start(&mut lock(&shared.local.machine));
        send_all(&mut send, step.send).await?;
        loop {
            tokio::select! {
                r = frame::read(&mut recv) => {
                    let (kind, body) = match r {
                        Ok(f) => f,
                        Err(net::FrameError::Closed) => return Ok(()),
                        Err(e @ (net::FrameError::TooLarge(_) | net::FrameError::Malformed(_))) => {
                            conn.close(net::close::PROTOCOL.into(), e.to_string().as_bytes());
                            return Err(e.into());
                        }
                        Err(e) => return Err(e.into()),
                    };
                    if kind == KIND_ADDRS {
                        if shared.gossip && addrs::merge(&shared, peer, &body) {
                            spawn_dialers(&shared);
                        }
                        continue;
                    }
                    if kind != KIND_SYNC {
                        conn.close(net::close::PROTOCOL.into(), b"unexpected frame");
                        return Err(SessionEnd::UnexpectedFrame(kind));
                    }
                    let Some((key, msg)) = split_sync(&body) else {
                        conn.close(net::close::PROTOCOL.into(), b"malformed sync frame");
                        return Err(SessionEnd::MalformedSync);
                    };
                    let t0 = Instant::now();
                    let step = session.on_frame(&mut lock(&shared.local.machine), key, msg)?;
                    tracing::debug!(peer = %peer.short(), ?key, bytes = msg.len(), replies = step.send.len(), took = ?t0.elapsed(), "sync frame");
                    // Announce before sending: the changes are stored already, and a
                    // send that fails (this connection lost, or closed as a duplicate)
                    // must not keep other sessions and the host from hearing of them.
                    // Announcing after the send stalled a third machine until the next
                    // unrelated change (issue 16, second cause).
                    if let Some((key, changes)) = step.changed {
                        shared.announce(key, &changes);
                    }
                    send_all(&mut send, step.send).await?;
                    update_presence(&shared, &mut session);
                }
                r = changed.recv() => {
                    let step = match r {
                        Ok(key) => {
                            if key == DocKey::Mesh && shared.gossip {
                                // New members: tell the peer where they are.
                                send_addrs(&shared, peer, &mut send).await?;
                            }
                            session.on_local_change(&mut lock(&shared.local.machine), key)
                        }
                        Err(lagged) => {
                            tracing::debug!("change notifications lagged: {lagged}; syncing everything");
                            session.on_lagged(&mut lock(&shared.local.machine))
                        }
                    };
                    send_all(&mut send, step.send).await?;
                    update_presence(&shared, &mut session);
                }
                _ = stopping(&mut shutdown) => return Ok(()),
                e = conn.closed() => return Err(SessionEnd::Closed(e)),
            }
        }
    }
    .await;
    if let Err(e) = result {
        tracing::info!(peer = %peer.short(), "disconnected: {e}");
    }
    // Store what we share, so a reconnect sends only what is missing.
    let encoded = session.encoded_states();
    let last_seen = now_secs().max(0) as u64;
    {
        let mut m = lock(&shared.local.machine);
        if let Err(e) = m.save_sync_states(peer, &encoded) {
            tracing::warn!("cannot store sync states: {e}");
        }
        let stored = m.store().peer(peer).and_then(|record| {
            let mut record = record.unwrap_or_else(|| PeerRecord::new(peer));
            record.last_seen = last_seen;
            m.store().put_peer(&record)
        });
        if let Err(e) = stored {
            tracing::warn!("cannot record when {} was last seen: {e}", peer.short());
        }
    }
    let mine = {
        let mut sessions = lock(&shared.sessions);
        if sessions.get(&peer).is_some_and(|s| s.serial == serial) {
            sessions.remove(&peer);
            true
        } else {
            false
        }
    };
    if mine {
        {
            let mut p = lock(&shared.presence);
            let e = p.entry(peer).or_default();
            e.online = false;
            e.in_sync = false;
            e.path.clear();
            e.last_seen = last_seen;
        }
        shared.emit(Event::MachineOffline {
            machine: peer.to_string(),
        });
    }
    shared.session_changed.notify_waiters();
}

fn update_presence(shared: &Shared, session: &mut SyncSession) {
    let (in_sync, pending, flipped) = session.sync_status(&mut lock(&shared.local.machine));
    {
        let mut p = lock(&shared.presence);
        let e = p.entry(session.peer()).or_default();
        e.last_seen = now_secs().max(0) as u64;
        e.in_sync = in_sync;
        e.pending = pending;
    }
    if let Some(in_sync) = flipped {
        shared.emit(Event::SyncState {
            machine: session.peer().to_string(),
            in_sync,
        });
    }
}

fn encode_sync(key: DocKey, msg: &[u8]) -> Vec<u8> {
    let k = key.to_bytes();
    let mut body = Vec::with_capacity(1 + k.len() + msg.len());
    body.push(k.len() as u8);
    body.extend_from_slice(&k);
    body.extend_from_slice(msg);
    body
}

fn split_sync(body: &[u8]) -> Option<(DocKey, &[u8])> {
    let (&len, rest) = body.split_first()?;
    let key = rest.get(..usize::from(len))?;
    Some((DocKey::from_bytes(key)?, &rest[usize::from(len)..]))
}

/// Why a session ended (logged; the connection is gone either way).
#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    /// Reading or writing a frame failed, or the peer sent a bad one.
    #[error(transparent)]
    Frame(#[from] net::FrameError),
    /// The sync state machine refused the peer's message or could not store it.
    #[error(transparent)]
    Sync(#[from] crate::proto::sync::SessionError),
    /// The connection closed.
    #[error("connection closed: {0}")]
    Closed(iroh::endpoint::ConnectionError),
    /// A frame of a kind sessions do not use.
    #[error("unexpected frame kind {0}")]
    UnexpectedFrame(u8),
    /// A sync frame without a valid document key.
    #[error("malformed sync frame")]
    MalformedSync,
}

async fn send_addrs(
    shared: &Shared,
    peer: MachineId,
    send: &mut SendStream,
) -> Result<(), net::FrameError> {
    let body = addrs::outgoing(shared, peer);
    frame::write(send, KIND_ADDRS, &body).await
}

async fn send_all(
    send: &mut SendStream,
    out: crate::proto::sync::Outgoing,
) -> Result<(), net::FrameError> {
    for (key, msg) in out {
        tracing::debug!(?key, bytes = msg.len(), "send sync frame");
        frame::write(send, KIND_SYNC, &encode_sync(key, &msg)).await?;
    }
    Ok(())
}

/// Dials one member forever (while it stays a member), with backoff and jitter.
pub(crate) async fn dial_loop(shared: Arc<Shared>, peer: MachineId) {
    let mut backoff = link::Backoff::new();
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let record = {
            let m = lock(&shared.local.machine);
            if !m.mesh().is_current_member(peer) || !m.mesh().is_current_member(shared.me) {
                return;
            }
            m.store().peer(peer)
        };
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                // A failed read is not "no address": retry, do not give up on the member.
                tracing::warn!(peer = %peer.short(), "cannot read the address book: {e}");
                let wait = backoff.next_wait(0);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopping(&mut shutdown) => return,
                }
                continue;
            }
        };
        if lock(&shared.sessions).contains_key(&peer) {
            // Connected (perhaps by the other side): wait for the session to end.
            let notified = shared.session_changed.notified();
            if !lock(&shared.sessions).contains_key(&peer) {
                continue;
            }
            tokio::select! {
                _ = notified => {}
                _ = stopping(&mut shutdown) => return,
            }
            continue;
        }
        let Some(addr) = record.as_ref().and_then(endpoint_addr) else {
            return;
        };
        let started = Instant::now();
        let attempt = async {
            let conn = shared.endpoint.connect(addr, SYNC_ALPN).await?;
            let (mut send, mut recv) = conn.open_bi().await?;
            frame::write(&mut send, KIND_HELLO, &link::hello(shared.incarnation)).await?;
            // The acceptor answers with its own hello once it registered the
            // connection (it closes it instead when the tie-break keeps another).
            let incarnation = match frame::read_max(&mut recv, 64).await? {
                (KIND_HELLO, body) => {
                    link::parse_hello(&body).ok_or(LinkError::Protocol("malformed hello"))?
                }
                _ => return Err(LinkError::Protocol("expected a hello")),
            };
            Ok::<_, LinkError>((conn, incarnation, send, recv))
        };
        let attempt = tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT, attempt) => r,
            _ = stopping(&mut shutdown) => return,
        };
        match attempt {
            Ok(Ok((conn, incarnation, send, recv))) => {
                run(
                    shared.clone(),
                    conn,
                    peer,
                    shared.me,
                    incarnation,
                    send,
                    recv,
                )
                .await;
                if started.elapsed() > link::Backoff::HEALTHY {
                    backoff.reset();
                }
            }
            Ok(Err(e)) => tracing::debug!(peer = %peer.short(), "dial failed: {e}"),
            Err(_) => tracing::debug!(peer = %peer.short(), "dial timed out"),
        }
        let mut jitter = [0u8; 1];
        let _ = getrandom::fill(&mut jitter);
        let wait = backoff.next_wait(jitter[0]);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopping(&mut shutdown) => return,
        }
    }
}

/// Why a connection attempt (a dial, a join exchange) failed.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("{0}")]
    Connect(#[from] iroh::endpoint::ConnectError),
    #[error("{0}")]
    Connection(#[from] iroh::endpoint::ConnectionError),
    #[error("{0}")]
    Frame(#[from] frame::FrameError),
    #[error("malformed answer: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Protocol(&'static str),
    #[error("timed out")]
    TimedOut,
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
}

/// Inviter side of pairing.
pub(crate) async fn accept_join(shared: Arc<Shared>, conn: Connection) {
    let joiner = machine_id(&conn);
    let Ok(Ok((mut send, mut recv))) =
        tokio::time::timeout(CONNECT_TIMEOUT, conn.accept_bi()).await
    else {
        return;
    };
    let request = match tokio::time::timeout(CONNECT_TIMEOUT, frame::read(&mut recv)).await {
        Ok(Ok((KIND_JOIN_REQUEST, body))) if body.len() <= 4096 => {
            serde_json::from_slice::<JoinRequest>(&body).ok()
        }
        _ => None,
    };
    let response = match request {
        None => JoinResponse {
            ok: false,
            error: Some(admission::Refusal::Malformed.to_string()),
            mesh: None,
        },
        Some(req) => match admit(&shared, joiner, &req) {
            Ok(mesh) => JoinResponse {
                ok: true,
                error: None,
                mesh: Some(data_encoding::BASE64.encode(&mesh)),
            },
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!(machine = %joiner, "refused to pair: {reason}");
                shared.emit(Event::Refused {
                    machine: joiner.to_string(),
                    reason: reason.clone(),
                });
                JoinResponse {
                    ok: false,
                    error: Some(reason),
                    mesh: None,
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
fn admit(shared: &Shared, joiner: MachineId, req: &JoinRequest) -> Result<Vec<u8>, AdmitError> {
    let key = admission::invitation_key(&req.secret)?;
    let mut m = lock(&shared.local.machine);
    let stored = m.store().invite(&key)?;
    let now = now_secs().max(0) as u64;
    let admitted = admission::admit(stored.as_ref(), m.mesh(), joiner, &req.label, now)?;
    m.store().put_invite(&key, &admitted.invite)?;
    m.add_member(joiner, &admitted.label)?;
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
    Ok(m.mesh_bytes())
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
    let members = {
        let mut m = lock(&shared.local.machine);
        m.adopt_mesh(&mesh)?;
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
