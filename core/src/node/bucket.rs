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
        allow_http: bool,
    ) -> Result<BucketReport> {
        let setting = BucketSetting::parse(url, endpoint, region)
            .and_then(|s| s.with_retention(snapshot_every, keep_snapshots))
            .map_err(crate::machine::Error::from)?;
        let mut m = lock(&self.local.machine);
        m.add_bucket(&setting, allow_http)?;
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

    /// Accepts the mesh's bucket `url` on this machine (`bucket/consent.rs`): until
    /// then it is proposed and this machine sends it nothing.
    pub fn bucket_accept(&self, url: &str, allow_http: bool) -> Result<BucketReport> {
        let url = url
            .parse::<crate::bucket::BucketUrl>()
            .map_err(crate::machine::Error::from)?
            .to_string();
        let mut m = lock(&self.local.machine);
        m.accept_bucket(&url, allow_http)?;
        let mut states = m.bucket_states();
        let report = m
            .buckets()
            .into_iter()
            .find(|b| b.url.to_string() == url)
            .map(|b| BucketReport::new(&b, states.remove(&url).unwrap_or_default()));
        drop(m);
        report.ok_or_else(|| {
            crate::machine::Error::from(crate::bucket::BucketError::Invalid(format!(
                "no bucket {url} in this mesh"
            )))
            .into()
        })
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
