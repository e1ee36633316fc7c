//! Where a bucket is (`s3://BUCKET/PREFIX`, an optional endpoint and region) and the
//! credentials this machine uses for it: from its own environment, never from the mesh.

use std::path::PathBuf;

/// Prefix used when the URL names none.
const DEFAULT_PREFIX: &str = "leanspec-peer";
/// Longest URL, endpoint or region accepted (from the command line or a member).
const MAX_TEXT: usize = 512;

/// Why a bucket cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BucketError {
    /// The URL, endpoint or region is not valid.
    #[error("{0}")]
    Invalid(String),
    /// No credentials in this machine's environment.
    #[error(
        "no credentials for {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile in ~/.aws/credentials, chosen by AWS_PROFILE) in the environment of `leanspec-peer up`"
    )]
    NoCredentials {
        /// The bucket.
        url: String,
    },
    /// The bucket refused the credentials.
    #[error(
        "{url} refused this machine's credentials ({detail}): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's policy"
    )]
    Denied {
        /// The bucket.
        url: String,
        /// What the server said.
        detail: String,
    },
    /// The endpoint did not answer (or answered with a server error).
    #[error("cannot reach {url} at {endpoint}: {detail}; leanspec-peer retries by itself")]
    Unreachable {
        /// The bucket.
        url: String,
        /// Where it was looked for.
        endpoint: String,
        /// What failed.
        detail: String,
    },
    /// This machine is not among the recipients of the bucket's newest objects (it was
    /// revoked, or joined after them and no member has written since).
    #[error(
        "this machine is not a recipient of this bucket's objects from {writer}: it was revoked, or that member has not written since this machine joined"
    )]
    NotRecipient {
        /// The writer whose objects it cannot read.
        writer: String,
    },
}

/// `s3://BUCKET/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BucketUrl {
    /// The bucket name.
    pub bucket: String,
    /// The prefix every object of this mesh goes under (no leading or trailing slash).
    pub prefix: String,
}

impl std::fmt::Display for BucketUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

impl std::str::FromStr for BucketUrl {
    type Err = BucketError;

    fn from_str(s: &str) -> Result<BucketUrl, BucketError> {
        let bad = |why: &str| {
            BucketError::Invalid(format!(
                "bucket URL {s:?}: {why} (expected s3://BUCKET/PREFIX)"
            ))
        };
        if s.len() > MAX_TEXT {
            return Err(bad("too long"));
        }
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| bad("not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's bucket naming rules (which MinIO, R2, B2 and Garage share).
        let ok_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !ok_bucket {
            return Err(bad(
                "the bucket name must be 3-63 lower-case letters, digits, '-' or '.'",
            ));
        }
        let prefix = prefix.trim_matches('/');
        let ok_prefix = prefix.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
        if !prefix.is_empty() && !ok_prefix {
            return Err(bad(
                "the prefix may hold letters, digits, '-', '_', '.' and '/' only",
            ));
        }
        Ok(BucketUrl {
            bucket: bucket.to_owned(),
            prefix: if prefix.is_empty() {
                DEFAULT_PREFIX.to_owned()
            } else {
                prefix.to_owned()
            },
        })
    }
}

/// A bucket as the mesh records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSetting {
    /// Where.
    pub url: BucketUrl,
    /// The S3 endpoint (`https://…`, or `http://` for a server on this machine or
    /// network); AWS's own when absent.
    pub endpoint: Option<String>,
    /// The region (`us-east-1` when absent).
    pub region: Option<String>,
    /// Chunks a writer stores between two snapshots.
    pub snapshot_every: u64,
    /// Snapshots (each with the chunks after it) a writer keeps; older objects are
    /// deleted when it stores a snapshot.
    pub keep_snapshots: u64,
    /// Who added it (hex id).
    pub added_by: String,
    /// When (unix seconds).
    pub added_at: i64,
}

impl BucketSetting {
    /// With other retention than the defaults ([`super::SNAPSHOT_EVERY`],
    /// [`super::KEEP_SNAPSHOTS`]); each at least 1, at most 100,000.
    pub fn with_retention(
        mut self,
        snapshot_every: Option<u64>,
        keep_snapshots: Option<u64>,
    ) -> Result<BucketSetting, BucketError> {
        for (name, v) in [
            ("snapshot-every", snapshot_every),
            ("keep-snapshots", keep_snapshots),
        ] {
            if let Some(v) = v
                && !(1..=100_000).contains(&v)
            {
                return Err(BucketError::Invalid(format!(
                    "{name} {v}: expected 1 to 100000"
                )));
            }
        }
        self.snapshot_every = snapshot_every.unwrap_or(self.snapshot_every);
        self.keep_snapshots = keep_snapshots.unwrap_or(self.keep_snapshots);
        Ok(self)
    }

    /// Checks a bucket given by a user or read from the mesh.
    pub fn parse(
        url: &str,
        endpoint: Option<&str>,
        region: Option<&str>,
    ) -> Result<BucketSetting, BucketError> {
        let url: BucketUrl = url.parse()?;
        let endpoint = endpoint.map(|e| e.trim_end_matches('/').to_owned());
        if let Some(e) = &endpoint {
            let ok = e.len() <= MAX_TEXT
                && (e.starts_with("https://") || e.starts_with("http://"))
                && !e.contains(char::is_whitespace);
            if !ok {
                return Err(BucketError::Invalid(format!(
                    "endpoint {e:?}: expected an http:// or https:// URL"
                )));
            }
        }
        if let Some(r) = region {
            let ok = !r.is_empty()
                && r.len() <= 64
                && r.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(BucketError::Invalid(format!(
                    "region {r:?}: expected a name like us-east-1"
                )));
            }
        }
        Ok(BucketSetting {
            url,
            endpoint,
            region: region.map(str::to_owned),
            snapshot_every: super::SNAPSHOT_EVERY,
            keep_snapshots: super::KEEP_SNAPSHOTS,
            added_by: String::new(),
            added_at: 0,
        })
    }

    /// The endpoint requests go to.
    pub fn endpoint_shown(&self) -> String {
        self.endpoint.clone().unwrap_or_else(|| {
            format!(
                "https://s3.{}.amazonaws.com",
                self.region.as_deref().unwrap_or("us-east-1")
            )
        })
    }
}

/// S3 credentials and where they came from.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Access key id.
    pub key_id: String,
    /// Secret access key.
    pub secret: String,
    /// Session token, if any.
    pub token: Option<String>,
    /// `environment` or the credentials file's path.
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("key_id", &self.key_id)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// From `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), else
    /// from the profile `AWS_PROFILE` (or `default`) of the shared credentials file
    /// (`AWS_SHARED_CREDENTIALS_FILE`, or `~/.aws/credentials`).
    pub fn from_environment() -> Option<Credentials> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let (Some(key_id), Some(secret)) =
            (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        {
            return Some(Credentials {
                key_id,
                secret,
                token: var("AWS_SESSION_TOKEN"),
                source: "environment".into(),
            });
        }
        let path = var("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".aws/credentials")))?;
        let text = std::fs::read_to_string(&path).ok()?;
        let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let mut c = from_ini(&text, &profile)?;
        c.source = path.display().to_string();
        Some(c)
    }
}

/// The profile's keys in an AWS credentials file (INI: `[profile]`, `key = value`).
fn from_ini(text: &str, profile: &str) -> Option<Credentials> {
    let mut section = String::new();
    let (mut key_id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
            continue;
        }
        if section != profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_owned();
            match k.trim() {
                "aws_access_key_id" => key_id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some(Credentials {
        key_id: key_id?,
        secret: secret?,
        token,
        source: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_print_back() {
        let u: BucketUrl = "s3://team-specs/lsp/office".parse().expect("valid");
        assert_eq!(
            (u.bucket.as_str(), u.prefix.as_str()),
            ("team-specs", "lsp/office")
        );
        assert_eq!(u.to_string(), "s3://team-specs/lsp/office");
        let u: BucketUrl = "s3://team-specs".parse().expect("valid");
        assert_eq!(u.prefix, DEFAULT_PREFIX);
        for bad in [
            "http://x/y",
            "s3://A_B/x",
            "s3://ab/x",
            "s3://bucket/../x",
            "s3://bucket/a b",
        ] {
            assert!(bad.parse::<BucketUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints_and_regions_are_checked() {
        assert!(
            BucketSetting::parse(
                "s3://abc/p",
                Some("http://127.0.0.1:9000/"),
                Some("eu-west-1")
            )
            .is_ok()
        );
        assert!(BucketSetting::parse("s3://abc/p", Some("ftp://x"), None).is_err());
        assert!(BucketSetting::parse("s3://abc/p", None, Some("eu west")).is_err());
    }

    #[test]
    fn a_profile_is_read_from_a_credentials_file() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[work]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token=T\n";
        let c = from_ini(text, "work").expect("profile");
        assert_eq!(
            (c.key_id.as_str(), c.secret.as_str(), c.token.as_deref()),
            ("C", "D", Some("T"))
        );
        assert_eq!(
            from_ini(text, "default").map(|c| c.key_id),
            Some("A".into())
        );
        assert!(from_ini(text, "none").is_none());
    }
}
