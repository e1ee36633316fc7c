//! Sync sessions ([`SYNC_ALPN`]): one QUIC connection and one bi-stream per connected
//! member, over which both sides run Automerge sync for every shared document (the
//! rules are `proto::sync` and `proto::link`; this drives them); and the dialer.

use super::outbox::Outbox;
use super::{Event, Shared, addrs, endpoint_addr, lock, spawn_dialers, stopping};
use crate::identity::MachineId;
use crate::machine::{DocKey, Machine, SendGate, now_secs};
use crate::net::{self, SYNC_ALPN, frame};
use crate::proto::link;
use crate::proto::sync::SyncSession;
use crate::store::{Durable, PeerRecord};
use iroh::endpoint::{Connection, RecvStream, SendStream};
use iroh::protocol::{AcceptError, ProtocolHandler};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a message waits for this machine's changes in it to reach the disk
/// before the session gives up (a full disk); the peer reconnects and syncs again.
const DURABLE_WAIT: Duration = Duration::from_secs(30);

const KIND_HELLO: u8 = 0;
const KIND_SYNC: u8 = 1;
const KIND_ADDRS: u8 = 4;
/// The machines the sender holds a session with (`proto::sync`, invariant 5).
const KIND_LINKS: u8 = 9;

/// How long a dial or a join may take before we call the peer unreachable.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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

pub(super) fn machine_id(conn: &Connection) -> MachineId {
    MachineId::from_bytes(*conn.remote_id().as_bytes())
}

/// Closes a connection refused at accept, before any of its bytes are read: counted,
/// logged and told to hosts sparingly (a flood costs a few lines), never stored.
pub(crate) fn refuse(shared: &Shared, conn: &Connection, peer: MachineId, refusal: link::Refusal) {
    let reason = refusal.to_string();
    let kind = match refusal {
        link::Refusal::NotMember => crate::node::Refused::Stranger,
        link::Refusal::Revoked | link::Refusal::SelfRevoked => crate::node::Refused::Revoked,
    };
    if shared.local.refusals.count(kind) {
        tracing::warn!(peer = %peer, "refused connection: {reason}");
        shared.emit(Event::Refused {
            machine: peer.to_string(),
            reason: reason.clone(),
        });
    }
    conn.close(refusal.close_code().into(), reason.as_bytes());
}

/// Accepts a sync connection: members only.
pub(crate) async fn accept(shared: Arc<Shared>, conn: Connection) {
    let peer = machine_id(&conn);
    let admitted = link::admit_session(lock(&shared.local.machine).mesh(), shared.me, peer);
    if let Err(refusal) = admitted {
        refuse(&shared, &conn, peer, refusal);
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
    publish_links(shared, &sessions);
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
    send: SendStream,
    recv: RecvStream,
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
    let mut links = shared.links.subscribe();
    let mut session = SyncSession::new(peer, dialer == shared.me);
    let mut shutdown = shared.shutdown.subscribe();
    let mut durable = lock(&shared.local.machine).durable_watch();
    // Everything this side says goes through the outbox: the loop never waits for the
    // peer to read (see `outbox`).
    let mut send = Outbox::new(send);
    let result: Result<(), SessionEnd> = async {
        if dialer != shared.me {
            send.push(KIND_HELLO, &link::hello(shared.incarnation))?;
        }
        if shared.gossip {
            send_addrs(&shared, peer, &mut send)?;
        }
        send_links(&mut links, &mut session, &mut send)?;
        let (step, gate) = gated(&shared, |m| session.start(m));
        send_durable(&mut send, step.send, gate, &mut durable).await?;
        // One read in flight for the whole session, not one per `select!` round: a
        // read dropped when another branch won lost the bytes it had taken, and the
        // stream was misread from there on ("frame of 1747271137 bytes is larger than
        // the limit": sessions flapped under load, and their documents stalled).
        let mut reading = Box::pin(next_frame(recv));
        let settle = tokio::time::sleep(crate::proto::sync::SETTLE);
        tokio::pin!(settle);
        let mut settled = false;
        loop {
            tokio::select! {
                _ = &mut settle, if !settled => {
                    settled = true;
                    let (step, gate) = gated(&shared, |m| session.on_settle(m));
                    send_durable(&mut send, step.send, gate, &mut durable).await?;
                    update_presence(&shared, &mut session);
                }
                r = send.written() => r?,
                (stream, r) = &mut reading, if send.has_room() => {
                    reading = Box::pin(next_frame(stream));
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
                    if kind == KIND_LINKS {
                        let max = lock(&shared.local.machine).limits().max_members;
                        let Some(theirs) = link::parse_links(&body, max) else {
                            conn.close(net::close::PROTOCOL.into(), b"malformed links frame");
                            return Err(SessionEnd::MalformedLinks);
                        };
                        let (step, gate) = gated(&shared, |m| session.on_peer_links(m, theirs));
                        send_durable(&mut send, step.send, gate, &mut durable).await?;
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
                    let (step, gate) = gated(&shared, |m| session.on_frame(m, key, msg));
                    let mut step = step?;
                    if let Some((key, why)) = step.refused.take() {
                        let over = matches!(why, crate::tracked::ReceiveError::OverLimit(_));
                        if !over || shared.local.refusals.count(crate::node::Refused::OverLimit) {
                            tracing::warn!(peer = %peer.short(), ?key, "refused a sync message: {why}");
                        }
                    }
                    tracing::debug!(peer = %peer.short(), ?key, bytes = msg.len(), replies = step.send.len(), took = ?t0.elapsed(), "sync frame");
                    // Announce before sending: the changes are stored already, and a
                    // send that fails (this connection lost, or closed as a duplicate)
                    // must not keep other sessions and the host from hearing of them.
                    // Announcing after the send stalled a third machine until the next
                    // unrelated change (issue 16, second cause).
                    if let Some((key, changes)) = step.changed {
                        shared.announce(key, &changes);
                    }
                    send_durable(&mut send, step.send, gate, &mut durable).await?;
                    update_presence(&shared, &mut session);
                }
                r = changed.recv() => {
                    let ((step, gate), status) = match r {
                        Ok(key) => {
                            if key == DocKey::Mesh && shared.gossip {
                                // New members: tell the peer where they are.
                                send_addrs(&shared, peer, &mut send)?;
                            }
                            let step = gated(&shared, |m| session.on_local_change(m, key));
                            (step, session.status_depends_on(shared.me, key))
                        }
                        Err(lagged) => {
                            tracing::debug!("change notifications lagged: {lagged}; syncing everything");
                            (gated(&shared, |m| session.on_lagged(m)), true)
                        }
                    };
                    send_durable(&mut send, step.send, gate, &mut durable).await?;
                    if status {
                        update_presence(&shared, &mut session);
                    }
                }
                Ok(()) = links.changed() => {
                    send_links(&mut links, &mut session, &mut send)?;
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
            publish_links(&shared, &sessions);
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

/// Tells every session which machines this one holds sessions with now (called with
/// the sessions lock held, so the published set follows the map's order of changes).
fn publish_links(shared: &Shared, sessions: &HashMap<MachineId, SessionHandle>) {
    let now: HashSet<MachineId> = sessions.keys().copied().collect();
    shared.links.send_if_modified(|links| {
        let changed = *links != now;
        *links = now;
        changed
    });
}

/// Sends this machine's links (without the peer itself) and records them in the session.
fn send_links(
    links: &mut tokio::sync::watch::Receiver<HashSet<MachineId>>,
    session: &mut SyncSession,
    send: &mut Outbox,
) -> Result<(), net::FrameError> {
    let mut now = links.borrow_and_update().clone();
    now.remove(&session.peer());
    send.push(KIND_LINKS, &link::links(&now))?;
    session.on_own_links(now);
    Ok(())
}

/// Reads the next frame and hands the stream back, so the read can live across
/// `select!` rounds (a frame read is not cancel-safe).
async fn next_frame(mut recv: RecvStream) -> (RecvStream, Result<(u8, Vec<u8>), net::FrameError>) {
    let r = frame::read(&mut recv).await;
    (recv, r)
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
    /// A links frame that is not a whole number of machine ids, or lists too many.
    #[error("malformed links frame")]
    MalformedLinks,
    /// A message carried changes of ours that the store lost before they reached the
    /// disk (it was reopened after an I/O error): dropped; the next session sends what
    /// is stored again.
    #[error("the store lost changes of this machine before they reached the disk")]
    StoreLost,
    /// A message carried changes of ours that did not reach the disk within
    /// [`DURABLE_WAIT`].
    #[error("this machine's changes are not on disk after {DURABLE_WAIT:?} (is the disk full?)")]
    NotDurable,
}

/// Runs `f` on the locked machine, with the gate its messages must pass.
fn gated<R>(shared: &Shared, f: impl FnOnce(&mut Machine) -> R) -> (R, SendGate) {
    let mut m = lock(&shared.local.machine);
    let r = f(&mut m);
    (r, m.send_gate())
}

/// Sends `out` once every change of ours it may carry is on disk (`machine::own_flush`:
/// the watcher's fsync may still be running). Nearly always open at once.
async fn send_durable(
    send: &mut Outbox,
    out: crate::proto::sync::Outgoing,
    gate: SendGate,
    durable: &mut tokio::sync::watch::Receiver<Durable>,
) -> Result<(), SessionEnd> {
    if out.is_empty() {
        return Ok(());
    }
    let open = gate.open(&durable.borrow());
    let open = match open {
        Some(false) => {
            let waited = tokio::time::timeout(
                DURABLE_WAIT,
                durable.wait_for(|d| gate.open(d) != Some(false)),
            )
            .await;
            match waited {
                Ok(Ok(d)) => gate.open(&d),
                // The store is gone (the machine closes): nothing to send any more.
                Ok(Err(_)) => None,
                Err(_) => return Err(SessionEnd::NotDurable),
            }
        }
        other => other,
    };
    if open != Some(true) {
        return Err(SessionEnd::StoreLost);
    }
    send_all(send, out)?;
    Ok(())
}

fn send_addrs(shared: &Shared, peer: MachineId, send: &mut Outbox) -> Result<(), net::FrameError> {
    let body = addrs::outgoing(shared, peer);
    send.push(KIND_ADDRS, &body)
}

fn send_all(send: &mut Outbox, out: crate::proto::sync::Outgoing) -> Result<(), net::FrameError> {
    for (key, msg) in out {
        tracing::debug!(?key, bytes = msg.len(), "send sync frame");
        send.push(KIND_SYNC, &encode_sync(key, &msg))?;
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
        // The book's addresses first, then what LAN announcements claim (hints: kept
        // only once a connection over one proves the member's key, below).
        let hints = lock(&shared.lan_hints).get(peer);
        let record = match (record, hints.is_empty()) {
            (None, true) => None,
            (record, _) => {
                let mut r = record.unwrap_or_else(|| PeerRecord::new(peer));
                for h in &hints {
                    let h = h.to_string();
                    if !r.addrs.contains(&h) {
                        r.addrs.push(h);
                    }
                }
                Some(r)
            }
        };
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
                remember_proven_hints(&shared, peer, &conn, &hints);
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
            // A new address (found on the LAN): no reason to wait out the backoff.
            _ = shared.addresses_changed.notified() => {}
            _ = stopping(&mut shutdown) => return,
        }
    }
}

/// Writes to the address book the LAN hints a connection to `peer` runs over: the
/// connection proved the member's key, so the address is first-hand now.
fn remember_proven_hints(
    shared: &Shared,
    peer: MachineId,
    conn: &iroh::endpoint::Connection,
    hints: &[std::net::SocketAddr],
) {
    if hints.is_empty() {
        return;
    }
    let used: Vec<String> = conn
        .paths()
        .iter()
        .filter_map(|p| match p.remote_addr() {
            iroh::TransportAddr::Ip(a) if hints.contains(a) => Some(a.to_string()),
            _ => None,
        })
        .collect();
    if !used.is_empty() && addrs::learn_first_hand(shared, peer, used) {
        tracing::info!(peer = %peer.short(), "a LAN address proved the member: kept");
    }
}

/// Why a connection attempt (a dial, a join exchange) failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum LinkError {
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

/// The protocol handler for [`SYNC_ALPN`]: members' sync sessions.
#[derive(Debug, Clone)]
pub(crate) struct SyncProtocol(pub(crate) Arc<Shared>);

impl ProtocolHandler for SyncProtocol {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        accept(self.0.clone(), conn).await;
        Ok(())
    }

    /// Closes every session (dialed or accepted) politely, so members see this machine
    /// offline at once, and gives them a moment (bounded) to store their sync states.
    async fn shutdown(&self) {
        let shared = &self.0;
        let conns: Vec<Connection> = lock(&shared.sessions)
            .values()
            .map(|s| s.conn.clone())
            .collect();
        for c in conns {
            c.close(net::close::SHUTDOWN.into(), b"shutting down");
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                // Registered before the check, so a session ending in between wakes us.
                let ended = shared.session_changed.notified();
                if lock(&shared.sessions).is_empty() {
                    return;
                }
                ended.await;
            }
        })
        .await;
    }
}
