//! The client side of WebSocket, just what the load generator needs and cheap enough that the
//! client is not the bottleneck: the HTTP upgrade, masked frames out, and a frame scanner that
//! hands out payloads straight from the read buffer (no allocation, no copy per message).

use std::fmt::Write as _;

/// Opcodes (RFC 6455 section 5.2).
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// The HTTP upgrade request for `host` and `path` with this `Sec-WebSocket-Key`.
pub(crate) fn upgrade_request(host: &str, path: &str, key: &str) -> Vec<u8> {
    let mut request = String::with_capacity(200);
    let _ = write!(
        request,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    request.into_bytes()
}

/// What the bytes read so far say about the upgrade response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Upgrade {
    /// The response head is not complete yet.
    Incomplete,
    /// Switched to WebSocket; frames start at this offset.
    Done(usize),
    /// The server refused or answered nonsense.
    Failed(String),
}

/// Checks the upgrade response in `buf` against the request's `key`.
pub(crate) fn parse_upgrade(buf: &[u8], key: &str) -> Upgrade {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > 16 << 10 {
            Upgrade::Failed("upgrade response head over 16 KiB".into())
        } else {
            Upgrade::Incomplete
        };
    };
    let head = String::from_utf8_lossy(buf.get(..end).unwrap_or_default());
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        return Upgrade::Failed(format!("upgrade refused: {status}"));
    }
    let expected = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let accepted = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == expected
        })
    });
    if accepted {
        Upgrade::Done(end + 4)
    } else {
        Upgrade::Failed("upgrade response without the right Sec-WebSocket-Accept".into())
    }
}

/// Appends a masked client frame with this opcode and payload to `out`.
pub(crate) fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(0x80 | 126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(
        payload
            .iter()
            .zip(mask.iter().cycle())
            .map(|(byte, key)| byte ^ key),
    );
}

/// Appends a masked text frame.
pub(crate) fn push_text(out: &mut Vec<u8>, text: &[u8], mask: [u8; 4]) {
    push_frame(out, TEXT, text, mask);
}

/// One complete message (or control frame) found in the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A whole text or binary message in one frame.
    Data(&'a [u8]),
    /// A fragment: `fin` set on the last one.
    Fragment {
        payload: &'a [u8],
        fin: bool,
    },
    Ping(&'a [u8]),
    Pong,
    Close,
}

/// The next frame at the start of `buf` and its total length, `Ok(None)` if incomplete, or why
/// the bytes are no valid server frame.
pub(crate) fn next_frame(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, String> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if b1 & 0x80 != 0 {
        return Err("the server sent a masked frame".into());
    }
    let (len, header) = match b1 & 0x7f {
        126 => match buf
            .get(2..4)
            .and_then(|bytes| <[u8; 2]>::try_from(bytes).ok())
        {
            Some(bytes) => (u64::from(u16::from_be_bytes(bytes)), 4),
            None => return Ok(None),
        },
        127 => match buf
            .get(2..10)
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        {
            Some(bytes) => (u64::from_be_bytes(bytes), 10),
            None => return Ok(None),
        },
        len => (u64::from(len), 2),
    };
    let len = usize::try_from(len).map_err(|_| "frame length overflows".to_owned())?;
    let total = header + len;
    let Some(payload) = buf.get(header..total) else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let frame = match b0 & 0x0f {
        TEXT | BINARY if fin => Frame::Data(payload),
        TEXT | BINARY | CONTINUATION => Frame::Fragment { payload, fin },
        PING => Frame::Ping(payload),
        PONG => Frame::Pong,
        CLOSE => Frame::Close,
        opcode => return Err(format!("unknown opcode {opcode:#x}")),
    };
    Ok(Some((frame, total)))
}

/// The length a frame needs in the buffer, once its header is readable (for growing the buffer
/// past a message larger than it).
pub(crate) fn frame_len(buf: &[u8]) -> Option<usize> {
    let b1 = *buf.get(1)?;
    match b1 & 0x7f {
        126 => buf
            .get(2..4)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(|b| 4 + usize::from(u16::from_be_bytes(b))),
        127 => buf
            .get(2..10)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .and_then(|b| usize::try_from(u64::from_be_bytes(b)).ok())
            .map(|len| len.saturating_add(10)),
        len => Some(2 + usize::from(len)),
    }
}

/// Appends a masked pong carrying `payload`.
pub(crate) fn push_pong(out: &mut Vec<u8>, payload: &[u8], mask: [u8; 4]) {
    push_frame(out, PONG, payload, mask);
}

/// Appends a masked close frame with status `code` and no reason.
pub(crate) fn push_close(out: &mut Vec<u8>, code: u16, mask: [u8; 4]) {
    push_frame(out, CLOSE, &code.to_be_bytes(), mask);
}

/// Whether `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, _)) = needle.split_first() else {
        return true;
    };
    let mut rest = haystack;
    while let Some(at) = rest.iter().position(|&b| b == first) {
        let Some(tail) = rest.get(at..) else {
            return false;
        };
        if tail.starts_with(needle) {
            return true;
        }
        rest = tail.get(1..).unwrap_or_default();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unmask(frame: &[u8]) -> Vec<u8> {
        let (mask, payload) = (&frame[2..6], &frame[6..]);
        payload
            .iter()
            .zip(mask.iter().cycle())
            .map(|(b, k)| b ^ k)
            .collect()
    }

    #[test]
    fn client_frames_are_masked() {
        let mut out = Vec::new();
        push_text(&mut out, b"hello", [1, 2, 3, 4]);
        assert_eq!(out[0], 0x81);
        assert_eq!(out[1], 0x80 | 5);
        assert_eq!(unmask(&out), b"hello");
        let mut long = Vec::new();
        push_text(&mut long, &[b'x'; 300], [9; 4]);
        assert_eq!(&long[1..4], &[0x80 | 126, 1, 44]);
    }

    #[test]
    fn frames_are_scanned_in_all_length_forms() {
        let mut buf = vec![0x81, 2, b'h', b'i', 0x89, 0, 0x82, 126, 0, 200];
        buf.extend_from_slice(&[b'z'; 200]);
        let (frame, n) = next_frame(&buf).unwrap().unwrap();
        assert_eq!((frame, n), (Frame::Data(b"hi"), 4));
        let (frame, n) = next_frame(&buf[4..]).unwrap().unwrap();
        assert_eq!((frame, n), (Frame::Ping(b""), 2));
        let (frame, n) = next_frame(&buf[6..]).unwrap().unwrap();
        assert_eq!(n, 204);
        assert_eq!(frame, Frame::Data(&[b'z'; 200]));
        assert_eq!(frame_len(&buf[6..]), Some(204));
        assert_eq!(next_frame(&buf[6..100]).unwrap(), None);
        assert!(next_frame(&[0x81, 0x81, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn fragments_are_reported_as_such() {
        let buf = [0x01, 1, b'a', 0x80, 1, b'b'];
        let (frame, n) = next_frame(&buf).unwrap().unwrap();
        assert_eq!(
            frame,
            Frame::Fragment {
                payload: b"a",
                fin: false
            }
        );
        let (frame, _) = next_frame(&buf[n..]).unwrap().unwrap();
        assert_eq!(
            frame,
            Frame::Fragment {
                payload: b"b",
                fin: true
            }
        );
    }

    #[test]
    fn the_upgrade_response_is_checked() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                   Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x00";
        assert_eq!(parse_upgrade(ok, key), Upgrade::Done(ok.len() - 2));
        assert_eq!(parse_upgrade(&ok[..20], key), Upgrade::Incomplete);
        let refused = b"HTTP/1.1 404 Not Found\r\n\r\n";
        assert!(matches!(
            parse_upgrade(refused, key),
            Upgrade::Failed(reason) if reason.contains("404")
        ));
    }

    #[test]
    fn substring_search() {
        assert!(contains(br#"{"type":"krmx/linked"}"#, b"krmx/linked"));
        assert!(!contains(br#"{"type":"krmx/joined"}"#, b"krmx/linked"));
        assert!(contains(b"aab", b"ab"));
    }
}
