//! Length-prefixed frames.
//!
//! | bytes | field                                   |
//! |-------|-----------------------------------------|
//! | 0..4  | `length`: i32, big-endian, ≥ 0          |
//! | 4..   | `length` bytes of payload               |
//!
//! A negative length or one above the configured maximum is a protocol
//! error: the connection is closed rather than allocating what a peer asks.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection or the socket failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The length prefix is negative or above the limit.
    #[error("frame of {length} bytes is outside 0..={frame_bytes_max}")]
    BadLength {
        /// The length the peer announced.
        length: i64,
        /// The largest frame accepted.
        frame_bytes_max: usize,
    },
}

/// Reads one frame's payload; `Ok(None)` on a clean end of stream before
/// any byte of a new frame.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    frame_bytes_max: usize,
) -> Result<Option<Bytes>, FrameError> {
    let mut length_bytes = [0u8; 4];
    let mut filled = 0;
    while filled < 4 {
        let n = reader.read(&mut length_bytes[filled..]).await?;
        if n == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        filled += n;
    }
    let length = i32::from_be_bytes(length_bytes);
    if length < 0 || length as usize > frame_bytes_max {
        return Err(FrameError::BadLength {
            length: length as i64,
            frame_bytes_max,
        });
    }
    let mut payload = BytesMut::zeroed(length as usize);
    reader.read_exact(&mut payload).await?;
    Ok(Some(payload.freeze()))
}

/// Writes one frame (length prefix + payload) and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, payload: &[u8]) -> Result<(), FrameError> {
    let length = i32::try_from(payload.len()).map_err(|_| FrameError::BadLength {
        length: payload.len() as i64,
        frame_bytes_max: i32::MAX as usize,
    })?;
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(payload);
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}
