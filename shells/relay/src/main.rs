//! `leanspec-relay`: the hosted relay. A thin shell over `iroh_relay::server::Server`
//! (relaying is not re-implemented here): configuration, access control, TLS, metrics,
//! health (`/healthz`), logs, clean shutdown on SIGTERM.

mod access;
mod config;

use anyhow::Context;
use clap::Parser;
use config::{Config, Flags};
use iroh_relay::server::{
    CertConfig, ClientRateLimit, QuicConfig, RelayConfig, Server, ServerConfig, TlsConfig,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::num::NonZeroU32;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let flags = Flags::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LEANSPEC_RELAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(flags) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leanspec-relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(flags: Flags) -> anyhow::Result<()> {
    let config = Config::load(flags)?;
    let server_config = server_config(&config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let server = Server::spawn(server_config)
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the relay: {e}"))?;
        let url = match (server.https_addr(), server.http_addr()) {
            (Some(a), _) => format!("https://{a}"),
            (None, Some(a)) => format!("http://{a}"),
            (None, None) => anyhow::bail!("the relay serves nothing"),
        };
        // Scripts and tests read this line for the URL (ports may be chosen by the OS).
        eprintln!("leanspec-relay: relay url {url}");
        if let Some(q) = server.quic_addr() {
            eprintln!("leanspec-relay: QUIC address discovery on {q}");
        }
        if let Some(m) = config.metrics_bind {
            eprintln!("leanspec-relay: metrics on http://{m}/metrics");
        }
        eprintln!("leanspec-relay: health on {url}/healthz; SIGTERM or Ctrl-C to stop");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut server = server;
        let stopped_by_itself = tokio::select! {
            _ = tokio::signal::ctrl_c() => false,
            _ = term.recv() => false,
            r = server.join() => {
                tracing::error!("the relay stopped: {r:?}");
                true
            }
        };
        if stopped_by_itself {
            anyhow::bail!("the relay stopped unexpectedly (see the log above)");
        }
        eprintln!("leanspec-relay: stopping");
        server
            .shutdown()
            .await
            .map_err(|e| anyhow::anyhow!("shutdown: {e}"))?;
        Ok(())
    })
}

fn server_config(config: &Config) -> anyhow::Result<ServerConfig> {
    let mut relay = RelayConfig::new(config.http_bind);
    relay.access = Arc::new(access::RelayAccess {
        tokens: config.tokens.clone(),
        allow: config.allow.clone(),
    });
    relay.key_cache_capacity = Some(1024);
    if let Some((rate, burst)) = config.rate_limit {
        let mut limit = ClientRateLimit::new(NonZeroU32::new(rate).context("rate_limit is 0")?);
        limit.max_burst_bytes = burst.and_then(NonZeroU32::new);
        relay.limits.client_rx = Some(limit);
    }
    if let Some(tls) = &config.tls {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
            .with_context(|| format!("cannot read the certificate {}", tls.cert.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("invalid certificate PEM {}", tls.cert.display()))?;
        if certs.is_empty() {
            anyhow::bail!("{} holds no certificate", tls.cert.display());
        }
        let key = PrivateKeyDer::from_pem_file(&tls.key)
            .with_context(|| format!("cannot read the private key {}", tls.key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("the certificate and key do not match or are unsupported")?;
        relay.tls = Some(TlsConfig::new(
            tls.https_bind,
            CertConfig::Manual { server_config },
        ));
    }
    let mut out = ServerConfig::default();
    out.relay = Some(relay);
    out.quic = config.quic_bind.map(QuicConfig::new);
    out.metrics_addr = config.metrics_bind;
    Ok(out)
}
