//! The store: reopen, the stat cache, compaction, and damaged or foreign stores.

use leanspec_peer_core::identity::KEY_FILE;
use leanspec_peer_core::store::{STORE_FILE, Store, StoreError};
use leanspec_peer_core::{Error, Machine};
use leanspec_peer_tests::{TempProject, age_tree, spec_text};
use std::fs;
use std::os::unix::fs::PermissionsExt;

fn machine_with(p: &TempProject, n: usize) -> (Machine, tempfile::TempDir) {
    for i in 0..n {
        p.write(
            &format!("{:03}-spec-{i}", i + 1),
            spec_text("planned", &format!("Spec {i}")),
        );
    }
    let home = tempfile::tempdir().expect("home");
    let (mut m, created) = Machine::init(home.path(), Some("t")).expect("init");
    assert!(created);
    m.add_project(p.root(), Some("p")).expect("add");
    (m, home)
}

#[test]
fn reopen_gives_the_same_machine_and_specs() {
    let p = TempProject::new();
    let (m, home) = machine_with(&p, 20);
    let (id, rows) = (m.id(), m.specs(&Default::default()).expect("specs"));
    drop(m);
    let m = Machine::open(home.path()).expect("reopen");
    assert_eq!(m.id(), id);
    assert_eq!(m.specs(&Default::default()).expect("specs"), rows);
    drop(m);
    let (again, created) = Machine::init(home.path(), None).expect("init again");
    assert!(!created);
    assert_eq!(again.id(), id);
    let mode = fs::metadata(home.path().join(KEY_FILE))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn warm_rescan_reads_nothing_and_a_change_reads_one_file() {
    let p = TempProject::new();
    let (mut m, _home) = machine_with(&p, 50);
    // Fresh files are re-read on every scan (their stat cannot be trusted yet).
    age_tree(p.root());
    m.scan(&mut |_| {}).expect("scan to fill the cache");
    let r = m.scan(&mut |_| {}).expect("warm scan");
    assert_eq!((r.projects[0].read, r.change_bytes), (0, 0), "{r:?}");
    p.write("007-spec-6", spec_text("complete", "Spec 6"));
    let r = m.scan(&mut |_| {}).expect("scan");
    assert_eq!((r.projects[0].read, r.projects[0].updated), (1, 1), "{r:?}");
    assert!(
        r.change_bytes > 0 && r.change_bytes < 400,
        "one spec's change: {} bytes",
        r.change_bytes
    );
    assert_eq!(
        m.spec("p", "7")
            .expect("spec")
            .spec
            .status
            .map(|s| s.as_str()),
        Some("complete")
    );
}

#[test]
fn compaction_keeps_the_store_near_a_fresh_save() {
    let p = TempProject::new();
    let (mut m, home) = machine_with(&p, 30);
    let project = m.project("p").expect("p").id;
    for round in 0..300 {
        let status = if round % 2 == 0 {
            "complete"
        } else {
            "planned"
        };
        let i = round % 30;
        let name = format!("{:03}-spec-{i}", i + 1);
        p.write(&name, spec_text(status, &format!("Spec {i}")));
        m.rescan_spec(&project, &name).expect("rescan");
    }
    let stats = m.doc_stats().expect("stats");
    assert!(stats.chunks < 300, "chunks are compacted: {stats:?}");
    let fresh = m.doc().fresh_copy_size(m.id()) as u64;
    assert!(
        stats.chunk_bytes <= 3 * fresh,
        "stored {} vs fresh {fresh}",
        stats.chunk_bytes
    );
    let rows = m.specs(&Default::default()).expect("specs");
    drop(m);
    let m = Machine::open(home.path()).expect("reopen after compaction");
    assert_eq!(m.specs(&Default::default()).expect("specs"), rows);
}

#[test]
fn a_damaged_store_is_an_error_and_is_left_as_it_was() {
    let p = TempProject::new();
    let (m, home) = machine_with(&p, 5);
    drop(m);
    let path = home.path().join(STORE_FILE);
    let mut bytes = fs::read(&path).expect("read");
    // Flip bytes all over the file (keeping its size).
    let len = bytes.len();
    for i in (0..len).step_by(97) {
        bytes[i] ^= 0x5a;
    }
    fs::write(&path, &bytes).expect("write");
    let e = Machine::open(home.path()).expect_err("damaged store must not open");
    assert!(
        matches!(e, Error::Store(StoreError::Corrupt { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("Move it aside"), "{e}");
    assert_eq!(
        fs::read(&path).expect("read"),
        bytes,
        "the damaged store is not modified"
    );

    // Truncated to half, and garbage that is not a store at all.
    fs::write(&path, &bytes[..len / 2]).expect("write");
    assert!(matches!(
        Machine::open(home.path()),
        Err(Error::Store(StoreError::Corrupt { .. }))
    ));
    fs::write(
        &path,
        b"this is not a redb file, just text that someone put here",
    )
    .expect("write");
    assert!(matches!(
        Machine::open(home.path()),
        Err(Error::Store(StoreError::Corrupt { .. }))
    ));
}

#[test]
fn a_newer_store_is_refused() {
    let p = TempProject::new();
    let (m, home) = machine_with(&p, 1);
    drop(m);
    let store = Store::open(&home.path().join(STORE_FILE)).expect("open");
    store
        .set_meta(
            leanspec_peer_core::store::MetaKey::SchemaVersion,
            &99u32.to_le_bytes(),
        )
        .expect("set");
    drop(store);
    let e = Machine::open(home.path()).expect_err("newer store");
    assert!(
        matches!(e, Error::Store(StoreError::NewerVersion { found: 99, .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("upgrade leanspec-peer"));
}

#[test]
fn a_store_in_use_is_reported() {
    let p = TempProject::new();
    let (_m, home) = machine_with(&p, 1);
    let e = Machine::open(home.path()).expect_err("second open");
    assert!(matches!(e, Error::Store(StoreError::InUse { .. })), "{e:?}");
}

#[test]
fn key_problems_are_clear() {
    let home = tempfile::tempdir().expect("home");
    assert!(matches!(
        Machine::open(home.path()),
        Err(Error::NotInitialized { .. })
    ));
    let (m, _) = Machine::init(home.path(), None).expect("init");
    drop(m);
    let key = home.path().join(KEY_FILE);
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
    let e = Machine::open(home.path()).expect_err("exposed key");
    assert!(e.to_string().contains("chmod 600"), "{e}");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::write(&key, "not a key").expect("write");
    let e = Machine::open(home.path()).expect_err("damaged key");
    assert!(e.to_string().contains("damaged"), "{e}");
    // Another machine's key next to this store is refused.
    let other = tempfile::tempdir().expect("other home");
    drop(Machine::init(other.path(), None).expect("other init"));
    fs::copy(other.path().join(KEY_FILE), &key).expect("swap key");
    let e = Machine::open(home.path()).expect_err("foreign key");
    assert!(e.to_string().contains("belongs to machine"), "{e}");
    // A store without its key: init refuses instead of minting a second identity.
    fs::remove_file(&key).expect("rm");
    let e = Machine::init(home.path(), None).expect_err("store without key");
    assert!(e.to_string().contains("machine key is missing"), "{e}");
}

/// Issue 11: the store holds local paths and every member's specs. It was created 0644
/// inside an existing home; now 0600, and an older store readable by others is tightened.
#[test]
fn the_store_is_readable_by_its_user_only() {
    let home = tempfile::tempdir().expect("home");
    let (m, _) = Machine::init(home.path(), Some("m")).expect("init");
    drop(m);
    let path = home.path().join(STORE_FILE);
    let mode = |p: &std::path::Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600, "a new store");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    drop(Machine::open(home.path()).expect("reopen"));
    assert_eq!(mode(&path), 0o600, "an older store readable by others");
}

/// The audit log keeps at most `max_records` records and `max_bytes` bytes, oldest
/// dropped first, in the append's own transaction; the newest record always stays.
#[test]
fn the_audit_log_keeps_the_newest_records_within_its_caps() {
    use leanspec_peer_core::store::AuditRetention;
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(&dir.path().join(STORE_FILE)).expect("open");
    let keep = AuditRetention {
        max_records: 5,
        max_bytes: 1_000_000,
    };
    for i in 0..20u8 {
        store.append_audit(&[i; 100], keep).expect("append");
    }
    let rows = store.audit(100).expect("audit");
    let seqs: Vec<u64> = rows.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        vec![20, 19, 18, 17, 16],
        "the newest five, numbering goes on"
    );
    let by_bytes = AuditRetention {
        max_records: 1_000,
        max_bytes: 350,
    };
    store.append_audit(&[9; 100], by_bytes).expect("append");
    assert_eq!(
        store.audit(100).expect("audit").len(),
        3,
        "3 x 100 <= 350 bytes"
    );
    store.append_audit(&[7; 1_000], by_bytes).expect("append");
    let rows = store.audit(100).expect("audit");
    assert_eq!(rows.len(), 1, "one record over the cap is kept alone");
    assert_eq!(rows[0].1.len(), 1_000);
    // The running total survives a reopen.
    drop(store);
    let store = Store::open(&dir.path().join(STORE_FILE)).expect("reopen");
    store.append_audit(&[1; 10], by_bytes).expect("append");
    assert_eq!(
        store.audit(100).expect("audit").len(),
        1,
        "1,010 bytes > 350"
    );
}

/// The home folder: writable by others is refused (with the command that fixes it);
/// readable by others is made private; the store inside is 0600.
#[test]
fn a_home_others_can_write_is_refused_and_a_readable_one_made_private() {
    let p = TempProject::new();
    let (m, dir) = machine_with(&p, 1);
    drop(m);
    let home = dir.path();
    fs::set_permissions(home, fs::Permissions::from_mode(0o777)).expect("chmod");
    let e = Machine::open(home).expect_err("refused");
    assert!(e.to_string().contains("chmod 700"), "{e}");
    assert!(Machine::init(home, None).is_err(), "init refuses it too");
    fs::set_permissions(home, fs::Permissions::from_mode(0o755)).expect("chmod");
    Machine::open(home).expect("opens");
    let mode = fs::metadata(home).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let store = fs::metadata(home.join(STORE_FILE))
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(store, 0o600);
}
