//! Configuration: a TOML file and flags (flags win), checked as a whole before anything
//! binds, so a bad config is one clear error and nothing half-started.

use anyhow::{Context, bail};
use clap::Parser;
use serde::Deserialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The hosted relay for leanspec-peer: machines behind NAT meet through it. It forwards
/// end-to-end encrypted QUIC packets and can read none of them.
#[derive(Debug, Parser)]
#[command(name = "leanspec-relay", version, about, long_about = None)]
pub(crate) struct Flags {
    /// TOML configuration file (keys as the long flags, with `_` for `-`).
    #[arg(long, value_name = "FILE", env = "LEANSPEC_RELAY_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Local development: plain HTTP on a loopback address, no TLS.
    #[arg(long)]
    pub(crate) dev: bool,
    /// Plain HTTP address (the relay itself in --dev; otherwise only captive-portal probes).
    #[arg(long, value_name = "ADDR")]
    pub(crate) http_bind: Option<SocketAddr>,
    /// HTTPS address of the relay (needs --tls-cert and --tls-key).
    #[arg(long, value_name = "ADDR")]
    pub(crate) https_bind: Option<SocketAddr>,
    /// TLS certificate chain (PEM).
    #[arg(long, value_name = "PEM")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "PEM")]
    pub(crate) tls_key: Option<PathBuf>,
    /// UDP address for QUIC address discovery (needs TLS; lets peers learn their public
    /// address for hole punching).
    #[arg(long, value_name = "ADDR")]
    pub(crate) quic_bind: Option<SocketAddr>,
    /// Address for Prometheus metrics (`/metrics`); off unless given.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_bind: Option<SocketAddr>,
    /// Shared token peers must present (`up --relay-token`); repeatable, any matches.
    #[arg(
        long = "token",
        value_name = "TOKEN",
        env = "LEANSPEC_RELAY_TOKEN",
        hide_env_values = true
    )]
    pub(crate) tokens: Vec<String>,
    /// Machine id allowed to use the relay; repeatable. Without any, every machine
    /// with a valid token (or everyone, without tokens) may connect.
    #[arg(long = "allow", value_name = "MACHINE_ID")]
    pub(crate) allow: Vec<String>,
    /// Per-connection receive rate limit, bytes per second.
    #[arg(long, value_name = "BYTES")]
    pub(crate) rate_limit: Option<u32>,
    /// Burst allowed above the rate limit, bytes.
    #[arg(long, value_name = "BYTES")]
    pub(crate) rate_burst: Option<u32>,
}

/// The file form; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    dev: Option<bool>,
    http_bind: Option<SocketAddr>,
    https_bind: Option<SocketAddr>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    quic_bind: Option<SocketAddr>,
    metrics_bind: Option<SocketAddr>,
    #[serde(default)]
    tokens: Vec<String>,
    #[serde(default)]
    allow: Vec<String>,
    rate_limit: Option<u32>,
    rate_burst: Option<u32>,
}

/// A checked configuration.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) http_bind: SocketAddr,
    pub(crate) tls: Option<Tls>,
    pub(crate) quic_bind: Option<SocketAddr>,
    pub(crate) metrics_bind: Option<SocketAddr>,
    pub(crate) tokens: Vec<String>,
    pub(crate) allow: HashSet<[u8; 32]>,
    pub(crate) rate_limit: Option<(u32, Option<u32>)>,
}

#[derive(Debug)]
pub(crate) struct Tls {
    pub(crate) https_bind: SocketAddr,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

impl Config {
    /// Merges the file (if any) and the flags, then checks the result.
    pub(crate) fn load(flags: Flags) -> anyhow::Result<Config> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None => File::default(),
        };
        let dev = flags.dev || file.dev.unwrap_or(false);
        let tls_cert = flags.tls_cert.or(file.tls_cert);
        let tls_key = flags.tls_key.or(file.tls_key);
        let https_bind = flags.https_bind.or(file.https_bind);
        let tls = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => Some(Tls {
                https_bind: https_bind.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 443))),
                cert,
                key,
            }),
            (None, None) => {
                if https_bind.is_some() {
                    bail!("https_bind needs a certificate: give --tls-cert and --tls-key");
                }
                None
            }
            _ => bail!("TLS needs both --tls-cert and --tls-key"),
        };
        let default_http = if dev {
            SocketAddr::from(([127, 0, 0, 1], 3340))
        } else {
            SocketAddr::from(([0, 0, 0, 0], 80))
        };
        let http_bind = flags.http_bind.or(file.http_bind).unwrap_or(default_http);
        if dev {
            if tls.is_some() {
                bail!("--dev serves plain HTTP; drop it to use --tls-cert/--tls-key");
            }
            if !http_bind.ip().is_loopback() {
                bail!(
                    "--dev serves plain HTTP and only on a loopback address, not {http_bind}; for other addresses give --tls-cert and --tls-key"
                );
            }
        } else if tls.is_none() {
            bail!(
                "no TLS certificate: give --tls-cert and --tls-key (see docs/relay.md), or --dev for plain HTTP on loopback"
            );
        }
        let quic_bind = flags.quic_bind.or(file.quic_bind);
        if quic_bind.is_some() && tls.is_none() {
            bail!("QUIC address discovery needs TLS: give --tls-cert and --tls-key");
        }
        let mut tokens = flags.tokens;
        tokens.extend(file.tokens);
        if let Some(t) = tokens.iter().find(|t| t.trim().is_empty() || t.len() < 16) {
            bail!(
                "relay token {:?} is too short: use at least 16 characters (e.g. `openssl rand -hex 24`)",
                t
            );
        }
        let mut allow = HashSet::new();
        for a in flags.allow.iter().chain(&file.allow) {
            let bytes: [u8; 32] = hex::decode(a)
                .ok()
                .and_then(|b| b.try_into().ok())
                .with_context(|| {
                    format!("{a:?} is not a machine id (64 hex digits, as `leanspec-peer status` prints)")
                })?;
            allow.insert(bytes);
        }
        let rate = flags.rate_limit.or(file.rate_limit);
        let burst = flags.rate_burst.or(file.rate_burst);
        let rate_limit = match (rate, burst) {
            (Some(0), _) => bail!("rate_limit must be above 0 bytes per second"),
            (Some(r), b) => Some((r, b)),
            (None, Some(_)) => bail!("rate_burst needs rate_limit"),
            (None, None) => None,
        };
        Ok(Config {
            http_bind,
            tls,
            quic_bind,
            metrics_bind: flags.metrics_bind.or(file.metrics_bind),
            tokens,
            allow,
            rate_limit,
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<File> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        let mut all = vec!["leanspec-relay"];
        all.extend_from_slice(args);
        Flags::parse_from(all)
    }

    #[test]
    fn bad_configs_are_refused_with_what_to_do() {
        let err = |args: &[&str]| {
            Config::load(flags(args))
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default()
        };
        assert!(err(&[]).contains("--tls-cert"));
        assert!(err(&["--dev", "--http-bind", "0.0.0.0:80"]).contains("loopback"));
        assert!(err(&["--dev", "--tls-cert", "c.pem", "--tls-key", "k.pem"]).contains("--dev"));
        assert!(err(&["--tls-cert", "c.pem"]).contains("both"));
        assert!(err(&["--dev", "--quic-bind", "127.0.0.1:0"]).contains("needs TLS"));
        assert!(err(&["--dev", "--token", "short"]).contains("too short"));
        assert!(err(&["--dev", "--allow", "xyz"]).contains("machine id"));
        assert!(err(&["--dev", "--rate-burst", "10"]).contains("rate_limit"));
        assert!(err(&["--dev", "--config", "/nonexistent/relay.toml"]).contains("cannot read"));
        assert!(Config::load(flags(&["--dev"])).is_ok());
    }

    #[test]
    fn the_file_is_read_and_flags_win() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("relay.toml");
        std::fs::write(
            &path,
            "dev = true\nhttp_bind = \"127.0.0.1:4000\"\ntokens = [\"0123456789abcdef0123\"]\n",
        )
        .expect("write");
        let c = Config::load(flags(&["--config", path.to_str().expect("utf8")])).expect("ok");
        assert_eq!(c.http_bind.port(), 4000);
        assert_eq!(c.tokens.len(), 1);
        let c = Config::load(flags(&[
            "--config",
            path.to_str().expect("utf8"),
            "--http-bind",
            "127.0.0.1:5000",
        ]))
        .expect("ok");
        assert_eq!(c.http_bind.port(), 5000);
        std::fs::write(&path, "colour = \"red\"\n").expect("write");
        let e = Config::load(flags(&["--config", path.to_str().expect("utf8")]))
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(e.contains("unknown field"), "{e}");
    }
}
