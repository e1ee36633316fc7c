//! HTTPS for a UI served beyond loopback: a certificate and key the user gives
//! (`--tls-cert/--tls-key`), or a self-signed one this machine makes once and keeps in
//! its home (`--tls-self-signed`), whose SHA-256 fingerprint the user compares in the
//! browser's warning. Handshakes run in their own tasks with a deadline, so a client
//! that connects and sends nothing holds no one else up.

use crate::serve::{Admitted, Slots};
use axum::serve::Listener;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

/// Where the UI's certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// PEM files given by the user (a chain, then its key).
    Files {
        /// Certificate chain, PEM.
        cert: PathBuf,
        /// Private key, PEM.
        key: PathBuf,
    },
    /// A self-signed certificate kept in this folder (made on first use).
    SelfSigned {
        /// Folder of `ui-cert.pem` / `ui-key.pem` (the machine's home).
        dir: PathBuf,
        /// Names and addresses it is for, besides `localhost` and loopback.
        names: Vec<String>,
    },
}

/// A loaded certificate: the server configuration and the leaf's fingerprint.
#[derive(Debug, Clone)]
pub struct Tls {
    pub(crate) config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate (DER), as browsers show it: `AB:CD:…`.
    pub fingerprint: String,
    /// The certificate file in use.
    pub cert_path: PathBuf,
}

/// Why a certificate could not be used. Each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A file holds no usable PEM certificate or key.
    #[error("{}: {what}; give a PEM certificate chain (--tls-cert) and its PEM private key (--tls-key)", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The certificate and key do not make a server configuration.
    #[error("the certificate and key cannot be used: {0}")]
    Config(String),
}

const CERT_FILE: &str = "ui-cert.pem";
const KEY_FILE: &str = "ui-key.pem";
/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes finished but not yet taken by the server.
const BACKLOG: usize = 64;
/// Handshakes in progress at once; a connection past it is closed at once, so a flood
/// of silent connections costs a bounded number of tasks and buffers.
const MAX_HANDSHAKES: usize = 128;

impl TlsSource {
    /// Loads (or, for a self-signed source, makes once) the certificate.
    pub fn load(&self) -> Result<Tls, TlsError> {
        let (cert_path, key_path) = match self {
            TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
            TlsSource::SelfSigned { dir, names } => {
                let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
                if !cert.exists() || !key.exists() {
                    make_self_signed(&cert, &key, names)?;
                }
                (cert, key)
            }
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
            .map_err(|e| pem_error(&cert_path, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| pem_error(&cert_path, e))?;
        let leaf = chain.first().ok_or_else(|| TlsError::Pem {
            path: cert_path.clone(),
            what: "no certificate in it".into(),
        })?;
        let fingerprint = fingerprint(leaf);
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| pem_error(&key_path, e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            config: Arc::new(config),
            fingerprint,
            cert_path,
        })
    }
}

fn pem_error(path: &Path, e: rustls::pki_types::pem::Error) -> TlsError {
    match e {
        rustls::pki_types::pem::Error::Io(source) => TlsError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => TlsError::Pem {
            path: path.to_path_buf(),
            what: other.to_string(),
        },
    }
}

/// `AB:CD:…` of the SHA-256 of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn make_self_signed(cert: &Path, key: &Path, names: &[String]) -> Result<(), TlsError> {
    let mut sans = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    for n in names {
        if !sans.contains(n) {
            sans.push(n.clone());
        }
    }
    let key_pair = rcgen::KeyPair::generate().map_err(|e| TlsError::Config(e.to_string()))?;
    let mut params =
        rcgen::CertificateParams::new(sans).map_err(|e| TlsError::Config(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "leanspec-peer web UI");
    // Ten years: a self-signed certificate is trusted by its fingerprint, not its dates.
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let cert_pem = params
        .self_signed(&key_pair)
        .map_err(|e| TlsError::Config(e.to_string()))?
        .pem();
    write_private(key, key_pair.serialize_pem().as_bytes())?;
    write_private(cert, cert_pem.as_bytes())
}

/// Writes a file only this user can read (temp file + rename: never half a key).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(io)?;
    std::io::Write::write_all(&mut f, bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// A connection's byte stream, plain or TLS.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The UI's listener: plain TCP, or TLS with handshakes off the accept path.
pub(crate) enum UiListener {
    Plain(TcpListener, Slots),
    Tls {
        addr: SocketAddr,
        ready: mpsc::Receiver<(Box<dyn Stream>, SocketAddr)>,
        _accept: tokio::task::JoinHandle<()>,
    },
}

impl UiListener {
    /// Every connection takes a slot from `slots` when accepted, before any TLS
    /// handshake, and holds it until it closes (`serve.rs` rule 1).
    pub(crate) fn new(
        tcp: TcpListener,
        tls: Option<&Tls>,
        slots: Slots,
    ) -> std::io::Result<UiListener> {
        let Some(tls) = tls else {
            return Ok(UiListener::Plain(tcp, slots));
        };
        let slots_for_connections = slots;
        let addr = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(tls.config.clone());
        let (tx, ready) = mpsc::channel(BACKLOG);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let conn_slots = slots_for_connections;
        let accept = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, do not spin.
                        tracing::debug!("web UI accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(conn_slot) = conn_slots.admit(peer.ip()) else {
                    tracing::debug!(%peer, "web UI: over the connection limits; closed");
                    continue;
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "web UI: too many TLS handshakes at once; closed");
                    continue;
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => {
                            let s = Admitted {
                                inner: s,
                                _slot: conn_slot,
                            };
                            let _ = tx.send((Box::new(s) as Box<dyn Stream>, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "web UI TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "web UI TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(UiListener::Tls {
            addr,
            ready,
            _accept: accept,
        })
    }
}

impl Drop for UiListener {
    fn drop(&mut self) {
        if let UiListener::Tls { _accept, .. } = self {
            _accept.abort();
        }
    }
}

impl Listener for UiListener {
    type Io = Box<dyn Stream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        match self {
            UiListener::Plain(tcp, slots) => loop {
                match TcpListener::accept(tcp).await {
                    Ok((s, peer)) => match slots.admit(peer.ip()) {
                        Some(slot) => {
                            let s = Admitted {
                                inner: s,
                                _slot: slot,
                            };
                            return (Box::new(s), peer);
                        }
                        None => {
                            tracing::debug!(%peer, "web UI: over the connection limits; closed")
                        }
                    },
                    Err(e) => {
                        tracing::debug!("web UI accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            },
            UiListener::Tls { ready, .. } => match ready.recv().await {
                Some(c) => c,
                // The accept task ended (it never does while the listener lives).
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            UiListener::Plain(tcp, _) => tcp.local_addr(),
            UiListener::Tls { addr, .. } => Ok(*addr),
        }
    }
}
