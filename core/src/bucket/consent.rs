//! Consent before credentials leave (issue 39): a bucket another member recorded in the
//! mesh is only *proposed* here. This machine sends it nothing (no request, so no access
//! key id, no SigV4 signature, no session token) until its own user accepts it
//! (`bucket accept URL`) or adds it here.
//!
//! 1. An acceptance is this machine's (store meta, never replicated) and names the
//!    endpoint and region accepted: a member that later rewrites the setting's endpoint
//!    gets a proposal again, not the old consent.
//! 2. `http://` endpoints are accepted only for loopback hosts (`localhost`, `127.0.0.0/8`,
//!    `::1`) unless the user passes `--allow-http`: over plain HTTP the key id, the
//!    signatures and a session token travel in clear to whoever is on the path.

use super::{BucketError, BucketSetting};
use serde::{Deserialize, Serialize};

/// This machine's user said yes to a bucket with this endpoint and region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    /// The endpoint accepted (`None`: AWS's own).
    pub endpoint: Option<String>,
    /// The region accepted.
    pub region: Option<String>,
    /// When (unix seconds).
    pub at: i64,
}

impl Acceptance {
    /// An acceptance of `s` as it is now.
    pub(crate) fn of(s: &BucketSetting, at: i64) -> Acceptance {
        Acceptance {
            endpoint: s.endpoint.clone(),
            region: s.region.clone(),
            at,
        }
    }

    /// Whether it covers `s` as it is now (rule 1).
    pub fn covers(&self, s: &BucketSetting) -> bool {
        self.endpoint == s.endpoint && self.region == s.region
    }
}

/// Rule 2: refuses `http://` to a host that is not loopback unless `allow_http`.
pub(crate) fn check_transport(s: &BucketSetting, allow_http: bool) -> Result<(), BucketError> {
    let Some(endpoint) = s.endpoint.as_deref() else {
        return Ok(()); // AWS: https
    };
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return Ok(());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback || allow_http {
        return Ok(());
    }
    Err(BucketError::Invalid(format!(
        "refusing {endpoint}: over http:// to another host this machine's access key id, \
         request signatures and any session token travel in clear; use an https:// \
         endpoint, or pass --allow-http if the network path is yours"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(endpoint: &str) -> BucketSetting {
        BucketSetting::parse("s3://consent-test/p", Some(endpoint), None).expect("setting")
    }

    #[test]
    fn http_only_to_loopback_unless_allowed() {
        for ok in [
            "https://r2.example.com",
            "http://127.0.0.1:9000",
            "http://localhost:9000",
            "http://[::1]:9000/",
        ] {
            assert!(check_transport(&setting(ok), false).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.1.2.3:9000",
            "http://nas.local:9000",
            "http://127.0.0.1.evil.com",
        ] {
            assert!(check_transport(&setting(bad), false).is_err(), "{bad}");
            assert!(check_transport(&setting(bad), true).is_ok(), "{bad}");
        }
    }

    #[test]
    fn an_acceptance_covers_only_the_endpoint_accepted() {
        let s = setting("https://a.example.com");
        let yes = Acceptance::of(&s, 1);
        assert!(yes.covers(&s));
        assert!(!yes.covers(&setting("https://other.example.com")));
    }
}
