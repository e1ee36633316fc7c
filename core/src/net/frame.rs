//! Length-prefixed, size-bounded, versioned frames: `u32 BE length | version | kind | body`.

use iroh::endpoint::{RecvStream, SendStream};

/// Largest frame accepted or sent. A full 10,000-spec document is ~1.4 MB; 32 MiB
/// leaves room while keeping a hostile peer from making us allocate gigabytes.
pub const MAX_FRAME: usize = 32 * 1024 * 1024;

/// Wire version of the frame format.
pub const VERSION: u8 = 1;

/// Frame errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame announced or given is larger than [`MAX_FRAME`].
    #[error("frame of {0} bytes is larger than the {MAX_FRAME} byte limit")]
    TooLarge(usize),
    /// The frame is shorter than its header or of an unknown version or kind.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// The stream ended cleanly before a frame started.
    #[error("stream closed")]
    Closed,
    /// Reading or writing failed (connection lost, truncated frame).
    #[error("stream failed: {0}")]
    Io(String),
}

/// Writes one frame of `kind` with `body`.
pub async fn write(send: &mut SendStream, kind: u8, body: &[u8]) -> Result<(), FrameError> {
    let len = body.len() + 2;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    buf.push(VERSION);
    buf.push(kind);
    buf.extend_from_slice(body);
    send.write_all(&buf)
        .await
        .map_err(|e| FrameError::Io(e.to_string()))
}

/// Reads one frame: `(kind, body)`.
pub async fn read(recv: &mut RecvStream) -> Result<(u8, Vec<u8>), FrameError> {
    read_max(recv, MAX_FRAME).await
}

/// Reads one frame of at most `max` bytes (a protocol with small messages refuses a
/// large frame before allocating it).
pub async fn read_max(recv: &mut RecvStream, max: usize) -> Result<(u8, Vec<u8>), FrameError> {
    let mut len = [0u8; 4];
    match recv.read_exact(&mut len).await {
        Ok(()) => {}
        Err(iroh::endpoint::ReadExactError::FinishedEarly(0)) => return Err(FrameError::Closed),
        Err(e) => return Err(FrameError::Io(e.to_string())),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max.min(MAX_FRAME) {
        return Err(FrameError::TooLarge(len));
    }
    if len < 2 {
        return Err(FrameError::Malformed("shorter than its header"));
    }
    let mut buf = vec![0u8; len];
    recv.read_exact(&mut buf)
        .await
        .map_err(|e| FrameError::Io(e.to_string()))?;
    if buf[0] != VERSION {
        return Err(FrameError::Malformed("unknown version"));
    }
    let kind = buf[1];
    buf.drain(..2);
    Ok((kind, buf))
}
