//! Relays from the peer's side: which certificates to trust, and a check of each relay
//! that turns a refusal (wrong or missing token, not on the allowlist, bad certificate)
//! into an event and a log line that say what to do. iroh itself only retries quietly.

use super::{PeerError, PeerOptions, Shared, stopping};
use iroh::tls::CaTlsConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::sync::Arc;
use std::time::Duration;

/// Trust the public web PKI, plus the PEM certificates of `--relay-ca` if given.
pub(crate) fn ca_config(options: &PeerOptions) -> Result<CaTlsConfig, PeerError> {
    let mut config = CaTlsConfig::embedded();
    if let Some(path) = &options.relay_ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| {
                PeerError::Invalid(format!("cannot read the relay CA {}: {e}", path.display()))
            })?;
        if certs.is_empty() {
            return Err(PeerError::Invalid(format!(
                "{} holds no PEM certificate",
                path.display()
            )));
        }
        config = config.with_extra_roots(certs);
    }
    Ok(config)
}

/// Checks every relay at start, and a failing one again with backoff (0.25 s doubling up
/// to 30 s: a relay still starting, or a refused token fixed on the relay) until it
/// accepts us;
/// reports each result as [`Event::RelayStatus`]. A relay that accepted us is not
/// probed again: a probe is a second connection with our key, which briefly takes over
/// the endpoint's own relay connection.
pub(crate) async fn watch(shared: Arc<Shared>, options: PeerOptions, secret: iroh::SecretKey) {
    let mut last: Vec<Option<String>> = vec![None; options.relays.len()];
    let mut backoff = crate::proto::link::Backoff::new();
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        for (i, url) in options.relays.iter().enumerate() {
            if last[i].as_deref() == Some("") {
                continue;
            }
            let error = match check(url, &options, &secret).await {
                Ok(()) => String::new(),
                Err(e) => e.to_string(),
            };
            if last[i].as_deref() != Some(error.as_str()) {
                if error.is_empty() {
                    tracing::info!(relay = %url, "relay reachable");
                } else {
                    tracing::warn!(relay = %url, "relay problem: {error}");
                }
                shared.emit_relay_status(url, error.is_empty(), error.clone());
                last[i] = Some(error);
            }
        }
        if last.iter().all(|l| l.as_deref() == Some("")) {
            return;
        }
        let mut jitter = [0u8; 1];
        let _ = getrandom::fill(&mut jitter);
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_wait(jitter[0])) => {}
            _ = stopping(&mut shutdown) => return,
        }
    }
}

/// Why a relay check failed; the text says what to do.
#[derive(Debug, thiserror::Error)]
enum Problem {
    #[error("invalid URL: {0}")]
    Url(#[from] iroh::RelayUrlParseError),
    #[error(transparent)]
    Setup(#[from] PeerError),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("{text} (check --relay-token with the relay's operator)")]
    Token { text: String },
    #[error("{text} (a self-signed relay needs --relay-ca CERT.pem)")]
    Certificate { text: String },
    #[error("{text}")]
    Connect { text: String },
    #[error("no answer within 10 s")]
    NoAnswer,
}

/// A relay token travels only over TLS, or to a relay on this machine: refuses to start
/// with a token and a plain `http://` relay elsewhere (the token would be readable by
/// anyone on the path).
pub(crate) fn check_token_transport(options: &PeerOptions) -> Result<(), PeerError> {
    if options.relay_token.is_none() {
        return Ok(());
    }
    for r in &options.relays {
        if !token_may_travel_to(r) {
            return Err(PeerError::Invalid(format!(
                "the relay token would travel in clear text to {r}: use an https:// relay URL, or no token"
            )));
        }
    }
    Ok(())
}

/// `https://` anywhere, `http://` only to a loopback address or `localhost`.
fn token_may_travel_to(relay: &str) -> bool {
    let Ok(url) = relay.parse::<iroh::RelayUrl>() else {
        return false;
    };
    match url.scheme() {
        "https" => true,
        "http" => url.host_str().is_some_and(|h| {
            let ip = h.trim_start_matches('[').trim_end_matches(']');
            h.eq_ignore_ascii_case("localhost")
                || ip
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }),
        _ => false,
    }
}

async fn check(url: &str, options: &PeerOptions, secret: &iroh::SecretKey) -> Result<(), Problem> {
    let parsed: iroh::RelayUrl = url.parse()?;
    let tls = ca_config(options)?
        .client_config(iroh::tls::default_provider())
        .map_err(|e| Problem::Tls(e.to_string()))?;
    let mut builder = iroh_relay::client::ClientBuilder::new(
        parsed,
        secret.clone(),
        iroh::dns::DnsResolver::new(),
    )
    .tls_client_config(tls);
    if let Some(t) = &options.relay_token {
        builder = builder.auth_token(t.clone());
    }
    match tokio::time::timeout(Duration::from_secs(10), builder.connect()).await {
        Ok(Ok(_client)) => Ok(()),
        Ok(Err(e)) => {
            let text = format!("{e:#}");
            Err(match refusal(&e) {
                Some(Refusal::Token) => Problem::Token { text },
                Some(Refusal::Certificate) => Problem::Certificate { text },
                None => Problem::Connect { text },
            })
        }
        Err(_) => Err(Problem::NoAnswer),
    }
}

/// A refusal the user can fix, told apart by the error's type (not its text).
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// The relay denied our token (missing, wrong, or not on its allowlist).
    Token,
    /// The relay's certificate is not trusted.
    Certificate,
}

fn refusal(e: &iroh_relay::client::ConnectError) -> Option<Refusal> {
    use iroh_relay::client::ConnectError;
    use iroh_relay::protos::handshake;
    match e {
        ConnectError::Handshake {
            source: handshake::Error::ServerDeniedAuth { .. },
            ..
        } => Some(Refusal::Token),
        ConnectError::UnexpectedUpgradeStatus { code, .. } if *code == 401 || *code == 403 => {
            Some(Refusal::Token)
        }
        ConnectError::Tls { source, .. } => source
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .and_then(|r| {
                matches!(r, rustls::Error::InvalidCertificate(_)).then_some(Refusal::Certificate)
            }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_travels_only_over_tls_or_to_this_machine() {
        for ok in [
            "https://relay.example.com",
            "http://127.0.0.1:3340",
            "http://[::1]:3340",
            "http://localhost:3340",
        ] {
            assert!(token_may_travel_to(ok), "{ok}");
        }
        for bad in [
            "http://relay.example.com",
            "http://10.0.0.1:3340",
            "http://localhost.evil.com",
            "ftp://x",
            "not a url",
        ] {
            assert!(!token_may_travel_to(bad), "{bad}");
        }
        let options = PeerOptions {
            relays: vec!["http://relay.example.com".into()],
            relay_token: Some("secret".into()),
            ..PeerOptions::default()
        };
        let e = check_token_transport(&options).expect_err("refused");
        assert!(e.to_string().contains("clear text"), "{e}");
        let options = PeerOptions {
            relay_token: None,
            ..options
        };
        assert!(
            check_token_transport(&options).is_ok(),
            "no token, no concern"
        );
    }
}
