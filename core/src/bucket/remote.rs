//! The bucket's S3 API, through `object_store`: list a writer's objects, get, put,
//! delete; each failure turned into a [`BucketError`] that says what to do.

use super::location::{BucketError, BucketSetting, Credentials};
use super::object::ObjectName;
use crate::identity::MachineId;
use n0_future::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use std::time::Duration;

/// Most objects listed under one writer's folder (a writer compacts long before).
const MAX_LISTED: usize = 100_000;

/// One bucket, opened with this machine's credentials.
#[derive(Debug)]
pub(crate) struct Remote {
    store: AmazonS3,
    setting: BucketSetting,
}

/// An object as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listed {
    pub(crate) name: ObjectName,
    pub(crate) size: u64,
}

impl Remote {
    pub(crate) fn open(
        setting: &BucketSetting,
        creds: &Credentials,
    ) -> Result<Remote, BucketError> {
        // reqwest's rustls is built without a provider (its default would add aws-lc);
        // ring is the one iroh uses. Installing twice is refused, harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&setting.url.bucket)
            .with_region(setting.region.as_deref().unwrap_or("us-east-1"))
            .with_access_key_id(&creds.key_id)
            .with_secret_access_key(&creds.secret)
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_timeout(Duration::from_secs(60))
                    .with_connect_timeout(Duration::from_secs(5)),
            )
            // A few quick retries within one round; the round itself is retried with
            // backoff by its caller.
            .with_retry(object_store::RetryConfig {
                backoff: object_store::BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: 2,
                retry_timeout: Duration::from_secs(15),
            });
        if let Some(t) = &creds.token {
            b = b.with_token(t);
        }
        if let Some(e) = &setting.endpoint {
            b = b
                .with_endpoint(e)
                .with_allow_http(e.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let store = b
            .build()
            .map_err(|e| BucketError::Invalid(format!("{}: {e}", setting.url)))?;
        Ok(Remote {
            store,
            setting: setting.clone(),
        })
    }

    fn path(&self, name: &ObjectName) -> Path {
        Path::from(format!("{}/{}", self.setting.url.prefix, name.path()))
    }

    fn error(&self, e: object_store::Error) -> BucketError {
        let url = self.setting.url.to_string();
        match e {
            object_store::Error::PermissionDenied { source, .. }
            | object_store::Error::Unauthenticated { source, .. } => BucketError::Denied {
                url,
                detail: first_line(&source.to_string()),
            },
            // Listing errors come back generic, with the status in the text.
            e if is_denial(&e.to_string()) => BucketError::Denied {
                url,
                detail: s3_code(&e.to_string()).unwrap_or_else(|| first_line(&e.to_string())),
            },
            e => BucketError::Unreachable {
                url,
                endpoint: self.setting.endpoint_shown(),
                detail: first_line(&e.to_string()),
            },
        }
    }

    /// The objects under `writer`'s folder, in sequence order; names that are not ours
    /// are ignored.
    pub(crate) async fn list(&self, writer: MachineId) -> Result<Vec<Listed>, BucketError> {
        let folder = Path::from(format!("{}/{}", self.setting.url.prefix, writer));
        let mut stream = self.store.list(Some(&folder));
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            let meta = item.map_err(|e| self.error(e))?;
            let file = meta.location.filename().unwrap_or_default();
            if let Some(name) = ObjectName::parse(writer, file) {
                out.push(Listed {
                    name,
                    size: meta.size,
                });
            }
            if out.len() >= MAX_LISTED {
                break;
            }
        }
        out.sort_by_key(|l| l.name.seq);
        Ok(out)
    }

    /// An object's bytes; `None` if it is gone (deleted by its writer's compaction).
    pub(crate) async fn get(&self, name: &ObjectName) -> Result<Option<Vec<u8>>, BucketError> {
        match self.store.get(&self.path(name)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|e| self.error(e))?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    pub(crate) async fn put(&self, name: &ObjectName, bytes: Vec<u8>) -> Result<(), BucketError> {
        self.store
            .put(&self.path(name), bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    pub(crate) async fn delete(&self, name: &ObjectName) -> Result<(), BucketError> {
        match self.store.delete(&self.path(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }
}

fn is_denial(text: &str) -> bool {
    text.contains("403 Forbidden") || text.contains("401 Unauthorized")
}

/// The S3 error code (`SignatureDoesNotMatch`, `InvalidAccessKeyId`, …) in a reply.
fn s3_code(text: &str) -> Option<String> {
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(text[start..start + len].chars().take(80).collect())
}

/// Errors from the HTTP stack nest their causes over many lines; the first says it.
fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}
