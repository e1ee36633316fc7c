//! One round with every bucket: push what changed here since the last object, then
//! pull what other members left. Run by `up` (after local changes and on an interval)
//! and by `bucket sync`; one round at a time per node.

use super::MAX_OBJECT_BYTES;
use super::location::{BucketError, BucketSetting, Credentials};
use super::object::{self, Contents, Kind, ObjectError, ObjectName};
use super::remote::{Listed, Remote};
use super::state::BucketState;
use crate::identity::{Identity, MachineId};
use crate::machine::{DocChange, DocKey, Machine, now_secs};
use crate::node::Local;
use crate::peer::lock;
use automerge::ChangeHash;
use serde::{Deserialize, Serialize};

/// What one round did with one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    /// The bucket.
    pub url: String,
    /// The object this machine stored: its number, kind and size.
    pub pushed: Option<(u64, String, u64)>,
    /// Objects imported from other members.
    pub imported: u64,
    /// Objects refused, each with why.
    pub refused: Vec<String>,
    /// Why the round stopped early, if it did.
    pub error: Option<String>,
    /// Why this machine did not contact the bucket at all: it is proposed by another
    /// member and not accepted here (`consent.rs`).
    #[serde(default)]
    pub skipped: Option<String>,
}

/// A bucket as `bucket list` / `bucket status` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketReport {
    /// `s3://BUCKET/PREFIX`.
    pub url: String,
    /// The endpoint requests go to.
    pub endpoint: String,
    /// The region.
    pub region: Option<String>,
    /// Chunks between snapshots.
    pub snapshot_every: u64,
    /// Snapshots kept.
    pub keep_snapshots: u64,
    /// Who added it (hex id).
    pub added_by: String,
    /// When (unix seconds).
    pub added_at: i64,
    /// Where this machine's credentials come from (`environment` or a file), or null.
    pub credentials: Option<String>,
    /// What this machine remembers of it.
    pub state: BucketState,
}

impl BucketReport {
    pub(crate) fn new(s: &BucketSetting, state: BucketState) -> BucketReport {
        BucketReport {
            url: s.url.to_string(),
            endpoint: s.endpoint_shown(),
            region: s.region.clone(),
            snapshot_every: s.snapshot_every,
            keep_snapshots: s.keep_snapshots,
            added_by: s.added_by.clone(),
            added_at: s.added_at,
            credentials: Credentials::from_environment().map(|c| c.source),
            state,
        }
    }
}

/// The first 8 hex digits of a machine id, for messages.
fn short_id(hex: &str) -> &str {
    hex.get(..8).unwrap_or(hex)
}

/// Imported changes, to announce (events, sessions) by the caller.
pub(crate) type Imported = Vec<(DocKey, Vec<DocChange>)>;

/// Pushes to and (with `pull`) pulls from every bucket of the mesh.
pub(crate) async fn sync_all(local: &Local, pull: bool) -> (Vec<Round>, Imported) {
    let _one_at_a_time = local.bucket_round.lock().await;
    let settings = lock(&local.machine).buckets();
    let mut rounds = Vec::new();
    let mut imported = Vec::new();
    for s in settings {
        let url = s.url.to_string();
        let mut round = Round {
            url: url.clone(),
            ..Round::default()
        };
        // Proposed only: no request, no credentials read (consent.rs).
        if !lock(&local.machine).bucket_accepted(&s) {
            round.skipped = Some(format!(
                "proposed by {}; this machine sends it nothing until you accept it: \
                 `leanspec-peer bucket accept {url}`",
                short_id(&s.added_by)
            ));
            rounds.push(round);
            continue;
        }
        let result = match Credentials::from_environment() {
            None => Err(BucketError::NoCredentials { url: url.clone() }),
            Some(c) => match Remote::open(&s, &c) {
                Err(e) => Err(e),
                Ok(remote) => {
                    let mut r = push(local, &remote, &s, &mut round).await;
                    if r.is_ok() && pull {
                        r = pull_all(local, &remote, &url, &mut round, &mut imported).await;
                    }
                    r
                }
            },
        };
        let mut m = lock(&local.machine);
        let mut all = m.bucket_states();
        let st = all.entry(url.clone()).or_default();
        match &result {
            Ok(()) => {
                st.last_error = None;
                st.last_error_at = None;
                if pull {
                    st.last_pull_at = Some(now_secs());
                }
            }
            Err(e) => {
                tracing::warn!(bucket = %url, "bucket round failed: {e}");
                st.last_error = Some(e.to_string());
                st.last_error_at = Some(now_secs());
                round.error = Some(e.to_string());
            }
        }
        if let Err(e) = m.set_bucket_states(&all) {
            tracing::warn!(bucket = %url, "cannot keep the bucket's state: {e}");
        }
        drop(m);
        rounds.push(round);
    }
    (rounds, imported)
}

fn update(m: &mut Machine, url: &str, f: impl FnOnce(&mut BucketState)) {
    let mut all = m.bucket_states();
    f(all.entry(url.to_owned()).or_default());
    if let Err(e) = m.set_bucket_states(&all) {
        tracing::warn!(bucket = %url, "cannot keep the bucket's state: {e}");
    }
}

fn hex_key(key: DocKey) -> String {
    hex::encode(key.to_bytes())
}

fn parse_heads(hex: &[String]) -> Vec<ChangeHash> {
    hex.iter().filter_map(|h| h.parse().ok()).collect()
}

/// What to store: the next object, sealed, with the heads it brings readers to.
struct Outgoing {
    name: ObjectName,
    bytes: Vec<u8>,
    heads: Vec<(String, Vec<String>)>,
    recipients: Vec<String>,
}

fn prepare(m: &mut Machine, s: &BucketSetting) -> Result<Option<Outgoing>, crate::machine::Error> {
    let url = s.url.to_string();
    let st = m.bucket_states().remove(&url).unwrap_or_default();
    let recipients = m.bucket_recipients();
    let recipients_hex: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
    let snapshot = st.pushed.is_empty()
        || st.chunks_since_snapshot + 1 >= s.snapshot_every
        || st.recipients != recipients_hex;
    let me = m.id();
    let mut sections = Vec::new();
    let mut heads = Vec::new();
    // The mesh first: a reader learns of members before their documents.
    for key in [DocKey::Mesh, DocKey::Machine(me)] {
        let after = if snapshot {
            Vec::new()
        } else {
            parse_heads(
                st.pushed
                    .get(&hex_key(key))
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            )
        };
        if let Some(e) = m.export_for_bucket(key, &after)? {
            sections.push((key, e.message));
            heads.push((
                hex_key(key),
                e.heads.iter().map(|h| h.to_string()).collect(),
            ));
        }
    }
    if sections.is_empty() {
        return Ok(None);
    }
    let name = ObjectName {
        writer: me,
        seq: st.seq + 1,
        kind: if snapshot {
            Kind::Snapshot
        } else {
            Kind::Chunk
        },
    };
    let contents = Contents {
        name,
        written_at: now_secs(),
        sections,
    };
    let bytes = object::seal(m.identity(), &recipients, &contents)
        .map_err(|e| BucketError::Invalid(e.to_string()))?;
    Ok(Some(Outgoing {
        name,
        bytes,
        heads,
        recipients: recipients_hex,
    }))
}

async fn push(
    local: &Local,
    remote: &Remote,
    s: &BucketSetting,
    round: &mut Round,
) -> Result<(), BucketError> {
    let url = &s.url.to_string();
    let out = match prepare(&mut lock(&local.machine), s) {
        Ok(Some(o)) => o,
        Ok(None) => return Ok(()),
        Err(e) => {
            // This machine's own store failed (a full disk): nothing to push until it
            // recovers; the round still pulls.
            tracing::warn!(bucket = %url, "nothing pushed: {e}");
            return Ok(());
        }
    };
    let size = out.bytes.len() as u64;
    // The number is taken before the put: never used twice, even when a put that
    // failed here was stored there (the next object carries everything it had).
    update(&mut lock(&local.machine), url, |st| st.seq = out.name.seq);
    remote.put(&out.name, out.bytes).await?;
    let snapshot = out.name.kind == Kind::Snapshot;
    update(&mut lock(&local.machine), url, |st| {
        for (k, h) in out.heads {
            st.pushed.insert(k, h);
        }
        if snapshot {
            st.chunks_since_snapshot = 0;
            st.recipients = out.recipients;
        } else {
            st.chunks_since_snapshot += 1;
        }
        st.objects_pushed += 1;
        st.bytes_pushed += size;
        st.last_push_at = Some(now_secs());
    });
    round.pushed = Some((
        out.name.seq,
        if snapshot { "snapshot" } else { "chunk" }.into(),
        size,
    ));
    tracing::info!(bucket = %url, seq = out.name.seq, bytes = size, snapshot, "stored an object in the bucket");
    if snapshot {
        compact(remote, out.name.writer, url, s.keep_snapshots).await;
    }
    Ok(())
}

/// Deletes this machine's objects older than its `keep`-th newest snapshot (readers
/// behind them start from a newer snapshot). Failures wait for the next one.
async fn compact(remote: &Remote, me: MachineId, url: &str, keep: u64) {
    let listed = match remote.list(me).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(bucket = %url, "compaction skipped: {e}");
            return;
        }
    };
    let mut snaps: Vec<u64> = listed
        .iter()
        .filter(|l| l.name.kind == Kind::Snapshot)
        .map(|l| l.name.seq)
        .collect();
    snaps.sort_unstable_by(|a, b| b.cmp(a));
    let Some(&cutoff) = snaps.get(usize::try_from(keep.max(1) - 1).unwrap_or(usize::MAX)) else {
        return;
    };
    for l in listed.iter().filter(|l| l.name.seq < cutoff) {
        if let Err(e) = remote.delete(&l.name).await {
            tracing::warn!(bucket = %url, "compaction stopped: {e}");
            return;
        }
    }
}

/// The objects of one writer to read after `last`: from its newest snapshot if that is
/// newer (it holds everything before it), else the chunks after `last`.
pub(crate) fn to_read(listed: &[Listed], last: u64) -> Vec<Listed> {
    let newest_snapshot = listed
        .iter()
        .filter(|l| l.name.kind == Kind::Snapshot)
        .map(|l| l.name.seq)
        .max();
    match newest_snapshot {
        Some(s) if s > last => listed
            .iter()
            .filter(|l| l.name.seq > s || (l.name.seq == s && l.name.kind == Kind::Snapshot))
            .filter(|l| l.name.seq == s || l.name.kind == Kind::Chunk)
            .copied()
            .collect(),
        _ => listed
            .iter()
            .filter(|l| l.name.seq > last && l.name.kind == Kind::Chunk)
            .copied()
            .collect(),
    }
}

async fn pull_all(
    local: &Local,
    remote: &Remote,
    url: &str,
    round: &mut Round,
    imported: &mut Imported,
) -> Result<(), BucketError> {
    let (identity, writers, st) = {
        let m = lock(&local.machine);
        let me = m.id();
        let writers: Vec<MachineId> = m
            .bucket_recipients()
            .into_iter()
            .filter(|id| *id != me)
            .collect();
        let st = m.bucket_states().remove(url).unwrap_or_default();
        (m.identity().clone(), writers, st)
    };
    let mut not_recipient = None;
    for writer in writers {
        let last = st.imported.get(&writer.to_string()).copied().unwrap_or(0);
        let listed = remote.list(writer).await?;
        for l in to_read(&listed, last) {
            match pull_one(local, remote, url, &identity, l, imported).await? {
                Pulled::Imported => round.imported += 1,
                Pulled::Gone => {}
                Pulled::NotRecipient => {
                    not_recipient = Some(writer);
                    break;
                }
                Pulled::Refused(why) => {
                    round.refused.push(why);
                    break;
                }
            }
        }
    }
    match not_recipient {
        Some(w) => Err(BucketError::NotRecipient {
            writer: w.to_string(),
        }),
        None => Ok(()),
    }
}

enum Pulled {
    Imported,
    Gone,
    NotRecipient,
    Refused(String),
}

async fn pull_one(
    local: &Local,
    remote: &Remote,
    url: &str,
    identity: &Identity,
    l: Listed,
    imported: &mut Imported,
) -> Result<Pulled, BucketError> {
    let name = l.name;
    let refuse = |why: String| {
        let why = format!("{}: {why}", name.path());
        tracing::warn!(bucket = %url, "refused a bucket object: {why}");
        update(&mut lock(&local.machine), url, |st| {
            st.refused += 1;
            st.last_refusal = Some(why.clone());
        });
        Pulled::Refused(why)
    };
    if l.size > MAX_OBJECT_BYTES {
        return Ok(refuse(format!(
            "{} bytes, over the {MAX_OBJECT_BYTES}-byte bound",
            l.size
        )));
    }
    let Some(bytes) = remote.get(&name).await? else {
        return Ok(Pulled::Gone);
    };
    let contents = match object::open(identity, &name, &bytes, MAX_OBJECT_BYTES) {
        Ok(c) => c,
        Err(ObjectError::NotRecipient) => return Ok(Pulled::NotRecipient),
        Err(e) => return Ok(refuse(e.to_string())),
    };
    let writer = name.writer;
    let mut m = lock(&local.machine);
    let mut changes = Vec::new();
    for (key, message) in &contents.sections {
        // A writer leaves its own document and the mesh, nothing else.
        if !matches!(key, DocKey::Mesh) && *key != DocKey::Machine(writer) {
            drop(m);
            return Ok(refuse("carries another machine's document".into()));
        }
        match m.import_from_bucket(writer, *key, message) {
            Ok(c) => changes.push((*key, c)),
            Err(e) => {
                drop(m);
                return Ok(refuse(e.to_string()));
            }
        }
    }
    update(&mut m, url, |st| {
        st.imported.insert(writer.to_string(), name.seq);
        st.objects_pulled += 1;
        st.bytes_pulled += bytes.len() as u64;
    });
    drop(m);
    imported.extend(changes.into_iter().filter(|(_, c)| !c.is_empty()));
    Ok(Pulled::Imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(w: MachineId, items: &[(u64, Kind)]) -> Vec<Listed> {
        items
            .iter()
            .map(|(seq, kind)| Listed {
                name: ObjectName {
                    writer: w,
                    seq: *seq,
                    kind: *kind,
                },
                size: 1,
            })
            .collect()
    }

    #[test]
    fn a_reader_starts_from_the_newest_snapshot_it_lacks_else_reads_chunks() {
        use Kind::{Chunk as C, Snapshot as S};
        let w = Identity::generate().expect("key").id();
        let all = listed(w, &[(1, S), (2, C), (3, C), (4, S), (5, C), (6, C)]);
        let seqs = |v: Vec<Listed>| v.iter().map(|l| l.name.seq).collect::<Vec<_>>();
        assert_eq!(seqs(to_read(&all, 0)), vec![4, 5, 6]);
        assert_eq!(seqs(to_read(&all, 2)), vec![4, 5, 6]);
        assert_eq!(seqs(to_read(&all, 4)), vec![5, 6]);
        assert_eq!(seqs(to_read(&all, 5)), vec![6]);
        assert_eq!(seqs(to_read(&all, 6)), Vec::<u64>::new());
    }
}
