//! Length-prefixed JSON frames: `u32` big-endian length, then that many bytes of JSON.
//!
//! Decoding is split into a pure function over a byte slice (unit-tested and fuzzable)
//! and async helpers that read exactly one frame from a stream without over-reading,
//! so raw bytes that follow a preamble stay in the stream.

use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What can go wrong reading or writing a frame. Every variant fails one stream only.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The declared length exceeds the cap; the peer is broken or hostile.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    Oversized { len: usize, max: usize },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({got} of {want} bytes)")]
    Truncated { got: usize, want: usize },
    /// The payload is not the JSON message expected here.
    #[error("malformed frame: {0}")]
    Malformed(#[from] serde_json::Error),
    /// Transport error underneath.
    #[error("i/o error on frame: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes `msg` as one frame. Fails only if the message itself is larger than `max`.
pub fn encode<T: Serialize>(msg: &T, max: usize) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(msg)?;
    if body.len() > max {
        return Err(FrameError::Oversized { len: body.len(), max });
    }
    let len = u32::try_from(body.len()).map_err(|_| FrameError::Oversized { len: body.len(), max })?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes one frame from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a frame, or `Ok(Some((msg, used)))`
/// with the number of bytes consumed. The length is checked before waiting for the body,
/// so an oversized frame is refused without buffering it.
pub fn decode<T: DeserializeOwned>(buf: &[u8], max: usize) -> Result<Option<(T, usize)>, FrameError> {
    let Some(header) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len > max {
        return Err(FrameError::Oversized { len, max });
    }
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    Ok(Some((serde_json::from_slice(body)?, 4 + len)))
}

/// Reads exactly one frame. `Ok(None)` means the stream ended cleanly before any byte.
pub async fn read<T, R>(r: &mut R, max: usize) -> Result<Option<T>, FrameError>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin,
{
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut header[got..]).await?;
        if n == 0 {
            return if got == 0 { Ok(None) } else { Err(FrameError::Truncated { got, want: 4 }) };
        }
        got += n;
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::Oversized { len, max });
    }
    let mut body = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = r.read(&mut body[got..]).await?;
        if n == 0 {
            return Err(FrameError::Truncated { got: 4 + got, want: 4 + len });
        }
        got += n;
    }
    Ok(Some(serde_json::from_slice(&body)?))
}

/// Writes one frame and flushes it, so a QUIC peer sees the stream at once.
pub async fn write<T, W>(w: &mut W, msg: &T, max: usize) -> Result<(), FrameError>
where
    T: Serialize,
    W: AsyncWrite + Unpin,
{
    let bytes = encode(msg, max)?;
    w.write_all(&bytes).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Control, Open, RejectCode, MAX_FRAME_LEN};

    fn open() -> Open {
        Open { stream_id: 7, sni: "a.example".into(), client_addr: "127.0.0.1:5000".parse().unwrap() }
    }

    #[test]
    fn round_trip_every_control_message() {
        let msgs = vec![
            Control::Hello { protocol: 1, gateway_version: "0.1.0".into(), connection_index: 2 },
            Control::Welcome { tunnel_id: "acme".into(), hostnames: vec!["*.a.example".into()], connection_id: 9 },
            Control::Reject { code: RejectCode::UnknownTunnel, reason: "no".into() },
            Control::Drain { grace_ms: 500 },
        ];
        for m in msgs {
            let bytes = encode(&m, MAX_FRAME_LEN).unwrap();
            let (back, used): (Control, usize) = decode(&bytes, MAX_FRAME_LEN).unwrap().unwrap();
            assert_eq!(back, m);
            assert_eq!(used, bytes.len());
        }
    }

    #[test]
    fn partial_input_asks_for_more() {
        let bytes = encode(&open(), MAX_FRAME_LEN).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode::<Open>(&bytes[..cut], MAX_FRAME_LEN).unwrap().is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn oversized_length_is_refused_before_the_body_arrives() {
        let header = (MAX_FRAME_LEN as u32 + 1).to_be_bytes();
        let err = decode::<Open>(&header, MAX_FRAME_LEN).unwrap_err();
        assert!(matches!(err, FrameError::Oversized { .. }), "{err}");
        let err = encode(&"x".repeat(100), 10).unwrap_err();
        assert!(matches!(err, FrameError::Oversized { len: 102, max: 10 }), "{err}");
    }

    #[test]
    fn garbage_and_wrong_messages_are_malformed() {
        let mut bytes = 3u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"{{{");
        assert!(matches!(decode::<Open>(&bytes, MAX_FRAME_LEN), Err(FrameError::Malformed(_))));
        let hello = encode(&Control::Drain { grace_ms: 1 }, MAX_FRAME_LEN).unwrap();
        assert!(matches!(decode::<Open>(&hello, MAX_FRAME_LEN), Err(FrameError::Malformed(_))));
    }

    #[test]
    fn unknown_message_types_decode_as_unknown() {
        let json = br#"{"type":"from_the_future","x":[1,2]}"#;
        let mut bytes = (json.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(json);
        let (msg, _): (Control, usize) = decode(&bytes, MAX_FRAME_LEN).unwrap().unwrap();
        assert_eq!(msg, Control::Unknown);
    }

    #[test]
    fn unknown_reject_codes_and_extra_fields_are_tolerated() {
        let json = br#"{"type":"reject","code":"new_reason","reason":"x","extra":1}"#;
        let mut bytes = (json.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(json);
        let (msg, _): (Control, usize) = decode(&bytes, MAX_FRAME_LEN).unwrap().unwrap();
        assert_eq!(msg, Control::Reject { code: RejectCode::Other, reason: "x".into() });
    }

    #[tokio::test]
    async fn async_read_stops_at_the_frame_boundary() {
        let mut bytes = encode(&open(), MAX_FRAME_LEN).unwrap();
        bytes.extend_from_slice(b"RAW");
        let mut rd = &bytes[..];
        let got: Open = read(&mut rd, MAX_FRAME_LEN).await.unwrap().unwrap();
        assert_eq!(got, open());
        assert_eq!(rd, b"RAW");
    }

    #[tokio::test]
    async fn async_read_reports_truncation_and_clean_eof() {
        let bytes = encode(&open(), MAX_FRAME_LEN).unwrap();
        let mut rd = &bytes[..bytes.len() - 1];
        assert!(matches!(read::<Open, _>(&mut rd, MAX_FRAME_LEN).await, Err(FrameError::Truncated { .. })));
        let mut rd = &bytes[..2];
        assert!(matches!(read::<Open, _>(&mut rd, MAX_FRAME_LEN).await, Err(FrameError::Truncated { .. })));
        let mut empty: &[u8] = &[];
        assert!(read::<Open, _>(&mut empty, MAX_FRAME_LEN).await.unwrap().is_none());
    }
}
