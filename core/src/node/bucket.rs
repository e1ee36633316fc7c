//! The `Node` calls for buckets (docs/bucket.md): add, remove and list them (recorded in
//! the mesh, replicated without credentials), and a round now (`bucket sync`).

use super::{Node, Result};
use crate::bucket::{BucketReport, BucketSetting, Round};
use crate::machine::DocKey;
use crate::peer::lock;

impl Node {
    /// Records a bucket for the whole mesh, with its retention (chunks between
    /// snapshots, snapshots kept) or the defaults. Credentials stay in each machine's
    /// environment.
    pub fn bucket_add(
        &self,
        url: &str,
        endpoint: Option<&str>,
        region: Option<&str>,
        snapshot_every: Option<u64>,
        keep_snapshots: Option<u64>,
    ) -> Result<BucketReport> {
        let setting = BucketSetting::parse(url, endpoint, region)
            .and_then(|s| s.with_retention(snapshot_every, keep_snapshots))
            .map_err(crate::machine::Error::from)?;
        let mut m = lock(&self.local.machine);
        m.add_bucket(&setting)?;
        let report = m
            .buckets()
            .into_iter()
            .find(|b| b.url == setting.url)
            .map(|b| {
                let state = m
                    .bucket_states()
                    .remove(&b.url.to_string())
                    .unwrap_or_default();
                BucketReport::new(&b, state)
            });
        drop(m);
        self.announce(DocKey::Mesh, &[crate::machine::DocChange::MeshChanged]);
        Ok(report.unwrap_or_else(|| BucketReport::new(&setting, Default::default())))
    }

    /// Removes a bucket from the mesh (its objects stay in the bucket).
    pub fn bucket_remove(&self, url: &str) -> Result<()> {
        let url = url
            .parse::<crate::bucket::BucketUrl>()
            .map_err(crate::machine::Error::from)?
            .to_string();
        lock(&self.local.machine).remove_bucket(&url)?;
        self.announce(DocKey::Mesh, &[crate::machine::DocChange::MeshChanged]);
        Ok(())
    }

    /// The mesh's buckets with what this machine knows of each.
    pub fn buckets(&self) -> Vec<BucketReport> {
        let m = lock(&self.local.machine);
        let mut states = m.bucket_states();
        m.buckets()
            .iter()
            .map(|b| BucketReport::new(b, states.remove(&b.url.to_string()).unwrap_or_default()))
            .collect()
    }

    /// One round with every bucket now: push what changed here, pull what other members
    /// left, announce what was imported.
    pub async fn bucket_sync(&self) -> Vec<Round> {
        let (rounds, imported) = crate::bucket::sync_all(&self.local, true).await;
        for (key, changes) in imported {
            self.announce(key, &changes);
        }
        rounds
    }
}
