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

/// One frame's bytes: header and body.
pub fn encode(kind: u8, body: &[u8]) -> Result<Vec<u8>, FrameError> {
    let len = body.len() + 2;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    buf.push(VERSION);
    buf.push(kind);
    buf.extend_from_slice(body);
    Ok(buf)
}

/// The length a frame's 4-byte prefix announces, checked against `max` before anything
/// is allocated for it.
pub fn announced_len(prefix: [u8; 4], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max.min(MAX_FRAME) {
        return Err(FrameError::TooLarge(len));
    }
    if len < 2 {
        return Err(FrameError::Malformed("shorter than its header"));
    }
    Ok(len)
}

/// Splits what follows the length prefix (`version | kind | body`) into `(kind, body)`.
pub fn split_header(mut buf: Vec<u8>) -> Result<(u8, Vec<u8>), FrameError> {
    match buf.get(..2) {
        Some([VERSION, kind]) => {
            let kind = *kind;
            buf.drain(..2);
            Ok((kind, buf))
        }
        Some(_) => Err(FrameError::Malformed("unknown version")),
        None => Err(FrameError::Malformed("shorter than its header")),
    }
}

/// Decodes the first frame of `bytes` (at most `max` bytes): `((kind, body), bytes
/// used)`. A frame cut short is [`FrameError::Io`], as on a stream. The stream readers
/// below use the same checks; this is the form the fuzz target drives.
pub fn decode(bytes: &[u8], max: usize) -> Result<((u8, Vec<u8>), usize), FrameError> {
    let Some(prefix) = bytes.get(..4) else {
        return Err(if bytes.is_empty() {
            FrameError::Closed
        } else {
            FrameError::Io("truncated length".into())
        });
    };
    let mut p = [0u8; 4];
    p.copy_from_slice(prefix);
    let len = announced_len(p, max)?;
    let body = bytes
        .get(4..4 + len)
        .ok_or_else(|| FrameError::Io("truncated frame".into()))?;
    Ok((split_header(body.to_vec())?, 4 + len))
}

/// Writes one frame of `kind` with `body`.
pub async fn write(send: &mut SendStream, kind: u8, body: &[u8]) -> Result<(), FrameError> {
    let buf = encode(kind, body)?;
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
    let mut prefix = [0u8; 4];
    match recv.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(iroh::endpoint::ReadExactError::FinishedEarly(0)) => return Err(FrameError::Closed),
        Err(e) => return Err(FrameError::Io(e.to_string())),
    }
    let len = announced_len(prefix, max)?;
    let mut buf = vec![0u8; len];
    recv.read_exact(&mut buf)
        .await
        .map_err(|e| FrameError::Io(e.to_string()))?;
    split_header(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_reports_what_it_used() {
        let mut bytes = encode(4, b"hello").expect("encode");
        bytes.extend_from_slice(b"next");
        let ((kind, body), used) = decode(&bytes, MAX_FRAME).expect("decode");
        assert_eq!((kind, body.as_slice(), used), (4, &b"hello"[..], 11));
    }

    #[test]
    fn bad_frames_get_typed_errors() {
        let ok = encode(1, b"abc").expect("encode");
        assert!(matches!(decode(&[], 64), Err(FrameError::Closed)));
        assert!(matches!(decode(&ok[..3], 64), Err(FrameError::Io(_))));
        assert!(matches!(decode(&ok[..6], 64), Err(FrameError::Io(_))));
        assert!(matches!(decode(&ok, 4), Err(FrameError::TooLarge(5))));
        let huge = (u32::MAX).to_be_bytes();
        assert!(matches!(
            decode(&huge, MAX_FRAME),
            Err(FrameError::TooLarge(_))
        ));
        assert!(matches!(
            decode(&[0, 0, 0, 1, VERSION], 64),
            Err(FrameError::Malformed(_))
        ));
        let mut other_version = ok.clone();
        other_version[4] = VERSION + 1;
        assert!(matches!(
            decode(&other_version, 64),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            encode(0, &vec![0; MAX_FRAME]),
            Err(FrameError::TooLarge(_))
        ));
    }
}
