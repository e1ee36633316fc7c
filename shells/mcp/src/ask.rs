//! One request, answered as the CLI answers it: by the running `up` for the home when
//! there is one, else on a node opened for this request and closed after (holding it
//! open would keep `up` from starting).

use leanspec_peer_core::control::{self, Reply, Request};
use leanspec_peer_core::peer::PeerOptions;
use leanspec_peer_core::{ErrorKind, Node};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Answers `req` for `home` (blocking work runs off the async threads).
pub(crate) async fn ask(home: &Path, req: Request) -> Reply {
    let home: PathBuf = home.to_path_buf();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || ask_blocking(&home, req, &runtime))
        .await
        .unwrap_or_else(|e| failure(ErrorKind::Io, format!("the request did not finish: {e}")))
}

fn ask_blocking(home: &Path, req: Request, runtime: &tokio::runtime::Handle) -> Reply {
    if control::is_running(home) {
        return through_daemon(home, &req);
    }
    match Node::open(home, PeerOptions::default()) {
        Ok(node) => runtime.block_on(control::handle(&node, req)),
        // `up` started between the check and the open: ask it.
        Err(_) if control::is_running(home) => through_daemon(home, &req),
        Err(e) => failure(e.kind(), e.to_string()),
    }
}

fn through_daemon(home: &Path, req: &Request) -> Reply {
    let timeout = match req {
        Request::Scan => Duration::from_secs(120),
        _ => Duration::from_secs(30),
    };
    control::call(home, req, timeout).unwrap_or_else(|e| failure(ErrorKind::Io, e.to_string()))
}

fn failure(kind: ErrorKind, message: String) -> Reply {
    Reply::Error { kind, message }
}
