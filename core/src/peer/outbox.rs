//! What a session sends, queued, so that its loop never waits for the peer to read.
//!
//! A session that awaited each write inside its loop stopped reading while it wrote.
//! Two members that each had more to send than the stream's window (documents opened
//! on both sides of a new session: whole documents, megabytes) each waited for the
//! other to read, for good: the connection stayed up (keepalives), both showed the
//! other online and never in sync, and invariant 5 kept third machines from relaying
//! around the stuck pair (issue 15, 50 machines: the storm never reached some pairs).
//! Now one write is in flight at a time, owned by the outbox across `select!` rounds
//! (cancel-safe like the session's read), and the loop goes on reading meanwhile.
//!
//! Bounded: while more than [`Outbox::FULL`] bytes wait, the session stops reading
//! (what we send is what the peer's frames make us say; a peer that sends and never
//! reads cannot make us queue without end).

use crate::net::frame::{self, FrameError};
use iroh::endpoint::SendStream;
use std::future::Future;
use std::pin::Pin;

type Write = Pin<Box<dyn Future<Output = (SendStream, Result<(), FrameError>)> + Send>>;

/// Frames waiting to be written to one stream, and the write in flight.
pub(super) struct Outbox {
    /// Encoded frames not handed to a write yet, in order.
    queued: Vec<u8>,
    /// The stream, while no write holds it.
    stream: Option<SendStream>,
    /// The write in flight (it holds the stream) and how many bytes it carries.
    writing: Option<(Write, usize)>,
}

impl Outbox {
    /// Above this many waiting bytes the session stops reading until the peer has read
    /// some (16 MiB: more than a new session's documents need).
    pub(super) const FULL: usize = 16 * 1024 * 1024;

    pub(super) fn new(stream: SendStream) -> Outbox {
        Outbox {
            queued: Vec::new(),
            stream: Some(stream),
            writing: None,
        }
    }

    /// Queues one frame.
    pub(super) fn push(&mut self, kind: u8, body: &[u8]) -> Result<(), FrameError> {
        self.queued.extend_from_slice(&frame::encode(kind, body)?);
        Ok(())
    }

    /// Bytes queued or being written.
    pub(super) fn waiting(&self) -> usize {
        self.queued.len() + self.writing.as_ref().map_or(0, |(_, n)| *n)
    }

    /// Whether the session should read on (see [`Outbox::FULL`]).
    pub(super) fn has_room(&self) -> bool {
        self.waiting() <= Self::FULL
    }

    /// Writes what is queued: resolves when one write (everything queued when it
    /// started) is done, and never while nothing is queued. Cancel-safe: a dropped call
    /// leaves the write in flight to the next one.
    pub(super) async fn written(&mut self) -> Result<(), FrameError> {
        if self.writing.is_none() {
            match self.stream.take() {
                Some(mut stream) if !self.queued.is_empty() => {
                    let bytes = std::mem::take(&mut self.queued);
                    let n = bytes.len();
                    let write: Write = Box::pin(async move {
                        let r = stream
                            .write_all(&bytes)
                            .await
                            .map_err(|e| FrameError::Io(e.to_string()));
                        (stream, r)
                    });
                    self.writing = Some((write, n));
                }
                stream => {
                    self.stream = stream;
                    return std::future::pending().await;
                }
            }
        }
        let Some((write, _)) = self.writing.as_mut() else {
            return std::future::pending().await;
        };
        let (stream, r) = write.await;
        self.writing = None;
        self.stream = Some(stream);
        r
    }
}
