//! The buckets of a mesh (docs/bucket.md): where members leave encrypted copies of their
//! documents for each other. Replicated without credentials: each machine uses a bucket
//! once its own environment has credentials for it.
//!
//! Schema: `buckets: { <s3 url>: { endpoint?: str, region?: str, snapshot_every?: int,
//! keep_snapshots?: int, added_by: str, added_at: int } }`. What a member wrote is checked on read ([`BucketSetting::parse`]),
//! never trusted: a record that does not parse is ignored.

use super::MeshDoc;
use crate::bucket::BucketSetting;
use crate::identity::MachineId;
use automerge::transaction::Transactable;
use automerge::{ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};

const BUCKETS: &str = "buckets";

impl MeshDoc {
    fn buckets_obj(&self) -> Option<ObjId> {
        match self.t.doc.get(ROOT, BUCKETS) {
            Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
            _ => None,
        }
    }

    /// The buckets every member may use, sorted by URL; records that do not parse are
    /// left out.
    pub fn buckets(&self) -> Vec<BucketSetting> {
        let Some(obj) = self.buckets_obj() else {
            return Vec::new();
        };
        let doc = &self.t.doc;
        let text = |o: &ObjId, k: &str| match doc.get(o, k) {
            Ok(Some((Value::Scalar(s), _))) => s.as_str().map(str::to_owned),
            _ => None,
        };
        let mut out: Vec<BucketSetting> = doc
            .keys(&obj)
            .filter_map(|url| {
                let rec = match doc.get(&obj, url.as_str()) {
                    Ok(Some((Value::Object(ObjType::Map), r))) => r,
                    _ => return None,
                };
                let int = |k: &str| match doc.get(&rec, k) {
                    Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                        ScalarValue::Int(i) => Some(*i),
                        _ => None,
                    },
                    _ => None,
                };
                let added_at = int("added_at").unwrap_or(0);
                let every = int("snapshot_every").and_then(|i| u64::try_from(i).ok());
                let keep = int("keep_snapshots").and_then(|i| u64::try_from(i).ok());
                BucketSetting::parse(
                    &url,
                    text(&rec, "endpoint").as_deref(),
                    text(&rec, "region").as_deref(),
                )
                .and_then(|b| b.with_retention(every, keep))
                .ok()
                .map(|mut b| {
                    b.added_by = text(&rec, "added_by").unwrap_or_default();
                    b.added_at = added_at;
                    b
                })
            })
            .collect();
        out.sort_by(|a, b| a.url.cmp(&b.url));
        out
    }

    /// Adds (or replaces) a bucket.
    pub fn add_bucket(&mut self, b: &BucketSetting, by: MachineId, now: i64) {
        let obj = match self.buckets_obj() {
            Some(o) => o,
            None => match self.t.doc.put_object(ROOT, BUCKETS, ObjType::Map) {
                Ok(o) => o,
                Err(_) => return,
            },
        };
        let key = b.url.to_string();
        let doc = &mut self.t.doc;
        if let Ok(rec) = doc.put_object(&obj, key.as_str(), ObjType::Map) {
            if let Some(e) = &b.endpoint {
                let _ = doc.put(&rec, "endpoint", e.as_str());
            }
            if let Some(r) = &b.region {
                let _ = doc.put(&rec, "region", r.as_str());
            }
            let _ = doc.put(&rec, "snapshot_every", b.snapshot_every as i64);
            let _ = doc.put(&rec, "keep_snapshots", b.keep_snapshots as i64);
            let _ = doc.put(&rec, "added_by", by.to_string());
            let _ = doc.put(&rec, "added_at", now);
        }
    }

    /// Removes a bucket; false if the mesh has none with this URL.
    pub fn remove_bucket(&mut self, url: &str) -> bool {
        let Some(obj) = self.buckets_obj() else {
            return false;
        };
        if !matches!(self.t.doc.get(&obj, url), Ok(Some(_))) {
            return false;
        }
        self.t.doc.delete(&obj, url).is_ok()
    }
}
