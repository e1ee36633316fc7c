//! Helpers shared by the integration tests: the corpus path, temporary projects made of
//! real files, and an independent reading of frontmatter lines for diff checks.

pub mod process;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The LeanSpec corpus: `LEANSPEC_CORPUS`, else `../shared/corpus/lean-spec-specs`
/// beside the workspace. Panics (the test fails, it does not skip) when neither exists.
pub fn corpus_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("LEANSPEC_CORPUS") {
        let p = PathBuf::from(p);
        assert!(
            p.is_dir(),
            "LEANSPEC_CORPUS={} is not a folder",
            p.display()
        );
        return p;
    }
    let fallback =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/lean-spec-specs");
    assert!(
        fallback.is_dir(),
        "the LeanSpec corpus is missing: set LEANSPEC_CORPUS to shared/corpus/lean-spec-specs"
    );
    fallback
}

/// A project whose `specs/` folder is a copy of the corpus (copied at test time, never
/// committed). A symlink to it would be refused: a specs folder that leads out of its
/// project is not read (`spec/discover.rs`, issue 39).
pub fn corpus_project() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        fs::create_dir_all(to).expect("mkdir");
        for entry in fs::read_dir(from).expect("read corpus") {
            let entry = entry.expect("entry");
            let kind = entry.file_type().expect("type");
            let dest = to.join(entry.file_name());
            if kind.is_dir() {
                copy(&entry.path(), &dest);
            } else if kind.is_file() {
                fs::copy(entry.path(), &dest).expect("copy");
            }
        }
    }
    let project = tempfile::tempdir().expect("project");
    copy(&corpus_dir(), &project.path().join("specs"));
    project
}

/// A project folder in a temp dir with a `specs/` folder.
#[derive(Debug)]
pub struct TempProject {
    /// Keeps the folder alive.
    pub dir: tempfile::TempDir,
}

impl TempProject {
    /// An empty project.
    pub fn new() -> TempProject {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("specs")).expect("mkdir specs");
        TempProject { dir }
    }

    /// The project root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The specs folder.
    pub fn specs(&self) -> PathBuf {
        self.dir.path().join("specs")
    }

    /// Writes `specs/<name>/README.md`.
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let d = self.specs().join(name);
        fs::create_dir_all(&d).expect("mkdir spec");
        let p = d.join("README.md");
        fs::write(&p, bytes).expect("write spec");
        p
    }
}

impl Default for TempProject {
    fn default() -> Self {
        Self::new()
    }
}

/// A small valid spec.
pub fn spec_text(status: &str, title: &str) -> String {
    format!(
        "---\nstatus: {status}\ncreated: '2025-01-01'\npriority: high\ntags: [a, b]\n---\n\n# {title}\n\nBody.\n"
    )
}

/// Sets the mtime of every file and folder under `root` to an hour ago, so a scan may
/// trust their stat (files changed within two seconds are always re-read).
pub fn age_tree(root: &Path) {
    let old = SystemTime::now() - Duration::from_secs(3600);
    let mut stack = vec![root.to_path_buf()];
    let mut dirs = Vec::new();
    while let Some(p) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.is_dir() {
            for e in fs::read_dir(&p).expect("read_dir").flatten() {
                stack.push(e.path());
            }
            dirs.push(p);
        } else if let Ok(f) = fs::File::options().write(true).open(&p) {
            f.set_modified(old).expect("set mtime");
        }
    }
    // Folders last: touching files inside would not change them, but be safe.
    for d in dirs {
        if let Ok(f) = fs::File::open(&d) {
            let _ = f.set_modified(old);
        }
    }
}

/// The frontmatter lines of a spec file (between the `---` lines), read independently
/// of the editor: used to check that an edit touched only the expected keys.
pub fn frontmatter_lines(text: &str) -> Vec<String> {
    let rest = text.strip_prefix("---").expect("file starts with ---");
    let end = rest.find("\n---").expect("frontmatter closes");
    rest[..end]
        .split('\n')
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// Everything after the frontmatter's closing `\n---`.
pub fn after_frontmatter(text: &str) -> &str {
    let rest = text.strip_prefix("---").expect("file starts with ---");
    let end = rest.find("\n---").expect("frontmatter closes");
    &rest[end..]
}

/// The frontmatter lines with the spans of `keys` removed (a span: the key line and the
/// following indented or `-` lines).
pub fn lines_without(lines: &[String], keys: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skipping = false;
    for l in lines {
        let top = !l.starts_with([' ', '\t', '-', '#']) && !l.is_empty();
        if top {
            let key = l.split(':').next().unwrap_or("");
            skipping = keys.contains(&key);
        } else if !l.starts_with([' ', '\t', '-']) {
            skipping = false;
        }
        if !skipping {
            out.push(l.clone());
        }
    }
    out
}

/// The span of one key (its line and continuation lines), if present.
pub fn key_span(lines: &[String], key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for l in lines {
        let top = !l.starts_with([' ', '\t', '-', '#']) && !l.is_empty();
        if top {
            inside = l.split(':').next() == Some(key);
        } else if !l.starts_with([' ', '\t', '-']) {
            inside = false;
        }
        if inside {
            out.push(l.clone());
        }
    }
    out
}

/// How long a network test waits for a condition.
pub const WAIT: Duration = Duration::from_secs(20);

/// Sends the core's logs to the test's captured output (shown for failed tests) when
/// `LEANSPEC_TEST_LOG` holds a filter, e.g. `leanspec_peer_core=debug`.
pub fn logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("LEANSPEC_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

/// Waits until `cond` holds, re-checking on every event of `peer` (and every 250 ms),
/// at most [`WAIT`]. Panics with `what` on timeout.
pub async fn wait_until(
    peer: &leanspec_peer_core::Node,
    what: &str,
    mut cond: impl FnMut() -> bool,
) {
    logs();
    let (_, mut events) = peer.subscribe();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {WAIT:?} waiting for: {what}");
        }
        let _ = tokio::time::timeout(Duration::from_millis(250), events.recv()).await;
    }
}

/// Pairs two running peers: `inviter` issues a one-time ticket, `joiner` joins.
pub async fn pair(inviter: &leanspec_peer_core::Node, joiner: &leanspec_peer_core::Node) {
    let ticket = inviter
        .invite(Duration::from_secs(600), false)
        .expect("invite");
    let joined = joiner.join(&ticket.to_string()).await.expect("join");
    assert_eq!(joined.inviter, inviter.id());
}

/// Pairs `joiner` into `inviter`'s mesh, as the join protocol does.
pub fn pair_machines(
    inviter: &mut leanspec_peer_core::Machine,
    joiner: &mut leanspec_peer_core::Machine,
) {
    let label = joiner.label();
    inviter
        .add_member(joiner.id(), &label, None)
        .expect("add member");
    let mesh = inviter.mesh_bytes();
    let signatures = inviter.mesh_signatures().expect("signatures");
    joiner.adopt_mesh(&mesh, &signatures).expect("adopt");
}

/// Runs the sync protocol between two machines until neither has anything to say.
/// Syncs two machines until neither has anything to send; returns the spec-level changes
/// both received.
pub fn sync_machines(
    a: &mut leanspec_peer_core::Machine,
    b: &mut leanspec_peer_core::Machine,
) -> Vec<leanspec_peer_core::DocChange> {
    let mut received = Vec::new();
    let mut states: std::collections::HashMap<
        (bool, leanspec_peer_core::DocKey),
        automerge::sync::State,
    > = std::collections::HashMap::new();
    for _round in 0..50 {
        let mut sent = false;
        for from_a in [true, false] {
            let (src, dst) = if from_a {
                (&mut *a, &mut *b)
            } else {
                (&mut *b, &mut *a)
            };
            let mut keys = src.sync_keys();
            for k in dst.sync_keys() {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
            for key in keys {
                let st = states.entry((from_a, key)).or_default();
                if let Some(msg) = src.generate_sync(key, st) {
                    sent = true;
                    let src_id = src.id();
                    let rst = states.entry((!from_a, key)).or_default();
                    match dst.receive_sync(src_id, key, rst, &msg) {
                        Ok(changes) => received.extend(changes),
                        Err(leanspec_peer_core::SyncError::UnknownDoc) => {}
                        Err(e) => panic!("sync refused: {e}"),
                    }
                }
            }
        }
        if !sent {
            return received;
        }
    }
    panic!("sync did not settle in 50 rounds");
}
