//! Replication over real iroh endpoints on 127.0.0.1: pairing, multi-hop, restart and
//! catch-up, offline machines, refusals. Every wait is on a condition with a bounded
//! timeout (re-checked on each event).

use leanspec_peer_core::machine::InviteState;
use leanspec_peer_core::peer::{Event, PeerOptions};
use leanspec_peer_core::{Machine, Node as Peer, SpecFilter};
use leanspec_peer_tests::{TempProject, WAIT, spec_text, wait_until};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

struct Node {
    home: tempfile::TempDir,
    project: TempProject,
    peer: Option<Peer>,
    options: PeerOptions,
}

fn options() -> PeerOptions {
    PeerOptions {
        bind: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..PeerOptions::default()
    }
}

/// Options that keep machines from learning each other's addresses through a third
/// one, so the multi-hop path is the only one.
fn hop_only() -> PeerOptions {
    PeerOptions {
        gossip_addresses: false,
        ..options()
    }
}

async fn node(label: &str) -> Node {
    node_with(label, options()).await
}

async fn node_with(label: &str, options: PeerOptions) -> Node {
    leanspec_peer_tests::logs();
    let project = TempProject::new();
    project.write("001-first", spec_text("planned", &format!("{label} first")));
    let home = tempfile::tempdir().expect("home");
    let (peer, _) = Peer::init(home.path(), Some(label), options.clone()).expect("init");
    peer.add_project(project.root(), Some(label)).expect("add");
    peer.start().await.expect("start");
    Node {
        home,
        project,
        peer: Some(peer),
        options,
    }
}

impl Node {
    fn peer(&self) -> &Peer {
        self.peer.as_ref().expect("running")
    }

    /// A restart as a process does it: the store is closed and opened again.
    async fn restart(&mut self) {
        let peer = Peer::open(self.home.path(), self.options.clone()).expect("reopen");
        peer.start().await.expect("restart");
        self.peer = Some(peer);
    }

    async fn stop(&mut self) {
        if let Some(p) = self.peer.take() {
            p.stop().await.expect("stop");
        }
    }

    fn status_of(&self, machine: &str, spec: &str) -> Option<String> {
        self.peer()
            .spec(Some(machine), machine, spec)
            .ok()
            .and_then(|r| r.spec.status)
            .map(|s| s.as_str().to_string())
    }

    fn titles(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .peer()
            .specs(&SpecFilter::default())
            .expect("specs")
            .into_iter()
            .map(|r| r.spec.title)
            .collect();
        t.sort();
        t
    }
}

/// Waits (bounded) for an event matching `pred`.
async fn next_event(
    rx: &mut tokio::sync::broadcast::Receiver<Event>,
    what: &str,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    let found = tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Ok(e) if pred(&e) => return Some(e),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .await;
    match found {
        Ok(Some(e)) => e,
        _ => panic!("no event: {what} within {WAIT:?}"),
    }
}

/// An endpoint with a key no mesh knows, on 127.0.0.1.
async fn stranger() -> iroh::Endpoint {
    iroh::Endpoint::builder(iroh::endpoint::presets::Minimal)
        .relay_mode(iroh::RelayMode::Disabled)
        .clear_ip_transports()
        .bind_addr(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind addr")
        .bind()
        .await
        .expect("bind")
}

/// Where `node` listens.
fn addr_of(node: &Node) -> iroh::EndpointAddr {
    iroh::EndpointAddr::new(iroh::PublicKey::from_bytes(node.peer().id().as_bytes()).expect("key"))
        .with_ip_addr(node.peer().addrs()[0])
}

/// A stranger's connection on `alpn` to `node` is closed as "not a member".
async fn refused_as_stranger(node: &Node, alpn: &[u8]) {
    let stranger = stranger().await;
    let conn = stranger
        .connect(addr_of(node), alpn)
        .await
        .expect("quic handshake");
    let reason = tokio::time::timeout(WAIT, conn.closed())
        .await
        .expect("closed in time");
    assert!(reason.to_string().contains("not a member"), "{reason}");
    stranger.close().await;
}

async fn pair(inviter: &Node, joiner: &Node) {
    leanspec_peer_tests::pair(inviter.peer(), joiner.peer()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_multi_hop_restart_and_offline() {
    let (mut a, b, mut c) = (
        node_with("a", hop_only()).await,
        node_with("b", hop_only()).await,
        node_with("c", hop_only()).await,
    );
    pair(&a, &b).await;
    pair(&b, &c).await;
    let all = vec!["a first".to_string(), "b first".into(), "c first".into()];
    wait_until(c.peer(), "C sees A's specs through B", || c.titles() == all).await;
    wait_until(a.peer(), "A sees C's specs through B", || a.titles() == all).await;
    let c_id = c.peer().id();
    assert!(
        !a.peer().presence().get(&c_id).is_some_and(|p| p.online),
        "A and C must not be connected: the path is through B"
    );

    // A renames C; the label reaches B through the mesh.
    a.peer()
        .rename(&c_id.to_string(), "charlie")
        .expect("rename");
    wait_until(b.peer(), "B sees C's new label", || {
        b.peer().machine_label(c_id) == "charlie"
    })
    .await;

    // A file edit on A appears in C's specs, via B.
    a.project
        .write("001-first", spec_text("in-progress", "a first"));
    wait_until(c.peer(), "the edit on A reaches C", || {
        c.status_of("a", "1").as_deref() == Some("in-progress")
    })
    .await;

    // C stopped; A changes; C restarted later catches up.
    c.stop().await;
    a.project
        .write("001-first", spec_text("complete", "a first"));
    wait_until(b.peer(), "B sees A's change", || {
        b.status_of("a", "1").as_deref() == Some("complete")
    })
    .await;
    c.restart().await;
    wait_until(c.peer(), "restarted C catches up", || {
        c.status_of("a", "1").as_deref() == Some("complete")
    })
    .await;

    // A stopped: B and C still list A's specs, and show A offline.
    let a_id = a.peer().id();
    a.stop().await;
    wait_until(b.peer(), "B shows A offline", || {
        b.peer().presence().get(&a_id).is_some_and(|p| !p.online)
    })
    .await;
    assert!(b.titles().contains(&"a first".to_string()));
    assert!(c.titles().contains(&"a first".to_string()));
    assert!(!c.peer().presence().get(&a_id).is_some_and(|p| p.online));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machines_paired_through_a_third_connect_directly() {
    let (a, b, c) = (node("a").await, node("b").await, node("c").await);
    pair(&b, &a).await;
    pair(&b, &c).await;
    let (a_id, c_id) = (a.peer().id(), c.peer().id());
    // Neither A nor C was given the other's address: they learn it from B.
    wait_until(a.peer(), "A connected to C directly", || {
        a.peer().presence().get(&c_id).is_some_and(|p| p.online)
    })
    .await;
    wait_until(c.peer(), "C connected to A directly", || {
        c.peer().presence().get(&a_id).is_some_and(|p| p.online)
    })
    .await;
    // With B gone, an edit on A still reaches C.
    let mut b = b;
    b.stop().await;
    a.project
        .write("001-first", spec_text("complete", "a first"));
    wait_until(c.peer(), "the edit on A reaches C without B", || {
        c.status_of("a", "1").as_deref() == Some("complete")
    })
    .await;
}

/// `status`'s pending count: changes to this machine's document a member lacks.
fn pending(node: &Node) -> usize {
    node.peer().status().expect("status").pending
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_counts_changes_an_offline_peer_has_not_acknowledged() {
    let (a, mut b) = (node("a").await, node("b").await);
    pair(&a, &b).await;
    wait_until(a.peer(), "B acknowledged everything", || pending(&a) == 0).await;
    b.stop().await;
    a.project
        .write("001-first", spec_text("in-progress", "a first"));
    wait_until(a.peer(), "A counts its change as pending", || {
        pending(&a) >= 1
    })
    .await;
    let n = pending(&a);
    b.restart().await;
    wait_until(a.peer(), "B acknowledged the change after restart", || {
        pending(&a) == 0
    })
    .await;
    assert!(n >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_and_bad_tickets_are_refused() {
    let (a, b, c) = (node("a").await, node("b").await, node("c").await);

    // A machine that is not a member cannot open a sync connection.
    let mut refused = a.peer().subscribe().1;
    refused_as_stranger(&a, leanspec_peer_core::net::SYNC_ALPN).await;
    let ev = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(Event::Refused { reason, .. }) = refused.recv().await {
                return reason;
            }
        }
    })
    .await
    .expect("refusal event");
    assert!(ev.contains("not a member"));

    // An expired ticket is refused, and a one-time ticket works only once.
    let expired = a.peer().invite(Duration::ZERO, false).expect("invite");
    let e = b
        .peer()
        .join(&expired.to_string())
        .await
        .expect_err("expired");
    assert!(e.to_string().contains("expired"), "{e}");
    let once = a
        .peer()
        .invite(Duration::from_secs(600), false)
        .expect("invite");
    b.peer().join(&once.to_string()).await.expect("first use");
    let e = c
        .peer()
        .join(&once.to_string())
        .await
        .expect_err("second use");
    assert!(e.to_string().contains("already used"), "{e}");
    // A ticket from another machine's store is unknown here.
    let foreign = c
        .peer()
        .invite(Duration::from_secs(600), false)
        .expect("invite");
    let mut forged = foreign.clone();
    forged.id = a.peer().id().to_string();
    forged.addrs = a.peer().addrs().iter().map(ToString::to_string).collect();
    let e = c
        .peer()
        .join(&forged.to_string())
        .await
        .expect_err("unknown secret");
    assert!(e.to_string().contains("unknown invitation"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_machine_is_cut_off_and_cannot_rejoin() {
    // A comes back on its port after a restart, so B can still knock.
    let a = node_with(
        "a",
        PeerOptions {
            remember_port: true,
            ..options()
        },
    )
    .await;
    let b = node("b").await;
    let mut a_events = a.peer().subscribe().1;
    let mut b_events = b.peer().subscribe().1;
    let reusable = a
        .peer()
        .invite(Duration::from_secs(600), true)
        .expect("invite");
    b.peer().join(&reusable.to_string()).await.expect("join");
    let b_id = b.peer().id();
    next_event(&mut a_events, "B added, on A", |e| {
        matches!(e, Event::MachineAdded { machine, label } if *machine == b_id.to_string() && label == "b")
    })
    .await;
    wait_until(a.peer(), "A and B connected", || {
        a.peer().presence().get(&b_id).is_some_and(|p| p.online)
    })
    .await;
    // A rename on A reaches B as a renamed event.
    a.peer()
        .rename(&b_id.to_string(), "b-renamed")
        .expect("rename");
    next_event(&mut b_events, "B renamed, on B", |e| {
        matches!(e, Event::MachineRenamed { machine, label } if *machine == b_id.to_string() && label == "b-renamed")
    })
    .await;
    a.peer().revoke(&b_id.to_string()).expect("revoke");
    next_event(
        &mut a_events,
        "B revoked, on A",
        |e| matches!(e, Event::MachineRevoked { machine } if *machine == b_id.to_string()),
    )
    .await;
    wait_until(a.peer(), "B cut off", || {
        !a.peer().presence().get(&b_id).is_some_and(|p| p.online)
    })
    .await;
    let e = b
        .peer()
        .join(&reusable.to_string())
        .await
        .expect_err("rejoin");
    assert!(e.to_string().contains("revoked"), "{e}");
    // Nor under a new identity: the auth key B used is revoked with B.
    let d = node("d").await;
    let e = d
        .peer()
        .join(&reusable.to_string())
        .await
        .expect_err("a new machine with B's key");
    assert!(e.to_string().contains("invitation was revoked"), "{e}");
    // The key is listed as revoked with B, naming B.
    let invites = a.peer().invites().expect("invites");
    let key = invites
        .iter()
        .find(|i| i.reusable)
        .expect("the auth key is listed");
    assert_eq!(key.state, InviteState::RevokedWithMachine, "{key:?}");
    assert!(
        key.used_by.iter().any(|u| u.id == b_id && u.revoked),
        "{key:?}"
    );
    // A new key works; revoked by id (a prefix), it is refused.
    let fresh = a
        .peer()
        .invite(Duration::from_secs(600), true)
        .expect("a new key");
    let id = a
        .peer()
        .invites()
        .expect("invites")
        .into_iter()
        .find(|i| invites.iter().all(|old| old.id != i.id))
        .expect("the new key is listed")
        .id;
    let revoked = a.peer().revoke_invite(&id[..6]).expect("revoke by prefix");
    assert_eq!(revoked.state, InviteState::Revoked);
    let e = d
        .peer()
        .join(&fresh.to_string())
        .await
        .expect_err("a revoked key");
    assert!(e.to_string().contains("invitation was revoked"), "{e}");
    assert!(a.peer().revoke_invite("zz").is_err(), "not an id");
    // A reusable key lives at most the cap.
    let e = a
        .peer()
        .invite(Duration::from_secs(91 * 86_400), true)
        .expect_err("over max_reusable_ttl");
    assert!(e.to_string().contains("at most 90 days"), "{e}");
    // B's own dialer is refused too: it stays offline on A's side.
    let home: PathBuf = b.home.path().to_path_buf();
    assert!(home.exists());
    assert!(
        a.peer()
            .machines()
            .iter()
            .any(|r| r.machine.id == b_id && r.machine.revoked)
    );
    // A restarts (its network, then the whole node from its home): B stays cut off.
    // B knows A's address only as it was: A must come back on its port. When the old
    // socket is still held (a connection handler finishing), `remember_port` would take
    // another one; wait (bounded) until the port can be bound again.
    let addrs_before = a.peer().addrs();
    a.peer().stop().await.expect("stop");
    let port_free = std::time::Instant::now();
    while addrs_before
        .iter()
        .any(|addr| std::net::UdpSocket::bind(addr).is_err())
    {
        assert!(port_free.elapsed() < WAIT, "A's old port stayed busy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.peer().start().await.expect("start");
    assert_eq!(a.peer().addrs(), addrs_before, "A is back on its port");
    let refused_before = a.peer().status().expect("status").refused.revoked;
    let v = b
        .peer()
        .deliver_raw(a.peer().id(), b"anything")
        .await
        .expect("deliver");
    assert_eq!(
        v.reason,
        Some(leanspec_peer_core::ops::Reason::Revoked),
        "{v:?}"
    );
    assert!(a.peer().status().expect("status").refused.revoked > refused_before);
    let mut a = a;
    if let Some(p) = a.peer.take() {
        p.stop().await.expect("stop");
        drop(p);
    }
    let reopened = Peer::open(a.home.path(), options()).expect("reopen");
    assert!(
        reopened
            .machines()
            .iter()
            .any(|r| r.machine.id == b_id && r.machine.revoked),
        "still revoked after a restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_project_is_announced_to_hosts_and_members() {
    let (a, b) = (node("a").await, node("b").await);
    pair(&a, &b).await;
    wait_until(b.peer(), "B lists A's spec", || {
        b.titles().contains(&"a first".to_string())
    })
    .await;
    let mut a_events = a.peer().subscribe().1;
    let removed = a.peer().remove_project("a").expect("remove");
    assert_eq!(removed.name, "a");
    next_event(
        &mut a_events,
        "spec removed, on A",
        |e| matches!(e, Event::SpecRemoved { spec, .. } if spec == "001-first"),
    )
    .await;
    wait_until(b.peer(), "B no longer lists A's spec", || {
        !b.titles().contains(&"a first".to_string())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_dropped_without_shutdown_lets_go_of_the_store() {
    let (mut a, b) = (node("a").await, node("b").await);
    pair(&a, &b).await;
    let b_id = b.peer().id();
    wait_until(a.peer(), "A and B connected", || {
        a.peer().presence().get(&b_id).is_some_and(|p| p.online)
    })
    .await;
    // Dialers, the periodic rescan and sessions are running; no shutdown is called.
    drop(a.peer.take());
    // Store::open waits (bounded) for a store still held while the aborted tasks unwind.
    let home = a.home.path().to_path_buf();
    let reopened = tokio::task::spawn_blocking(move || Machine::open(&home))
        .await
        .expect("join");
    assert!(reopened.is_ok(), "{:?}", reopened.err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_port_is_used_again_and_a_busy_one_is_replaced() {
    let home = tempfile::tempdir().expect("home");
    let options = PeerOptions {
        remember_port: true,
        ..options()
    };
    let (node, _) = Peer::init(home.path(), Some("p"), options.clone()).expect("init");
    let port = |p: &Peer| p.addrs().first().expect("addr").port();
    node.start().await.expect("start");
    let p1 = port(&node);
    node.stop().await.expect("stop");
    drop(node);
    let node = Peer::open(home.path(), options.clone()).expect("open");
    node.start().await.expect("restart");
    assert_eq!(port(&node), p1, "the port of the last run");
    node.stop().await.expect("stop");
    drop(node);

    // Someone else holds the remembered port now: any other, and that one is
    // remembered. (A port of our own choosing: the last run's socket may linger.)
    let squatter = std::net::UdpSocket::bind("127.0.0.1:0").expect("take a port");
    let taken = squatter.local_addr().expect("addr").port();
    let mut m = Machine::open(home.path()).expect("open");
    m.remember_port(taken).expect("remember");
    drop(m);
    let node = Peer::open(home.path(), options.clone()).expect("open");
    node.start().await.expect("start on another port");
    let p3 = port(&node);
    assert_ne!(p3, taken);
    node.stop().await.expect("stop");
    drop(node);
    drop(squatter);
    let m = Machine::open(home.path()).expect("open");
    assert_eq!(m.remembered_port().expect("meta"), Some(p3));
    drop(m);

    // Direct paths off and no relay at all (none given, none learned): refused, and the
    // node stays usable (stopped).
    let node = Peer::open(
        home.path(),
        PeerOptions {
            direct: false,
            learned_relays: true,
            ..options
        },
    )
    .expect("open");
    let e = node.start().await.expect_err("nothing could connect");
    assert_eq!(e.kind(), leanspec_peer_core::ErrorKind::InvalidArgument);
    assert!(!node.is_running());
    assert_eq!(node.summary().label, "p");
}

/// The read protocol (`leanspec-peer/read/1`): B reads A's spec body from A (the text
/// on A's disk, its hash checked), keeps a copy, shows the copy marked with its age
/// when A is stopped, and says `unavailable` for a body never fetched. A stranger is
/// refused before it can ask; a name that is not one of A's specs is not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_bodies_come_from_their_owner_and_are_kept_for_when_it_is_offline() {
    use leanspec_peer_core::machine::BodySource;
    let (mut a, b) = (node("a").await, node("b").await);
    a.project.write(
        "002-second",
        spec_text("draft", "a second").replace("Body.", "Quokka habitat notes."),
    );
    a.peer().scan(&mut |_| {}).expect("scan");
    pair(&a, &b).await;
    wait_until(b.peer(), "B holds A's two specs", || {
        b.peer()
            .specs(&SpecFilter {
                machine: Some("a".into()),
                ..SpecFilter::default()
            })
            .map(|r| r.len() == 2)
            .unwrap_or(false)
    })
    .await;
    let file = a.project.specs().join("001-first/README.md");
    let on_disk = std::fs::read_to_string(&file).expect("read");

    let body = b
        .peer()
        .spec_body(Some("a"), "a", "001-first")
        .await
        .expect("body");
    assert_eq!(body.source, BodySource::Owner);
    assert_eq!(body.text, on_disk);
    assert_eq!(
        body.file_hash,
        leanspec_peer_core::spec::sha256_hex(on_disk.as_bytes())
    );
    let row = b.peer().spec(Some("a"), "a", "001-first").expect("row");
    assert_eq!(body.file_hash, row.spec.file_hash, "the same version");
    // A kept body is searched too (score 1); one never read from its owner is not.
    let text = on_disk.replace("Body.", "Zanzibar spice routes.");
    a.project.write("001-first", &text);
    a.peer().scan(&mut |_| {}).expect("scan");
    wait_until(b.peer(), "B has A's new hash", || {
        b.peer().spec(Some("a"), "a", "001-first").is_ok_and(|r| {
            r.spec.file_hash == leanspec_peer_core::spec::sha256_hex(text.as_bytes())
        })
    })
    .await;
    assert!(
        b.peer().search("zanzibar", 10).expect("search").is_empty(),
        "not read yet"
    );
    let on_disk = text;
    let body = b
        .peer()
        .spec_body(Some("a"), "a", "001-first")
        .await
        .expect("body");
    assert_eq!(body.text, on_disk);
    let hits = b.peer().search("zanzibar", 10).expect("search");
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(
        (hits[0].row.spec.name.as_str(), hits[0].score),
        ("001-first", 1)
    );
    assert!(b.peer().search("quokka", 10).expect("search").is_empty());
    // This machine's own body is read from its disk.
    let own = b.peer().spec_body(None, "b", "1").await.expect("own");
    assert_eq!(own.source, BodySource::Local);

    // A stranger cannot ask.
    refused_as_stranger(&a, leanspec_peer_core::net::READ_ALPN).await;

    // A stopped: the kept copy, marked; a body never fetched is unavailable.
    a.stop().await;
    let cached = b
        .peer()
        .spec_body(Some("a"), "a", "001-first")
        .await
        .expect("the kept copy");
    assert_eq!(cached.source, BodySource::Cache);
    assert_eq!(cached.text, on_disk);
    assert!(cached.fetched_at <= body.fetched_at + 1 && cached.note.is_some());
    let e = b
        .peer()
        .spec_body(Some("a"), "a", "002-second")
        .await
        .expect_err("never fetched");
    assert_eq!(e.kind(), leanspec_peer_core::ErrorKind::Unreachable, "{e}");
    assert!(e.to_string().contains("no copy"), "{e}");
}

/// Issue 15: two machines whose documents are each larger than what a peer may have
/// unread on a stream (its window) sync both ways. A session that waited on each of its
/// writes stopped reading meanwhile: both sides waited for the other to read, for good
/// (50 machines: pairs online and never in sync). The window is made small here so
/// that the LeanSpec corpus is larger than it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_larger_than_the_stream_window_sync_both_ways() {
    let small = PeerOptions {
        limits: leanspec_peer_core::limits::Limits {
            stream_window: 4096,
            ..Default::default()
        },
        ..options()
    };
    let (a, b) = (
        node_with("a", small.clone()).await,
        node_with("b", small).await,
    );
    // A project whose specs folder is the corpus (a link: it is only read).
    let corpus = leanspec_peer_tests::corpus_project();
    a.peer()
        .add_project(corpus.path(), Some("corpus"))
        .expect("add");
    b.peer()
        .add_project(corpus.path(), Some("corpus"))
        .expect("add");
    let own = a.titles().len();
    assert!(own > 300, "the corpus is scanned ({own} specs)");
    assert_eq!(b.titles().len(), own);
    pair(&a, &b).await;
    wait_until(a.peer(), "a holds b's specs", || {
        a.titles().len() == 2 * own
    })
    .await;
    wait_until(b.peer(), "b holds a's specs", || {
        b.titles().len() == 2 * own
    })
    .await;
}

/// A running peer defers compaction off the save path: while saves keep coming its
/// document gathers chunks, and once it has been quiet (`peer::maintain`, 2 s) the
/// document is folded into one chunk without anyone asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_peer_compacts_once_quiet_not_between_saves() {
    let home = tempfile::tempdir().expect("home");
    let project = TempProject::new();
    let names: Vec<String> = (0..10).map(|i| format!("{:03}-s{i}", i + 1)).collect();
    for n in &names {
        project.write(n, spec_text("planned", n));
    }
    let (node, _) = Peer::init(home.path(), Some("a"), options()).expect("init");
    let (p, _) = node.add_project(project.root(), None).expect("add");
    node.start().await.expect("start");
    let chunks = |node: &Peer| node.status().expect("status").store.doc_chunks;
    // Saves, each waited for, until the document has been due for compaction (its
    // changes outweigh its last full save) for well over a maintenance round: the
    // chunk count only grows meanwhile.
    let started = std::time::Instant::now();
    let mut seen = vec![chunks(&node)];
    for i in 0..3000 {
        let name = &names[i % names.len()];
        let title = format!("{name} save {i}");
        project.write(name, spec_text("planned", &title));
        wait_until(&node, "the save is in the document", || {
            node.spec(None, &p.name, name)
                .is_ok_and(|row| row.spec.title == title)
        })
        .await;
        seen.push(chunks(&node));
        // Due after ~250 saves here; a maintenance round comes every second.
        if i >= 300 && started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    assert!(
        seen.windows(2).all(|w| w[1] >= w[0]),
        "no compaction between saves: {seen:?}"
    );
    wait_until(&node, "compacted once quiet", || chunks(&node) == 1).await;
    node.stop().await.expect("stop");
}
