//! Hand-crafted WebSocket frames (RFC 6455 section 5.2), for what a well-behaved client library
//! refuses to send: invalid UTF-8 text, oversized frames, long runs of continuation frames.

/// Continuation frame opcode.
pub const CONTINUATION: u8 = 0x0;
/// Text frame opcode.
pub const TEXT: u8 = 0x1;
/// Binary frame opcode.
pub const BINARY: u8 = 0x2;
/// Close frame opcode.
pub const CLOSE: u8 = 0x8;
/// Ping frame opcode.
pub const PING: u8 = 0x9;
/// Pong frame opcode.
pub const PONG: u8 = 0xA;

/// The fixed masking key of every frame built here (any key will do; clients must mask).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame.
#[must_use]
pub fn masked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(if fin { 0x80 } else { 0x00 } | (opcode & 0x0f));
    let len = payload.len();
    if len < 126 {
        frame.push(0x80 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&len.to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    frame.extend_from_slice(&MASK);
    frame.extend(
        payload
            .iter()
            .zip(MASK.iter().cycle())
            .map(|(byte, key)| byte ^ key),
    );
    frame
}

/// A complete masked text frame carrying `bytes` as they are (valid UTF-8 or not).
#[must_use]
pub fn text(bytes: &[u8]) -> Vec<u8> {
    masked(true, TEXT, bytes)
}

/// `payload` as a text message split into frames of at most `chunk` bytes: a text frame, then
/// continuation frames, the last one final.
#[must_use]
pub fn fragmented_text(payload: &[u8], chunk: usize) -> Vec<u8> {
    let chunks: Vec<&[u8]> = payload.chunks(chunk.max(1)).collect();
    let mut bytes = Vec::new();
    for (i, part) in chunks.iter().enumerate() {
        let opcode = if i == 0 { TEXT } else { CONTINUATION };
        bytes.extend(masked(i + 1 == chunks.len(), opcode, part));
    }
    bytes
}

/// A masked close frame with a code.
#[must_use]
pub fn close(code: u16) -> Vec<u8> {
    masked(true, CLOSE, &code.to_be_bytes())
}

/// One frame as a server sends it (unmasked), parsed by [`RawConnection`](crate::RawConnection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFrame {
    /// The FIN bit.
    pub fin: bool,
    /// The opcode.
    pub opcode: u8,
    /// The payload.
    pub payload: Vec<u8>,
}

impl ServerFrame {
    /// The close code of a close frame, if it has one.
    #[must_use]
    pub fn close_code(&self) -> Option<u16> {
        match (self.opcode, self.payload.as_slice()) {
            (CLOSE, [high, low, ..]) => Some(u16::from_be_bytes([*high, *low])),
            _ => None,
        }
    }

    /// Parses one frame from the front of `bytes`: the frame and how many bytes it took, or
    /// `None` when more bytes are needed.
    ///
    /// # Panics
    /// The frame is masked (servers must not mask).
    #[must_use]
    pub fn parse(bytes: &[u8]) -> Option<(Self, usize)> {
        let [first, second, rest @ ..] = bytes else {
            return None;
        };
        assert_eq!(second & 0x80, 0, "a server frame must not be masked");
        let (len, header) = match second & 0x7f {
            126 => (
                usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?])),
                4,
            ),
            127 => {
                let mut len = [0_u8; 8];
                len.copy_from_slice(rest.get(..8)?);
                (usize::try_from(u64::from_be_bytes(len)).ok()?, 10)
            }
            short => (usize::from(short), 2),
        };
        let payload = bytes.get(header..header + len)?.to_vec();
        Some((
            Self {
                fin: first & 0x80 != 0,
                opcode: first & 0x0f,
                payload,
            },
            header + len,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_sizes() {
        let frame = masked(true, TEXT, b"hi");
        assert_eq!(frame.get(..2), Some(&[0x81, 0x82][..]));
        assert_eq!(frame.len(), 2 + 4 + 2);
        let payload: Vec<u8> = frame[6..]
            .iter()
            .zip(MASK.iter())
            .map(|(b, k)| b ^ k)
            .collect();
        assert_eq!(payload, b"hi");
        assert_eq!(
            masked(true, TEXT, &[0; 300]).get(..4),
            Some(&[0x81, 0xfe, 1, 44][..])
        );
        assert_eq!(masked(false, CONTINUATION, &[0; 70_000])[1], 0xff);
    }

    #[test]
    fn fragments_end_with_a_final_continuation() {
        let bytes = fragmented_text(b"abcde", 2);
        // three frames of 2 + 4 + payload bytes
        assert_eq!(bytes.len(), 3 * 6 + 5);
        assert_eq!(bytes[0], TEXT);
        assert_eq!(bytes[8], CONTINUATION);
        assert_eq!(bytes[16], 0x80 | CONTINUATION);
    }

    #[test]
    fn parses_server_frames() {
        let bytes = [0x88, 0x02, 0x03, 0xe9, 0x89];
        let (frame, used) = ServerFrame::parse(&bytes).unwrap();
        assert_eq!(used, 4);
        assert_eq!(frame.close_code(), Some(1001));
        assert!(ServerFrame::parse(&bytes[4..]).is_none());
    }
}
